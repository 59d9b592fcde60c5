"""Every bad spec is the spec's fault: exit 2 (3 for a missing input), one error event naming the field or
file and what was expected, no traceback, and none of the spec's raw bytes on the terminal. Run through
the real command line, ``python -m csr_compute STEP --spec FILE``, as the activity runs it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RAW_BYTES = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ufffd]")


def curate_spec(tmp: Path, **changes) -> dict:
    return {"out_dir": str(tmp / "curate"), "scored": [str(tmp / "scored.jsonl")], **changes}


def write(tmp: Path, content: bytes) -> Path:
    path = tmp / "spec.json"
    path.write_bytes(content)
    return path


def broken_model(tmp: Path, config: bytes) -> dict:
    model = tmp / "model"
    model.mkdir()
    (model / "config.json").write_bytes(config)
    prompts = tmp / "prompts.json"
    prompts.write_text(json.dumps([{"id": "1", "image": "a.png", "input": "Describe."}]))
    (tmp / "images").mkdir()
    return {"out_dir": str(tmp / "generate"), "model": str(model), "prompts_file": str(prompts),
            "images_dir": str(tmp / "images"), "device": "cpu"}


# (case, step, spec bytes from tmp, exit code, message pattern)
CASES = [
    ("latin-1 bytes", "curate", lambda t: json.dumps(curate_spec(t, note="x")).replace('"x"', '"caf\u00e9"').encode("latin-1"),
     2, r"--spec: expected UTF-8 JSON \(byte 0xe9 at offset \d+ is not UTF-8\)"),
    ("binary bytes", "curate", lambda t: b"\x1b[31m\xff\xfe\x00garbage", 2, r"--spec: expected UTF-8 JSON \(byte 0xff"),
    ("not JSON", "curate", lambda t: b"{out_dir: x", 2, r"--spec: expected JSON \(Expecting property name"),
    ("a JSON list", "curate", lambda t: b"[]", 2, r"spec: expected a JSON object"),
    ("Infinity", "curate", lambda t: json.dumps(curate_spec(t, seed=float("inf"))).encode(), 2,
     r"spec: expected finite numbers only"),
    ("seed 2^32", "curate", lambda t: json.dumps(curate_spec(t, seed=2**32)).encode(), 2,
     r"seed: expected an integer <= 4294967295, got 4294967296"),
    ("relative out_dir", "curate", lambda t: json.dumps(curate_spec(t, out_dir="runs/x")).encode(), 2,
     r'out_dir: expected an absolute path, got "runs/x"'),
    ("dpo.beta 0", "dpo", lambda t: json.dumps({"out_dir": str(t / "dpo"), "model": str(t), "pairs": [str(t)],
                                                 "params": {"beta": 0}}).encode(), 2, r"params\.beta: expected a number > 0, got 0"),
    ("broken model config.json", "generate", lambda t: json.dumps(broken_model(t, b"{not json")).encode(), 2,
     r"LVLM model: expected a JSON model config \(JSONDecodeError"),
    ("model config.json without model_type", "generate", lambda t: json.dumps(broken_model(t, b"[]")).encode(), 2,
     r"LVLM model: expected a model config with a model_type"),
]


def run_step(step: str, spec: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CSR_WATCH_PARENT": "0", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "csr_compute", step, "--spec", str(spec)], cwd=ROOT / "compute",
                          env=env, capture_output=True, text=True, errors="surrogateescape", timeout=300)


@pytest.mark.parametrize("case,step,content,code,pattern", CASES, ids=[c[0] for c in CASES])
def test_bad_spec_is_refused_for_good_with_one_line(tmp_path, case, step, content, code, pattern) -> None:
    done = run_step(step, write(tmp_path, content(tmp_path)))
    assert done.returncode == code, done.stdout + done.stderr
    errors = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    errors = [e for e in errors if e.get("event") == "error"]
    assert len(errors) == 1 and errors[0]["retryable"] is False, done.stdout
    assert re.search(pattern, errors[0]["message"]), errors[0]["message"]
    assert "Traceback" not in done.stderr, done.stderr
    assert not RAW_BYTES.search(done.stdout + done.stderr), "raw bytes of the spec reached the terminal"


def test_missing_spec_file_is_a_missing_input(tmp_path) -> None:
    done = run_step("curate", tmp_path / "nowhere.json")
    assert done.returncode == 3, done.stdout + done.stderr
    assert "spec file" in done.stdout and "does not exist" in done.stdout
    assert "Traceback" not in done.stderr
