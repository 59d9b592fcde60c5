"""The toy world's POPE, dev split (even-numbered held-out scenes: for choosing settings)."""

from .toy_pope import toy_pope

BENCHMARK = toy_pope("toy_pope_dev", "toy-world POPE, dev split")
