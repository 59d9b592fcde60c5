"""Damage costs only what was damaged: a bad record in the middle of a per-item file costs that record,
and a half-saved DPO checkpoint is skipped for the last complete one."""

from __future__ import annotations

import errno
import json
import shutil
import subprocess
import sys
from pathlib import Path

from csr_compute.contract import JsonlStore


def test_a_damaged_record_in_the_middle_costs_that_record_only(tmp_path, capsys):
    path = tmp_path / "trees.jsonl"
    lines = [json.dumps({"id": i, "value": i * i}) + "\n" for i in range(7)]
    lines[3] = lines[3][:9] + "\x00\x00garbage" + "\n"  # line 4: a damaged block, newline intact
    path.write_text("".join(lines) + '{"id": 7, "val')  # and a torn tail: the writer was killed mid-line
    with JsonlStore(path) as store:
        assert sorted(int(r["id"]) for r in store.records()) == [0, 1, 2, 4, 5, 6]
        assert 3 not in store and 7 not in store
        store.append({"id": 3, "value": 9})  # the restarted step recomputes only the damaged item
    warning = capsys.readouterr().err
    assert str(path) in warning and "line(s) 4, 8" in warning, warning
    reread = [json.loads(line) for line in path.read_text().splitlines()]
    assert sorted(r["id"] for r in reread) == list(range(7))


def test_a_record_without_its_key_is_damage_too(tmp_path):
    path = tmp_path / "scored.jsonl"
    path.write_text('{"id": "a"}\n[1, 2]\n{"other": 1}\n{"id": "b"}\n')
    with JsonlStore(path) as store:
        assert len(store) == 2 and "a" in store and "b" in store


def test_a_full_disk_while_appending_names_the_file(tmp_path):
    path = tmp_path / "trees.jsonl"
    store = JsonlStore(path)
    store._handle.close()
    store._handle = open("/dev/full", "a", encoding="utf-8")  # the kernel answers every write with ENOSPC
    try:
        store.append({"id": 1})
    except OSError as error:
        assert error.errno == errno.ENOSPC and error.filename == str(path), error
    else:
        raise AssertionError("an append to a full disk did not fail")
    assert 1 not in store


def test_dpo_resumes_from_the_last_complete_checkpoint_past_a_half_saved_one(tiny_models, tiny_pipeline, tmp_path,
                                                                            compute_env):
    from test_steps_dpo_merge import DPO_PARAMS

    spec = {"out_dir": str(tmp_path / "dpo"), "model": tiny_models.lvlm, "device": "cpu", "seed": 0,
            "pairs": [str(Path(tiny_pipeline.curate_spec["out_dir"]) / "pairs.jsonl")],
            "params": {**DPO_PARAMS, "epochs": 8, "checkpoint_every": 2, "eval_pairs": 0, "max_steps": 8}}
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(spec))
    command = [sys.executable, "-m", "csr_compute", "dpo", "--spec", str(spec_file)]
    env = {k: v for k, v in compute_env.items() if not k.startswith("MLFLOW_")}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    for line in process.stdout:  # type: ignore[union-attr]
        event = json.loads(line)
        if event.get("phase") == "save_checkpoint:done" and event["done"] >= 4:
            break
    process.kill()
    process.wait()
    checkpoints = tmp_path / "dpo" / "checkpoints"
    saved = max(int(p.name.split("-")[1]) for p in checkpoints.glob("checkpoint-*"))
    # The next save, killed before its last file: every file but trainer_state.json, and a torn metrics line.
    half = checkpoints / f"checkpoint-{saved + 2}"
    shutil.copytree(checkpoints / f"checkpoint-{saved}", half)
    (half / "trainer_state.json").unlink()
    with open(tmp_path / "dpo" / "metrics.jsonl", "a") as handle:
        handle.write('{"step": 99, "lo')

    result = subprocess.run(command, capture_output=True, env=env, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert f"{half}: half-saved checkpoint skipped" in result.stderr
    stats = json.loads((tmp_path / "dpo" / "stats.json").read_text())
    assert stats["resumed_from_step"] == saved and stats["steps"] == 8
    steps = [json.loads(line)["step"] for line in (tmp_path / "dpo" / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 9))  # no step lost or logged twice


def test_a_damaged_resume_marker_is_named_and_the_results_it_vouched_for_are_recomputed(tmp_path, capsys):
    from csr_compute.steps.common import guard_resume

    out = tmp_path / "reward"
    out.mkdir()
    (out / "spec_identity.json").write_text('{"identity": "abc", "inp')  # torn
    (out / "scored.jsonl").write_text('{"id": 1}\n')
    guard_resume(out, {"out_dir": str(out), "trees": ["/t"]})
    assert not (out / "scored.jsonl").exists()
    assert f"{out / 'spec_identity.json'} is damaged" in capsys.readouterr().err


def test_a_prompts_file_that_is_not_json_is_named_with_its_line_not_called_a_bad_spec_of_its_own(tiny_models, tmp_path,
                                                                                                 capsys):
    from csr_compute.__main__ import main
    from csr_compute.contract import EXIT_CODES
    from conftest import GENERATE_PARAMS

    prompts = tmp_path / "prompts.json"
    prompts.write_text('[{"id": 1, "image": "a.jpg", "input": "x"},\n {"id": 2,, }]')
    spec = {"out_dir": str(tmp_path / "out"), "model": tiny_models.lvlm, "prompts_file": str(prompts),
            "images_dir": tiny_models.images_dir, "device": "cpu", "params": GENERATE_PARAMS}
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(spec))
    assert main(["generate", "--spec", str(spec_file)]) == EXIT_CODES["bad_spec"]
    event = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert event["message"].startswith(f'prompts_file: expected a JSON list of {{id, image, input}} (Expecting '), event
    assert "at line 2" in event["message"] and str(prompts) in event["message"]
