"""SEED-Bench (v1), image questions: ``SEED-Bench.json`` and the ``SEED-Bench-image/`` folder.

Video questions need frames extracted from the videos (LLaVA uses the middle frame) and are not
asked; the metric is the image accuracy (SEED-IMG). Accuracy per evaluation dimension is reported too.

With option ``questions: all`` the video questions are loaded too, to score answer files that cover them
(LLaVA's): then ``all_accuracy`` (the "Total accuracy" of LLaVA ``scripts/convert_seed_for_submission.py``,
the CSR paper's SEED column), ``image_accuracy`` and ``video_accuracy`` are reported as that script
prints them, and ``dimension/<name>`` is over all questions as it prints it. A missing answer is wrong
there too.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from ...contract import SpecError
from ..datafiles import DataError, Record, check_unique, read_json
from ..registry import OPTION_LETTER, Benchmark, Dataset, Item, LoadRequest
from ..scorers import percent
from ..scorers.choice import seed_correct


def load(request: LoadRequest) -> Dataset:
    questions = request.options.get("questions", "image")
    if questions not in ("image", "all"):
        raise SpecError("benchmark.questions", questions, "image (the default) or all (image and video)")
    path = request.data_dir / "SEED-Bench.json"
    document = read_json(path, "SEED-Bench {questions: [...], question_type: {...}}")
    if not isinstance(document, dict) or not isinstance(document.get("questions"), list):
        raise DataError(f"{path}: expected an object with a list 'questions'")
    type_names = {v: k for k, v in (document.get("question_type") or {}).items()}
    items: list[Item] = []
    where = []
    for position, value in enumerate(document["questions"]):
        record = Record(path, f"questions[{position}]", value, "a SEED-Bench question")
        data_type = record.text("data_type")
        if data_type != "image" and questions == "image":
            continue
        answer = record.text("answer")
        if answer not in ("A", "B", "C", "D"):
            raise record.error("answer", "one of A, B, C, D")
        question_id = record.ident("question_id")
        choices = [record.text(f"choice_{c}") for c in "abcd"]
        shown = record.text("question") + "".join(f"\n{L}. {c}" for L, c in zip("ABCD", choices))
        type_id = record.get("question_type_id", (int, str), "a question type id")
        items.append(Item(question_id=question_id, fields={"question": shown},
                          image=record.text("data_id") if data_type == "image" else None,
                          truth={"answer": answer, "dimension": type_names.get(type_id, str(type_id)),
                                 "data_type": data_type}))
        where.append((question_id, f"questions[{position}]"))
    if not items:
        raise DataError(f"{path}: no image questions (data_type 'image')")
    check_unique(where, path)
    return Dataset(items=items, source=path, extra={"questions": questions})


def score(dataset: Dataset, answers: Mapping[str, str | None], _context: Any) -> dict[str, Any]:
    by_dimension: dict[str, list[bool]] = {}
    for item in dataset.items:
        by_dimension.setdefault(item.truth["dimension"], []).append(
            seed_correct(answers[item.question_id], item.truth["answer"]))
    by_type: dict[str, list[bool]] = {}
    for item in dataset.items:
        by_type.setdefault(item.truth["data_type"], []).append(
            seed_correct(answers[item.question_id], item.truth["answer"]))
    image = by_type.get("image", [])
    metrics: dict[str, Any] = {"image_accuracy": percent(sum(image), len(image))}
    if dataset.extra.get("questions") == "all":
        hits = [hit for values in by_type.values() for hit in values]
        video = by_type.get("video", [])
        metrics = {"all_accuracy": percent(sum(hits), len(hits)), **metrics,
                   "video_accuracy": percent(sum(video), len(video))}
    for dimension, values in sorted(by_dimension.items()):
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", dimension).strip("_")
        metrics[f"dimension/{name}"] = percent(sum(values), len(values))
    return metrics


BENCHMARK = Benchmark(
    name="seedbench",
    title="SEED-Bench (image)",
    data_files=("SEED-Bench.json", "SEED-Bench-image/"),
    prompt_template="{question}\n" + OPTION_LETTER,
    load=load,
    parse_answer=lambda text: text,
    score=score,
    image_dirs=("SEED-Bench-image",),
    options={"questions": "image (image questions; default) or all (video questions too, for answer files that "
                          "cover them; adds all_accuracy and video_accuracy)"},
)
