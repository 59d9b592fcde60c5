"""Step ``merge``: the DPO LoRA adapter merged into its base; the merged folder is the next iteration's model.

Output ``model/``: a complete LVLM folder (weights, config, processor with its chat template) that
``models.load_lvlm`` loads like any other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..contract import MissingInputError, Progress, write_manifest
from .common import StepSpec, check_str, heartbeat, open_step

STEP = "merge"


@dataclass
class MergeSpec(StepSpec):
    model: str = field(default="", metadata={"help": "Base LVLM folder the adapter was trained on."})
    adapter: str = field(default="", metadata={"help": "PEFT adapter folder (dpo's out_dir/adapter)."})

    def __post_init__(self) -> None:
        super().__post_init__()
        check_str("model", self.model)
        check_str("adapter", self.adapter)


def run(raw_spec: dict[str, Any]) -> dict[str, Any]:
    spec, done = open_step(MergeSpec, raw_spec, STEP, resume=False)
    if done is not None:
        return done
    from peft import PeftModel

    from ..models import load_lvlm

    if not (Path(spec.adapter) / "adapter_config.json").is_file():
        raise MissingInputError(f"adapter folder {spec.adapter!r} has no adapter_config.json (not a PEFT adapter)")
    progress = Progress(STEP, total=3, unit="phases")
    progress.start()
    target = Path(spec.out_dir) / "model"
    with heartbeat(progress, "load_model"):
        lvlm = load_lvlm(spec.model, spec.device, spec.dtype)
    progress.advance(1)
    with heartbeat(progress, "merge"):
        merged = PeftModel.from_pretrained(lvlm.model, spec.adapter).merge_and_unload()
    progress.advance(1)
    with heartbeat(progress, "save"):
        merged.save_pretrained(target)
        lvlm.processor.save_pretrained(target)
    progress.advance(1)
    files = sorted(str(p.relative_to(spec.out_dir)) for p in target.rglob("*") if p.is_file())
    return write_manifest(spec.out_dir, step=STEP, spec=raw_spec, files=files, items_total=1, items_reused=0,
                          items_computed=1, stats={"files": len(files)})
