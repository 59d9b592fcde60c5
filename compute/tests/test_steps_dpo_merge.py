"""dpo and merge: learning happens, curves are logged, a killed run resumes, the merged model loads and generates."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from csr_compute.models import load_lvlm
from csr_compute.steps import dpo, merge

DPO_PARAMS = {"beta": 0.1, "loss": "sigmoid", "learning_rate": 5e-3, "epochs": 4, "batch_size": 2,
              "lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.0, "lr_scheduler": "constant", "warmup_ratio": 0.0,
              "checkpoint_every": 2, "eval_pairs": 8}


@pytest.fixture(scope="module")
def trained(tiny_models, tiny_pipeline, tmp_path_factory, request):
    root = tmp_path_factory.mktemp("dpo")
    spec = {"out_dir": str(root / "dpo"), "model": tiny_models.lvlm, "seed": 0, "device": "cpu",
            "pairs": [str(Path(tiny_pipeline.curate_spec["out_dir"]) / "pairs.jsonl")], "params": DPO_PARAMS}
    manifest = dpo.run(spec)
    return root, spec, manifest


def test_dpo_lowers_the_loss_and_raises_the_margin_on_its_training_set(trained):
    root, _, manifest = trained
    stats = json.loads((root / "dpo" / "stats.json").read_text())
    assert stats["eval_before_loss"] == pytest.approx(0.6931, abs=1e-3)  # fresh LoRA: policy == reference
    assert stats["eval_after_loss"] < stats["eval_before_loss"] - 0.05
    assert stats["eval_after_margin"] > stats["eval_before_margin"] + 0.1
    records = [json.loads(line) for line in (root / "dpo" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if "loss" in r]
    assert [r["step"] for r in steps] == list(range(1, stats["steps"] + 1))
    assert all("rewards/margins" in r and "rewards/accuracies" in r for r in steps)
    assert manifest["items_computed"] == stats["steps"]


def test_dpo_trains_the_lora_weights_only(trained, tiny_models):
    from safetensors.torch import load_file

    root, _, _ = trained
    adapter = load_file(str(root / "dpo" / "adapter" / "adapter_model.safetensors"))
    lora_b = {k: v for k, v in adapter.items() if "lora_B" in k}
    assert lora_b and all(".language_model." in k for k in adapter)
    moved = [k for k, v in lora_b.items() if v.abs().max() > 0]  # B starts at zero
    assert len(moved) == len(lora_b), f"untrained: {sorted(set(lora_b) - set(moved))[:3]}"
    assert list((root / "dpo" / "checkpoints").glob("checkpoint-*")), "no resume checkpoint written"


def test_killed_dpo_resumes_from_its_latest_checkpoint(tiny_models, tiny_pipeline, tmp_path, compute_env):
    spec = {"out_dir": str(tmp_path / "dpo"), "model": tiny_models.lvlm, "device": "cpu", "seed": 0,
            "pairs": [str(Path(tiny_pipeline.curate_spec["out_dir"]) / "pairs.jsonl")],
            "params": {**DPO_PARAMS, "epochs": 8, "checkpoint_every": 2, "eval_pairs": 0}}
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(spec))
    command = [sys.executable, "-m", "csr_compute", "dpo", "--spec", str(spec_file)]
    env = {k: v for k, v in compute_env.items() if not k.startswith("MLFLOW_")}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    deadline = time.monotonic() + 300
    total = None
    for line in process.stdout:
        event = json.loads(line)
        if event.get("phase") == "save_checkpoint:done" and event["done"] >= 4:
            total = event["total"]
            break
        assert time.monotonic() < deadline, "dpo saved no checkpoint"
    process.send_signal(signal.SIGKILL)
    process.wait()
    checkpoints = sorted((tmp_path / "dpo" / "checkpoints").glob("checkpoint-*"))
    saved = int(checkpoints[-1].name.split("-")[1])
    assert 4 <= saved < total

    result = subprocess.run(command, capture_output=True, env=env, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:]
    stats = json.loads((tmp_path / "dpo" / "stats.json").read_text())
    assert stats["resumed_from_step"] == saved and stats["steps"] == total
    steps = [json.loads(line)["step"] for line in (tmp_path / "dpo" / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, total + 1))  # no step logged twice, none missing


def test_merge_produces_a_model_that_loads_generates_and_equals_base_plus_adapter(trained, tiny_models, tmp_path):
    from peft import PeftModel
    from PIL import Image

    root, _, _ = trained
    manifest = merge.run({"out_dir": str(tmp_path / "merge"), "model": tiny_models.lvlm,
                          "adapter": str(root / "dpo" / "adapter"), "device": "cpu"})
    assert "model/config.json" in manifest["files"]
    merged = load_lvlm(tmp_path / "merge" / "model", "cpu")
    prompt = json.loads(Path(tiny_models.prompts_file).read_text())[0]
    image = Image.open(Path(tiny_models.images_dir) / prompt["image"]).convert("RGB")
    inputs = merged.processor(text=merged.prompt_text(prompt["input"]), images=image, return_tensors="pt")
    out = merged.model.generate(**inputs, max_new_tokens=8, do_sample=False)
    assert out.shape[1] > inputs["input_ids"].shape[1]
    base = load_lvlm(tiny_models.lvlm, "cpu")
    unmerged = PeftModel.from_pretrained(base.model, str(root / "dpo" / "adapter"))
    with torch.no_grad():
        expected = unmerged(**inputs).logits
        got = merged.model(**inputs).logits
        plain = load_lvlm(tiny_models.lvlm, "cpu").model(**inputs).logits
    assert torch.allclose(got, expected, atol=1e-4)
    assert not torch.allclose(got, plain, atol=1e-3)  # the adapter changed the model


def test_nll_only_control_fits_the_chosen_responses_without_a_preference_term(tiny_models, tiny_pipeline, tmp_path):
    # The chosen-only control: the loss is the NLL of the chosen response, so it starts well above DPO's
    # log 2 and falls, while the rejected responses are never pushed down on purpose.
    spec = {"out_dir": str(tmp_path / "nll"), "model": tiny_models.lvlm, "seed": 0, "device": "cpu",
            "pairs": [str(Path(tiny_pipeline.curate_spec["out_dir"]) / "pairs.jsonl")],
            "params": {**DPO_PARAMS, "loss": "nll_only", "epochs": 2}}
    dpo.run(spec)
    stats = json.loads((tmp_path / "nll" / "stats.json").read_text())
    assert stats["first_loss"] > 1.0, stats  # an NLL of text the tiny model hardly knows, not DPO's 0.693
    assert stats["last_loss"] < stats["first_loss"], stats
