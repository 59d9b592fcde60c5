"""Complete responses of a scored tree, and the chosen/rejected pair with its noise checks."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from .calibration import path_value


@dataclass
class Path:
    """One root-to-final-node path: a complete response and its calibrated score (higher = better)."""

    leaf: int
    sentences: list[str]
    clips: list[float]
    score: float

    @property
    def text(self) -> str:
        return " ".join(self.sentences)


def complete_paths(nodes: list[dict[str, Any]], mode: str, path_norm: str) -> list[Path]:
    """Every path that ends in a kept final node and holds at least one scored sentence.

    An end-marker leaf (the model stopped right after a sentence) adds no sentence of its own.
    """
    paths = []
    for leaf in nodes:
        if not leaf["final"] or leaf["dropped"] is not None:
            continue
        chain, index = [], leaf["index"]
        while index > 0:
            chain.append(nodes[index])
            index = nodes[index]["parent"]
        scored = [n for n in reversed(chain) if n["calibrated"] is not None]
        if not scored:
            continue
        paths.append(Path(leaf=leaf["index"], sentences=[n["text"] for n in scored],
                          clips=[n["clip"] for n in scored],
                          score=path_value([n["calibrated"] for n in scored], mode, path_norm)))
    return paths


def choose_pair(paths: list[Path]) -> tuple[Path, Path] | None:
    """Best and worst path whose responses differ; None when there are no two different responses.

    Ties in score keep tree order (stable sort), so the choice is deterministic.
    """
    ranked = sorted(paths, key=lambda p: p.score, reverse=True)
    if not ranked:
        return None
    chosen = ranked[0]
    for rejected in reversed(ranked[1:]):
        if rejected.text != chosen.text:
            return chosen, rejected
    return None


def _normalise(sentence: str) -> str:
    return re.sub(r"\s+", " ", sentence.lower()).strip(" .")


def order_only(chosen: Path, rejected: Path) -> bool:
    """The two responses say the same sentences, only in another order."""
    return Counter(map(_normalise, chosen.sentences)) == Counter(map(_normalise, rejected.sentences))


def repeats_itself(path: Path) -> bool:
    """The response says the same sentence twice (in the toy world: names an object twice)."""
    counts = Counter(map(_normalise, path.sentences))
    return any(count > 1 for sentence, count in counts.items() if sentence)
