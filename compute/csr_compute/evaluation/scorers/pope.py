"""POPE, as LLaVA's ``llava/eval/eval_pope.py`` scores it, per split.

Parse: keep the text before the first ".", drop commas, split on spaces; the answer is "no" when the
words contain "No", "not" or "no", otherwise "yes" (so "Maybe" counts as yes, exactly as LLaVA does).
Positive class = yes. yes_ratio = share of predictions that are yes.

Unlike the official script, answers are matched to labels by question id (it zips by position), and a
missing answer counts as wrong: it is taken as the opposite of the label.
"""

from __future__ import annotations

from typing import Iterable

from . import percent


def parse_yes_no(text: str) -> str:
    if text.find(".") != -1:
        text = text.split(".")[0]
    words = text.replace(",", "").split(" ")
    return "no" if ("No" in words or "not" in words or "no" in words) else "yes"


def pope_metrics(pairs: Iterable[tuple[str, str | None]]) -> dict[str, float]:
    """Metrics over (label, answer text or None) pairs of one split."""
    tp = fp = tn = fn = missing = 0
    for label, text in pairs:
        if text is None:
            missing += 1
            predicted = "no" if label == "yes" else "yes"
        else:
            predicted = parse_yes_no(text)
        if predicted == "yes":
            tp, fp = (tp + 1, fp) if label == "yes" else (tp, fp + 1)
        else:
            tn, fn = (tn + 1, fn) if label == "no" else (tn, fn + 1)
    total = tp + fp + tn + fn
    precision = percent(tp, tp + fp)
    recall = percent(tp, tp + fn)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"accuracy": percent(tp + tn, total), "precision": precision, "recall": recall, "f1": f1,
            "yes_ratio": percent(tp + fp, total), "TP": tp, "FP": fp, "TN": tn, "FN": fn,
            "questions": total, "missing_answers": missing}
