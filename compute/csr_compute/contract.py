"""The contract between a compute step and the activity that launches it.

A step reads one JSON spec, writes artifacts plus a ``manifest.json`` into ``spec["out_dir"]``,
prints progress as JSON lines on stdout and exits with a code from ``exit_codes.json``, so that the
activity can heartbeat progress and let Temporal retry only what a retry can fix.

Stdout carries only JSON lines (one object per line, key ``event``); human logs go to stderr.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

CONTRACT_VERSION = 1
EXIT_CODES: dict[str, Any] = json.loads((Path(__file__).with_name("exit_codes.json")).read_text())


class SpecError(ValueError):
    """A bad spec field: non-retryable. The message names the field, the value and what was expected."""

    def __init__(self, field_path: str, value: Any, expected: str):
        self.field_path, self.value, self.expected = field_path, value, expected
        super().__init__(f"{field_path}: expected {expected}, got {json.dumps(value, default=str)}")


class MissingInputError(FileNotFoundError):
    """A model, data set or upstream artifact that is not there: non-retryable until someone fixes it."""


class RetryableError(RuntimeError):
    """A transient failure (a crashed worker, out of memory): a retry may succeed."""


def emit(event: str, **fields: Any) -> None:
    """Print one machine-readable event line on stdout, flushed at once so the activity sees it live."""
    sys.stdout.write(json.dumps({"event": event, **fields}, default=str) + "\n")
    sys.stdout.flush()


def log(message: str) -> None:
    """A human-readable line on stderr (stdout is reserved for events)."""
    sys.stderr.write(message.rstrip() + "\n")
    sys.stderr.flush()


@dataclass
class Progress:
    """Counts items done out of a total and emits throttled ``progress`` events with rate and ETA.

    Reused items (found finished from an earlier attempt) count towards ``done`` but not towards the
    rate, so the ETA reflects the work still to compute.
    """

    step: str
    total: int
    unit: str = "items"
    min_interval_s: float = 0.5
    done: int = 0
    reused: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    _started: float = field(default_factory=time.monotonic)
    _last_emit: float = 0.0

    def start(self) -> None:
        self._emit(force=True)

    def advance(self, n: int = 1, *, reused: bool = False, **extra: Any) -> None:
        self.done += n
        if reused:
            self.reused += n
        self.extra.update(extra)
        self._emit(force=self.done >= self.total)

    def _emit(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_emit < self.min_interval_s:
            return
        self._last_emit = now
        elapsed = max(now - self._started, 1e-9)
        computed = self.done - self.reused
        rate = computed / elapsed if computed > 0 else 0.0
        remaining = max(self.total - self.done, 0)
        eta = remaining / rate if rate > 0 else None
        emit("progress", step=self.step, done=self.done, total=self.total, reused=self.reused,
             unit=self.unit, rate=round(rate, 3), eta_s=None if eta is None else round(eta, 1),
             elapsed_s=round(elapsed, 1), **self.extra)


@contextmanager
def repeat_while(interval_s: float, action: Callable[[], None], name: str) -> Iterator[None]:
    """Call ``action`` every ``interval_s`` seconds on a daemon thread while the block runs.

    Loading a 7B model, saving a checkpoint or generating one large batch can take minutes with no
    natural progress point; this keeps the step's heartbeats coming meanwhile.
    """
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(interval_s):
            action()

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def sha256_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_tree(root: str | os.PathLike[str]) -> str:
    """One hash over every file of a folder (relative names and contents), independent of walk order."""
    root = Path(root)
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + sha256_file(path).encode() + b"\n")
    return digest.hexdigest()


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write a file so that readers see the old content or the new, never a torn one."""
    atomic_write_bytes(path, text.encode())


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write a file so that readers see the old content or the new, never a torn one (fsynced, then renamed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def _parse_record(line: bytes, key: str) -> dict[str, Any] | None:
    """The record on one JSONL line, or None when the line is not a JSON object carrying ``key``."""
    try:
        record = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return record if isinstance(record, dict) and key in record else None


class JsonlStore:
    """Append-only JSON-lines file of per-item results, keyed by ``key`` (e.g. the prompt id).

    Each record is written as one line, flushed and fsynced before the next item starts, so a step
    killed at any moment loses at most the item in flight. On open, a torn last line (the process died
    mid-write) is cut off and a damaged line elsewhere (a bad disk block, a stray edit) costs only its own
    record: the file is rewritten without it, a warning names the file and line, and a restarted step
    recomputes just that item.
    """

    def __init__(self, path: str | os.PathLike[str], key: str = "id"):
        self.path = Path(path)
        self.key = key
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._records: dict[str, dict[str, Any]] = {}
        self._load()
        self._handle = open(self.path, "a", encoding="utf-8")

    def _load(self) -> None:
        if not self.path.exists():
            return
        raw = self.path.read_bytes()
        good: list[bytes] = []
        damaged: list[int] = []
        for number, line in enumerate(raw.splitlines(keepends=True), 1):
            # A line without its newline is the record a killed writer was in the middle of.
            record = _parse_record(line, self.key) if line.endswith(b"\n") else None
            if record is None:
                damaged.append(number)
                continue
            self._records[str(record[self.key])] = record
            good.append(line)
        if damaged:
            log(f"warning: {self.path}: dropped damaged record(s) at line(s) {', '.join(map(str, damaged))}; "
                "those items are computed again, every other record is kept")
            atomic_write_bytes(self.path, b"".join(good))

    def __contains__(self, item_key: object) -> bool:
        return str(item_key) in self._records

    def __len__(self) -> int:
        return len(self._records)

    def get(self, item_key: object) -> dict[str, Any] | None:
        return self._records.get(str(item_key))

    def records(self) -> Iterator[dict[str, Any]]:
        return iter(self._records.values())

    def append(self, record: dict[str, Any]) -> None:
        item_key = str(record[self.key])
        try:
            self._handle.write(json.dumps(record, sort_keys=True, default=str) + "\n")
            self._handle.flush()
            os.fsync(self._handle.fileno())
        except OSError as error:
            # A failed write() names no file (only open() does): a full disk's message should say which.
            if error.filename is None:
                error.filename = str(self.path)
            raise
        self._records[item_key] = record

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> "JsonlStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _process_age_s() -> float | None:
    """Seconds since this process was created (Linux ``/proc``), or None where that cannot be read."""
    try:
        stat = Path("/proc/self/stat").read_text()
        start_ticks = int(stat.rsplit(")", 1)[1].split()[19])  # field 22, starttime; the name may hold spaces
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(uptime - start_ticks / os.sysconf("SC_CLK_TCK"), 0.0)
    except (OSError, ValueError, IndexError):
        return None


_IMPORTED = time.monotonic()  # fallback origin where /proc cannot tell the process's age


class StepClock:
    """Where a step process's time goes: start-up, model loading, compute (``manifest.json``'s ``timings``).

    ``python -m csr_compute`` runs the step function inside ``running()``: everything before it
    (interpreter start, reading the spec, the folder lock, importing the step and torch) is ``startup_s``;
    ``models.load_lvlm`` / ``load_clip`` add their time (transformers' model classes included) to
    ``load_s``; the rest of the time up to the manifest is ``compute_s``. A step function called directly
    (in-process, as tests do) writes no ``timings``: the process's age would not be its start-up.
    """

    def __init__(self) -> None:
        self.entered: float | None = None
        self.startup_s = 0.0
        self.load_s = 0.0

    @contextmanager
    def running(self) -> Iterator[None]:
        """The step's own time: from here on, everything is loading or compute."""
        self.entered = time.monotonic()
        age = _process_age_s()
        self.startup_s = age if age is not None else self.entered - _IMPORTED
        self.load_s = 0.0
        try:
            yield
        finally:
            self.entered = None  # a later in-process step (tests call main() in process) is not timed as this one

    @contextmanager
    def loading(self) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.load_s += time.monotonic() - started

    def timings(self) -> dict[str, float] | None:
        """``{startup_s, load_s, compute_s}`` so far, or None when the step did not run as its own process."""
        if self.entered is None:
            return None
        inside = time.monotonic() - self.entered
        return {"startup_s": round(self.startup_s, 3), "load_s": round(self.load_s, 3),
                "compute_s": round(max(inside - self.load_s, 0.0), 3)}


CLOCK = StepClock()


def shard_slice(items: list[Any], index: int, count: int) -> list[Any]:
    """The items of shard ``index`` of ``count``: contiguous, balanced, deterministic."""
    if count < 1 or not 0 <= index < count:
        raise SpecError("shard", {"index": index, "count": count}, "0 <= index < count, count >= 1")
    per, rest = divmod(len(items), count)
    start = index * per + min(index, rest)
    return items[start:start + per + (1 if index < rest else 0)]


def spec_hash(spec: dict[str, Any]) -> str:
    """The manifest's ``spec_hash``: sha256 of ``json.dumps(spec, sort_keys=True)``. The steps compare it to
    tell that they already ran for this spec (``steps.common.completed_manifest``); the activity does not."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()


def spec_file_sha256(out_dir: str | os.PathLike[str], spec: dict[str, Any]) -> str | None:
    """The manifest's ``spec_file_sha256``: sha256 of ``out_dir/spec.json``'s bytes as the launcher wrote
    them, when that file holds ``spec``; None when there is none or it holds another spec.

    The activity hashes the bytes it would write for a spec and compares: it decides that a step is done
    without starting Python and without imitating how Python writes JSON.
    """
    try:
        raw = (Path(out_dir) / "spec.json").read_bytes()
        held = json.loads(raw)
    except (OSError, ValueError):
        return None
    return hashlib.sha256(raw).hexdigest() if held == spec else None


def write_manifest(out_dir: str | os.PathLike[str], *, step: str, spec: dict[str, Any],
                   files: Iterable[str], items_total: int, items_reused: int, items_computed: int,
                   stats: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write ``manifest.json`` last, after every artifact: its presence marks the step complete.

    ``files`` are paths relative to ``out_dir``; each gets a content hash so a later skip-if-done
    decision can check the artifact itself, not just its name. The spec is recorded twice: ``spec_hash``
    for the steps' own check, ``spec_file_sha256`` (the launcher's spec.json, when it holds this spec) for
    the activity's. A step run as its own process also records ``timings`` (``StepClock``): start-up,
    model loading and compute seconds.
    """
    from . import __version__

    out = Path(out_dir)
    manifest = {
        "contract": CONTRACT_VERSION,
        "step": step,
        "code_version": __version__,
        "spec_hash": spec_hash(spec),
        "files": {name: {"sha256": sha256_file(out / name), "bytes": (out / name).stat().st_size}
                  for name in sorted(files)},
        "items_total": items_total,
        "items_reused": items_reused,
        "items_computed": items_computed,
        "stats": stats or {},
    }
    spec_file = spec_file_sha256(out, spec)
    if spec_file is not None:
        manifest["spec_file_sha256"] = spec_file
    timings = CLOCK.timings()
    if timings is not None:
        manifest["timings"] = timings
    atomic_write_json(out / "manifest.json", manifest)
    emit("manifest", path=str(out / "manifest.json"), items_total=items_total,
         items_reused=items_reused, items_computed=items_computed)
    return manifest


def require(spec: dict[str, Any], name: str, kind: type | tuple[type, ...], expected: str) -> Any:
    """Fetch a required spec field, raising a SpecError that names it when missing or mistyped."""
    if name not in spec:
        raise SpecError(name, None, expected)
    value = spec[name]
    if isinstance(value, bool) and kind in (int, float, (int, float)):
        raise SpecError(name, value, expected)
    if not isinstance(value, kind):
        raise SpecError(name, value, expected)
    return value
