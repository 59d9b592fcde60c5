"""A step run as its own process writes ``timings`` {startup_s, load_s, compute_s} into its manifest."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from conftest import GENERATE_PARAMS


def test_a_step_process_splits_its_time_into_startup_load_and_compute(tiny_models, compute_env, tmp_path):
    spec = {"out_dir": str(tmp_path / "generate"), "model": tiny_models.lvlm, "prompts_file": tiny_models.prompts_file,
            "images_dir": tiny_models.images_dir, "shard": {"index": 0, "count": 1}, "limit": 2, "seed": 0,
            "device": "cpu", "params": GENERATE_PARAMS}
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(spec))
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "csr_compute", "generate", "--spec", str(spec_file)],
                            capture_output=True, env=compute_env, text=True, timeout=600)
    wall = time.monotonic() - started
    assert result.returncode == 0, result.stderr

    timings = json.loads((tmp_path / "generate" / "manifest.json").read_text())["timings"]
    assert set(timings) == {"startup_s", "load_s", "compute_s"}
    # Start-up imports torch; loading reads a model folder; the search computes: each takes measurable time.
    assert all(timings[part] > 0 for part in timings), timings
    # The three parts cover the process up to its manifest, so they add up to no more than what we waited for.
    assert sum(timings.values()) <= wall + 0.05, (timings, wall)


def test_a_step_called_in_process_writes_no_timings(tiny_models, tmp_path):
    from csr_compute.steps import generate

    manifest = generate.run({"out_dir": str(tmp_path / "generate"), "model": tiny_models.lvlm,
                             "prompts_file": tiny_models.prompts_file, "images_dir": tiny_models.images_dir,
                             "limit": 1, "device": "cpu", "params": GENERATE_PARAMS})
    assert "timings" not in manifest
