"""Step ``dpo``: DPO with TRL + PEFT LoRA on the curated pairs, resumable from its checkpoints.

The policy starts from the iteration-start model (``spec.model``) with fresh LoRA adapters; the
frozen reference is the same model with the adapters disabled, i.e. exactly the iteration-start
model. With ``projector_learning_rate`` the multimodal projector is trained too (a PEFT
``modules_to_save`` copy, so the reference keeps the original projector), with its own learning rate.

Outputs: ``adapter/`` (the PEFT adapter), ``checkpoints/`` (resume state: weights, optimizer,
scheduler, RNG, step), ``metrics.jsonl`` (per-step loss, rewards/margins, rewards/accuracies, ...),
``stats.json`` (first/last training loss and margin, and the DPO loss / margin / accuracy on up to
``eval_pairs`` training pairs before and after training).
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..contract import Progress, SpecError, atomic_write_json, log, write_manifest
from ..config_bounds import check_section
from .common import (StepSpec, check_bool, check_choice, check_float, check_int, check_paths, check_str, from_dict,
                     heartbeat, open_step, read_jsonl)

STEP = "dpo"
LOSSES = ("sigmoid", "ipo", "hinge", "robust", "nll_only")
SCHEDULERS = ("cosine", "linear", "constant", "constant_with_warmup")


@dataclass
class DpoParams:
    """The ``dpo`` section of the run config."""

    beta: float = field(default=0.1, metadata={"help": "DPO beta (TRL default; the reference sets none)."})
    loss: str = field(default="sigmoid", metadata={"help": "DPO loss: 'sigmoid' (standard DPO), 'ipo', 'hinge', 'robust'; 'nll_only' is a control: fine-tuning on the chosen responses alone (NLL), no preference term."})
    learning_rate: float = field(default=1e-7, metadata={"help": "Learning rate of the LoRA weights (reference: 1e-7)."})
    projector_learning_rate: float | None = field(default=None, metadata={"help": "Also train the multimodal projector at this rate (reference: 2e-5); null = frozen."})
    epochs: float = field(default=1.0, metadata={"help": "Passes over the pairs."})
    batch_size: int = field(default=1, metadata={"help": "Pairs per device per step."})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "Steps accumulated per optimizer update."})
    lr_scheduler: str = field(default="cosine", metadata={"help": "Learning-rate schedule."})
    warmup_ratio: float = field(default=0.03, metadata={"help": "Share of the steps spent warming up."})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay."})
    lora_r: int = field(default=128, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=256, metadata={"help": "LoRA alpha."})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout."})
    rpo_alpha: float | None = field(default=None, metadata={"help": "Weight of an NLL term on chosen responses (RPO; TRL loss 'sft'); null = off."})
    checkpoint_every: int = field(default=100, metadata={"help": "Save resume state every this many optimizer steps."})
    save_total_limit: int = field(default=1, metadata={"help": "Checkpoints kept (the latest)."})
    max_length: int = field(default=1024, metadata={"help": "Token limit of prompt (image tokens included) + response."})
    max_steps: int = field(default=-1, metadata={"help": "Stop after this many optimizer steps (-1 = run the epochs)."})
    gradient_checkpointing: bool = field(default=False, metadata={"help": "Trade compute for memory (off in the reference by a script bug)."})
    eval_pairs: int = field(default=32, metadata={"help": "Training pairs on which DPO loss/margin are measured before and after training (0 = skip)."})

    def __post_init__(self) -> None:
        # The schema's limits (config_bounds.json), so that what the CLI accepted is accepted here;
        # first, so that a field is refused by the schema's own words before any rule combining fields.
        check_section("dpo", self, "params")
        p = "params"
        check_float(f"{p}.beta", self.beta)
        check_choice(f"{p}.loss", self.loss, LOSSES)
        check_float(f"{p}.learning_rate", self.learning_rate, minimum=0.0)
        if self.projector_learning_rate is not None:
            check_float(f"{p}.projector_learning_rate", self.projector_learning_rate, minimum=0.0)
        check_float(f"{p}.epochs", self.epochs)
        check_int(f"{p}.batch_size", self.batch_size, minimum=1)
        check_int(f"{p}.gradient_accumulation_steps", self.gradient_accumulation_steps, minimum=1)
        check_choice(f"{p}.lr_scheduler", self.lr_scheduler, SCHEDULERS)
        check_float(f"{p}.warmup_ratio", self.warmup_ratio)
        check_float(f"{p}.weight_decay", self.weight_decay, minimum=0.0)
        check_int(f"{p}.lora_r", self.lora_r, minimum=1)
        check_int(f"{p}.lora_alpha", self.lora_alpha, minimum=1)
        check_float(f"{p}.lora_dropout", self.lora_dropout)
        if self.rpo_alpha is not None:
            check_float(f"{p}.rpo_alpha", self.rpo_alpha, minimum=0.0)
        check_int(f"{p}.checkpoint_every", self.checkpoint_every, minimum=1)
        check_int(f"{p}.save_total_limit", self.save_total_limit, minimum=1)
        check_int(f"{p}.max_length", self.max_length, minimum=8)
        check_int(f"{p}.max_steps", self.max_steps, minimum=-1)
        if self.max_steps == 0:
            raise SpecError(f"{p}.max_steps", 0, "-1 (run the epochs) or a positive step count")
        check_bool(f"{p}.gradient_checkpointing", self.gradient_checkpointing)
        check_int(f"{p}.eval_pairs", self.eval_pairs, minimum=0)


@dataclass
class DpoSpec(StepSpec):
    model: str = field(default="", metadata={"help": "Iteration-start LVLM folder: policy init and frozen reference."})
    pairs: Any = field(default=None, metadata={"help": "Paths of pairs.jsonl files (curate output)."})
    images_dir: str | None = field(default=None, metadata={"help": "Base folder for relative image paths in the pairs."})
    params: Any = field(default_factory=dict, metadata={"help": "The dpo section of the config (DpoParams)."})

    def __post_init__(self) -> None:
        super().__post_init__()
        check_str("model", self.model)
        self.pairs = check_paths("pairs", self.pairs)
        if self.images_dir is not None:
            check_str("images_dir", self.images_dir)
        self.params = from_dict(DpoParams, _without_retired(self.params), "params")


# Keys retired from the dpo section (issue 15) with the one value each could hold: the policy starts from
# spec.model, the reference is spec.model (adapters off), the pairs are spec.pairs. A spec written before
# (a worker still running older code, a step folder of an earlier run) carries them; mirrored in
# activities/manifest.ts.
RETIRED_PARAMS = {"reference": "iteration_start", "policy_init": "previous_merged", "data": "current_iteration"}


def _without_retired(params: Any) -> Any:
    if not isinstance(params, dict):
        return params
    return {k: v for k, v in params.items() if not (k in RETIRED_PARAMS and v == RETIRED_PARAMS[k])}


def _as_written_before(raw_spec: dict[str, Any]) -> dict[str, Any]:
    """The spec as the plan wrote it before the retired keys went (to recognise a folder written then)."""
    params = raw_spec.get("params")
    return {**raw_spec, "params": {**RETIRED_PARAMS, **params}} if isinstance(params, dict) else raw_spec


def lora_targets(model: Any) -> str:
    """A PEFT regex over every linear layer of the language model (not the vision tower, projector or head).

    The reference (LLaVA's ``find_all_linear_names``) puts LoRA on all linear layers except the
    vision side and ``lm_head``.
    """
    import torch

    names = sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules()
                    if isinstance(module, torch.nn.Linear) and ".language_model." in f".{name}."})
    if not names:
        raise SpecError("model", type(model).__name__, "a model with a language_model made of linear layers")
    return r".*\.language_model\..*\.(" + "|".join(map(re.escape, names)) + r")$"


def _trainer_class(projector_lr: float | None):
    import torch
    from trl import DPOTrainer

    class CsrDpoTrainer(DPOTrainer):
        """DPOTrainer with a separate learning rate for the multimodal projector's trainable copy."""

        def create_optimizer(self, model=None):
            if self.optimizer is None and projector_lr is not None:
                named = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
                projector = [p for n, p in named if "multi_modal_projector" in n]
                others = [p for n, p in named if "multi_modal_projector" not in n]
                self.optimizer = torch.optim.AdamW(
                    [{"params": others, "lr": self.args.learning_rate, "weight_decay": self.args.weight_decay},
                     {"params": projector, "lr": projector_lr, "weight_decay": self.args.weight_decay}],
                    lr=self.args.learning_rate)
            return super().create_optimizer(model)

    return CsrDpoTrainer


def _checkpointing_args(enabled: bool) -> dict[str, bool]:
    """transformers 5.x renamed gradient checkpointing to activation checkpointing; use whichever exists."""
    import dataclasses

    from trl import DPOConfig

    names = {f.name for f in dataclasses.fields(DPOConfig)}
    if "activation_checkpointing" in names:
        return {"activation_checkpointing": enabled, "gradient_checkpointing": enabled}
    return {"gradient_checkpointing": enabled}


def _eval(trainer: Any, dataset: Any, progress: Progress, phase: str) -> dict[str, float]:
    if dataset is None:
        return {}
    with heartbeat(progress, phase):
        metrics = trainer.evaluate(eval_dataset=dataset, metric_key_prefix="eval")
    return {"loss": metrics["eval_loss"], "margin": metrics.get("eval_rewards/margins", math.nan),
            "accuracy": metrics.get("eval_rewards/accuracies", math.nan)}


def run(raw_spec: dict[str, Any]) -> dict[str, Any]:
    spec, done = open_step(DpoSpec, raw_spec, STEP, as_written_before=_as_written_before)
    if done is not None:
        return done
    from peft import LoraConfig
    from trl import DPOConfig

    from ..models import load_lvlm
    from ..training.callbacks import MetricsFileCallback, ProgressCallback, truncate_metrics
    from ..training.checkpoints import last_complete_checkpoint
    from ..training.data import to_dataset, to_trl_records

    params = spec.params
    out = Path(spec.out_dir)
    records = to_trl_records(read_jsonl(spec.pairs, "pairs file"), spec.images_dir)
    if not records:
        raise SpecError("pairs", spec.pairs, "at least one preference pair (curate dropped every prompt)")
    progress = Progress(STEP, total=1, unit="steps")
    with heartbeat(progress, "load_model"):
        lvlm = load_lvlm(spec.model, spec.device, spec.dtype)
    model, processor, device = lvlm.model, lvlm.processor, lvlm.device
    model.config.use_cache = False
    if processor.tokenizer.pad_token is None:
        processor.tokenizer.pad_token = processor.tokenizer.eos_token

    import torch

    bf16 = model.dtype == torch.bfloat16
    losses, weights = [params.loss], [1.0]
    if params.loss == "nll_only":  # TRL's "sft" loss: the NLL of the chosen response, nothing else
        losses = ["sft"]
    elif params.rpo_alpha:
        losses.append("sft")
        weights.append(params.rpo_alpha)
    checkpoints = out / "checkpoints"
    args = DPOConfig(
        output_dir=str(checkpoints), seed=spec.seed, data_seed=spec.seed,
        per_device_train_batch_size=params.batch_size, per_device_eval_batch_size=params.batch_size,
        gradient_accumulation_steps=params.gradient_accumulation_steps,
        learning_rate=params.learning_rate, lr_scheduler_type=params.lr_scheduler,
        warmup_steps=params.warmup_ratio, weight_decay=params.weight_decay,
        num_train_epochs=params.epochs, max_steps=params.max_steps,
        beta=params.beta, loss_type=losses, loss_weights=weights, max_length=params.max_length,
        save_strategy="steps", save_steps=params.checkpoint_every, save_total_limit=params.save_total_limit,
        logging_steps=1, report_to=[], disable_tqdm=True,
        bf16=bf16, fp16=False, use_cpu=device == "cpu",
        **_checkpointing_args(params.gradient_checkpointing),
        # Keep the configured LoRA dropout: the reference log-probs come from the base without adapters.
        disable_dropout=False, dataloader_num_workers=0,
    )
    peft_config = LoraConfig(
        r=params.lora_r, lora_alpha=params.lora_alpha, lora_dropout=params.lora_dropout,
        target_modules=lora_targets(model), task_type="CAUSAL_LM",
        modules_to_save=["multi_modal_projector"] if params.projector_learning_rate is not None else None,
    )
    train_set = to_dataset(records)
    eval_set = to_dataset(records[:params.eval_pairs]) if params.eval_pairs else None
    metrics_path = out / "metrics.jsonl"
    progress_cb = ProgressCallback(STEP)
    trainer = _trainer_class(params.projector_learning_rate)(
        model=model, args=args, train_dataset=train_set, processing_class=processor, peft_config=peft_config,
        # The curves go to metrics.jsonl only; the workflow's tracker delivers them to MLflow (MetricsFileCallback).
        callbacks=[progress_cb, MetricsFileCallback(metrics_path)],
    )
    # The Trainer's own printer writes Python dicts to stdout, which is reserved for JSON events.
    from transformers.trainer_callback import PrinterCallback, ProgressCallback as TqdmCallback

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(TqdmCallback)
    resume_from = last_complete_checkpoint(checkpoints)
    resume = str(resume_from) if resume_from is not None else None
    stats_path = out / "eval_before.json"
    if resume is None:
        metrics_path.unlink(missing_ok=True)
        before = _eval(trainer, eval_set, progress, "eval_before")
        atomic_write_json(stats_path, before)
    else:
        log(f"dpo: resuming from {resume}")
        truncate_metrics(metrics_path, int(Path(resume).name.rsplit("-", 1)[-1]))
        try:
            before = json.loads(stats_path.read_text()) if stats_path.is_file() else {}
        except json.JSONDecodeError as error:
            log(f"warning: {stats_path} is damaged ({error.msg} at line {error.lineno}); the before-training "
                "evaluation is left out of this step's stats")
            before = {}
    started = time.monotonic()
    train_output = trainer.train(resume_from_checkpoint=resume)
    # What follows training (evaluation, saving) reports the training's end, not the 0/1 of the set-up.
    progress = progress_cb.progress or progress
    after = _eval(trainer, eval_set, progress, "eval_after")
    with heartbeat(progress, "save_adapter"):
        trainer.save_model(str(out / "adapter"))

    logged = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
    train_logs = [r for r in logged if "loss" in r]
    stats: dict[str, Any] = {
        "pairs": len(records), "steps": trainer.state.global_step,
        "train_loss": train_output.training_loss, "train_runtime_s": round(time.monotonic() - started, 1),
        "resumed_from_step": int(Path(resume).name.rsplit("-", 1)[-1]) if resume else 0,
    }
    if train_logs:
        stats.update({"first_loss": train_logs[0]["loss"], "last_loss": train_logs[-1]["loss"],
                      "first_margin": train_logs[0].get("rewards/margins"),
                      "last_margin": train_logs[-1].get("rewards/margins"),
                      "last_accuracy": train_logs[-1].get("rewards/accuracies")})
    for name, values in (("eval_before", before), ("eval_after", after)):
        for key, value in values.items():
            stats[f"{name}_{key}"] = value
    atomic_write_json(out / "stats.json", stats)
    files = ["stats.json", "metrics.jsonl"] + sorted(
        str(p.relative_to(out)) for p in (out / "adapter").rglob("*") if p.is_file())
    return write_manifest(out, step=STEP, spec=raw_spec, files=files, items_total=trainer.state.global_step,
                          items_reused=stats["resumed_from_step"],
                          items_computed=trainer.state.global_step - stats["resumed_from_step"], stats=stats)
