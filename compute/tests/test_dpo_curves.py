"""The DPO curves logged live carry the timestamps of metrics.jsonl, so the workflow's later delivery of
that file through its spooling tracker is the same points again (stored once), not a second curve."""

from __future__ import annotations

import json
from pathlib import Path

from csr_compute.steps import dpo


def test_live_curve_points_have_the_timestamps_of_metrics_jsonl(tiny_models, tiny_pipeline, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient
    from test_steps_dpo_merge import DPO_PARAMS

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    run_id = client.create_run(client.create_experiment("csr")).info.run_id
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_RUN_ID", run_id)
    spec = {"out_dir": str(tmp_path / "dpo"), "model": tiny_models.lvlm, "device": "cpu",
            "pairs": [str(Path(tiny_pipeline.curate_spec["out_dir"]) / "pairs.jsonl")],
            "params": {**DPO_PARAMS, "max_steps": 2, "eval_pairs": 0}}
    dpo.run(spec)
    records = [json.loads(line) for line in (tmp_path / "dpo" / "metrics.jsonl").read_text().splitlines()]
    in_file = {(r["step"], r["time_ms"], r["loss"]) for r in records if "loss" in r}
    live = {(m.step, m.timestamp, m.value) for m in client.get_metric_history(run_id, "dpo/loss")}
    assert len(in_file) == 2 and live == in_file
