"""Reading benchmark files with errors that name the file, the record, the field and what was expected.

A benchmark release that is missing or malformed is not something a retry can fix, so every error
here is a ``DataError`` (a ``MissingInputError``: the step exits with the non-retryable code).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterable, Iterator

from ..contract import MissingInputError


class DataError(MissingInputError):
    """A benchmark file (or an answers file) that is absent or not in the expected format."""


class MissingFileError(DataError):
    """The file itself is not there (``csr score`` exits 3 for it, 2 for a malformed one)."""


# JSON escapes C0 controls; these others (DEL, C1 such as CSI, bidi overrides) would act on a terminal.
_UNPRINTABLE = re.compile("[\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufffd]")


def _short(value: Any, limit: int = 120) -> str:
    text = json.dumps(value, default=str, ensure_ascii=False)
    text = _UNPRINTABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def not_utf8(path: Path, error: UnicodeDecodeError, what: str) -> DataError:
    """Where a file stops being UTF-8 text; the bytes are named in hex, never printed."""
    bad = error.object[error.start:error.start + 1].hex()
    return DataError(f"{path}: expected UTF-8 text ({what}), got byte 0x{bad} at offset {error.start}; "
                     "save the file as UTF-8")


def require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        hint = f" (the folder {str(path.parent)!r} does not exist)" if not path.parent.is_dir() else ""
        raise MissingFileError(f"{what}: file {str(path)!r} not found{hint}")
    return path


def first_existing(folder: Path, candidates: Iterable[str], what: str) -> Path:
    """The first of several accepted locations of a file inside ``folder`` (releases differ in layout)."""
    tried = [folder / name for name in candidates]
    for path in tried:
        if path.is_file():
            return path
    raise MissingFileError(f"{what}: none of {[str(p) for p in tried]} exists")


def read_json(path: Path, what: str) -> Any:
    require_file(path, what)
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as error:
        raise DataError(f"{path}: not valid JSON ({error.msg} at line {error.lineno}, column {error.colno}); "
                        f"expected {what}") from None
    except UnicodeDecodeError as error:
        raise not_utf8(path, error, what) from None


def iter_jsonl(path: Path, what: str) -> Iterator[tuple[int, Any]]:
    """(line number, record) for every non-blank line of a JSON-lines file."""
    require_file(path, what)
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise not_utf8(path, error, what) from None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(f"{path} line {number}: not valid JSON ({error.msg}); expected {what}; "
                            f"the line starts {_short(line.strip()[:80])}") from None


def read_json_records(path: Path, what: str) -> list[tuple[int, Any]]:
    """Records of a file that is either one JSON array or JSON lines (POPE ships JSON lines named .json)."""
    require_file(path, what)
    try:
        text = path.read_bytes().decode("utf-8").lstrip()
    except UnicodeDecodeError as error:
        raise not_utf8(path, error, what) from None
    if text.startswith("["):
        records = read_json(path, what)
        return [(index + 1, record) for index, record in enumerate(records)]
    return list(iter_jsonl(path, what))


class Record:
    """One record of a data file, for field access whose errors point at the exact place."""

    def __init__(self, path: Path, where: str, value: Any, what: str):
        if not isinstance(value, dict):
            raise DataError(f"{path} {where}: expected {what} (a JSON object), got {_short(value)}")
        self.path, self.where, self.value = path, where, value

    def error(self, field: str, expected: str) -> DataError:
        got = _short(self.value[field]) if field in self.value else "no such field"
        return DataError(f"{self.path} {self.where}: field {field!r}: expected {expected}, got {got}")

    def get(self, field: str, kind: type | tuple[type, ...], expected: str, *, optional: bool = False,
            default: Any = None) -> Any:
        if field not in self.value or self.value[field] is None:
            if optional:
                return default
            raise self.error(field, expected)
        value = self.value[field]
        if isinstance(value, bool) and kind is not bool:
            raise self.error(field, expected)
        if not isinstance(value, kind):
            raise self.error(field, expected)
        return value

    def text(self, field: str, *, optional: bool = False, default: str | None = None) -> str:
        return self.get(field, str, "a string", optional=optional, default=default)

    def ident(self, field: str) -> str:
        """An id as a string: official files mix integer and string ids, answers files too."""
        return str(self.get(field, (str, int), "an id (string or integer)"))


def check_unique(ids: Iterable[tuple[str, str]], path: Path) -> None:
    """Fail on the first id seen twice; ``ids`` are (id, where) pairs."""
    seen: dict[str, str] = {}
    for ident, where in ids:
        if ident in seen:
            raise DataError(f"{path} {where}: duplicate question id {ident!r} (first at {seen[ident]})")
        seen[ident] = where
