"""Metrics, each a re-implementation of the official scorer named in its module docstring.

Scorers take parsed ground truth and answer texts (None = no answer: scored as wrong) and return a
flat ``{metric: number}``. Rates are percentages (0-100), the scale of the paper's tables.
"""


def percent(numerator: float, denominator: float) -> float:
    """numerator / denominator x 100, and 0 for an empty denominator (the official scripts would crash)."""
    return 100.0 * numerator / denominator if denominator else 0.0
