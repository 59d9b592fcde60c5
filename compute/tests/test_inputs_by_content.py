"""Inputs by content: a spec carries the hashes of the upstream manifests it reads, so a step is reused
only when its inputs are the same, and per-item results made from other inputs are dropped, not mixed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from csr_compute.contract import RetryableError, SpecError, sha256_file
from csr_compute.steps import curate
from csr_compute.steps.common import guard_resume, spec_hash


def test_the_steps_compare_the_hash_the_manifest_records():
    from csr_compute import contract
    from csr_compute.steps import common

    assert common.spec_hash is contract.spec_hash, "one spec hash (contract's), not a second copy"


def test_curate_is_reused_only_while_its_upstream_manifest_is_the_same(tiny_pipeline, tmp_path):
    reward = tmp_path / "reward"
    shutil.copytree(Path(tiny_pipeline.reward_spec["out_dir"]), reward)
    base = {"out_dir": str(tmp_path / "curate"), "scored": [str(reward / "scored.jsonl")],
            "images_dir": tiny_pipeline.curate_spec["images_dir"], "params": {}}
    first = {**base, "inputs": {str(reward): sha256_file(reward / "manifest.json")}}
    made = curate.run(first)
    assert made["spec_hash"] == spec_hash(first) and made["items_computed"] > 0
    assert curate.run(first) == made  # same inputs: reused as it is

    # The reward step is recomputed (its manifest changes): the old spec no longer matches what is on disk.
    manifest = json.loads((reward / "manifest.json").read_text())
    (reward / "manifest.json").write_text(json.dumps({**manifest, "stats": {**manifest["stats"], "recomputed": 1}}))
    with pytest.raises(RetryableError, match=f"upstream step {reward} changed since this spec was made"):
        curate.run(first)
    second = {**base, "inputs": {str(reward): sha256_file(reward / "manifest.json")}}
    remade = curate.run(second)
    assert remade["spec_hash"] == spec_hash(second) != made["spec_hash"]


def test_per_item_results_of_other_inputs_are_dropped_and_a_different_spec_is_refused(tmp_path):
    out = tmp_path / "generate"
    spec = {"out_dir": str(out), "model": "/m", "inputs": {"/run/iter-00/merge": "a" * 64}}
    guard_resume(out, spec)
    (out / "trees.jsonl").write_text('{"id": 1}\n')
    (out / "logs").mkdir()
    (out / "spec.json").write_text("{}")
    guard_resume(out, {**spec, "device": "cuda"})  # another device: same results, kept
    assert (out / "trees.jsonl").is_file()

    guard_resume(out, {**spec, "inputs": {"/run/iter-00/merge": "b" * 64}})  # the merged model was remade
    assert sorted(p.name for p in out.iterdir()) == ["logs", "spec.json", "spec_identity.json"]

    with pytest.raises(SpecError, match="holds results of a different spec"):
        guard_resume(out, {**spec, "model": "/other"})


def test_a_folder_marked_before_inputs_were_recorded_keeps_its_results(tmp_path):
    out = tmp_path / "reward"
    out.mkdir()
    legacy = {"out_dir": str(out), "trees": ["/t"]}
    (out / "spec_identity.json").write_text(json.dumps({"identity": spec_hash(legacy)}) + "\n")
    (out / "scored.jsonl").write_text('{"id": 1}\n')
    guard_resume(out, {**legacy, "inputs": {"/run/generate": "c" * 64}})
    assert (out / "scored.jsonl").is_file()
    assert json.loads((out / "spec_identity.json").read_text())["inputs"] == {"/run/generate": "c" * 64}
