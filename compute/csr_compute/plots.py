"""A PNG of every ``eval/*`` metric against iteration, refreshed after each iteration.

``python -m csr_compute.plots --input history.json --output eval_metrics.png`` where history.json is
``{"<metric>": [[step, value], ...]}``. One small panel per metric, because their scales differ
(CHAIR_I is a fraction, MME a sum in the thousands).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path


def plot_history(history: dict[str, list[list[float]]], output: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted(history)
    columns = min(3, max(len(names), 1))
    rows = max(math.ceil(len(names) / columns), 1)
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.0 * rows), squeeze=False)
    for axis in axes.flat:
        axis.set_visible(False)
    for axis, name in zip(axes.flat, names):
        points = sorted(history[name])
        axis.set_visible(True)
        axis.plot([p[0] for p in points], [p[1] for p in points], marker="o")
        axis.set_title(name.removeprefix("eval/"), fontsize=9)
        axis.set_xlabel("iteration", fontsize=8)
        axis.set_xticks([int(p[0]) for p in points])
        axis.grid(alpha=0.3)
    save_figure(figure, output)


def save_figure(figure, output: Path) -> None:
    """Lay out, write (creating the folder) and release a matplotlib figure; shared by every plot here."""
    import matplotlib.pyplot as plt

    figure.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, dpi=100)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    args = parser.parse_args()
    plot_history(json.loads(Path(args.input).read_text()), Path(args.output))


if __name__ == "__main__":
    main()
