"""Complete responses of a scored tree, and the chosen/rejected pair with its noise checks."""

from __future__ import annotations

import hashlib
import random
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


REPEATED_SENTENCES = ("score", "worst")


def _worst_value(nodes: list[dict[str, Any]], mode: str) -> float:
    """The tree's worst calibrated sentence value (rank mode: lower is better, so the largest)."""
    values = [n["calibrated"] for n in nodes if n["calibrated"] is not None]
    if not values:
        return 0.0
    return max(values) if mode == "rank" else min(values)


def complete_paths(nodes: list[dict[str, Any]], mode: str, path_norm: str, repeated: str = "score",
                   similarity: float = 1.0) -> list[Path]:
    """Every path that ends in a kept final node and holds at least one scored sentence.

    An end-marker leaf (the model stopped right after a sentence) adds no sentence of its own.
    ``repeated="worst"``: a sentence that says again what an earlier sentence of the same response said
    (same words once case, spacing and the final stop are ignored) is valued as the tree's worst
    sentence. Why: CLIP scores a repeated true sentence as highly as the first time, so the best path
    of a tree is often one that pads itself with repeats; with their own score kept ("score", the
    paper's and reference code's reward) the loop learns to repeat, which also inflates CHAIR_I's
    denominator with true mentions. With ``similarity`` below 1, a sentence whose ``echo`` (the reward
    step's highest CLIP text similarity to an earlier sentence of its path) reaches it is a repeat too:
    the same thing said in other words ("the cap is small . the hat is small .").
    """
    worst = _worst_value(nodes, mode) if repeated == "worst" else None
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
        values, seen = [], set()
        for node in scored:
            said = _normalise(node["text"])
            repeat = said in seen or (similarity < 1.0 and node["echo"] is not None and node["echo"] >= similarity)
            values.append(worst if worst is not None and repeat else node["calibrated"])
            seen.add(said)
        paths.append(Path(leaf=leaf["index"], sentences=[n["text"] for n in scored],
                          clips=[n["clip"] for n in scored], score=path_value(values, mode, path_norm)))
    return paths


PAIRINGS = ("calibrated", "swapped", "random")


def _tie_break(path: Path) -> str:
    # A hash of the text orders tied paths: deterministic, and blind to length and tree order. (Tree
    # order is not: shorter paths end earlier, so a stable sort chose the shortest and rejected the longest.)
    return hashlib.sha256(path.text.encode()).hexdigest()


def choose_pair(paths: list[Path]) -> tuple[Path, Path] | None:
    """Best and worst path whose responses differ; None when there are no two different responses.

    Tied scores are ordered by a hash of the text, so the choice is deterministic and length-neutral.
    """
    ranked = sorted(paths, key=lambda p: (p.score, _tie_break(p)), reverse=True)
    if not ranked:
        return None
    chosen = ranked[0]
    for rejected in reversed(ranked[1:]):
        if rejected.text != chosen.text:
            return chosen, rejected
    return None


def control_pair(paths: list[Path], pair: tuple[Path, Path], pairing: str, seed: str) -> tuple[Path, Path]:
    """The pair a control trains on in place of the calibrated ``pair`` (same prompt, so same pair count).

    ``swapped``: chosen and rejected exchanged. ``random``: two different responses of the tree drawn
    with a generator seeded by ``seed`` (run seed and prompt id), in random order.
    """
    chosen, rejected = pair
    if pairing == "calibrated":
        return chosen, rejected
    if pairing == "swapped":
        return rejected, chosen
    distinct = list({p.text: p for p in sorted(paths, key=_tie_break)}.values())
    first, second = random.Random(seed).sample(distinct, 2)
    return first, second


def _normalise(sentence: str) -> str:
    return re.sub(r"\s+", " ", sentence.lower()).strip(" .")


def order_only(chosen: Path, rejected: Path) -> bool:
    """The two responses say the same sentences, only in another order."""
    return Counter(map(_normalise, chosen.sentences)) == Counter(map(_normalise, rejected.sentences))


def repeats_itself(path: Path) -> bool:
    """The response says the same sentence twice (in the toy world: names an object twice)."""
    counts = Counter(map(_normalise, path.sentences))
    return any(count > 1 for sentence, count in counts.items() if sentence)
