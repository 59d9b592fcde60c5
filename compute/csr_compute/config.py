"""The run config as the Python side reads it: a mirror of ``src/config/schema.ts``.

The TypeScript schema is the one people's files are validated against before anything starts; this
mirror lets Python tools (notebooks, ad-hoc scripts) read the same files with the same defaults. The
per-step sections are the steps' own parameter classes (``GenerateParams`` and so on), so a section
that the schema accepts is one the step accepts. A test (tests/test_config_mirror.py) loads every file
in ``configs/`` through both and compares the results, so the two definitions cannot drift.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from .contract import SpecError
from .steps.curate import CurateParams
from .steps.dpo import DpoParams
from .steps.generate import GenerateParams
from .steps.reward import RewardParams


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
class BenchmarkEntry:
    name: str
    data_dir: Optional[str] = None
    image_dir: Optional[str] = None
    limit: int = 0
    split: Optional[str] = None
    options: Optional[dict] = None


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
    stall_timeout: str = "30m"
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
    generate: GenerateParams = field(default_factory=GenerateParams)
    reward: RewardParams = field(default_factory=RewardParams)
    curate: CurateParams = field(default_factory=CurateParams)
    dpo: DpoParams = field(default_factory=DpoParams)
    evaluate: EvaluateSection = field(default_factory=EvaluateSection)
    workers: WorkersSection = field(default_factory=WorkersSection)
    activities: ActivitiesSection = field(default_factory=ActivitiesSection)

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
    (RunConfig, "generate"): GenerateParams,
    (RunConfig, "reward"): RewardParams,
    (RunConfig, "curate"): CurateParams,
    (RunConfig, "dpo"): DpoParams,
    (RunConfig, "evaluate"): EvaluateSection,
    (RunConfig, "workers"): WorkersSection,
    (RunConfig, "activities"): ActivitiesSection,
    (EvaluateSection, "benchmarks"): list,
    (EvaluateSection, "judge"): JudgeSection,
    (ActivitiesSection, "retry"): RetrySection,
}


def _resolve_paths(config: RunConfig, folder: Path) -> RunConfig:
    """Relative paths mean relative to the config file's folder, as ``loadConfig`` resolves them."""
    def absolute(value: Optional[str]) -> Optional[str]:
        return None if value is None else os.path.normpath(folder / value)

    for source in (config.model, config.clip):
        if source.source == "path":
            source.path = absolute(source.path)
    config.prompts.file = absolute(config.prompts.file)
    config.prompts.images_dir = absolute(config.prompts.images_dir)
    for entry in config.evaluate.benchmarks:
        entry.data_dir = absolute(entry.data_dir)
        entry.image_dir = absolute(entry.image_dir)
    return config


def load_config(path: str | Path) -> RunConfig:
    """Read a YAML run config with the same defaults as the TypeScript schema."""
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    return _resolve_paths(_build(RunConfig, data, ""), Path(path).resolve().parent)
