"""Every file in configs/ reads the same through the TypeScript schema and the Python mirror."""

import json
import subprocess
from pathlib import Path

import pytest

from csr_compute.config import load_config
from csr_compute.contract import SpecError

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))


def typescript_resolved(path: Path) -> dict:
    script = (
        "const { loadConfig } = require('./src/config');"
        f"process.stdout.write(JSON.stringify(loadConfig({json.dumps(str(path))})));"
    )
    out = subprocess.run(
        ["node", "--import", "tsx", "-e", script], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out)


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_python_mirror_matches_typescript_schema(path: Path) -> None:
    python_side = load_config(path).to_dict()
    typescript_side = typescript_resolved(path)
    assert python_side == typescript_side


def test_unknown_field_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\niterations: 1\nmodel: {source: toyworld}\nclip: {source: toyworld}\ngenerate: {num_beamz: 3}\n")
    with pytest.raises(SpecError, match=r"generate\.num_beamz"):
        load_config(bad)


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_configured_benchmark_is_registered(path: Path) -> None:
    from csr_compute.evaluation.registry import names

    registered = set(names())
    for entry in load_config(path).evaluate.benchmarks:
        assert entry.name in registered, f"{path.name}: benchmark {entry.name!r} is not one of {sorted(registered)}"
    objective = load_config(path).evaluate.objective
    if objective:
        assert objective.split("/")[0] in {b.name for b in load_config(path).evaluate.benchmarks}, objective


def test_benchmark_split_and_options_read_the_same(tmp_path: Path) -> None:
    config = tmp_path / "options.yaml"
    config.write_text("name: x\niterations: 1\nmodel: {source: toyworld}\nclip: {source: toyworld}\n"
                      "evaluate:\n  benchmarks:\n    - {name: mme, split: test, options: {parse: lmms_eval, passes: 3}}\n")
    python_side = load_config(config).to_dict()
    assert python_side["evaluate"]["benchmarks"][0]["options"] == {"parse": "lmms_eval", "passes": 3}
    assert python_side == typescript_resolved(config)
