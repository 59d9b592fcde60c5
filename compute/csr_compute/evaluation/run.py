"""The ``evaluate`` step: answer one benchmark's questions with a checkpoint, then score the answers.

Spec (JSON)::

    {"out_dir": ..., "model": <LVLM folder>,
     "benchmark": {"name": ..., "data_dir": ..., "split"?: ..., "limit"?: N, "image_dir"?: ..., <extra fields>},
     "batch_size": 16, "max_new_tokens"?: N, "seed": 0, "device": "auto", "dtype"?: "auto",
     "judge"?: {"url": ..., "model": ..., "api_key_env"?: ...}}

Writes ``answers.jsonl`` (one LLaVA-format answer per question, appended as they come, so a killed run
resumes where it stopped), ``metrics.json`` (flat, official metric names; ``skipped`` with the reason
when a judge-graded benchmark has no judge), ``judgements.jsonl`` (judge replies, when a judge was
asked) and ``manifest.json`` last.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ..contract import (JsonlStore, Progress, SpecError, atomic_write_json, log, repeat_while, require,
                        write_manifest)
from ..steps.common import check_inputs, guard_resume
from .generation import find_image, generate_batch, open_image
from .judge import Judge
from .registry import Benchmark, Dataset, ScoreContext, get_benchmark, load_dataset
from .scoring import score

STEP = "evaluate"
HEARTBEAT_S = 2.0
BENCHMARK_FIELDS = ("name", "data_dir", "split", "limit", "image_dir")


@dataclass
class BenchmarkChoice:
    name: str = field(metadata={"help": "registry name of the benchmark (e.g. pope, toy_chair)"})
    data_dir: Path | None = field(default=None, metadata={"help": "folder of the official release (toy benchmarks: "
                                                                  "the run's toy world's benchmarks/<name>); required"})
    split: str | None = field(default=None, metadata={"help": "one split where the benchmark has several "
                                                               "(default: the benchmark's own)"})
    limit: int = field(default=0, metadata={"help": "first N questions only, groups kept whole (0 = all)"})
    image_dir: Path | None = field(default=None, metadata={"help": "image folder, if not where the release puts it"})
    options: dict[str, Any] = field(default_factory=dict, metadata={"help": "benchmark-specific fields"})


@dataclass
class EvaluateConfig:
    out_dir: Path = field(metadata={"help": "where answers.jsonl, metrics.json and manifest.json go"})
    model: Path = field(metadata={"help": "LVLM folder (LlavaForConditionalGeneration + processor)"})
    benchmark: BenchmarkChoice = field(metadata={"help": "which benchmark, and where its data is"})
    batch_size: int = field(default=16, metadata={"help": "questions per generate call"})
    max_new_tokens: int | None = field(default=None, metadata={"help": "answer length limit (default: the "
                                                                         "benchmark's LLaVA-1.5 setting)"})
    seed: int = field(default=0, metadata={"help": "torch seed (decoding is greedy; this only pins kernels)"})
    device: str = field(default="auto", metadata={"help": "auto, cpu or cuda[:N]"})
    dtype: str = field(default="auto", metadata={"help": "auto (bf16 on GPU, fp32 on CPU), float32, bfloat16, float16"})
    judge: dict[str, Any] | None = field(default=None, metadata={"help": "OpenAI-compatible judge {url, model, "
                                                                          "api_key_env?} for MM-Vet and LLaVA-Bench"})

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> "EvaluateConfig":
        known = {"out_dir", "model", "benchmark", "batch_size", "max_new_tokens", "seed", "device", "dtype", "judge",
                 "inputs"}
        for key in spec:
            if key not in known:
                raise SpecError(key, spec[key], f"no such field (evaluate takes {', '.join(sorted(known))})")
        raw = require(spec, "benchmark", dict, "an object {name, data_dir, split?, limit?, ...}")
        name = require(raw, "name", str, "a benchmark name")
        data_dir = raw.get("data_dir")
        if data_dir is not None and not isinstance(data_dir, str):
            raise SpecError("benchmark.data_dir", data_dir, "a folder path")
        limit = raw.get("limit", 0) or 0
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise SpecError("benchmark.limit", limit, "0 (all) or a positive number of questions")
        split = raw.get("split")
        if split is not None and not isinstance(split, str):
            raise SpecError("benchmark.split", split, "a split name")
        image_dir = raw.get("image_dir")
        if image_dir is not None and not isinstance(image_dir, str):
            raise SpecError("benchmark.image_dir", image_dir, "a folder path")
        choice = BenchmarkChoice(name=name, data_dir=Path(data_dir) if data_dir else None, split=split, limit=limit,
                                 image_dir=Path(image_dir) if image_dir else None,
                                 options={k: v for k, v in raw.items() if k not in BENCHMARK_FIELDS})
        config = cls(out_dir=Path(require(spec, "out_dir", str, "a folder path")),
                     model=Path(require(spec, "model", str, "an LVLM folder")), benchmark=choice,
                     batch_size=spec.get("batch_size", 16), max_new_tokens=spec.get("max_new_tokens"),
                     seed=spec.get("seed", 0), device=spec.get("device", "auto"), dtype=spec.get("dtype", "auto"),
                     judge=spec.get("judge"))
        config.check()
        check_inputs("inputs", spec.get("inputs", {}))  # upstream manifests (the merged model's) as hashed at launch
        # A relative out_dir would land wherever the worker happens to run; the plan always writes absolute ones.
        if not config.out_dir.is_absolute():
            raise SpecError("out_dir", str(config.out_dir), "an absolute path")
        return config

    def check(self) -> None:
        for name, value, low in (("batch_size", self.batch_size, 1), ("seed", self.seed, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise SpecError(name, value, f"an integer >= {low}")
        if self.seed > 2**32 - 1:  # numpy and torch refuse larger seeds
            raise SpecError("seed", self.seed, "an integer <= 4294967295")
        if self.max_new_tokens is not None and (isinstance(self.max_new_tokens, bool)
                                                or not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 1):
            raise SpecError("max_new_tokens", self.max_new_tokens, "a positive integer")
        if not isinstance(self.device, str) or not isinstance(self.dtype, str):
            raise SpecError("device/dtype", [self.device, self.dtype], "strings")


class _Beat:
    """Progress events from a background thread while the main thread is busy in one long call."""

    def __init__(self, progress: Progress):
        self.progress = progress
        self.lock = threading.Lock()

    def advance(self, n: int, **kwargs: Any) -> None:
        with self.lock:
            self.progress.advance(n, **kwargs)

    @contextmanager
    def during(self, phase: str) -> Iterator[None]:
        def alive() -> None:
            with self.lock:
                self.progress.start()  # start() emits unthrottled: a plain "still alive" event here

        with self.lock:
            self.progress.extra["phase"] = phase
            self.progress.start()
        with repeat_while(HEARTBEAT_S, alive, name=f"evaluate-{phase}"):
            yield


def _answer(config: EvaluateConfig, benchmark: Benchmark, dataset: Dataset, data_dir: Path, store: JsonlStore,
            beat: _Beat) -> int:
    """Answer every question not yet in ``store``; returns how many were computed."""
    pending = [item for item in dataset.items if item.question_id not in store]
    if not pending:
        return 0
    image_dirs = [str(config.benchmark.image_dir)] if config.benchmark.image_dir else list(benchmark.image_dirs)
    paths = {item.question_id: None if item.image_b64 is not None else find_image(item, data_dir, image_dirs)
             for item in pending}
    import torch

    from ..models import load_lvlm, set_threads_from_env

    set_threads_from_env()
    torch.manual_seed(config.seed)
    with beat.during("load model"):
        lvlm = load_lvlm(config.model, device=config.device, dtype=config.dtype)
    max_new_tokens = config.max_new_tokens or benchmark.max_new_tokens
    with beat.during("generate"):
        for start in range(0, len(pending), config.batch_size):
            batch = pending[start:start + config.batch_size]
            images = [open_image(item, paths[item.question_id]) for item in batch]
            for item, (instruction, text) in zip(batch, generate_batch(lvlm, benchmark, batch, images, max_new_tokens)):
                store.append({"question_id": item.question_id, "prompt": instruction, "text": text,
                              "model_id": config.model.name})
            beat.advance(len(batch))
    return len(pending)


def _score(benchmark: Benchmark, dataset: Dataset, answers: dict[str, str], judge: Judge | None, out: Path,
           beat: _Beat) -> tuple[dict[str, Any], list[str]]:
    """Metrics of the answers, and the files written (the judge's replies, when it was asked)."""
    files = ["answers.jsonl", "metrics.json"]
    context = ScoreContext()
    if judge is not None:
        context.judge = judge.with_cache(out / "judgements.jsonl")
        files.append("judgements.jsonl")
        judging = Progress(step=STEP, total=len(dataset.items), unit="judged", extra={"benchmark": benchmark.name,
                                                                                      "phase": "judge"})

        def judged(done: int, _total: int) -> None:
            with beat.lock:  # the heartbeat thread prints too
                judging.advance(done - judging.done)

        context.on_progress = judged
    try:
        with beat.during("score"):
            metrics = score(benchmark, dataset, answers, context)
    finally:
        if context.judge is not None:
            context.judge.cache.close()
    return metrics, files


def run(spec: dict[str, Any]) -> dict[str, Any]:
    config = EvaluateConfig.from_spec(spec)
    benchmark = get_benchmark(config.benchmark.name)
    choice = config.benchmark
    dataset = load_dataset(benchmark, choice.data_dir, split=choice.split, limit=choice.limit, options=choice.options)
    data_dir = Path(choice.data_dir)  # load_dataset refused a spec without one
    # Only a benchmark that asks the judge needs it to be valid (its key variable set, ...).
    uses_judge = config.judge is not None and (benchmark.needs_judge or benchmark.judge_optional)
    judge = Judge.from_spec(config.judge) if uses_judge else None
    out = config.out_dir
    out.mkdir(parents=True, exist_ok=True)
    # Answers kept from an earlier attempt must be of this model and these settings (else they are dropped).
    guard_resume(out, spec)
    log(f"evaluate: {benchmark.title}, {len(dataset.items)} questions from {dataset.source}, model {config.model}")

    progress = Progress(step=STEP, total=len(dataset.items), unit="questions", min_interval_s=1.0,
                        extra={"benchmark": benchmark.name, "phase": "answer"})
    beat = _Beat(progress)
    with JsonlStore(out / "answers.jsonl", key="question_id") as store:
        reused = sum(1 for item in dataset.items if item.question_id in store)
        progress.start()
        if reused:
            beat.advance(reused, reused=True)
        computed = _answer(config, benchmark, dataset, data_dir, store, beat)
        answers = {item.question_id: store.get(item.question_id)["text"] for item in dataset.items}

    metrics, files = _score(benchmark, dataset, answers, judge, out, beat)
    atomic_write_json(out / "metrics.json", metrics)
    log("evaluate: " + ", ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items()))
    return write_manifest(out, step=STEP, spec=spec, files=files, items_total=len(dataset.items),
                          items_reused=reused, items_computed=computed,
                          stats={"benchmark": benchmark.name, "split": choice.split, "metrics": metrics})
