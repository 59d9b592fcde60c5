"""Calibrated sentence rewards and path scores.

Two forms, both with ``alpha`` the weight of the visual (CLIP) side:

- ``rank`` (the reference code, default): among the scored children of one parent, each gets a rank in
  (0, 1] by self-reward and another by CLIP score, ``(i + 1) / n`` with 1/n the best; the sentence
  value is ``(1 - alpha) * rank + alpha * clip_rank``. Lower is better.
- ``score`` (the paper as written): ``alpha * max(clip, 0) + (1 - alpha) * R_T`` with ``R_T`` the
  product of the sentence's token probabilities. Higher is better. (The two terms live on very
  different scales: CLIP logits are tens, ``R_T`` is at most 1, so this form is CLIP alone in
  practice; kept as written for comparison.)
- ``standardized`` (the paper's weighted sum with both terms on one scale): among the scored children
  of one parent, each term is standardised, ``z = (x - mean) / sd``, and the sentence value is
  ``alpha * z(clip) + (1 - alpha) * z(self_reward)`` with ``self_reward`` the length-normalised
  log-probability. Higher is better. Why siblings: they answer the same partial response, so their
  differences are what pruning and curation act on; why z-scores rather than ranks: the size of a
  difference survives (a clearly false sentence is worse than a slightly weaker true one), while
  neither term's units can swamp the other. ``alpha = 1`` is CLIP alone, ``alpha = 0`` the model's
  own score alone. A term that does not vary among the siblings (one child, or equal values)
  contributes 0.

``goodness`` turns either into "higher is better" so that pruning and curation need no special case.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

CALIBRATIONS = ("rank", "score", "standardized")
PATH_NORMS = ("with_root", "sentences")


def sibling_ranks(values: Sequence[float]) -> list[float]:
    """``(i + 1) / n`` by descending value; ties keep their order (Python's sort is stable)."""
    order = sorted(range(len(values)), key=lambda i: values[i], reverse=True)
    ranks = [0.0] * len(values)
    for position, index in enumerate(order):
        ranks[index] = (position + 1) / len(values)
    return ranks


def standardize(values: Sequence[float]) -> list[float]:
    """``(x - mean) / sd`` with the population sd; all zeros when the values do not vary."""
    mean = sum(values) / len(values)
    sd = math.sqrt(sum((x - mean) ** 2 for x in values) / len(values))
    if sd < 1e-9:
        return [0.0] * len(values)
    return [(x - mean) / sd for x in values]


def calibrate_siblings(children: list[dict[str, Any]], alpha: float, mode: str) -> None:
    """Set ``rank``, ``clip_rank`` and ``calibrated`` on scored siblings (each has ``clip`` and ``self_reward``)."""
    if not children:
        return
    ranks = sibling_ranks([c["self_reward"] for c in children])
    clip_ranks = sibling_ranks([c["clip"] for c in children])
    self_z = standardize([c["self_reward"] for c in children])
    clip_z = standardize([c["clip"] for c in children])
    for child, rank, clip_rank, sz, cz in zip(children, ranks, clip_ranks, self_z, clip_z):
        child["rank"], child["clip_rank"] = rank, clip_rank
        if mode == "rank":
            child["calibrated"] = (1 - alpha) * rank + alpha * clip_rank
        elif mode == "standardized":
            child["calibrated"] = alpha * cz + (1 - alpha) * sz
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
