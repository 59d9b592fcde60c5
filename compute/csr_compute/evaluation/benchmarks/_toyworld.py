"""Where the toy benchmarks live when a spec names no data folder: ``<toy-world root>/<hash>/benchmarks``.

The root is ``CSR_TOYWORLD_ROOT``, else ``<CSR_HOME>/toyworld`` with CSR_HOME defaulting to ``<repo>/.csr``
(as in ``src/env.ts``). With several built worlds the choice is ambiguous, so the spec must name the folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..datafiles import DataError


def toyworld_root() -> Path:
    if os.environ.get("CSR_TOYWORLD_ROOT"):
        return Path(os.environ["CSR_TOYWORLD_ROOT"]).resolve()
    home = os.environ.get("CSR_HOME")
    return (Path(home).resolve() if home else Path(__file__).resolve().parents[4] / ".csr") / "toyworld"


def toy_benchmark_dir(kind: str) -> Path:
    root = toyworld_root()
    worlds = sorted(p for p in root.glob("*/benchmarks") if (p / kind).is_dir())
    if len(worlds) == 1:
        return worlds[0] / kind
    if not worlds:
        raise DataError(f"no toy world with benchmarks/{kind} under {root}; build the toy world first "
                        f"(step toyworld-build) or set benchmark.data_dir")
    listing = ", ".join(str(p / kind) for p in worlds)
    raise DataError(f"several toy worlds have benchmarks/{kind} ({listing}); set benchmark.data_dir to one of them")
