"""CHAIR (Rohrbach et al. 2018), as ``LisaAnne/Hallucination/utils/chair.py`` computes it, plus recall.

A caption is lower-cased, tokenised, every word singularised (Pattern), adjacent word pairs merged
where they name one object ("traffic light", "teddy bear"; "baby bird" -> "bird"), "seat" dropped
when "toilet" is present, and the remaining words that appear in the synonym list are mapped to their
object ("node word"). Ground truth of an image = objects of its instance annotations plus the objects
that its reference captions mention (through the same mapping).

- CHAIR_I = mentions of objects not in the image / all object mentions (a word repeated counts twice)
- CHAIR_S = captions with at least one such mention / all captions
- recall  = ground-truth objects the caption mentions, summed over captions / ground-truth objects,
  summed over captions (the definition of Maxlinn/CHAIR-metric-standalone used by OPERA and others)

All three are percentages. A missing caption counts as a hallucinated caption covering no object.
"""

from __future__ import annotations

import math

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from ..datafiles import DataError
from . import percent
from .singularize import singularize
from .tokenize import word_tokenize

COCO_SYNONYMS = Path(__file__).resolve().parents[1] / "data" / "coco_synonyms.txt"

# Pairs of words that name one object in COCO captions (utils/chair.py).
DOUBLE_WORDS = (
    "motor bike", "motor cycle", "air plane", "traffic light", "street light", "traffic signal", "stop light",
    "fire hydrant", "stop sign", "parking meter", "suit case", "sports ball", "baseball bat", "baseball glove",
    "tennis racket", "wine glass", "hot dog", "cell phone", "mobile phone", "teddy bear", "hair drier",
    "potted plant", "bow tie", "laptop computer", "stove top oven", "hot dog", "teddy bear", "home plate",
    "train track",
)
# "baby bird" is a bird, not a person; "passenger jet" is a jet, not a person.
ANIMAL_WORDS = ("bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "animal", "cub")
VEHICLE_WORDS = ("jet", "train")


def _double_word_map() -> dict[str, str]:
    mapping = {pair: pair for pair in DOUBLE_WORDS}
    for animal in ANIMAL_WORDS:
        mapping[f"baby {animal}"] = animal
        mapping[f"adult {animal}"] = animal
    for vehicle in VEHICLE_WORDS:
        mapping[f"passenger {vehicle}"] = vehicle
    mapping["bow tie"] = "tie"
    mapping["toilet seat"] = "toilet"
    mapping["wine glas"] = "wine glass"
    return mapping


@dataclass
class Vocabulary:
    """Object words and their synonyms: one line per object, the object first, separated by ", "."""

    node_of: dict[str, str]
    double_words: dict[str, str] = field(default_factory=_double_word_map)

    @classmethod
    def from_file(cls, path: Path) -> "Vocabulary":
        if not path.is_file():
            raise DataError(f"CHAIR synonyms file {str(path)!r} not found")
        node_of: dict[str, str] = {}
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            # The official parse, kept as is: entries written after two spaces (" motor bike") keep a
            # leading space in the standard list and so never match, exactly as in the official metric.
            words = line.strip().split(", ")
            for word in words:
                if "," in word:
                    raise DataError(f"{path} line {number}: entry {word!r} contains a comma; expected the object "
                                    f"and its synonyms separated by ', ' (comma and space), e.g. 'dog, puppy, pup'")
            for word in words:
                node_of[word] = words[0]
        if not node_of:
            raise DataError(f"{path}: no objects (expected one line per object: 'object, synonym, ...')")
        return cls(node_of=node_of)

    def unmatchable(self) -> list[tuple[str, str]]:
        """Single-word entries that singularisation changes, so a caption can only name them in the plural."""
        return [(word, singularize(word)) for word in self.node_of
                if " " not in word and word.strip() and singularize(word) != word]

    def node(self, name: str, where: str) -> str:
        if name not in self.node_of:
            raise DataError(f"{where}: object {name!r} is not in the synonyms list (its first words: "
                            f"{sorted(set(self.node_of.values()))[:5]}...)")
        return self.node_of[name]

    def mentions(self, caption: str) -> list[tuple[str, str]]:
        """(word as written after normalisation, object) for every object mention in the caption."""
        words = [singularize(word) for word in word_tokenize(caption.lower())]
        merged: list[str] = []
        i = 0
        while i < len(words):
            pair = " ".join(words[i:i + 2])
            if pair in self.double_words:
                merged.append(self.double_words[pair])
                i += 2
            else:
                merged.append(words[i])
                i += 1
        if "toilet" in merged and "seat" in merged:
            merged = [word for word in merged if word != "seat"]
        return [(word, self.node_of[word]) for word in merged if word in self.node_of]


def image_objects(vocabulary: Vocabulary, image_ids: Iterable[int | str],
                  instances: Iterable[tuple[int | str, str]], captions: Iterable[tuple[int | str, str]],
                  source: str) -> dict[int | str, set[str]]:
    """Ground-truth objects per image from (image id, category name) and (image id, reference caption)."""
    objects: dict[int | str, set[str]] = {image_id: set() for image_id in image_ids}
    for image_id, category in instances:
        if image_id in objects:
            objects[image_id].add(vocabulary.node(category, f"{source}: category of image {image_id}"))
    for image_id, caption in captions:
        if image_id in objects:
            objects[image_id].update(node for _, node in vocabulary.mentions(caption))
    return objects


def chair_metrics(vocabulary: Vocabulary, captions: Iterable[tuple[set[str], str | None]]) -> dict[str, float]:
    """Metrics over (ground-truth objects of the image, generated caption or None) pairs.

    Beside the official three: per-caption counts (saying less is the cheap way to hallucinate less,
    so mentions and length are read next to CHAIR) and ``CHAIR_I_se``, the standard error of CHAIR_I
    as a ratio estimator over captions (delta method), which says how far apart two runs must be.
    A caption that names a true object again adds a mention to CHAIR_I's denominator and so lowers it
    without hallucinating less: ``repeated_per_caption`` counts those extra mentions, and
    ``CHAIR_I_distinct`` is CHAIR_I with each object counted once per caption, which repeating cannot move.
    """
    num_captions = hallucinated_captions = mentions = hallucinated_mentions = 0
    distinct = hallucinated_distinct = 0
    gt_total = covered_total = missing = words = 0
    per_caption: list[tuple[int, int]] = []  # (hallucinated mentions, mentions) of each answered caption
    for truth, caption in captions:
        num_captions += 1
        gt_total += len(truth)
        if caption is None:
            missing += 1
            hallucinated_captions += 1
            continue
        found = vocabulary.mentions(caption)
        mentions += len(found)
        wrong = [node for _, node in found if node not in truth]
        hallucinated_mentions += len(wrong)
        hallucinated_captions += bool(wrong)
        covered_total += len({node for _, node in found if node in truth})
        named = {node for _, node in found}
        distinct += len(named)
        hallucinated_distinct += len(named - set(truth))
        words += len(caption.split())
        per_caption.append((len(wrong), len(found)))
    answered = max(len(per_caption), 1)
    return {
        "CHAIR_S": percent(hallucinated_captions, num_captions),
        "CHAIR_I": percent(hallucinated_mentions, mentions),
        "recall": percent(covered_total, gt_total),
        "captions": num_captions,
        "object_mentions": mentions,
        "hallucinated_mentions": hallucinated_mentions,
        "missing_answers": missing,
        "mentions_per_caption": mentions / answered,
        "hallucinated_per_caption": hallucinated_mentions / answered,
        "words_per_caption": words / answered,
        "CHAIR_I_se": 100.0 * _ratio_standard_error(per_caption),
        "CHAIR_I_distinct": percent(hallucinated_distinct, distinct),
        "repeated_per_caption": (mentions - distinct) / answered,
    }


def _ratio_standard_error(pairs: list[tuple[int, int]]) -> float:
    """Standard error of sum(h) / sum(m) over independent captions (delta method); 0 with fewer than 2."""
    n = len(pairs)
    total = sum(m for _, m in pairs)
    if n < 2 or total == 0:
        return 0.0
    ratio = sum(h for h, _ in pairs) / total
    residual = sum((h - ratio * m) ** 2 for h, m in pairs) / (n - 1)
    return math.sqrt(residual / n) / (total / n)
