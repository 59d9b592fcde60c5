"""The toy world's CHAIR, dev split (even-numbered held-out scenes: for choosing settings)."""

from .toy_chair import toy_chair

BENCHMARK = toy_chair("toy_chair_dev", "toy-world CHAIR, dev split")
