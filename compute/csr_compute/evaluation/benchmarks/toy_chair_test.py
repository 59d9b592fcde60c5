"""The toy world's CHAIR, test split (odd-numbered held-out scenes: reported, never used to choose settings)."""

from .toy_chair import toy_chair

BENCHMARK = toy_chair("toy_chair_test", "toy-world CHAIR, test split")
