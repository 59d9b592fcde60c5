"""GQA test-dev balanced (cs.stanford.edu/people/dorarad/gqa): questions JSON and the ``images/`` folder.

Scored as the official ``eval.py --tier testdev_balanced`` after LLaVA's ``convert_gqa_for_eval.py``
(prediction = answer text without trailing periods, lower-cased): exact match with the gold answer over
the balanced questions; "open" and "binary" split by structural type (query = open). Also as eval.py
reports them, over the balanced questions:

- ``structural/<type>``, ``semantic/<type>``, ``words/<n>`` (question length in words) and
  ``steps/<n>`` (reasoning steps: the ``semantic`` program's operations other than "exist", "query: name"
  and "choose name"; only when the questions carry their program) accuracies;
- ``distribution``: the chi-square of the predicted against the gold answer counts per global question
  group, weighted by the group's size, / 100 (lower is better; only when the questions carry ``groups``);
- ``validity`` and ``plausibility`` when a choices file ``{valid, plausible}`` per question is present
  (``<split>_choices.json``, or option ``choices``): the share of answers in the question's valid /
  plausible set ("Common" questions: color, material, shape). eval.py prints 0 without the file; here
  they are left out;
- ``consistency`` with option ``questions: all``, which loads ``<split>_all_questions.json`` (the
  entailed questions are mostly unbalanced, so they need answers too): for each balanced question answered
  right, the accuracy over its other ``entailed`` questions, averaged.

A missing answer is wrong (eval.py refuses to run without one).
"""

from __future__ import annotations

from typing import Any, Mapping

from ...contract import SpecError
from ..datafiles import DataError, Record, first_existing, read_json
from ..registry import SHORT_ANSWER, Benchmark, Dataset, Item, LoadRequest
from ..scorers import percent


def parse_prediction(text: str) -> str:
    return text.rstrip(".").lower()


def _steps(program: list[Any]) -> int:
    # eval.py getStepsNum: "exist", "query: name" and "choose name" do not lengthen the reasoning
    return len([c for c in program if not any(o in f"{c['operation']}: {c['argument']}"
                                              for o in ("exist", "query: name", "choose name"))])


def load(request: LoadRequest) -> Dataset:
    questions_option = request.options.get("questions", "balanced")
    if questions_option not in ("balanced", "all"):
        raise SpecError("benchmark.questions", questions_option, "balanced (the default) or all (for consistency)")
    split = request.split or "testdev"
    name = f"{split}_{'all' if questions_option == 'all' else 'balanced'}_questions.json"
    path = first_existing(request.data_dir, [name, f"questions1.2/{name}", f"questions/{name}"], "GQA questions")
    questions = read_json(path, "GQA questions {questionId: {imageId, question, answer, isBalanced, types}}")
    if not isinstance(questions, dict):
        raise DataError(f"{path}: expected an object {{questionId: question}}, got {type(questions).__name__}")
    items: list[Item] = []
    for question_id, value in questions.items():
        record = Record(path, f"question {question_id!r}", value, "a GQA question")
        balanced = record.get("isBalanced", bool, "true or false")
        if not balanced and questions_option == "balanced":
            continue
        types = record.get("types", dict, "an object with 'structural'")
        if not isinstance(types.get("structural"), str):
            raise record.error("types", "an object with a string 'structural'")
        program = record.get("semantic", list, "the question's program [{operation, argument}]", optional=True)
        if program is not None and not all(isinstance(c, dict) and {"operation", "argument"} <= set(c) for c in program):
            raise record.error("semantic", "a list of {operation, argument}")
        groups = record.get("groups", dict, "an object {global, local}", optional=True) or {}
        entailed = record.get("entailed", list, "a list of question ids", optional=True) or []
        question = record.text("question")
        items.append(Item(question_id=str(question_id), fields={"question": question},
                          image=f"{record.ident('imageId')}.jpg",
                          truth={"answer": record.text("answer"), "balanced": balanced,
                                 "kind": "open" if types["structural"] == "query" else "binary",
                                 "structural": types["structural"], "semantic": str(types.get("semantic", "")),
                                 "detailed": str(types.get("detailed", "")), "words": len(question.split()),
                                 "steps": _steps(program) if program is not None else None,
                                 "global_group": groups.get("global"), "entailed": [str(e) for e in entailed]}))
    if not any(item.truth["balanced"] for item in items):
        raise DataError(f"{path}: no balanced questions")
    choices = _choices(request, split, path)
    return Dataset(items=items, source=path, extra={"choices": choices, "questions": questions_option})


def _choices(request: LoadRequest, split: str, questions_path) -> dict[str, Any] | None:
    name = request.options.get("choices")
    candidates = [name] if name else [f"{split}_choices.json", f"questions1.2/{split}_choices.json"]
    for candidate in candidates:
        path = request.data_dir / candidate
        if path.is_file():
            choices = read_json(path, "GQA choices {questionId: {valid: [...], plausible: [...]}}")
            if not isinstance(choices, dict):
                raise DataError(f"{path}: expected an object {{questionId: {{valid, plausible}}}}")
            return choices
    if name:
        raise DataError(f"GQA choices file {str(request.data_dir / name)!r} not found (option choices)")
    return None


def _chi_square(gold: dict[str, dict[str, int]], predicted: dict[str, dict[str, int]]) -> float:
    """eval.py ``chiSquare``: per group sum of (o - e)^2 / e over the gold answers, weighted by group size."""
    total, overall_sum = 0.0, 0
    for group, answers in gold.items():
        score = sum((predicted[group].get(answer, 0) - e) ** 2 / e for answer, e in answers.items())
        overall = sum(answers.values())
        total += score * overall
        overall_sum += overall
    return total / overall_sum


def _belongs(element: str | None, group: list[str], detailed: str) -> bool:
    if "Common" in detailed:  # eval.py's normalisation for "common attribute" questions
        group = ["color", "material", "shape"]
    return element in group


def score(dataset: Dataset, answers: Mapping[str, str | None], _context: Any) -> dict[str, Any]:
    predicted = {item.question_id: (None if answers[item.question_id] is None
                                    else parse_prediction(answers[item.question_id])) for item in dataset.items}
    by_id = {item.question_id: item for item in dataset.items}
    balanced = [item for item in dataset.items if item.truth["balanced"]]
    right = {item.question_id: predicted[item.question_id] == item.truth["answer"] for item in dataset.items}
    hits: dict[str, list[bool]] = {"open": [], "binary": []}
    per: dict[str, dict[Any, list[bool]]] = {"structural": {}, "semantic": {}, "words": {}, "steps": {}}
    gold_dist: dict[str, dict[str, int]] = {}
    pred_dist: dict[str, dict[str, int]] = {}
    consistency: list[float] = []
    for item in balanced:
        truth, hit = item.truth, right[item.question_id]
        hits[truth["kind"]].append(hit)
        for key in per:
            if truth[key] is not None:
                per[key].setdefault(truth[key], []).append(hit)
        if truth["global_group"] is not None:
            gold_dist.setdefault(truth["global_group"], {}).setdefault(truth["answer"], 0)
            gold_dist[truth["global_group"]][truth["answer"]] += 1
            group = pred_dist.setdefault(truth["global_group"], {})
            group[predicted[item.question_id]] = group.get(predicted[item.question_id], 0) + 1
        inferred = [e for e in truth["entailed"] if e != item.question_id]
        if dataset.extra.get("questions") == "all" and hit and inferred:
            missing = [e for e in inferred if e not in by_id]
            if missing:
                raise DataError(f"{dataset.source}: question {item.question_id!r} entails {missing[0]!r}, which is "
                                f"not in the file (consistency needs the all-questions file)")
            consistency.append(sum(right[e] for e in inferred) / len(inferred))
    every = hits["open"] + hits["binary"]
    metrics: dict[str, Any] = {"accuracy": percent(sum(every), len(every)),
                               "binary": percent(sum(hits["binary"]), len(hits["binary"])),
                               "open": percent(sum(hits["open"]), len(hits["open"]))}
    if dataset.extra.get("questions") == "all":
        metrics["consistency"] = percent(sum(consistency), len(consistency))
    choices = dataset.extra.get("choices")
    if choices is not None:
        for name in ("valid", "plausible"):
            flags = [_belongs(predicted[item.question_id], choices.get(item.question_id, {}).get(name, []),
                              item.truth["detailed"]) for item in balanced]
            metrics["validity" if name == "valid" else "plausibility"] = percent(sum(flags), len(flags))
    if gold_dist:
        metrics["distribution"] = _chi_square(gold_dist, pred_dist) / 100
    for key, groups in per.items():
        for value, values in sorted(groups.items(), key=lambda pair: (str(type(pair[0])), pair[0])):
            metrics[f"{key}/{value}"] = percent(sum(values), len(values))
    return metrics


BENCHMARK = Benchmark(
    name="gqa",
    title="GQA test-dev balanced",
    data_files=("testdev_balanced_questions.json", "images/"),
    prompt_template="{question}\n" + SHORT_ANSWER,
    load=load,
    parse_answer=parse_prediction,
    score=score,
    image_dirs=("images",),
    splits=("testdev", "val", "train"),
    default_split="testdev",
    options={"questions": "balanced (the default) or all (<split>_all_questions.json, adds consistency)",
             "choices": "choices file {questionId: {valid, plausible}} (default <split>_choices.json if present)"},
)
