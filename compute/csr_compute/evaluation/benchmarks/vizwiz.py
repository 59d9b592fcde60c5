"""VizWiz-VQA (vizwiz.cs.colorado.edu): ``Annotations/val.json`` and the ``val/`` images.

The test split has no public answers (the EvalAI server scores it), so local scoring uses val. The
question id is the image's file stem (one question per image).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from ..datafiles import DataError, Record, check_unique, first_existing, read_json
from ..registry import SHORT_ANSWER, Benchmark, Dataset, Item, LoadRequest
from ..scorers import percent
from ..scorers.vqa import normalize_answer, vqa_accuracy

UNANSWERABLE = "When the provided information is insufficient, respond with 'Unanswerable'."


def load(request: LoadRequest) -> Dataset:
    split = request.split or "val"
    path = first_existing(request.data_dir, [f"Annotations/{split}.json", f"{split}.json"],
                          f"VizWiz {split} annotations")
    records = read_json(path, "VizWiz annotations [{image, question, answers, answer_type, answerable}]")
    if not isinstance(records, list):
        raise DataError(f"{path}: expected a JSON list of questions, got {type(records).__name__}")
    items: list[Item] = []
    where = []
    for position, value in enumerate(records):
        record = Record(path, f"[{position}]", value, "a VizWiz question {image, question, answers, ...}")
        image = record.text("image")
        answers = record.get("answers", list, "10 human answers [{answer, answer_confidence}]", optional=True)
        if not answers:
            raise DataError(f"{path} [{position}]: no human answers; the {split} split cannot be scored here "
                            f"(test answers are private to the EvalAI server): use split 'val'")
        human = [Record(path, f"[{position}].answers[{k}]", answer, "{answer, answer_confidence}").text("answer")
                 for k, answer in enumerate(answers)]
        question_id = Path(image).stem
        where.append((question_id, f"[{position}]"))
        items.append(Item(question_id=question_id, fields={"question": record.text("question")},
                          image=image, truth={"answers": human,
                                              "answer_type": record.text("answer_type", optional=True, default="")}))
    check_unique(where, path)
    return Dataset(items=items, source=path)


def score(dataset: Dataset, answers: Mapping[str, str | None], _context: Any) -> dict[str, Any]:
    by_type: dict[str, list[float]] = {}
    for item in dataset.items:
        accuracy = vqa_accuracy(answers[item.question_id], item.truth["answers"])
        by_type.setdefault(item.truth["answer_type"] or "unknown", []).append(accuracy)
    every = [a for values in by_type.values() for a in values]
    metrics: dict[str, Any] = {"accuracy": percent(sum(every), len(every))}
    for answer_type, values in sorted(by_type.items()):
        metrics[f"answer_type/{answer_type.replace('/', '_')}"] = percent(sum(values), len(values))
    return metrics


BENCHMARK = Benchmark(
    name="vizwiz",
    title="VizWiz-VQA",
    data_files=("Annotations/val.json", "val/"),
    prompt_template="{question}\n" + UNANSWERABLE + "\n" + SHORT_ANSWER,
    load=load,
    parse_answer=normalize_answer,
    score=score,
    image_dirs=("val", "images", "."),
    splits=("val", "train"),
    default_split="val",
)
