"""MMBench CircularEval, as the MMBench evaluator does it (lmms-eval ``mmbench_evals.py``, OpenCompass).

The TSV repeats each question with its options rotated (row ``index + k * 1e6``); a question counts as
correct only if every one of its rows is answered correctly.

Letter extraction per row: first the rule-based matcher (a lone option letter among the words, also as
"A." "(A)" "A:" and similar; else a unique option text contained in the answer); if that fails, an LLM
judge with the official matching prompt when one is configured (3 tries); else a random letter among
A-D plus E, from ``random.Random(2680)`` as in the official code. Rows are visited in index order and a
question stops at its first wrong row, so the random draws follow the official sequence. A missing
answer is an empty prediction, as in the official pipeline (where every row has one): no rule reads a
letter from it, so it goes to the judge, then to a random letter, and takes its draw in the sequence.
``missing="wrong"`` (this project's earlier rule) instead makes its question wrong without a draw.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass, field, replace
from typing import Callable, Mapping

from . import percent

SEED = 2680
JUDGE_FAILED = "Failed to obtain answer via API"


def infer_option(answer: str, num_choice: int = 5) -> str | None:
    """A letter written as an option in the answer (the official ``can_infer_option``)."""
    choices = string.ascii_uppercase[:num_choice]
    if JUDGE_FAILED in answer:
        return None
    splits = [x.strip() for x in answer.split()]

    def count(prefix: str = "", suffix: str = "") -> int:
        return sum(1 for c in choices if prefix + c + suffix in splits)

    if count() == 1:
        for ch in choices:
            if "A" in splits and len(splits) > 3:
                break  # "A" is probably the article
            if ch in splits:
                return ch
    for prefix, suffix in (("", "."), ("", ","), ("", ":"), ("", ")"), ("", ")."), ("(", ")"), ("(", ")."),
                           (":", ""), (":", ","), (":", "."), (":", ")"), (":", ").")):
        if count(prefix, suffix) == 1:
            for ch in choices:
                if prefix + ch + suffix in splits:
                    return ch
    return None


def infer_text(answer: str, options: Mapping[str, str]) -> str | None:
    """The option whose text, and no other's, appears in the answer (the official ``can_infer_text``)."""
    answer = answer.lower()
    candidates = [letter for letter, text in options.items() if str(text).lower() in answer]
    return candidates[0] if len(candidates) == 1 else None


def infer_letter(answer: str, options: Mapping[str, str]) -> str | None:
    return infer_option(answer) or infer_text(answer, options)


def matching_prompt(question: str, options_in_order: list[str], prediction: str) -> str:
    """The official prompt asking a language model which option an answer means."""
    option_str = "There are several options: \n" + "".join(
        f"{c}. {opt}\n" for c, opt in zip(string.ascii_uppercase, options_in_order))
    return (
        "You are an AI assistant who will help me to match an answer with several options of a single-choice "
        "question. You are provided with a question, several options, and an answer, and you need to find "
        "which option is most similar to the answer. If the meaning of all options are significantly "
        "different from the answer, output E. Your should output a single uppercase character in A, B, C, D "
        "(if they are valid options), and E. \n"
        "Example 1: \n"
        "Question: What is the main object in image?\nOptions: A. teddy bear B. rabbit C. cat D. dog\n"
        "Answer: a cute teddy bear\nYour output: A\n"
        "Example 2: \n"
        "Question: What is the main object in image?\nOptions: A. teddy bear B. rabbit C. cat D. dog\n"
        "Answer: Spider\nYour output: E\n"
        "Example 3: \n"
        f"Question: {question}?\nOptions: {option_str}\nAnswer: {prediction}\nYour output: "
    )


@dataclass
class Row:
    index: int
    answer: str  # the correct letter
    options: dict[str, str]  # letter -> text, options present in this row
    options_in_order: list[str]  # A, B, ... up to the first absent one (for the judge prompt)
    question: str
    prediction: str | None


@dataclass
class CircularResult:
    hits: dict[int, bool] = field(default_factory=dict)  # main index -> correct
    unparsed_rows: int = 0
    judged_rows: int = 0
    random_rows: int = 0


MISSING_RULES = ("official", "wrong")


def circular_eval(groups: dict[int, list[Row]], num_option_columns: int,
                  ask_judge: Callable[[str], str] | None, missing: str = "official") -> CircularResult:
    rng = random.Random(SEED)
    result = CircularResult()

    def resolve(row: Row) -> str:
        result.unparsed_rows += 1
        if ask_judge is not None:
            prompt = matching_prompt(row.question, row.options_in_order, row.prediction)
            for _ in range(3):
                reply = ask_judge(prompt)
                letter = infer_letter(reply, row.options) if reply and JUDGE_FAILED not in reply else None
                if letter:
                    result.judged_rows += 1
                    return letter
        result.random_rows += 1
        # The official code counts the option columns A-D of the table (not this row's options), plus E.
        chars = string.ascii_uppercase[:num_option_columns] + "E"
        return chars[rng.randint(0, len(chars) - 1)]

    for main in sorted(groups):
        rows = sorted(groups[main], key=lambda r: r.index)
        if missing == "official":
            rows = [row if row.prediction is not None else replace(row, prediction="") for row in rows]
        hit = all(row.prediction is not None for row in rows)
        predicted: list[str | None] = []
        if hit:
            for row in rows:
                letter = infer_letter(row.prediction, row.options)
                predicted.append(letter)
                if letter and letter != row.answer:
                    hit = False
                    break
        if hit:
            for row, letter in zip(rows, predicted):
                if letter is None and resolve(row) != row.answer:
                    hit = False
                    break
        result.hits[main] = hit
    return result


def circular_accuracy(result: CircularResult) -> float:
    return percent(sum(result.hits.values()), len(result.hits))
