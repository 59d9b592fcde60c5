"""Where the toy benchmarks live when a spec names no data folder: ``<CSR_HOME>/toyworld/<hash>/benchmarks``.

CSR_HOME defaults to ``<repo>/.csr`` (as in ``src/env.ts``). With several built worlds the choice is
ambiguous, so the spec must name the folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..datafiles import DataError


def csr_home() -> Path:
    configured = os.environ.get("CSR_HOME")
    if configured:
        return Path(configured).resolve()
    return Path(__file__).resolve().parents[4] / ".csr"


def toy_benchmark_dir(kind: str) -> Path:
    worlds = sorted(p for p in (csr_home() / "toyworld").glob("*/benchmarks") if (p / kind).is_dir())
    if len(worlds) == 1:
        return worlds[0] / kind
    if not worlds:
        raise DataError(f"no toy world with benchmarks/{kind} under {csr_home() / 'toyworld'}; build the toy world "
                        f"first (step toyworld-build) or set benchmark.data_dir")
    listing = ", ".join(str(p / kind) for p in worlds)
    raise DataError(f"several toy worlds have benchmarks/{kind} ({listing}); set benchmark.data_dir to one of them")
