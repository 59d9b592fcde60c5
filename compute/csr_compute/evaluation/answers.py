"""Answers files in the LLaVA evaluation format: JSON lines of ``{"question_id": ..., "text": ...}``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .datafiles import DataError, Record, iter_jsonl
from .registry import Dataset


@dataclass
class Answers:
    path: Path
    text: dict[str, str]  # question id -> answer text
    line: dict[str, int]  # question id -> line number, for error messages


def read_answers(path: Path) -> Answers:
    answers = Answers(path=path, text={}, line={})
    for number, value in iter_jsonl(path, 'answers ({"question_id": ..., "text": ...} per line)'):
        record = Record(path, f"line {number}", value, 'an answer {"question_id": ..., "text": ...}')
        question_id = record.ident("question_id")
        text = record.get("text", str, "the answer text (a string)")
        if question_id in answers.text:
            raise DataError(f"{path} line {number}: duplicate answer for question id {question_id!r} "
                            f"(first at line {answers.line[question_id]}); keep one answer per question")
        answers.text[question_id] = text
        answers.line[question_id] = number
    if not answers.text:
        # Scoring no answers would report every metric as 0 and exit 0: a wrong file looks like a bad model.
        raise DataError(f'{path}: no answers; expected one {{"question_id": ..., "text": ...}} per line')
    return answers


def match_answers(dataset: Dataset, answers: Answers) -> dict[str, str | None]:
    """Every question's answer text, or None where the file has none (scored as wrong, never skipped).

    An answer whose id is not a question of the benchmark means the file belongs to something else
    (another split, a different id scheme): that is an error, named by its first such record.
    """
    ids = {item.question_id for item in dataset.items}
    for question_id, number in sorted(answers.line.items(), key=lambda pair: pair[1]):
        if question_id not in ids:
            example = next(iter(ids), None)
            raise DataError(f"{answers.path} line {number}: question id {question_id!r} is not a question of "
                            f"{dataset.source} (its ids look like {example!r}; {len(ids)} questions)")
    return {item.question_id: answers.text.get(item.question_id) for item in dataset.items}
