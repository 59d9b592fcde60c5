"""Reading a step's spec file: anything wrong with it is the spec's fault (exit 2, never retried),
reported in one line that names the file and what was expected, without echoing its bytes.
"""

from __future__ import annotations

import json
from typing import Any

from .contract import MissingInputError, SpecError


def _no_constant(name: str) -> Any:
    # Python's json reads NaN and Infinity, which JSON does not have; a spec holding them came from no
    # JSON writer of ours and would pass numeric checks oddly (NaN compares false to every bound).
    raise SpecError("spec", name, "finite numbers only (JSON has no NaN or Infinity)")


def read_spec(path: str) -> dict[str, Any]:
    """The spec as a dict, or a SpecError naming the file: not there, not UTF-8, not JSON, not an object."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        raise MissingInputError(f"spec file {path!r} does not exist") from None
    except OSError as error:
        raise SpecError("--spec", path, f"a readable spec file ({error.strerror})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise SpecError("--spec", path, f"UTF-8 JSON (byte 0x{raw[error.start:error.start + 1].hex()} "
                        f"at offset {error.start} is not UTF-8)") from None
    try:
        spec = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as error:
        raise SpecError("--spec", path, f"JSON ({error.msg} at line {error.lineno}, column {error.colno})") from None
    if not isinstance(spec, dict):
        raise SpecError("spec", type(spec).__name__, "a JSON object")
    return spec
