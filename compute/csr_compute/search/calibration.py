"""Calibrated sentence rewards and path scores.

Two forms, both with ``alpha`` the weight of the visual (CLIP) side:

- ``rank`` (the reference code, default): among the scored children of one parent, each gets a rank in
  (0, 1] by self-reward and another by CLIP score, ``(i + 1) / n`` with 1/n the best; the sentence
  value is ``(1 - alpha) * rank + alpha * clip_rank``. Lower is better.
- ``score`` (the paper as written): ``alpha * max(clip, 0) + (1 - alpha) * R_T`` with ``R_T`` the
  product of the sentence's token probabilities. Higher is better. (The two terms live on very
  different scales, so this form is dominated by CLIP; that is the paper's formula, kept as written.)

``goodness`` turns either into "higher is better" so that pruning and curation need no special case.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

CALIBRATIONS = ("rank", "score")
PATH_NORMS = ("with_root", "sentences")


def sibling_ranks(values: Sequence[float]) -> list[float]:
    """``(i + 1) / n`` by descending value; ties keep their order (Python's sort is stable)."""
    order = sorted(range(len(values)), key=lambda i: values[i], reverse=True)
    ranks = [0.0] * len(values)
    for position, index in enumerate(order):
        ranks[index] = (position + 1) / len(values)
    return ranks


def calibrate_siblings(children: list[dict[str, Any]], alpha: float, mode: str) -> None:
    """Set ``rank``, ``clip_rank`` and ``calibrated`` on scored siblings (each has ``clip`` and ``self_reward``)."""
    if not children:
        return
    ranks = sibling_ranks([c["self_reward"] for c in children])
    clip_ranks = sibling_ranks([c["clip"] for c in children])
    for child, rank, clip_rank in zip(children, ranks, clip_ranks):
        child["rank"], child["clip_rank"] = rank, clip_rank
        if mode == "rank":
            child["calibrated"] = (1 - alpha) * rank + alpha * clip_rank
        else:
            child["calibrated"] = alpha * max(child["clip"], 0.0) + (1 - alpha) * math.exp(child["logprob_sum"])


def goodness(value: float, mode: str) -> float:
    """A calibrated value (or path mean) with higher = better in both modes."""
    return -value if mode == "rank" else value


def path_value(values: Sequence[float], mode: str, path_norm: str) -> float:
    """Mean calibrated value of a path, in "higher is better" orientation.

    ``with_root`` divides by the number of nodes including the root (which has no value), as the
    reference code does (``len(path)`` in construct.py); ``sentences`` by the number of sentences.
    """
    count = len(values) + (1 if path_norm == "with_root" else 0)
    return goodness(sum(values) / max(count, 1), mode)
