"""The run config as the Python side reads it: a mirror of ``src/config/schema.ts``.

The TypeScript schema is the one people's files are validated against before anything starts; this
mirror lets Python tools (notebooks, ad-hoc scripts) read the same files with the same defaults. A test
(tests/test_config_mirror.py) loads every file in ``configs/`` through both and compares the results,
so the two definitions cannot drift.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from .contract import SpecError


@dataclass
class ModelSource:
    source: str
    path: Optional[str] = None


@dataclass
class ToyworldSection:
    seed: int = 0


@dataclass
class PromptsSection:
    source: str = "toyworld"
    file: Optional[str] = None
    images_dir: Optional[str] = None
    limit: int = 0
    sample: str = "per-iteration"


@dataclass
class GenerateSection:
    num_beams: int = 5
    num_token_beams: int = 5
    num_beam_groups: int = 5
    diversity_penalty: float = 3.0
    max_new_tokens: int = 70
    max_length: int = 1024
    keep_top: int = 1
    keep_bottom: int = 2
    prune_by: str = "self_reward"
    batch_size: int = 32


@dataclass
class RewardSection:
    calibration: str = "rank"
    alpha: float = 0.9


@dataclass
class CurateSection:
    min_gap: float = 0.0
    drop_order_only: bool = False
    drop_repeated_objects: bool = False


@dataclass
class DpoSection:
    beta: float = 0.1
    loss: str = "sigmoid"
    learning_rate: float = 1e-7
    projector_learning_rate: Optional[float] = None
    epochs: float = 1
    batch_size: int = 1
    gradient_accumulation_steps: int = 1
    lr_scheduler: str = "cosine"
    warmup_ratio: float = 0.03
    lora_r: int = 128
    lora_alpha: int = 256
    lora_dropout: float = 0.05
    rpo_alpha: Optional[float] = None
    checkpoint_every: int = 100
    reference: str = "iteration_start"
    policy_init: str = "previous_merged"
    data: str = "current_iteration"


@dataclass
class BenchmarkEntry:
    name: str
    data_dir: Optional[str] = None
    limit: int = 0


@dataclass
class JudgeSection:
    url: str
    model: str
    api_key_env: Optional[str] = None


@dataclass
class EvaluateSection:
    benchmarks: list[BenchmarkEntry] = field(default_factory=list)
    objective: Optional[str] = None
    objective_direction: str = "minimize"
    stop_when_worse: bool = False
    batch_size: int = 16
    max_new_tokens: Optional[int] = None
    judge: Optional[JudgeSection] = None


@dataclass
class RetrySection:
    maximum_attempts: int = 5
    initial_interval: str = "5s"
    backoff_coefficient: float = 2
    maximum_interval: str = "5m"


@dataclass
class ActivitiesSection:
    start_to_close: str = "24h"
    heartbeat_timeout: str = "2m"
    heartbeat_every: str = "10s"
    retry: RetrySection = field(default_factory=RetrySection)


@dataclass
class WorkersSection:
    gpu_shards: int = 1
    dpo_gpus: int = 1


@dataclass
class RunConfig:
    name: str
    iterations: int
    model: ModelSource
    clip: ModelSource
    seed: int = 0
    toyworld: ToyworldSection = field(default_factory=ToyworldSection)
    prompts: PromptsSection = field(default_factory=PromptsSection)
    generate: GenerateSection = field(default_factory=GenerateSection)
    reward: RewardSection = field(default_factory=RewardSection)
    curate: CurateSection = field(default_factory=CurateSection)
    dpo: DpoSection = field(default_factory=DpoSection)
    evaluate: EvaluateSection = field(default_factory=EvaluateSection)
    workers: WorkersSection = field(default_factory=WorkersSection)
    activities: ActivitiesSection = field(default_factory=ActivitiesSection)
    torch_threads: Optional[int] = None

    def to_dict(self) -> dict[str, Any]:
        return _drop_none(dataclasses.asdict(self))


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None or k == "rpo_alpha"}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


def _build(cls: type, data: Any, where: str) -> Any:
    """Build a dataclass from a mapping, refusing unknown keys (like the TS schema's .strict())."""
    if not isinstance(data, dict):
        raise SpecError(where or "(top level)", data, "a mapping")
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise SpecError(f"{where + '.' if where else ''}{unknown[0]}", data[unknown[0]], f"one of the fields {', '.join(names)}")
    kwargs: dict[str, Any] = {}
    for name, spec in names.items():
        if name not in data:
            continue
        value = data[name]
        path = f"{where + '.' if where else ''}{name}"
        nested = _NESTED.get((cls, name))
        if nested is list:
            value = [_build(BenchmarkEntry, item, f"{path}.{i}") for i, item in enumerate(value or [])]
        elif nested is not None and value is not None:
            value = _build(nested, value, path)
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except TypeError as error:
        raise SpecError(where or "(top level)", data, f"the required fields of {cls.__name__} ({error})") from error


_NESTED: dict[tuple[type, str], Any] = {
    (RunConfig, "model"): ModelSource,
    (RunConfig, "clip"): ModelSource,
    (RunConfig, "toyworld"): ToyworldSection,
    (RunConfig, "prompts"): PromptsSection,
    (RunConfig, "generate"): GenerateSection,
    (RunConfig, "reward"): RewardSection,
    (RunConfig, "curate"): CurateSection,
    (RunConfig, "dpo"): DpoSection,
    (RunConfig, "evaluate"): EvaluateSection,
    (RunConfig, "workers"): WorkersSection,
    (RunConfig, "activities"): ActivitiesSection,
    (EvaluateSection, "benchmarks"): list,
    (EvaluateSection, "judge"): JudgeSection,
    (ActivitiesSection, "retry"): RetrySection,
}


def load_config(path: str | Path) -> RunConfig:
    """Read a YAML run config with the same defaults as the TypeScript schema."""
    data = yaml.safe_load(Path(path).read_text())
    return _build(RunConfig, data, "")
