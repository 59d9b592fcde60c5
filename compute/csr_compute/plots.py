"""The headline plot of a run, refreshed after each iteration: the objective and the headline metrics by iteration.

``python -m csr_compute.plots --input panels.json --output eval_metrics.png`` where panels.json is
``{"title": str, "panels": [{"key", "title", "direction": "minimize"|"maximize", "objective": bool,
"points": [[iteration, value], ...]}, ...]}``, chosen by the TypeScript side (activities/tracking.ts).
One small panel per metric, because their scales differ (CHAIR_I is a fraction, MME a sum in the
thousands); each title says which way is better, and the objective's panel is marked.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any


def direction_label(direction: str) -> str:
    """``lower is better`` or ``higher is better``, as the panel titles say it."""
    return "lower is better" if direction == "minimize" else "higher is better"


def plot_panels(spec: dict[str, Any], output: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = spec["panels"]
    columns = min(3, max(len(panels), 1))
    rows = max(math.ceil(len(panels) / columns), 1)
    figure, axes = plt.subplots(rows, columns, figsize=(4.4 * columns, 3.2 * rows + 0.5), squeeze=False)
    for axis in axes.flat:
        axis.set_visible(False)
    for axis, panel in zip(axes.flat, panels):
        points = sorted(panel["points"])
        arrow = "↓" if panel["direction"] == "minimize" else "↑"
        axis.set_visible(True)
        axis.plot([p[0] for p in points], [p[1] for p in points], marker="o",
                  color="tab:red" if panel.get("objective") else "tab:blue")
        prefix = "objective: " if panel.get("objective") else ""
        axis.set_title(f"{prefix}{panel['title']}\n{arrow} {direction_label(panel['direction'])}", fontsize=9,
                       fontweight="bold" if panel.get("objective") else "normal")
        axis.set_xlabel("iteration", fontsize=8)
        axis.set_xticks([int(p[0]) for p in points])
        axis.grid(alpha=0.3)
    if spec.get("title"):
        figure.suptitle(f"{spec['title']}: evaluation by iteration (iteration 0 = starting model)", fontsize=10)
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
    plot_panels(json.loads(Path(args.input).read_text()), Path(args.output))


if __name__ == "__main__":
    main()
