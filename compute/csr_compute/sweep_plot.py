"""A PNG of a sweep's table: one panel per metric, one bar per cell (mean over seeds at the last
iteration, error bar = sample sd), the best cell drawn in another colour.

``python -m csr_compute.sweep_plot --input table.json --output table.png --metrics a/b,c/d [--best I]``
where table.json is what ``csr sweep --json`` prints: ``{"cells": [{"params", "seeds", "metrics"}]}``.
Panels, not one shared axis, because the metrics' scales differ (CHAIR_I is a fraction, MME a sum in
the thousands).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from .plots import save_figure


def cell_label(params: dict[str, Any]) -> str:
    """``reward.alpha=0.5 curate.pairing=random`` -> ``alpha=0.5\\npairing=random`` (short enough for a tick)."""
    return "\n".join(f"{key.rsplit('.', 1)[-1]}={json.dumps(value) if not isinstance(value, str) else value}"
                     for key, value in params.items()) or "base"


def plot_table(table: dict[str, Any], metrics: list[str], output: Path, best: int | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = table["cells"]
    names = [name for name in metrics if any(name in cell["metrics"] for cell in cells)]
    columns = min(3, max(len(names), 1))
    rows = max(math.ceil(len(names) / columns), 1)
    width = max(4.2, 0.9 * len(cells) + 1.5)
    figure, axes = plt.subplots(rows, columns, figsize=(width * columns, 3.4 * rows), squeeze=False)
    for axis in axes.flat:
        axis.set_visible(False)
    labels = [cell_label(cell["params"]) for cell in cells]
    for axis, name in zip(axes.flat, names):
        axis.set_visible(True)
        means = [cell["metrics"].get(name, {}).get("mean", math.nan) for cell in cells]
        sds = [cell["metrics"].get(name, {}).get("sd", 0.0) for cell in cells]
        colours = ["tab:orange" if index == best else "tab:blue" for index in range(len(cells))]
        axis.bar(range(len(cells)), means, yerr=sds, capsize=3, color=colours)
        axis.set_xticks(range(len(cells)))
        axis.set_xticklabels(labels, fontsize=7)
        axis.set_title(name, fontsize=9)
        axis.grid(axis="y", alpha=0.3)
    if not names:
        axes.flat[0].set_visible(True)
        axes.flat[0].text(0.5, 0.5, "no metrics", ha="center", va="center")
    figure.suptitle("mean +- sd over seeds at the last iteration" + ("; orange = best cell" if best is not None else ""),
                    fontsize=9)
    save_figure(figure, output)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--metrics", default="", help="comma-separated <benchmark>/<metric> names; empty = all")
    parser.add_argument("--best", type=int, default=None, help="index of the best cell")
    args = parser.parse_args()
    table = json.loads(Path(args.input).read_text())
    metrics = [name for name in args.metrics.split(",") if name] or sorted(
        {name for cell in table["cells"] for name in cell["metrics"]})
    plot_table(table, metrics, Path(args.output), args.best)


if __name__ == "__main__":
    main()
