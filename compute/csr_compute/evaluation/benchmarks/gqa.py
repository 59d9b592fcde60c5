"""GQA test-dev balanced (cs.stanford.edu/people/dorarad/gqa): questions JSON and the ``images/`` folder.

Scored as the official ``eval.py --tier testdev_balanced`` after LLaVA's ``convert_gqa_for_eval.py``
(prediction = answer text without trailing periods, lower-cased): exact match with the gold answer over
the balanced questions; "open" and "binary" split by structural type (query = open).
"""

from __future__ import annotations

from typing import Any, Mapping

from ..datafiles import DataError, Record, first_existing, read_json
from ..registry import SHORT_ANSWER, Benchmark, Dataset, Item, LoadRequest
from ..scorers import percent


def parse_prediction(text: str) -> str:
    return text.rstrip(".").lower()


def load(request: LoadRequest) -> Dataset:
    name = f"{request.split or 'testdev'}_balanced_questions.json"
    path = first_existing(request.data_dir, [name, f"questions1.2/{name}", f"questions/{name}"], "GQA questions")
    questions = read_json(path, "GQA questions {questionId: {imageId, question, answer, isBalanced, types}}")
    if not isinstance(questions, dict):
        raise DataError(f"{path}: expected an object {{questionId: question}}, got {type(questions).__name__}")
    items: list[Item] = []
    for question_id, value in questions.items():
        record = Record(path, f"question {question_id!r}", value, "a GQA question")
        if not record.get("isBalanced", bool, "true or false"):
            continue
        types = record.get("types", dict, "an object with 'structural'")
        if not isinstance(types.get("structural"), str):
            raise record.error("types", "an object with a string 'structural'")
        items.append(Item(question_id=str(question_id), fields={"question": record.text("question")},
                          image=f"{record.ident('imageId')}.jpg",
                          truth={"answer": record.text("answer"),
                                 "kind": "open" if types["structural"] == "query" else "binary"}))
    if not items:
        raise DataError(f"{path}: no balanced questions")
    return Dataset(items=items, source=path)


def score(dataset: Dataset, answers: Mapping[str, str | None], _context: Any) -> dict[str, Any]:
    hits: dict[str, list[bool]] = {"open": [], "binary": []}
    for item in dataset.items:
        text = answers[item.question_id]
        hits[item.truth["kind"]].append(text is not None and parse_prediction(text) == item.truth["answer"])
    every = hits["open"] + hits["binary"]
    return {"accuracy": percent(sum(every), len(every)), "binary": percent(sum(hits["binary"]), len(hits["binary"])),
            "open": percent(sum(hits["open"]), len(hits["open"]))}


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
)
