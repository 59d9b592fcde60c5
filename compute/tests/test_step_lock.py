"""One writer per step folder: a second process on a folder in use stops at once, retryably, naming it;
the lock dies with its holder, however the holder dies."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from csr_compute.contract import EXIT_CODES


def _start(out: Path, tmp_path: Path, name: str, sleep_s: float, env: dict[str, str]) -> subprocess.Popen:
    spec = tmp_path / f"{name}.json"
    spec.write_text(json.dumps({"out_dir": str(out), "sleep_s": sleep_s}))
    return subprocess.Popen([sys.executable, "-m", "csr_compute", "probe", "--spec", str(spec)],
                            stdout=subprocess.PIPE, text=True, env={**env, "CSR_WATCH_PARENT": "0"})


def _first_event(process: subprocess.Popen, event: str) -> dict:
    for line in process.stdout:  # type: ignore[union-attr]
        parsed = json.loads(line)
        if parsed["event"] == event:
            return parsed
    raise AssertionError(f"no {event} event before exit {process.wait()}")


def test_second_writer_fails_retryably_naming_the_folder_and_the_lock_dies_with_its_holder(tmp_path, compute_env):
    out = tmp_path / "step"
    first = _start(out, tmp_path, "first", 60, compute_env)
    try:
        # The probe reports progress only after it took the lock (main takes it before the step runs).
        _first_event(first, "progress")
        second = _start(out, tmp_path, "second", 0, compute_env)
        stdout, _ = second.communicate(timeout=120)
        assert second.returncode == EXIT_CODES["retryable"]
        error = [json.loads(line) for line in stdout.splitlines() if '"error"' in line][-1]
        assert error["kind"] == "busy" and error["retryable"] is True
        assert str(out) in error["message"] and f"pid {first.pid}" in error["message"], error["message"]
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    # SIGKILL gives the holder no chance to clean up: the kernel alone must release the lock.
    third = _start(out, tmp_path, "third", 0, compute_env)
    stdout, _ = third.communicate(timeout=120)
    assert third.returncode == EXIT_CODES["ok"], stdout[-2000:]


def test_different_folders_do_not_block_each_other(tmp_path, compute_env):
    started = time.monotonic()
    first = _start(tmp_path / "a", tmp_path, "a", 60, compute_env)
    try:
        _first_event(first, "progress")
        other = _start(tmp_path / "b", tmp_path, "b", 0, compute_env)
        stdout, _ = other.communicate(timeout=120)
        assert other.returncode == EXIT_CODES["ok"], stdout[-2000:]
        assert time.monotonic() - started < 60
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
