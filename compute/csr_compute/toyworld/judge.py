"""Ground truth for the toy world: which objects a response names that the scene lacks, and which it omits.

Real preference data cannot be checked against the truth; toy-world data can. Curation and evaluation
use this module to report whether a pair's chosen response is really better than its rejected one.

A word names a kind when it is the kind's name or one of its synonyms (``vocab.KINDS``); the world's
language has no plurals and no multi-word names, so matching is word by word.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..contract import MissingInputError
from .vocab import KIND_BY_NAME, WORD_TO_KIND

_WORD = re.compile(r"[a-z]+")


@dataclass(frozen=True)
class JudgeResult:
    """One response judged against its scene. Every list holds kind names, each kind once, in order of first mention
    (``missed`` in the scene's order)."""

    named: list[str] = field(default_factory=list)
    hallucinated: list[str] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)
    repeated: list[str] = field(default_factory=list)
    # All mentions, duplicates included: CHAIR_I counts mentions, not kinds.
    mentions: list[str] = field(default_factory=list)


def load_scenes(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """``scenes.jsonl`` of a built world, as ``{image file name: scene record}``."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"toy-world scenes file {str(path)!r} does not exist (build the world first)")
    scenes: dict[str, dict[str, Any]] = {}
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{number}: not a JSON line ({error})") from error
            _check_scene(record, f"{path}:{number}")
            scenes[record["image"]] = record
    return scenes


def objects_named(text: str) -> list[str]:
    """Kinds mentioned in ``text``, one entry per mention, in order (synonyms mapped to their kind)."""
    if not isinstance(text, str):
        raise TypeError(f"text: expected a string, got {type(text).__name__}")
    return [WORD_TO_KIND[word] for word in _WORD.findall(text.lower()) if word in WORD_TO_KIND]


def judge_response(scene: dict[str, Any], text: str) -> JudgeResult:
    """Compare the kinds a response names with the kinds the scene shows."""
    _check_scene(scene, "scene")
    present = [obj["name"] for obj in scene["objects"]]
    mentions = objects_named(text)
    named = list(dict.fromkeys(mentions))
    return JudgeResult(
        named=named,
        hallucinated=[name for name in named if name not in present],
        missed=[name for name in dict.fromkeys(present) if name not in named],
        repeated=[name for name in named if mentions.count(name) > 1],
        mentions=mentions,
    )


def compare_pair(scene: dict[str, Any], chosen_text: str, rejected_text: str) -> Literal["better", "equal", "worse"]:
    """Is ``chosen_text`` better than ``rejected_text`` by ground truth: fewer hallucinated kinds, then fewer missed."""
    chosen, rejected = judge_response(scene, chosen_text), judge_response(scene, rejected_text)
    chosen_key = (len(chosen.hallucinated), len(chosen.missed))
    rejected_key = (len(rejected.hallucinated), len(rejected.missed))
    if chosen_key < rejected_key:
        return "better"
    if chosen_key > rejected_key:
        return "worse"
    return "equal"


def _check_scene(scene: Any, where: str) -> None:
    if not isinstance(scene, dict):
        raise ValueError(f"{where}: expected a scene object with 'objects', got {type(scene).__name__}")
    objects = scene.get("objects")
    if not isinstance(objects, list):
        raise ValueError(f"{where}.objects: expected a list of objects, got {json.dumps(objects, default=str)}")
    for index, obj in enumerate(objects):
        name = obj.get("name") if isinstance(obj, dict) else None
        if name not in KIND_BY_NAME:
            raise ValueError(
                f"{where}.objects[{index}].name: expected one of {', '.join(KIND_BY_NAME)}, "
                f"got {json.dumps(name, default=str)}"
            )
