"""Compute steps never talk to MLflow: the DPO step writes its curves to metrics.jsonl (each logged step
once, with the timestamp the workflow's tracker delivers it with), and no module of the package imports
the MLflow client."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import csr_compute
from csr_compute.steps import dpo


def test_no_compute_module_imports_mlflow():
    package = Path(csr_compute.__file__).parent
    offenders = []
    for source in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(source.read_text(), str(source))):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{source.relative_to(package)}:{node.lineno} imports {name}"
                          for name in names if name.split(".")[0] == "mlflow"]
    assert not offenders, "compute steps write files and progress lines; the TypeScript tracker talks to MLflow: " \
        + "; ".join(offenders)


def test_dpo_writes_each_logged_step_once_with_its_timestamp(tiny_models, tiny_pipeline, tmp_path):
    from test_steps_dpo_merge import DPO_PARAMS

    spec = {"out_dir": str(tmp_path / "dpo"), "model": tiny_models.lvlm, "device": "cpu",
            "pairs": [str(Path(tiny_pipeline.curate_spec["out_dir"]) / "pairs.jsonl")],
            "params": {**DPO_PARAMS, "max_steps": 2, "eval_pairs": 0}}
    manifest = dpo.run(spec)
    assert "metrics.jsonl" in manifest["files"], "the curves are an output the manifest vouches for"
    records = [json.loads(line) for line in (tmp_path / "dpo" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if "loss" in r]
    assert [r["step"] for r in steps] == [1, 2]
    assert all(isinstance(r["time_ms"], int) and "rewards/margins" in r for r in steps)
