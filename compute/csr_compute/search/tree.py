"""The sentence-level beam search tree of one prompt, as a flat list of JSON-ready nodes.

A node is a partial response: its parent's response plus one new sentence. The root (index 0) is the
empty response. Each depth, every active node gets ``num_token_beams`` candidate sentences from the
token-level diverse beam search; of the new non-final nodes of the depth, the best ``keep_top`` and
the worst ``keep_bottom`` by the pruning score stay active (all of them while there are fewer than
``num_beams``), so that good and bad continuations both survive to be compared later.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from .group_beam import Candidate

# A node is final when its response is complete: the model ended it or the total length limit did.
FINAL_ENDS = ("eos", "max_length")
# Pruning compares keys to this many decimals (fp32 rounding noise between batch layouts is ~1e-6).
KEY_DECIMALS = 4


def root_node() -> dict[str, Any]:
    return {"index": 0, "parent": -1, "depth": 0, "text": "", "token_ids": [], "num_tokens": 0,
            "self_reward": 0.0, "logprob_sum": 0.0, "beam_score": 0.0, "score": 0.0, "final": False,
            "end": None, "group": None, "pruned": False}


def prune(candidates: list[int], key: Callable[[int], float], num_beams: int, keep_top: int,
          keep_bottom: int) -> list[int]:
    """Keep the ``keep_top`` best and ``keep_bottom`` worst of ``candidates`` by ``key`` (higher = better).

    As in the reference code, nothing is pruned while there are fewer than ``num_beams`` candidates.
    Sorting is stable (ties keep generation order), so the result is deterministic. Keys are compared
    to ``KEY_DECIMALS`` decimals: two nodes with the same response (a common tie) get scores that differ
    in the last float bits depending on their rows in the batch, and that must not decide which survives.
    """
    if len(candidates) < num_beams:
        return list(candidates)
    ranked = sorted(candidates, key=lambda index: round(key(index), KEY_DECIMALS), reverse=True)
    bottom = ranked[len(ranked) - keep_bottom:] if keep_bottom else []
    return ranked[:keep_top] + bottom


@dataclass
class SentenceTree:
    """The tree of one prompt while it grows."""

    prompt_id: str
    prompt_length: int  # tokens of the full prompt, image tokens included
    max_length: int
    max_new_tokens: int
    nodes: list[dict[str, Any]] = field(default_factory=lambda: [root_node()])
    active: list[int] = field(default_factory=lambda: [0])
    expanded_this_depth: list[int] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return not self.active

    def response_tokens(self, index: int) -> list[int]:
        """All response tokens from the root to node ``index``."""
        chain = []
        while index > 0:
            chain.append(self.nodes[index]["token_ids"])
            index = self.nodes[index]["parent"]
        return [token for tokens in reversed(chain) for token in tokens]

    def work(self) -> list[tuple[int, list[int], int]]:
        """(node, response so far, token budget) for every active node."""
        items = []
        for index in self.active:
            response = self.response_tokens(index)
            budget = min(self.max_new_tokens, self.max_length - self.prompt_length - len(response))
            items.append((index, response, budget))
        return items

    def attach(self, parent: int, candidates: list[Candidate], decode: Callable[[list[int]], str], eos_id: int) -> None:
        parent_node = self.nodes[parent]
        used = self.prompt_length + len(self.response_tokens(parent))
        for candidate in candidates:
            end = candidate.end
            if end != "eos" and used + len(candidate.token_ids) >= self.max_length:
                end = "max_length"
            text_ids = [t for t in candidate.token_ids if t != eos_id]
            self.nodes.append({
                "index": len(self.nodes), "parent": parent, "depth": parent_node["depth"] + 1,
                "text": decode(text_ids).strip(), "token_ids": candidate.token_ids,
                "num_tokens": len(candidate.token_ids), "self_reward": candidate.self_reward,
                "logprob_sum": candidate.logprob_sum, "beam_score": candidate.beam_score,
                "score": parent_node["score"] + candidate.self_reward, "final": end in FINAL_ENDS,
                "end": end, "group": candidate.group, "pruned": False,
            })
        self.expanded_this_depth.append(parent)

    def new_open_nodes(self) -> list[int]:
        """The non-final children created at this depth."""
        parents = set(self.expanded_this_depth)
        return [n["index"] for n in self.nodes if n["parent"] in parents and not n["final"]]

    def close_depth(self, key: Callable[[int], float], num_beams: int, keep_top: int, keep_bottom: int) -> None:
        candidates = self.new_open_nodes()
        kept = prune(candidates, key, num_beams, keep_top, keep_bottom)
        kept_set = set(kept)
        for index in candidates:
            self.nodes[index]["pruned"] = index not in kept_set
        # Keep generation order for the next depth, whatever order pruning listed them in.
        self.active = sorted(kept_set)
        self.expanded_this_depth = []
