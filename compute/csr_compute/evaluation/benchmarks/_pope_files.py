"""Reading POPE question files (official format, shared by ``pope`` and ``toy_pope``).

Each split is a file of JSON lines ``{question_id, image, text, label}``. The official files number
their questions 1..3000 in every split, so a question's id here is ``<split>/<question_id>``; when one
split file is scored alone (option ``file``), it is the file's own ``question_id``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from ..datafiles import DataError, Record, check_unique, read_json_records
from ..registry import SHORT_ANSWER, Dataset, Item, LoadRequest
from ..scorers.pope import parse_yes_no, pope_metrics

SPLITS = ("random", "popular", "adversarial")
PROMPT = "{question}\n" + SHORT_ANSWER
FILE_PATTERN = "coco_pope_{split}.json"


def _split_of(name: str) -> str:
    """The split a single file holds: from the official name, else the file's stem."""
    for split in SPLITS:
        if name == FILE_PATTERN.format(split=split):
            return split
    return Path(name).stem


def load_pope(request: LoadRequest) -> Dataset:
    single = request.options.get("file")
    if single:
        # One split file (``csr score pope --data coco_pope_random.json``): that split alone.
        files = [(_split_of(single), request.data_dir / single)]
    else:
        splits = [request.split] if request.split else list(SPLITS)
        files = [(split, request.data_dir / FILE_PATTERN.format(split=split)) for split in splits]
    items: list[Item] = []
    first_path = None
    for split, path in files:
        first_path = first_path or path
        records = read_json_records(path, "POPE questions {question_id, image, text, label}")
        if not records:
            raise DataError(f"{path}: no questions")
        where: list[tuple[str, str]] = []
        for number, value in records:
            record = Record(path, f"record {number}", value, "a POPE question {question_id, image, text, label}")
            label = record.text("label")
            if label not in ("yes", "no"):
                raise record.error("label", '"yes" or "no"')
            # With one file its own ids are unique; with several, the split tells their equal ids apart.
            question_id = record.ident("question_id") if single else f"{split}/{record.ident('question_id')}"
            where.append((question_id, f"record {number}"))
            items.append(Item(question_id=question_id, fields={"question": record.text("text")},
                              image=record.text("image"), truth={"split": split, "label": label}))
        check_unique(where, path)
    return Dataset(items=items, source=first_path)


def score_pope(dataset: Dataset, answers: Mapping[str, str | None], _context: Any) -> dict[str, Any]:
    metrics: dict[str, Any] = {}
    per_split: dict[str, list[tuple[str, str | None]]] = {}
    for item in dataset.items:
        per_split.setdefault(item.truth["split"], []).append((item.truth["label"], answers[item.question_id]))
    headline = ("accuracy", "precision", "recall", "f1", "yes_ratio")
    for split, pairs in per_split.items():
        for name, value in pope_metrics(pairs).items():
            metrics[f"{split}/{name}"] = value
    for name in headline:
        metrics[f"mean/{name}"] = sum(metrics[f"{split}/{name}"] for split in per_split) / len(per_split)
    return metrics


__all__ = ["SPLITS", "PROMPT", "FILE_PATTERN", "load_pope", "score_pope", "parse_yes_no"]
