"""MME, as its official ``eval_tool/calculation.py`` scores it.

Parse (``parse_pred_ans`` of calculation.py): the answer is lower-cased and nothing else (no strip, no
"." removed); "yes" or "no" exactly, else "yes" / "no" if its first four characters contain it (yes
first), else "other" (always wrong). So "   yes" and "...yes" are "other", "y.e.s" is "other".
lmms-eval's ``mme/utils.py`` first strips the answer and removes every "." and reads a bare "y" / "n";
that rule is the option ``parse=lmms_eval``, never the default.
Per sub-task: acc = % of questions right, acc+ = % of images with both questions right, score =
acc + acc+. Perception = sum of the 10 perception sub-task scores (max 2000), cognition = sum of the 4
cognition ones (max 800). A missing answer counts as "other".
"""

from __future__ import annotations

from typing import Iterable

from . import percent

PERCEPTION = ("existence", "count", "position", "color", "posters", "celebrity", "scene", "landmark", "artwork", "OCR")
COGNITION = ("commonsense_reasoning", "numerical_calculation", "text_translation", "code_reasoning")


PARSE_RULES = ("official", "lmms_eval")


def parse_yes_no_other(text: str, rule: str = "official") -> str:
    answer = text.lower()
    if rule == "lmms_eval":
        answer = answer.strip().replace(".", "")
        if len(answer) == 1:
            return {"y": "yes", "n": "no"}.get(answer, "other")
    if answer in ("yes", "no"):
        return answer
    prefix = answer[:4]
    if "yes" in prefix:
        return "yes"
    if "no" in prefix:
        return "no"
    return "other"


def subtask_scores(images: Iterable[list[tuple[str, str | None]]], rule: str = "official") -> dict[str, float]:
    """acc, acc+ and score of one sub-task from its images, each a list of (label, answer text or None)."""
    questions = correct = images_total = images_both = 0
    for pair in images:
        right = [text is not None and parse_yes_no_other(text, rule) == label for label, text in pair]
        questions += len(right)
        correct += sum(right)
        images_total += 1
        images_both += all(right)
    acc, acc_plus = percent(correct, questions), percent(images_both, images_total)
    return {"acc": acc, "acc_plus": acc_plus, "score": acc + acc_plus}
