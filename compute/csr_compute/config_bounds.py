"""The config's numeric limits, as the TypeScript schema defines them (``config_bounds.json`` is
generated from ``src/config/schema.ts``): each step checks its config section against the same
limits the CLI and the workflows do, so a spec that passed there is not refused hours into a run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .contract import SpecError

BOUNDS: dict[str, dict[str, Any]] = json.loads(Path(__file__).with_name("config_bounds.json").read_text())["bounds"]


def describe(bounds: dict[str, Any]) -> str:
    """``an integer >= 2``, ``a number > 0 and < 1``: what was expected, in the CLI's words."""
    parts = []
    for key, sign in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="), ("exclusiveMaximum", "<")):
        if key in bounds:
            parts.append(f"{sign} {bounds[key]:g}" if isinstance(bounds[key], float) else f"{sign} {bounds[key]}")
    noun = "an integer" if bounds["type"] == "integer" else "a number"
    return f"{noun} {' and '.join(parts)}".strip()


def within(value: Any, bounds: dict[str, Any]) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if bounds["type"] == "integer" and not (isinstance(value, int) or float(value).is_integer()):
        return False
    if value != value or value in (float("inf"), float("-inf")):
        return False
    return (value >= bounds.get("minimum", value) and value <= bounds.get("maximum", value)
            and ("exclusiveMinimum" not in bounds or value > bounds["exclusiveMinimum"])
            and ("exclusiveMaximum" not in bounds or value < bounds["exclusiveMaximum"]))


def check_section(section: str, params: Any, prefix: str) -> None:
    """Check every bounded field of config section ``section`` on ``params`` (None = unset, skipped)."""
    for path, bounds in BOUNDS.items():
        head, _, name = path.partition(".")
        if head != section or not name or "." in name or "[" in name:
            continue
        value = getattr(params, name)
        if value is not None and not within(value, bounds):
            raise SpecError(f"{prefix}.{name}", value, describe(bounds))
