"""One CSR iteration (generate -> reward -> curate -> dpo -> merge) on 8 prompts of the trained toy world.

Runs when the toy world is built (``toyworld-build``) under CSR_TOYWORLD_ROOT or <CSR_HOME>/toyworld
(CSR_HOME defaults to <repo>/.csr); with CSR_TEST_BUILD_TOYWORLD=1 it builds the world first (long).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest


def toyworld_root() -> Path:
    """Where test-all.js (CSR_TOYWORLD_ROOT) or `csr toyworld build` (<CSR_HOME>/toyworld) put the world."""
    if os.environ.get("CSR_TOYWORLD_ROOT"):
        return Path(os.environ["CSR_TOYWORLD_ROOT"])
    return Path(os.environ.get("CSR_HOME") or Path(__file__).resolve().parents[2] / ".csr") / "toyworld"


@pytest.fixture(scope="module")
def world() -> Path:
    from csr_compute.toyworld.build import ensure_built, world_dir

    root = toyworld_root()
    folder = world_dir(root)
    if not (folder / "manifest.json").is_file():
        if os.environ.get("CSR_TEST_BUILD_TOYWORLD") != "1":
            pytest.skip(f"toy world not built under {root} (run toyworld-build or set CSR_TEST_BUILD_TOYWORLD=1)")
        folder = ensure_built(root)
    return folder


def test_one_iteration_on_the_toy_world(world, tmp_path):
    from PIL import Image

    from csr_compute.models import load_lvlm
    from csr_compute.steps import curate, dpo, generate, merge, reward

    generate.run({"out_dir": str(tmp_path / "generate"), "model": str(world / "lvlm"),
                  "prompts_file": str(world / "prompts.json"), "images_dir": str(world / "images"), "limit": 8,
                  "device": "cpu", "params": {"num_beams": 5, "num_token_beams": 5, "num_beam_groups": 5,
                                              "diversity_penalty": 3.0, "max_new_tokens": 70, "max_length": 1024,
                                              "keep_top": 1, "keep_bottom": 2, "prune_by": "self_reward",
                                              "batch_size": 32}})
    reward.run({"out_dir": str(tmp_path / "reward"), "trees": [str(tmp_path / "generate" / "trees.jsonl")],
                "clip": str(world / "clip"), "images_dir": str(world / "images"), "device": "cpu",
                "params": {"calibration": "rank", "alpha": 0.9}})
    curate.run({"out_dir": str(tmp_path / "curate"), "scored": [str(tmp_path / "reward" / "scored.jsonl")],
                "images_dir": str(world / "images"), "ground_truth": str(world / "scenes.jsonl"), "params": {}})
    stats = json.loads((tmp_path / "curate" / "stats.json").read_text())
    pairs = [json.loads(line) for line in (tmp_path / "curate" / "pairs.jsonl").read_text().splitlines()]
    assert pairs and stats["gt_pairs"] == len(pairs)
    assert stats["gt_better"] + stats["gt_equal"] + stats["gt_worse"] == pytest.approx(1.0)
    assert all(p["conversations"][1]["value"] != p["rejected_conversations"][1]["value"] for p in pairs)

    dpo.run({"out_dir": str(tmp_path / "dpo"), "model": str(world / "lvlm"), "device": "cpu",
             "pairs": [str(tmp_path / "curate" / "pairs.jsonl")],
             "params": {"learning_rate": 1e-3, "epochs": 3, "batch_size": 2, "lora_r": 16, "lora_alpha": 32,
                        "lr_scheduler": "constant", "warmup_ratio": 0.0, "checkpoint_every": 10, "eval_pairs": 8}})
    trained = json.loads((tmp_path / "dpo" / "stats.json").read_text())
    assert trained["eval_after_loss"] < trained["eval_before_loss"]
    assert trained["eval_after_margin"] > trained["eval_before_margin"]

    merge.run({"out_dir": str(tmp_path / "merge"), "model": str(world / "lvlm"),
               "adapter": str(tmp_path / "dpo" / "adapter"), "device": "cpu"})
    merged = load_lvlm(tmp_path / "merge" / "model", "cpu")
    prompt = json.loads((world / "prompts.json").read_text())[0]
    image = Image.open(world / "images" / prompt["image"]).convert("RGB")
    inputs = merged.processor(text=merged.prompt_text(prompt["input"]), images=image, return_tensors="pt")
    out = merged.model.generate(**inputs, max_new_tokens=20, do_sample=False)
    assert merged.tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip()
