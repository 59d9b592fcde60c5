"""Measurements of the built models on held-out scenes, through the same loaders and calls as the steps.

These are the build's own acceptance figures (``metrics.json``); the project's benchmark scorers read
the files in ``benchmarks/`` and must agree with them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..contract import Progress, atomic_write_text
from ..models import LoadedClip, LoadedLvlm, load_clip, load_lvlm
from .judge import judge_response
from .language import CHAIR_INSTRUCTION, SHORT_ANSWER_SUFFIX, sentence
from .tiny_clip import absent_sentence
from .vocab import SIZES


@torch.no_grad()
def generate(lvlm: LoadedLvlm, images: list[Any], instructions: list[str], *, max_new_tokens: int,
             batch_size: int = 100) -> list[str]:
    """Greedy responses, batched with left padding, new tokens only."""
    responses = []
    for start in range(0, len(images), batch_size):
        prompts = [lvlm.prompt_text(text) for text in instructions[start:start + batch_size]]
        inputs = lvlm.processor(images=images[start:start + batch_size], text=prompts, padding=True,
                                return_tensors="pt").to(lvlm.device)
        output = lvlm.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
        responses += lvlm.processor.batch_decode(output[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    return [response.strip() for response in responses]


def chair(scenes: list[dict[str, Any]], captions: list[str]) -> dict[str, float]:
    """CHAIR_S (captions with a hallucinated kind), CHAIR_I (hallucinated mentions / mentions), object recall."""
    hallucinated_captions = mentions = hallucinated_mentions = present = covered = 0
    for scene, text in zip(scenes, captions):
        result = judge_response(scene, text)
        hallucinated_captions += bool(result.hallucinated)
        mentions += len(result.mentions)
        hallucinated_mentions += sum(name in result.hallucinated for name in result.mentions)
        present += len({obj["name"] for obj in scene["objects"]})
        covered += len(set(result.named) - set(result.hallucinated))
    return {
        "CHAIR_S": hallucinated_captions / max(len(captions), 1),
        "CHAIR_I": hallucinated_mentions / max(mentions, 1),
        "recall": covered / max(present, 1),
        "captions": len(captions),
        "mentions_per_caption": mentions / max(len(captions), 1),
    }


def pope_answer(text: str) -> str:
    """LLaVA's POPE parse (eval_pope.py): first sentence, commas dropped; "no"/"not" means no."""
    first = text.split(".")[0].replace(",", "")
    words = first.split(" ")
    return "no" if "No" in words or "not" in words or "no" in words else "yes"


def pope(lvlm: LoadedLvlm, questions: list[dict[str, Any]], images: dict[str, Any]) -> dict[str, float]:
    """Accuracy, precision, recall, F1 (positive = yes) and the share of yes answers, asked the LLaVA-1.5 way."""
    texts = generate(lvlm, [images[q["image"]] for q in questions],
                     [f"{q['text']}\n{SHORT_ANSWER_SUFFIX}" for q in questions], max_new_tokens=3, batch_size=250)
    predicted = np.array([pope_answer(text) == "yes" for text in texts])
    truth = np.array([q["label"] == "yes" for q in questions])
    true_positive = int((predicted & truth).sum())
    precision = true_positive / max(int(predicted.sum()), 1)
    recall = true_positive / max(int(truth.sum()), 1)
    return {
        "accuracy": float((predicted == truth).mean()),
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / max(precision + recall, 1e-12),
        "yes_ratio": float(predicted.mean()),
        "questions": len(questions),
    }


@torch.no_grad()
def clip_ranking(clip: LoadedClip, scenes: list[dict[str, Any]], images: list[Any],
                 rng: np.random.Generator) -> dict[str, float]:
    """How often the CLIP scores a true sentence above a false one for the same image.

    ``absent_kind``: the false sentence names a kind the scene lacks (its absent partner when lone),
    ``absent_partner`` counts those pairs alone; ``wrong_size``: it names a present kind in the other size
    (where no other object of that kind and size is present).
    """
    wins = {"absent_kind": [], "absent_partner": [], "wrong_size": []}
    for scene, image in zip(scenes, images):
        obj = scene["objects"][int(rng.integers(len(scene["objects"])))]
        true_text = sentence(obj["name"], obj["size"])
        false_kind = absent_sentence(scene["objects"], rng)
        wrong_size = sentence(obj["name"], next(size for size in SIZES if size != obj["size"]))
        inputs = clip.processor(text=[true_text, sentence(*false_kind), wrong_size], images=[image],
                                padding=True, return_tensors="pt").to(clip.device)
        logits = clip.model(**inputs).logits_per_image[0]
        beats_kind = bool(logits[0] > logits[1])
        wins["absent_kind"].append(beats_kind)
        if false_kind[0] in _absent_partners(scene):
            wins["absent_partner"].append(beats_kind)
        wins["wrong_size"].append(bool(logits[0] > logits[2]))
    return {f"{name}_accuracy": float(np.mean(values)) if values else None for name, values in wins.items()} | {
        "pairs": len(scenes), "absent_partner_pairs": len(wins["absent_partner"])}


def _absent_partners(scene: dict[str, Any]) -> set[str]:
    from .vocab import PARTNER

    names = {obj["name"] for obj in scene["objects"]}
    return {PARTNER[name] for name in names if name in PARTNER and PARTNER[name] not in names}


def measure_world(folder: Path, heldout: list[dict[str, Any]], pope_questions: dict[str, list[dict[str, Any]]],
                  rng: np.random.Generator) -> dict[str, Any]:
    """The base models' figures on the held-out scenes, loading the saved folders as the steps do.

    Also writes ``base_captions.jsonl`` (the greedy descriptions the CHAIR figures come from).
    """
    from PIL import Image

    lvlm = load_lvlm(folder / "lvlm", device="cpu")
    clip = load_clip(folder / "clip", device="cpu")
    images = {record["image"]: Image.open(folder / "images" / record["image"]).convert("RGB") for record in heldout}
    progress = Progress(step="measure", total=2 + len(pope_questions), unit="measurements")
    progress.start()
    captions = generate(lvlm, [images[r["image"]] for r in heldout], [CHAIR_INSTRUCTION] * len(heldout),
                        max_new_tokens=64)
    atomic_write_text(folder / "base_captions.jsonl", "".join(
        json.dumps({"image": r["image"], "caption": c}) + "\n" for r, c in zip(heldout, captions)))
    lone = [i for i, record in enumerate(heldout) if record["lone"]]
    metrics: dict[str, Any] = {
        "heldout_all": {"chair": chair(heldout, captions)},
        "heldout_lone": {"chair": chair([heldout[i] for i in lone], [captions[i] for i in lone])},
        "heldout_composition": {"scenes": len(heldout), "lone": len(lone)},
    }
    progress.advance()
    metrics["pope"] = {}
    for split, questions in pope_questions.items():
        metrics["pope"][split] = pope(lvlm, questions, images)
        progress.advance()
    metrics["clip"] = clip_ranking(clip, heldout, [images[r["image"]] for r in heldout], rng)
    progress.advance()
    return metrics
