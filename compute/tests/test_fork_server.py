"""The fork server (``csr_compute.fork_server``): a forked step gives what a spawned one gives, dies with the server,
and a request the server cannot honour is refused (so the caller spawns it) rather than run differently."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from csr_compute.fork_server import ForkServerProcess, env_mismatch
from conftest import GENERATE_PARAMS


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _wait_gone(pid: int, timeout_s: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _running(pid):
            return True
        time.sleep(0.05)
    return False


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    src = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "CSR_TORCH_THREADS": "1",
           "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    log = tmp_path_factory.mktemp("server") / "server.log"
    with ForkServerProcess(env=env, log_file=str(log)) as running:
        yield running


def _write_spec(out_dir: Path, spec: dict) -> str:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "spec.json").write_text(json.dumps(spec))
    return str(out_dir / "spec.json")


def test_a_forked_step_writes_the_manifest_and_files_a_spawned_one_writes(server, tiny_models, tmp_path):
    import shutil

    out = tmp_path / "generate"  # one folder for both runs: the folder is part of the spec and its hash
    spec = {"out_dir": str(out), "model": tiny_models.lvlm, "prompts_file": tiny_models.prompts_file,
            "images_dir": tiny_models.images_dir, "shard": {"index": 0, "count": 1}, "seed": 0, "device": "cpu",
            "params": GENERATE_PARAMS}
    made = {}
    for how in ("spawned", "forked"):
        shutil.rmtree(out, ignore_errors=True)
        spec_file = _write_spec(out, spec)
        if how == "spawned":
            done = subprocess.run([sys.executable, "-m", "csr_compute", "generate", "--spec", spec_file],
                                  env=server.env, capture_output=True, text=True)
            assert done.returncode == 0, done.stderr[-2000:]
        else:
            run = server.run("generate", spec_file, str(out / "generate.log"))
            assert run.refused is None and not run.lost, run
            assert run.code == 0, (out / "generate.log").read_text()[-2000:]
            assert [e["event"] for e in run.events][-1] == "manifest"
        made[how] = json.loads((out / "manifest.json").read_text())
        made[how]["trees"] = (out / "trees.jsonl").read_text()
    spawned, forked = made["spawned"], made["forked"]
    # Everything but the clock is the same: the spec's hash, the files and their hashes, the counts, the stats.
    assert set(spawned.pop("timings")) == set(forked.pop("timings")) == {"startup_s", "load_s", "compute_s"}
    clocked = {k for k in spawned["stats"] if k.endswith(("_s", "per_s", "_rate"))}
    for key in clocked:
        spawned["stats"].pop(key), forked["stats"].pop(key)
    assert spawned == forked
    assert forked["files"] and forked["items_computed"] > 0


def test_the_forked_child_leads_its_own_group_and_pays_no_start_up(server, tmp_path):
    spec_file = _write_spec(tmp_path, {"out_dir": str(tmp_path), "sleep_s": 0.3})
    run = server.run("probe", spec_file, str(tmp_path / "probe.log"))
    assert run.code == 0 and run.signal is None
    probe = next(e for e in run.events if e["event"] == "probe")
    assert probe["pid"] == run.pid != server.pid


def test_killing_the_server_mid_step_kills_the_steps_group_and_a_retry_runs(tiny_models, tmp_path, compute_env):
    with ForkServerProcess(env=compute_env) as first:
        spec_file = _write_spec(tmp_path, {"out_dir": str(tmp_path), "sleep_s": 120})
        reader, run = first.launch("probe", spec_file, str(tmp_path / "probe.log"))
        assert run.pid is not None
        assert _running(run.pid) and os.getpgid(run.pid) == run.pid  # the group the activity kills
        os.kill(first.pid, signal.SIGKILL)
        first.process.wait()
        assert _wait_gone(run.pid), "the step outlived its server"
        ended = ForkServerProcess.finish(reader, run)
        assert ended.lost and ended.code is None  # no exit record: the client reports a retryable failure
    # The retry, through a new server (the worker restarts its server), runs the step to its end.
    with ForkServerProcess(env=compute_env) as second:
        spec_file = _write_spec(tmp_path, {"out_dir": str(tmp_path), "sleep_s": 0.1})
        again = second.run("probe", spec_file, str(tmp_path / "probe.log"))
        assert again.code == 0 and not again.lost


def test_a_step_killed_by_a_signal_reports_it(server, tmp_path):
    spec_file = _write_spec(tmp_path, {"out_dir": str(tmp_path), "sleep_s": 60})
    reader, run = server.launch("probe", spec_file, str(tmp_path / "probe.log"))
    os.killpg(run.pid, signal.SIGTERM)
    ended = ForkServerProcess.finish(reader, run)
    assert (ended.code, ended.signal, ended.lost) == (None, "SIGTERM", False)


def test_an_environment_the_imports_cannot_follow_is_refused_so_the_step_is_spawned(server, tmp_path):
    spec_file = _write_spec(tmp_path, {"out_dir": str(tmp_path)})
    run = server.run("probe", spec_file, str(tmp_path / "probe.log"), env={**server.env, "HF_HOME": "/elsewhere"})
    assert run.pid is None and "HF_HOME" in run.refused
    # The worker's per-step variables are fine: the GPU pin, the project's own settings.
    assert env_mismatch({"A": "1"}, {"A": "1", "CUDA_VISIBLE_DEVICES": "3", "CSR_TORCH_THREADS": "2"}) == []
    pinned = server.run("probe", spec_file, str(tmp_path / "probe.log"), env={**server.env, "CUDA_VISIBLE_DEVICES": "7"})
    assert pinned.code == 0
    assert next(e for e in pinned.events if e["event"] == "probe")["cuda_visible_devices"] == "7"


def test_an_unknown_step_is_refused(server, tmp_path):
    run = server.run("nonsense", str(tmp_path / "spec.json"), str(tmp_path / "x.log"))
    assert run.pid is None and "unknown step" in run.refused


def test_a_forked_step_shows_the_command_line_of_a_spawned_one(server, tmp_path):
    spec_file = _write_spec(tmp_path, {"out_dir": str(tmp_path), "sleep_s": 60})
    reader, run = server.launch("probe", spec_file, str(tmp_path / "probe.log"))
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the child rewrites it just before the step starts
            args = [a for a in Path(f"/proc/{run.pid}/cmdline").read_bytes().decode().split("\0") if a]
            if "csr_compute" in args:
                break
            time.sleep(0.05)
        assert args[1:] == ["-m", "csr_compute", "probe", "--spec", spec_file]
    finally:
        os.killpg(run.pid, signal.SIGKILL)
        ForkServerProcess.finish(reader, run)
