"""The toy world's POPE, test split (odd-numbered held-out scenes: reported, never used to choose settings)."""

from .toy_pope import toy_pope

BENCHMARK = toy_pope("toy_pope_test", "toy-world POPE, test split")
