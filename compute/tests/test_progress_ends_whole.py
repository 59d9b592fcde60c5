"""A step's progress never ends below 100 %: DPO's last events are its training's end, done == total."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from csr_compute.steps import dpo
from csr_compute.training.callbacks import ProgressCallback


def events(text: str) -> list[dict]:
    out = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and record.get("event") == "progress":
            out.append(record)
    return out


def test_training_that_ends_before_the_estimate_reports_its_end_as_the_whole(capsys):
    callback = ProgressCallback("dpo")
    callback.on_train_begin(None, SimpleNamespace(max_steps=75, global_step=0), None)
    for _ in range(69):
        callback.on_step_end(None, SimpleNamespace(log_history=[]), SimpleNamespace(should_save=False))
    callback.on_train_end(None, SimpleNamespace(global_step=69), None)
    last = events(capsys.readouterr().out)[-1]
    assert (last["done"], last["total"]) == (69, 69), last


def test_dpo_events_after_training_are_at_the_whole(tiny_models, tiny_pipeline, tmp_path, capfd):
    spec = {"out_dir": str(tmp_path / "dpo"), "model": tiny_models.lvlm, "seed": 0, "device": "cpu",
            "pairs": [str(Path(tiny_pipeline.curate_spec["out_dir"]) / "pairs.jsonl")],
            "params": {"beta": 0.1, "loss": "sigmoid", "learning_rate": 5e-3, "epochs": 1, "batch_size": 4,
                       "lora_r": 4, "lora_alpha": 8, "lora_dropout": 0.0, "checkpoint_every": 100, "eval_pairs": 4}}
    manifest = dpo.run(spec)
    progress = events(capfd.readouterr().out)
    steps = manifest["items_total"]
    trained = max(i for i, e in enumerate(progress) if e.get("unit") == "steps" and e["total"] == steps and e["done"] == steps)
    after = progress[trained:]
    assert after and all((e["done"], e["total"]) == (steps, steps) for e in after), after
