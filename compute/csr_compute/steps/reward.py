"""Step ``reward``: CLIP image relevance and calibrated values for every node of every tree.

For each tree: nodes with garbage sentences (reference filters, see ``search.filters``) are dropped
with their subtrees; every remaining sentence is scored against the image with CLIP; siblings are
calibrated (rank form by default, the paper's score form as an option). Output ``scored.jsonl``: the
tree records with, per node, ``clip``, ``dropped`` (null or the reason), ``rank``, ``clip_rank``,
``calibrated`` and ``echo``. Written tree by tree; a restarted shard skips finished trees.

``echo`` is the highest cosine similarity between the sentence's CLIP text embedding and that of any
earlier scored sentence on its path (null for the first). Curate can use it (``repeat_similarity``) to
tell a sentence that says again what its response already said in other words ("the cap is small .
the hat is small ."), which CLIP scores as highly as the first saying. In the toy world that did not
cut the repeats in evaluated captions (docs/toy-results.md, round 8), so it is off by default.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..contract import JsonlStore, Progress, SpecError, shard_slice, write_manifest
from ..search.calibration import CALIBRATIONS, calibrate_siblings
from ..search.filters import drop_reason
from ..config_bounds import check_section
from .common import (StepSpec, check_choice, check_float, check_int, check_paths, check_str, from_dict, heartbeat,
                     open_step, read_jsonl, resolve_image)

STEP = "reward"


@dataclass
class RewardParams:
    """The ``reward`` section of the run config."""

    calibration: str = field(default="rank", metadata={"help": "'rank' (sibling ranks, reference code), 'score' (paper as written: alpha*max(clip,0) + (1-alpha)*prod(p)) or 'standardized' (alpha*z(clip) + (1-alpha)*z(self_reward) among siblings)."})
    alpha: float = field(default=0.9, metadata={"help": "Weight of the CLIP (visual) side, in [0, 1]."})
    batch_size: int = field(default=64, metadata={"help": "Sentences per CLIP forward pass."})

    def __post_init__(self) -> None:
        # The schema's limits (config_bounds.json), so that what the CLI accepted is accepted here;
        # first, so that a field is refused by the schema's own words before any rule combining fields.
        check_section("reward", self, "params")
        check_choice("params.calibration", self.calibration, CALIBRATIONS)
        check_float("params.alpha", self.alpha, minimum=0.0, maximum=1.0)
        check_int("params.batch_size", self.batch_size, minimum=1)


@dataclass
class RewardSpec(StepSpec):
    trees: Any = field(default=None, metadata={"help": "Paths of trees.jsonl files (all shards of generate)."})
    clip: str = field(default="", metadata={"help": "CLIP folder (CLIPModel + CLIPProcessor)."})
    images_dir: str = field(default="", metadata={"help": "Folder of the prompts' images."})
    shard: dict = field(default_factory=lambda: {"index": 0, "count": 1},
                        metadata={"help": "{index, count}: this worker's slice of the trees."})
    params: Any = field(default_factory=dict, metadata={"help": "The reward section of the config (RewardParams)."})

    def __post_init__(self) -> None:
        super().__post_init__()
        self.trees = check_paths("trees", self.trees)
        check_str("clip", self.clip)
        check_str("images_dir", self.images_dir)
        if not isinstance(self.shard, dict) or set(self.shard) != {"index", "count"}:
            raise SpecError("shard", self.shard, "an object {index, count}")
        check_int("shard.count", self.shard["count"], minimum=1)
        check_int("shard.index", self.shard["index"], minimum=0, maximum=self.shard["count"] - 1)
        self.params = from_dict(RewardParams, self.params, "params")


def mark_dropped(nodes: list[dict[str, Any]]) -> None:
    """Set ``dropped`` on every node: a garbage reason, ``ancestor`` under a dropped node, or None."""
    for node in nodes:  # parents always precede their children in the flat list
        if node["parent"] < 0:
            node["dropped"] = None
        elif nodes[node["parent"]]["dropped"] is not None:
            node["dropped"] = "ancestor"
        else:
            node["dropped"] = drop_reason(node["text"], node["final"])


def score_tree(record: dict[str, Any], image: Any, scorer: Any, params: RewardParams) -> dict[str, Any]:
    nodes = [dict(n) for n in record["nodes"]]
    mark_dropped(nodes)
    for node in nodes:
        node["clip"] = node["rank"] = node["clip_rank"] = node["calibrated"] = node["echo"] = None
    scored = [n for n in nodes if n["parent"] >= 0 and n["dropped"] is None and n["text"].strip()]
    text_embeds = scorer.text_embeddings([n["text"] for n in scored])
    for node, value in zip(scored, scorer.relevance(scorer.image_embedding(image), text_embeds)):
        node["clip"] = value
    set_echoes(nodes, scored, text_embeds)
    siblings: dict[int, list[dict[str, Any]]] = {}
    for node in scored:
        siblings.setdefault(node["parent"], []).append(node)
    for group in siblings.values():
        calibrate_siblings(group, params.alpha, params.calibration)
    return {**record, "nodes": nodes, "calibration": params.calibration, "alpha": params.alpha}


def set_echoes(nodes: list[dict[str, Any]], scored: list[dict[str, Any]], text_embeds: Any) -> None:
    """``echo`` of each scored node: its highest text similarity to a scored ancestor (None if it has none)."""
    row = {node["index"]: i for i, node in enumerate(scored)}
    for node in scored:
        ancestors, parent = [], node["parent"]
        while parent > 0:
            if parent in row:
                ancestors.append(row[parent])
            parent = nodes[parent]["parent"]
        if ancestors:
            node["echo"] = float((text_embeds[ancestors] @ text_embeds[row[node["index"]]]).max())


def run(raw_spec: dict[str, Any]) -> dict[str, Any]:
    spec, done = open_step(RewardSpec, raw_spec, STEP)
    if done is not None:
        return done
    from PIL import Image

    from ..models import load_clip
    from ..search.clip_score import ClipScorer

    trees = shard_slice(read_jsonl(spec.trees, "trees file"), spec.shard["index"], spec.shard["count"])
    progress = Progress(STEP, total=len(trees), unit="trees")
    progress.start()
    store = JsonlStore(Path(spec.out_dir) / "scored.jsonl")
    try:
        todo = [t for t in trees if str(t["id"]) not in store]
        reused = len(trees) - len(todo)
        if reused:
            progress.advance(reused, reused=True)
        started, sentences = time.monotonic(), 0
        if todo:
            with heartbeat(progress, "load_model"):
                loaded = load_clip(spec.clip, spec.device)
            scorer = ClipScorer(loaded.model, loaded.processor, loaded.device, spec.params.batch_size)
            for record in todo:
                image = Image.open(resolve_image(spec.images_dir, record["image"])).convert("RGB")
                scored = score_tree(record, image, scorer, spec.params)
                sentences += sum(n["clip"] is not None for n in scored["nodes"])
                store.append(scored)
                progress.advance(1, sentences=sentences)
        records = [store.get(str(t["id"])) for t in trees]
    finally:
        store.close()
    nodes = [n for r in records for n in r["nodes"] if n["parent"] >= 0]
    clips = [n["clip"] for n in nodes if n["clip"] is not None]
    stats = {
        "trees": len(trees),
        "nodes": len(nodes),
        "scored": len(clips),
        "clip_mean": sum(clips) / len(clips) if clips else 0.0,
        **{f"dropped_{reason}": sum(n["dropped"] == reason for n in nodes)
           for reason in ("foreign_or_emoji", "newlines", "repetition", "short", "ancestor")},
        "sentences_per_s": round(sentences / (time.monotonic() - started), 2) if sentences else 0.0,
    }
    return write_manifest(spec.out_dir, step=STEP, spec=raw_spec, files=["scored.jsonl"], items_total=len(trees),
                          items_reused=reused, items_computed=len(todo), stats=stats)
