"""What a benchmark is, and finding one by name.

A benchmark is one module in ``benchmarks/`` that defines ``BENCHMARK = Benchmark(...)``: the files it
reads from the official release, the prompt template (the LLaVA-1.5 evaluation convention for it),
the answer parser and the scorer. Adding a benchmark is adding such a file; nothing else changes.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Mapping

from ..contract import SpecError
from .datafiles import DataError

# Suffixes of the LLaVA-1.5 evaluation prompts (LLaVA docs/Evaluation.md).
SHORT_ANSWER = "Answer the question using a single word or phrase."
OPTION_LETTER = "Answer with the option's letter from the given choices directly."


@dataclass(frozen=True)
class Item:
    """One question: what the model is shown, and what its answer is scored against."""

    question_id: str
    fields: Mapping[str, str]  # values for the benchmark's prompt template
    image: str | None = None  # file name, relative to one of the benchmark's image folders
    image_b64: str | None = None  # inline image (MMBench ships its images inside the TSV)
    group: str | None = None  # items scored together (an MME image pair, an MMBench circular set)
    truth: Any = None  # the ground truth the scorer compares with


@dataclass
class Dataset:
    items: list[Item]
    source: Path  # the file the questions came from, for error messages
    extra: dict[str, Any] = field(default_factory=dict)  # benchmark-wide ground truth (CHAIR objects...)


@dataclass(frozen=True)
class LoadRequest:
    data_dir: Path
    split: str | None
    options: Mapping[str, Any]


@dataclass
class ScoreContext:
    """What a scorer may need besides the answers: a judge (which remembers its own replies) and a progress hook."""

    judge: Any = None  # judge.Judge or None
    on_progress: Callable[[int, int], None] | None = None  # (done, total) while judging


Scorer = Callable[[Dataset, Mapping[str, "str | None"], ScoreContext], dict[str, Any]]


@dataclass(frozen=True)
class Benchmark:
    name: str
    title: str
    data_files: tuple[str, ...]  # what ``load`` reads, relative to the data folder (docs, errors)
    prompt_template: str  # str.format template over ``Item.fields``
    load: Callable[[LoadRequest], Dataset]
    parse_answer: Callable[[str], Any]  # the official parse of one answer text
    score: Scorer
    image_dirs: tuple[str, ...] = (".",)  # folders (relative to the data folder) searched for images
    max_new_tokens: int = 128  # LLaVA-1.5's generation limit for this benchmark
    splits: tuple[str, ...] = ()
    default_split: str | None = None
    needs_judge: bool = False  # scored by an LLM judge only: skipped (never zero) without one
    judge_optional: bool = False  # a judge helps where rules fail (MMBench letter matching)
    options: Mapping[str, str] = field(default_factory=dict)  # extra spec fields -> help text

    def prompt(self, item: Item) -> str:
        return self.prompt_template.format(**item.fields)

    def resolve_split(self, split: str | None) -> str | None:
        if split is None:
            return self.default_split
        if split not in self.splits:
            raise SpecError("benchmark.split", split, f"one of {list(self.splits)} for {self.name}"
                            if self.splits else f"no split ({self.name} has none)")
        return split


def _benchmark_modules() -> list[str]:
    from . import benchmarks

    return sorted(info.name for info in pkgutil.iter_modules(benchmarks.__path__) if not info.name.startswith("_"))


@lru_cache(maxsize=None)
def all_benchmarks() -> dict[str, Benchmark]:
    found: dict[str, Benchmark] = {}
    for module_name in _benchmark_modules():
        module = importlib.import_module(f"{__package__}.benchmarks.{module_name}")
        benchmark = getattr(module, "BENCHMARK", None)
        if not isinstance(benchmark, Benchmark):
            raise TypeError(f"benchmarks/{module_name}.py must define BENCHMARK = Benchmark(...)")
        if benchmark.name in found:
            raise TypeError(f"benchmark name {benchmark.name!r} is defined twice (benchmarks/{module_name}.py)")
        found[benchmark.name] = benchmark
    return found


def names() -> list[str]:
    return sorted(all_benchmarks())


def get_benchmark(name: str, field_path: str = "benchmark.name") -> Benchmark:
    known = all_benchmarks()
    if name in known:
        return known[name]
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.5)
    hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
    raise SpecError(field_path, name, f"a known benchmark ({hint}known: {', '.join(sorted(known))})")


def check_options(benchmark: Benchmark, options: Mapping[str, Any], field_prefix: str = "benchmark") -> None:
    for key in options:
        if key not in benchmark.options:
            close = difflib.get_close_matches(key, list(benchmark.options), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            accepted = ", ".join(sorted(benchmark.options)) or "none"
            raise SpecError(f"{field_prefix}.{key}", options[key],
                            f"no such field for {benchmark.name} ({hint}extra fields accepted: {accepted})")


def apply_limit(items: list[Item], limit: int | None) -> list[Item]:
    """The first ``limit`` questions, extended so that a group (scored as a whole) is never cut."""
    if not limit or limit >= len(items):
        return items
    kept = items[:limit]
    last_group = kept[-1].group
    if last_group is not None:
        kept += [item for item in items[limit:] if item.group == last_group]
    return kept


def load_dataset(benchmark: Benchmark, data_dir: Path | None, *, split: str | None = None,
                 limit: int | None = None, options: Mapping[str, Any] | None = None) -> Dataset:
    options = dict(options or {})
    check_options(benchmark, options)
    if data_dir is None:
        # Toy benchmarks too: the workflow passes the run's world's folder (paths are derived in TypeScript only).
        raise SpecError("benchmark.data_dir", None, f"the folder of the {benchmark.title} release "
                        f"(see docs/benchmarks.md#{benchmark.name})")
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"{benchmark.name}: data folder {str(data_dir)!r} does not exist "
                        f"(expected the {benchmark.title} release: {', '.join(benchmark.data_files)})")
    dataset = benchmark.load(LoadRequest(data_dir=data_dir, split=benchmark.resolve_split(split), options=options))
    dataset.items = apply_limit(dataset.items, limit)
    return dataset
