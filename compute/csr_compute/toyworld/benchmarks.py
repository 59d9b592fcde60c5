"""Benchmark files for the held-out scenes, in the official formats of POPE and CHAIR.

POPE (AoiDragon/POPE ``output/coco/coco_pope_*.json``): JSON lines
``{"question_id", "image", "text": "Is there a X in the image?", "label": "yes"|"no"}``, half yes.
Each image gets one "yes" question per present kind (at most 3) and as many "no" questions, whose
kinds depend on the split: random absent kinds; the most frequent kinds of the training scenes
(popular); or the kinds that co-occur most with the present ones (adversarial).

CHAIR (LisaAnne/Hallucination): a COCO-style ``instances.json``, ``synonyms.txt`` with one line per
class ("class, synonym, ..."), and ``questions.jsonl`` asking for a description of every image.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from itertools import permutations
from pathlib import Path
from typing import Any

import numpy as np

from ..contract import atomic_write_json, atomic_write_text
from .language import CHAIR_INSTRUCTION, POPE_QUESTION
from .scenes import IMAGE_SIZE
from .vocab import KIND_NAMES, KINDS

POPE_SPLITS = ("random", "popular", "adversarial")
MAX_POSITIVES = 3


def kind_statistics(objects_per_scene: list[list[dict[str, Any]]]) -> tuple[Counter, Counter]:
    """How often each kind appears, and each ordered pair of kinds appears together, in training scenes."""
    frequency: Counter = Counter()
    together: Counter = Counter()
    for objects in objects_per_scene:
        names = sorted({obj["name"] for obj in objects})
        frequency.update(names)
        together.update(permutations(names, 2))
    return frequency, together


def pope_questions(scenes: list[dict[str, Any]], split: str, frequency: Counter, together: Counter,
                   rng: np.random.Generator) -> list[dict[str, Any]]:
    questions: list[dict[str, Any]] = []
    for scene in scenes:
        present = list(dict.fromkeys(obj["name"] for obj in scene["objects"]))
        positives = [present[i] for i in sorted(rng.permutation(len(present))[:MAX_POSITIVES])]
        absent = [name for name in KIND_NAMES if name not in present]
        if split == "random":
            negatives = [absent[i] for i in rng.permutation(len(absent))[:len(positives)]]
        elif split == "popular":
            negatives = sorted(absent, key=lambda name: (-frequency[name], name))[:len(positives)]
        elif split == "adversarial":
            negatives = sorted(absent, key=lambda name: (-sum(together[(p, name)] for p in present),
                                                         -frequency[name], name))[:len(positives)]
        else:
            raise ValueError(f"split: expected one of {', '.join(POPE_SPLITS)}, got {split!r}")
        for kind, label in [(kind, "yes") for kind in positives] + [(kind, "no") for kind in negatives]:
            questions.append({"question_id": len(questions) + 1, "image": scene["image"],
                              "text": POPE_QUESTION.format(kind=kind), "label": label})
    return questions


def write_pope(folder: Path, scenes: list[dict[str, Any]], images_dir: Path, training_objects: list[list[dict[str, Any]]],
               rng: np.random.Generator) -> dict[str, list[dict[str, Any]]]:
    frequency, together = kind_statistics(training_objects)
    splits = {}
    for split in POPE_SPLITS:
        questions = pope_questions(scenes, split, frequency, together, rng)
        atomic_write_text(folder / f"coco_pope_{split}.json", "".join(json.dumps(q) + "\n" for q in questions))
        splits[split] = questions
    _copy_images(scenes, images_dir, folder / "images")
    atomic_write_text(folder / "README.md", POPE_README)
    return splits


def write_chair(folder: Path, scenes: list[dict[str, Any]], images_dir: Path) -> None:
    category_id = {name: index + 1 for index, name in enumerate(KIND_NAMES)}
    images, annotations = [], []
    for image_id, scene in enumerate(scenes, start=1):
        images.append({"id": image_id, "file_name": scene["image"], "width": IMAGE_SIZE, "height": IMAGE_SIZE})
        for obj in scene["objects"]:
            x0, y0, x1, y1 = obj["bbox"]
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "category_id": category_id[obj["name"]], "bbox": [x0, y0, x1 - x0, y1 - y0],
                                "area": (x1 - x0) * (y1 - y0), "iscrowd": 0})
    categories = [{"id": category_id[name], "name": name, "supercategory": "object"} for name in KIND_NAMES]
    atomic_write_json(folder / "instances.json", {"images": images, "annotations": annotations, "categories": categories})
    atomic_write_text(folder / "synonyms.txt", "".join(", ".join((kind.name, *kind.synonyms)) + "\n" for kind in KINDS))
    atomic_write_text(folder / "questions.jsonl", "".join(
        json.dumps({"question_id": image["id"], "image": image["file_name"], "text": CHAIR_INSTRUCTION}) + "\n"
        for image in images))
    _copy_images(scenes, images_dir, folder / "images")
    atomic_write_text(folder / "README.md", CHAIR_README)


def _copy_images(scenes: list[dict[str, Any]], source: Path, target: Path) -> None:
    # Copies, not links: each benchmark folder stands alone, like the official downloads.
    target.mkdir(parents=True, exist_ok=True)
    for scene in scenes:
        shutil.copyfile(source / scene["image"], target / scene["image"])


POPE_README = """# Toy POPE

Files as in AoiDragon/POPE `output/coco/`: `coco_pope_random.json`, `coco_pope_popular.json`,
`coco_pope_adversarial.json`, one JSON object per line:
`{"question_id": int, "image": "<file name>", "text": "Is there a <kind> in the image?", "label": "yes"|"no"}`.

`image` is a file name in `images/` beside this file (copies of the world's held-out images).

Per image: one "yes" question per present kind (at most 3), and as many "no" questions about absent
kinds: random ones (random split), the kinds most frequent in the training scenes (popular), or the
kinds that co-occur most often with the present ones in the training scenes (adversarial). In a
"lone" scene (a pair's first kind without its partner) the adversarial split asks about the partner:
the object the language prior makes the model believe in.

Scoring as in LLaVA's eval_pope.py: accuracy, precision, recall, F1 (positive = yes), yes ratio.
"""

CHAIR_README = """# Toy CHAIR

As in LisaAnne/Hallucination (`utils/chair.py`), over the world's held-out scenes:
- `instances.json`: COCO-style ground truth (`images` with `id`, `file_name`; `annotations` with
  `image_id`, `category_id`, `bbox` [x, y, w, h]; `categories` with `id`, `name`).
- `synonyms.txt`: one line per class, the class name then its synonyms, comma-separated (the world's
  language has no plurals and no multi-word names).
- `questions.jsonl`: `{"question_id", "image", "text"}`, one describe-the-image question per image;
  `question_id` equals the image's `id` in `instances.json`. `image` is a file name in `images/`.

A caption hallucinates an object when it names (by name or synonym) a class absent from that
image's annotations. CHAIR_S = captions with a hallucinated object / captions; CHAIR_I =
hallucinated mentions / object mentions; recall = present classes named / present classes.
"""
