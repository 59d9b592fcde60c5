"""Answer files written by LLaVA's own evaluation scripts (``llava/eval/model_vqa*.py``), read without conversion.

Those files are JSON lines ``{question_id, prompt, text, answer_id, model_id, metadata}`` whose question
ids are the ones of LLaVA's question files (``playground/data/eval/<benchmark>/llava_*.jsonl``). Where
they differ from the ids this project gives the official data, they are mapped here the way LLaVA's
own converters map them:

- ``mmvet``: id ``N`` -> ``v1_N`` (``scripts/convert_mmvet_for_eval.py``).
- ``mme``: id ``<subtask>/<image file>`` names an image, and its two questions share it; the question
  text in ``prompt`` (without the short-answer suffix and "Please answer yes or no.") tells them apart,
  as ``convert_answer_to_mme.py`` matches (category, file, question) against the release.
- ``pope``: ids are those of LLaVA's ``llava_pope_test.jsonl``, which gives each its ``category``
  (split); as ``llava/eval/eval_pope.py`` does, the answers of a split are paired with that split's
  questions **in file order** (option ``llava_questions``: that file, relative to the data folder or
  absolute).
- ``scienceqa_img``, ``seedbench``: the ids are the official ones; the files also answer the problems
  without an image / the video questions, so these are loaded too (``questions: all``).
- ``gqa``, ``mmbench``, ``llava_wild``: the ids are the official ones already.

A file is taken for LLaVA's when its first record has LLaVA's ``answer_id`` field (this project's own
answer files never do), or when ``--format llava`` says so.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from .answers import Answers
from .datafiles import DataError, Record, iter_jsonl
from .registry import SHORT_ANSWER, Dataset

WHAT = 'answers ({"question_id": ..., "text": ...} per line; LLaVA\'s also have "prompt")'
# Benchmarks whose LLaVA answer files cover questions the default load leaves out: load them all.
LOAD_ALL = {"scienceqa_img": ("questions", "all"), "seedbench": ("questions", "all")}
# Option names this module reads (benchmarks declare them so the options check accepts them).
POPE_QUESTIONS_OPTION = "llava_questions"


def looks_like_llava(path: Path) -> bool:
    for _number, value in iter_jsonl(path, WHAT):
        return isinstance(value, dict) and "answer_id" in value
    return False


def _records(path: Path) -> list[tuple[int, Record]]:
    records = [(number, Record(path, f"line {number}", value, 'a LLaVA answer {"question_id", "text", ...}'))
               for number, value in iter_jsonl(path, WHAT)]
    if not records:
        raise DataError(f'{path}: no answers; expected one {{"question_id": ..., "text": ...}} per line')
    return records


def _add(answers: Answers, question_id: str, text: str, number: int) -> None:
    if question_id in answers.text:
        raise DataError(f"{answers.path} line {number}: a second answer for question {question_id!r} (first at line "
                        f"{answers.line[question_id]}); keep one answer per question")
    answers.text[question_id] = text
    answers.line[question_id] = number


def _question_text(prompt: str) -> str:
    text = prompt.replace(SHORT_ANSWER, "").replace("Please answer yes or no.", "")
    return re.sub(r"\s+", " ", text).strip()


def _mme_image(question_id: str) -> tuple[str, str]:
    # convert_answer_to_mme.py: category = first path part, question file = stem of the last part + ".txt"
    parts = question_id.split("/")
    return parts[0], parts[-1].split(".")[0]


def _mme(path: Path, dataset: Dataset) -> Answers:
    by_key = {(*_mme_image(item.group), _question_text(item.fields["question"])): item.question_id
              for item in dataset.items}
    asked = {item.truth["subtask"] for item in dataset.items}
    answers = Answers(path=path, text={}, line={})
    for number, record in _records(path):
        image, prompt = record.text("question_id"), record.text("prompt")
        if _mme_image(image)[0] not in asked:
            continue  # a sub-task not scored now (--split): calculation.py also reads one file per sub-task
        question_id = by_key.get((*_mme_image(image), _question_text(prompt)))
        if question_id is None:
            raise DataError(f"{path} line {number}: no MME question of image {image!r} reads "
                            f"{_question_text(prompt)!r} (field prompt; from {dataset.source})")
        _add(answers, question_id, record.text("text"), number)
    return answers


def _mmvet(path: Path, dataset: Dataset) -> Answers:
    answers = Answers(path=path, text={}, line={})
    for number, record in _records(path):
        _add(answers, f"v1_{record.ident('question_id')}", record.text("text"), number)
    return answers


def _pope(path: Path, dataset: Dataset, options: dict[str, Any], data_dir: Path) -> Answers:
    name = options.get(POPE_QUESTIONS_OPTION)
    if not name:
        raise DataError(f"{path}: LLaVA's POPE answers name their split only through LLaVA's question file; give it "
                        f"with --option {POPE_QUESTIONS_OPTION}=llava_pope_test.jsonl")
    questions_path = Path(name) if Path(name).is_absolute() else data_dir / name
    category: dict[str, str] = {}
    for number, value in iter_jsonl(questions_path, "LLaVA POPE questions {question_id, category, ...}"):
        record = Record(questions_path, f"line {number}", value, "a LLaVA POPE question {question_id, category}")
        category[record.ident("question_id")] = record.text("category")
    per_split: dict[str, list[tuple[int, str]]] = {}
    for number, record in _records(path):
        question_id = record.ident("question_id")
        if question_id not in category:
            raise DataError(f"{path} line {number}: question id {question_id!r} is not in {questions_path}")
        per_split.setdefault(category[question_id], []).append((number, record.text("text")))
    items_per_split: dict[str, list[str]] = {}
    for item in dataset.items:
        items_per_split.setdefault(item.truth["split"], []).append(item.question_id)
    answers = Answers(path=path, text={}, line={})
    for split, answered in per_split.items():
        if split not in items_per_split:
            continue  # a split not asked here (--split): eval_pope.py also scores one category file at a time
        ids = items_per_split[split]
        if len(answered) > len(ids):
            raise DataError(f"{path}: {len(answered)} answers of category {split!r}, but "
                            f"{dataset.source.parent} has {len(ids)} {split} questions")
        for question_id, (number, text) in zip(ids, answered):
            _add(answers, question_id, text, number)
    return answers


def _same_ids(path: Path, dataset: Dataset) -> Answers:
    answers = Answers(path=path, text={}, line={})
    for number, record in _records(path):
        _add(answers, record.ident("question_id"), record.text("text"), number)
    return answers


def read_llava_answers(benchmark: str, path: Path, dataset: Dataset, options: dict[str, Any],
                       data_dir: Path) -> Answers:
    """The answers of a LLaVA answer file, under this project's question ids."""
    if benchmark == "mme":
        return _mme(path, dataset)
    if benchmark == "mmvet":
        return _mmvet(path, dataset)
    if benchmark == "pope":
        return _pope(path, dataset, options, data_dir)
    return _same_ids(path, dataset)
