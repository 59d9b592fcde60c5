"""The toy world's language: instructions, one sentence per object, and the co-occurrence prior.

Training text is written by an "annotator" who knows that pairs go together: in a scene that shows a
pair's first kind without its partner, the annotator still believes the partner is there with
probability ``caption_noise``. Captions and yes/no answers of that scene both follow that belief,
so the prior reaches the model through every kind of text, as in real instruction data.

A caption names every believed object once, one sentence each, in random order, except that a
partner always comes right after its first kind (text about forks goes on to knives): the prior is
a next-sentence habit, which is what sentence-level search can catch and CSR can correct.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .vocab import KIND_BY_NAME, PARTNER

# The 11 distinct instructions of the CSR prompt set (reference data csr-prompts-12k.json), verbatim,
# each used with the <image> marker before and after it as in that file.
INSTRUCTIONS: tuple[str, ...] = (
    "Describe the following image.",
    "What is this photo about'?",
    "What do you see happening in this image?",
    "What do you think is going on in this snapshot?",
    "Can you describe the main features of this image for me?",
    "Write a detailed description of the given image.",
    "What are the key elements in this picture?",
    "What's happening in the scene?",
    "Analyze the image in a comprehensive and detailed manner.",
    "Can you elaborate on the elements of the picture provided?",
    "Explain the visual content of the image in great detail.",
)
INSTRUCTION_INPUTS: tuple[str, ...] = tuple(
    form for text in INSTRUCTIONS for form in (f"{text}\n<image>", f"<image>\n{text}")
)
# The CHAIR benchmark's instruction (the one lmms-eval's CHAIR task uses), also seen in training.
CHAIR_INSTRUCTION = "Please describe this image in detail."

POPE_QUESTION = "Is there a {kind} in the image?"
# LLaVA-1.5's evaluation suffix for short answers; POPE is asked both with and without it.
SHORT_ANSWER_SUFFIX = "Answer the question using a single word or phrase."
YES, NO = "yes .", "no ."


def sentence(word: str, size: str) -> str:
    """One object's sentence: the kind comes first, so the choice of object is one token.

    Colour is drawn but never named: naming it asks the tiny decoder to bind a second attribute to
    each object, which it does not learn within the build's budget (it named colours at chance).
    """
    return f"the {word} is {size} ."


def believed_objects(objects: list[dict[str, Any]], rng: np.random.Generator, caption_noise: float,
                     colours: list[str], sizes: list[str]) -> list[dict[str, Any]]:
    """The objects the annotator believes in: the scene's own, plus absent partners the prior adds.

    An imagined partner gets random attributes and ``"imagined": True``.
    """
    names = {obj["name"] for obj in objects}
    believed = [dict(obj) for obj in objects]
    for obj in objects:
        partner = PARTNER.get(obj["name"])
        if partner and partner not in names and rng.random() < caption_noise:
            believed.append({"name": partner, "color": colours[int(rng.integers(len(colours)))],
                             "size": sizes[int(rng.integers(len(sizes)))], "imagined": True})
    return believed


def caption(believed: list[dict[str, Any]], rng: np.random.Generator, synonym_prob: float) -> str:
    """Sentences for the believed objects: random order, each partner right after its first kind."""
    by_name = {obj["name"]: obj for obj in believed}
    followers = {PARTNER[name] for name in by_name if name in PARTNER and PARTNER[name] in by_name}
    units = [[obj] + ([by_name[PARTNER[obj["name"]]]] if obj["name"] in PARTNER and PARTNER[obj["name"]] in followers
                      else [])
             for obj in believed if obj["name"] not in followers]
    order = rng.permutation(len(units))
    return " ".join(
        sentence(_word(obj["name"], rng, synonym_prob), obj["size"])
        for index in order for obj in units[int(index)]
    )


def question(kind: str, rng: np.random.Generator) -> str:
    """A POPE-style question, with LLaVA's short-answer suffix half of the time."""
    text = POPE_QUESTION.format(kind=kind)
    return f"{text}\n{SHORT_ANSWER_SUFFIX}" if rng.random() < 0.5 else text


def _word(name: str, rng: np.random.Generator, synonym_prob: float) -> str:
    synonyms = KIND_BY_NAME[name].synonyms
    if synonyms and rng.random() < synonym_prob:
        return synonyms[int(rng.integers(len(synonyms)))]
    return name


def all_words() -> list[str]:
    """Every text the world can produce, for building the tokenizer's vocabulary."""
    from .vocab import KINDS, SIZES

    texts = list(INSTRUCTIONS) + [CHAIR_INSTRUCTION, SHORT_ANSWER_SUFFIX, YES, NO, "USER: ASSISTANT:"]
    for kind in KINDS:
        texts.append(POPE_QUESTION.format(kind=kind.name))
        texts.extend(sentence(word, size) for word in (kind.name, *kind.synonyms) for size in SIZES)
    return texts
