"""VizWiz-VQA (vizwiz.cs.colorado.edu): ``Annotations/val.json`` and the ``val/`` images.

The test split has no public answers (the EvalAI server scores it), so local scoring uses val. The
question id is the image's file stem (one question per image).

Besides accuracy, the official evaluation's ``evaluate_unanswerability``: a prediction says "answerable"
unless it normalises to "unanswerable"; with unanswerable as the positive class (``1 - answerable`` of the
annotations), ``unanswerable/average_precision`` is scikit-learn's average precision of those 0/1
predictions and ``unanswerable/f1`` their F1, both x 100.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from ...contract import SpecError
from ..datafiles import DataError, Record, check_unique, first_existing, read_json
from ..registry import SHORT_ANSWER, Benchmark, Dataset, Item, LoadRequest
from ..scorers import percent
from ..scorers.vqa import RULES, normalize_answer, normalize_prediction, vqa_accuracy

UNANSWERABLE = "When the provided information is insufficient, respond with 'Unanswerable'."


def load(request: LoadRequest) -> Dataset:
    rule = request.options.get("normalize", "official")
    if rule not in RULES:
        raise SpecError("benchmark.normalize", rule, "official (the VizWiz evaluation, the default) or lmms_eval")
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
        answerable = record.get("answerable", int, "0 or 1", optional=True)
        if answerable not in (None, 0, 1):
            raise record.error("answerable", "0 or 1")
        items.append(Item(question_id=question_id, fields={"question": record.text("question")},
                          image=image, truth={"answers": human, "answerable": answerable,
                                              "answer_type": record.text("answer_type", optional=True, default="")}))
    check_unique(where, path)
    return Dataset(items=items, source=path, extra={"rule": rule})


def average_precision(labels: list[int], scores: list[int]) -> float:
    """scikit-learn's ``average_precision_score`` for 0/1 scores: sum over thresholds of (R_n - R_n-1) P_n."""
    positives = sum(labels)
    total, recall_before = 0.0, 0.0
    for threshold in sorted(set(scores), reverse=True):
        chosen = [label for label, s in zip(labels, scores) if s >= threshold]
        recall = sum(chosen) / positives
        total += (recall - recall_before) * sum(chosen) / len(chosen)
        recall_before = recall
    return total


def unanswerability(dataset: Dataset, answers: Mapping[str, str | None], rule: str) -> dict[str, float]:
    truth = [item.truth["answerable"] for item in dataset.items]
    if any(value is None for value in truth) or all(truth):
        return {}  # without the "answerable" labels, or with no unanswerable question, AP is undefined
    normal = normalize_answer if rule == "lmms_eval" else normalize_prediction
    # A missing answer predicts nothing, so it does not say "unanswerable".
    predicted = [int(normal(answers[item.question_id] or "") == "unanswerable") for item in dataset.items]
    actual = [1 - value for value in truth]
    tp = sum(p and a for p, a in zip(predicted, actual))
    f1_denominator = 2 * tp + sum(p and not a for p, a in zip(predicted, actual)) + \
        sum(a and not p for p, a in zip(predicted, actual))
    return {"unanswerable/average_precision": 100 * average_precision(actual, predicted),
            "unanswerable/f1": percent(2 * tp, f1_denominator)}


def score(dataset: Dataset, answers: Mapping[str, str | None], _context: Any) -> dict[str, Any]:
    by_type: dict[str, list[float]] = {}
    rule = dataset.extra.get("rule", "official")
    for item in dataset.items:
        accuracy = vqa_accuracy(answers[item.question_id], item.truth["answers"], rule)
        by_type.setdefault(item.truth["answer_type"] or "unknown", []).append(accuracy)
    every = [a for values in by_type.values() for a in values]
    metrics: dict[str, Any] = {"accuracy": percent(sum(every), len(every))}
    for answer_type, values in sorted(by_type.items()):
        metrics[f"answer_type/{answer_type.replace('/', '_')}"] = percent(sum(values), len(values))
    return {**metrics, **unanswerability(dataset, answers, rule)}


BENCHMARK = Benchmark(
    name="vizwiz",
    title="VizWiz-VQA",
    data_files=("Annotations/val.json", "val/"),
    prompt_template="{question}\n" + UNANSWERABLE + "\n" + SHORT_ANSWER,
    load=load,
    parse_answer=normalize_prediction,
    score=score,
    image_dirs=("val", "images", "."),
    splits=("val", "train"),
    default_split="val",
    options={"normalize": "official (prediction only, human answers raw; default) or lmms_eval (EvalAI processor "
                          "on both)"},
)
