"""Multiple-choice answers as LLaVA's scripts read them.

- ScienceQA (``llava/eval/eval_science_qa.py``): the text is a bare letter A-E, or starts with "X. ",
  or contains exactly one "The answer is X." (the "." there matches any character, as in the original
  regex); a letter beyond the problem's choices, or anything else, is wrong. The original code (at
  LLaVA commit c121f043) has a random fallback after its ``return -1`` that is never reached, so a failed
  parse is simply wrong.
- SEED-Bench (``scripts/convert_seed_for_submission.py``): the text must equal the answer letter.
"""

from __future__ import annotations

import re

SQA_OPTIONS = ("A", "B", "C", "D", "E")
_THE_ANSWER_IS = re.compile(r"The answer is ([A-Z]).")


def parse_scienceqa(text: str) -> str | None:
    if text in SQA_OPTIONS:
        return text
    if len(text) >= 3 and text[0] in SQA_OPTIONS and text[1:3] == ". ":
        return text[0]
    found = _THE_ANSWER_IS.findall(text)
    return found[0] if len(found) == 1 else None


def scienceqa_correct(text: str | None, answer_index: int, num_choices: int) -> bool:
    if text is None:
        return False
    letter = parse_scienceqa(text)
    return letter in SQA_OPTIONS[:num_choices] and SQA_OPTIONS.index(letter) == answer_index


def seed_correct(text: str | None, answer: str) -> bool:
    return text is not None and text == answer
