"""What every compute step shares: spec parsing, skip-if-complete, seeding and heartbeats.

A step's spec is a dataclass whose ``__post_init__`` validates every field and raises
``contract.SpecError`` naming the field (with its full path, e.g. ``params.num_beams``), the value and
what was expected, before any work starts.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from ..contract import (MissingInputError, Progress, RetryableError, SpecError, atomic_write_json, emit, log, repeat_while,
                        sha256_file, spec_hash)

T = TypeVar("T")
S = TypeVar("S", bound="StepSpec")

DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("auto", "float32", "bfloat16", "float16")


# ---------------------------------------------------------------- field checks (used by __post_init__)

def check_int(path: str, value: Any, minimum: int | None = None, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(path, value, "an integer")
    if minimum is not None and value < minimum:
        raise SpecError(path, value, f"an integer >= {minimum}")
    if maximum is not None and value > maximum:
        raise SpecError(path, value, f"an integer <= {maximum}")
    return value


def check_float(path: str, value: Any, minimum: float | None = None, maximum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(path, value, "a number")
    if minimum is not None and value < minimum:
        raise SpecError(path, value, f"a number >= {minimum}")
    if maximum is not None and value > maximum:
        raise SpecError(path, value, f"a number <= {maximum}")
    return float(value)


def check_bool(path: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise SpecError(path, value, "true or false")
    return value


def check_choice(path: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise SpecError(path, value, "one of " + ", ".join(repr(c) for c in choices))
    return value


def check_str(path: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise SpecError(path, value, "a non-empty string")
    return value


def check_paths(path: str, value: Any) -> list[str]:
    """A list of paths; a single string is accepted as a list of one."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise SpecError(path, value, "a non-empty list of paths")
    return list(value)


def check_inputs(path: str, value: Any) -> dict[str, str]:
    """A spec's upstream manifest hashes, checked against those manifests as they are now.

    The activity hashed them just before the launch; a mismatch means an upstream step was recomputed
    in between, and a retry (which hashes again) reads the new outputs instead of mixing old and new.
    """
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise SpecError(path, value, "an object {upstream step folder: sha256 of its manifest.json}")
    for folder, expected in value.items():
        manifest = Path(folder) / "manifest.json"
        if not manifest.is_file():
            raise MissingInputError(f"{path}: upstream step {folder} has no manifest.json (not finished, or removed)")
        actual = sha256_file(manifest)
        if actual != expected:
            raise RetryableError(f"{path}: upstream step {folder} changed since this spec was made (its manifest.json "
                                 f"has sha256 {actual[:12]}, the spec says {expected[:12]}); a retry reads the new one")
    return value


def from_dict(cls: type[T], data: Any, path: str) -> T:
    """Build a spec dataclass from JSON, rejecting unknown keys (a typo would otherwise be silently ignored)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpecError(path, data, "a JSON object")
    known = {f.name for f in dataclasses.fields(cls) if f.init}
    for key in data:
        if key not in known:
            raise SpecError(f"{path}.{key}" if path else key, data[key],
                            f"no such field; known fields: {', '.join(sorted(known))}")
    missing = [f.name for f in dataclasses.fields(cls)
               if f.init and f.name not in data
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]  # type: ignore[misc]
    if missing:
        name = missing[0]
        raise SpecError(f"{path}.{name}" if path else name, None, "a value (the field is required)")
    try:
        return cls(**data)
    except SpecError as error:
        # A config section names its fields as the step of that section reads them (params.alpha); another
        # step that reads the same section under another key (generate's reward) names them by that key.
        if path and path != "params" and error.field_path.startswith("params."):
            raise SpecError(path + error.field_path[len("params"):], error.value, error.expected) from None
        raise


def help_of(cls: type, name: str) -> str:
    """The help text of a dataclass field (README tables are generated from these)."""
    for f in dataclasses.fields(cls):
        if f.name == name:
            return f.metadata.get("help", "")
    raise KeyError(name)


@dataclasses.dataclass
class StepSpec:
    """Fields common to every step's spec."""

    out_dir: str = dataclasses.field(metadata={"help": "Folder the step writes to (and only there)."})
    seed: int = dataclasses.field(default=0, metadata={"help": "Seed of every random generator the step uses."})
    device: str = dataclasses.field(
        default="auto", metadata={"help": "'auto' (the GPU of CUDA_VISIBLE_DEVICES if any, else CPU), 'cpu' or 'cuda'."})
    dtype: str = dataclasses.field(
        default="auto", metadata={"help": "'auto' (bf16 on a GPU that supports it, else fp32), 'float32', 'bfloat16', 'float16'."})
    inputs: dict = dataclasses.field(default_factory=dict, metadata={
        "help": "{upstream step folder: sha256 of its manifest.json}, added by the launching activity. Part of the "
                "spec's hash, so a step is reused only when the upstream outputs it reads are the same."})

    def __post_init__(self) -> None:
        check_inputs("inputs", self.inputs)
        check_str("out_dir", self.out_dir)
        # A relative out_dir would land wherever the worker happens to run; the plan always writes absolute ones.
        if not os.path.isabs(self.out_dir):
            raise SpecError("out_dir", self.out_dir, "an absolute path")
        # numpy and torch refuse seeds of 2^32 and more; refusing here fails the spec, not the run hours later.
        check_int("seed", self.seed, minimum=0, maximum=2**32 - 1)
        if not (isinstance(self.device, str) and (self.device in DEVICES or self.device.startswith("cuda:"))):
            raise SpecError("device", self.device, "'auto', 'cpu', 'cuda' or 'cuda:N'")
        check_choice("dtype", self.dtype, DTYPES)


# ---------------------------------------------------------------- completion, inputs, seeding

def completed_manifest(out_dir: str | os.PathLike[str], spec: dict[str, Any]) -> dict[str, Any] | None:
    """The step's manifest if the step already completed for exactly this spec and its files are intact.

    A manifest whose spec hash differs, or whose listed files are missing or changed, does not count:
    the step then runs (and resumes whatever per-item results are still valid).
    """
    path = Path(out_dir) / "manifest.json"
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if manifest.get("spec_hash") != spec_hash(spec):
        return None
    for name, entry in manifest.get("files", {}).items():
        file = Path(out_dir) / name
        if not file.is_file() or file.stat().st_size != entry.get("bytes") or sha256_file(file) != entry.get("sha256"):
            return None
    return manifest


# What a step folder keeps when its inputs change: the launcher's spec and logs, and the writer's lock.
KEPT_ON_INPUT_CHANGE = frozenset({"spec.json", "logs", ".step.lock"})


def guard_resume(out_dir: str | os.PathLike[str], spec: dict[str, Any], ignore: tuple[str, ...] = ("device",)) -> None:
    """Refuse to resume per-item results that an earlier run wrote for a different spec.

    The device may change between attempts (a retry can land on another host); anything else that
    changes the results would mix two experiments in one file.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    identity = spec_hash({k: v for k, v in spec.items() if k not in ignore and k != "inputs"})
    inputs = spec.get("inputs", {})
    marker = out / "spec_identity.json"
    if marker.is_file():
        try:
            recorded = json.loads(marker.read_text())
            if not isinstance(recorded, dict):
                raise ValueError("not a JSON object")
        except ValueError as error:
            # Which spec made the results here cannot be told any more: drop them rather than mix.
            log(f"warning: {marker} is damaged ({error}); the results in {out} cannot be vouched for and are recomputed")
            recorded = {"identity": identity, "inputs": None}
        if recorded.get("identity") != identity:
            raise SpecError("out_dir", str(out), "an empty folder or one that an earlier attempt of the same spec wrote "
                            "(it holds results of a different spec; use a new out_dir)")
        # A marker from before inputs were recorded has no "inputs": its results are kept, as they were then.
        if "inputs" not in recorded or recorded["inputs"] == inputs:
            if "inputs" not in recorded:
                atomic_write_json(marker, {"identity": identity, "inputs": inputs})
            return
        # Same step, same settings, but an upstream step was recomputed: every result here was made from
        # inputs that are gone, so all of it is dropped (never mixed with results of the new inputs).
        log(f"warning: {out}: upstream outputs changed since the results here were made; recomputing them all")
        for entry in out.iterdir():
            if entry.name in KEPT_ON_INPUT_CHANGE:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    atomic_write_json(marker, {"identity": identity, "inputs": inputs})


def open_step(cls: type[S], raw_spec: dict[str, Any], step: str, *, torch: bool = True, resume: bool = True,
              as_written_before: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> tuple[S, dict[str, Any] | None]:
    """Every step's opening: the validated spec, and the manifest if the step already completed for it.

    When it has not, the step is made ready to run: with ``torch``, torch's threads from CSR_TORCH_THREADS
    and every generator seeded; with ``resume``, per-item results an earlier run left for another spec are
    refused (``guard_resume``). ``as_written_before`` maps the spec to the form an earlier version wrote
    (fields since retired), so that a folder that version completed or started still counts as this spec's.
    """
    spec = from_dict(cls, raw_spec, "")
    done = completed_manifest(spec.out_dir, raw_spec)
    if done is None and as_written_before is not None:
        done = completed_manifest(spec.out_dir, as_written_before(raw_spec))
    if done is not None:
        log(f"{step}: {spec.out_dir} is already complete for this spec; nothing to do")
        return spec, done
    if torch:
        # Imported only now: a step that is already complete does not pay for torch.
        from ..models import set_threads_from_env

        set_threads_from_env()
        seed_everything(spec.seed)
    if resume:
        try:
            guard_resume(spec.out_dir, raw_spec)
        except SpecError:
            if as_written_before is None:
                raise
            guard_resume(spec.out_dir, as_written_before(raw_spec))  # a folder an earlier version started, or the same error
    return spec, None


def require_file(path: str | os.PathLike[str], what: str) -> Path:
    file = Path(path)
    if not file.is_file():
        raise MissingInputError(f"{what} {str(file)!r} does not exist")
    return file


def read_jsonl(paths: list[str], what: str) -> list[dict[str, Any]]:
    """All records of several JSONL files, in order; a missing file is a MissingInputError naming it."""
    records = []
    for path in paths:
        with open(require_file(path, what), encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if line.strip():
                    try:
                        records.append(json.loads(line))
                    except json.JSONDecodeError as error:
                        raise MissingInputError(f"{what} {path!r} line {number} is not JSON ({error}); "
                                                "the upstream step did not finish writing it") from error
    return records


def resolve_image(images_dir: str | os.PathLike[str], name: str) -> Path:
    """Absolute path of a prompt's image.

    The CSR prompt set names COCO images by id (``000000442786.jpg``) while COCO train2014 files carry
    a ``COCO_train2014_`` prefix, so both spellings are tried.
    """
    base = Path(images_dir)
    for candidate in (base / name, base / f"COCO_train2014_{name}"):
        if candidate.is_file():
            return candidate.resolve()
    raise MissingInputError(f"image {name!r} not found in images_dir {str(base)!r} "
                            f"(tried {name!r} and 'COCO_train2014_{name}')")


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# ---------------------------------------------------------------- heartbeats

def beat(progress: Progress, phase: str, **extra: Any) -> None:
    """One progress event now, whatever the throttle says: the activity treats silence as a hung step."""
    emit("progress", step=progress.step, done=progress.done, total=progress.total, reused=progress.reused,
         unit=progress.unit, phase=phase, **extra)


@contextmanager
def heartbeat(progress: Progress, phase: str, interval_s: float = 5.0) -> Iterator[None]:
    """Progress events before, every ``interval_s`` during, and after a long blocking call."""
    started = time.monotonic()
    beat(progress, f"{phase}:start")
    with repeat_while(interval_s, lambda: beat(progress, phase, phase_elapsed_s=round(time.monotonic() - started, 1)),
                      name=f"heartbeat-{phase}"):
        yield
    beat(progress, f"{phase}:done", phase_elapsed_s=round(time.monotonic() - started, 1))
