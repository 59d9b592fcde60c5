"""Step ``plot``: the headline plot of a run, refreshed after each iteration: the objective and the headline metrics by iteration.

``python -m csr_compute plot --spec SPEC.json`` (forked by the CPU worker's warm process, like any step) with
``{"out_dir", "title": str, "panels": [{"key", "title", "direction": "minimize"|"maximize", "objective": bool,
"points": [[iteration, value], ...]}, ...]}``; the panels are chosen by the TypeScript side
(activities/tracking.ts, from the parent MLflow run's history) and the step writes ``eval_metrics.png``.
One small panel per metric, because their scales differ (CHAIR_I is a fraction, MME a sum in the
thousands); each title says which way is better, and the objective's panel is marked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .contract import SpecError, write_manifest
from .steps.common import StepSpec, check_bool, check_choice, check_str, open_step

STEP = "plot"
FILE = "eval_metrics.png"


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


@dataclass
class PlotSpec(StepSpec):
    title: str = field(default="", metadata={"help": "The run's name, in the figure's title (empty: no title)."})
    panels: list = field(default_factory=list, metadata={
        "help": "One panel per metric: {key, title, direction ('minimize' or 'maximize'), objective (bool), "
                "points ([[iteration, value], ...])}, in the order drawn."})

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.title, str):
            raise SpecError("title", self.title, "a string")
        if not isinstance(self.panels, list) or not self.panels:
            raise SpecError("panels", self.panels, "a non-empty list of panels")
        for i, panel in enumerate(self.panels):
            where = f"panels[{i}]"
            if not isinstance(panel, dict):
                raise SpecError(where, panel, "an object")
            check_str(f"{where}.title", panel.get("title"))
            check_choice(f"{where}.direction", panel.get("direction"), ("minimize", "maximize"))
            check_bool(f"{where}.objective", panel.get("objective", False))
            points = panel.get("points")
            if not isinstance(points, list) or not all(
                    isinstance(p, list) and len(p) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in p)
                    for p in points):
                raise SpecError(f"{where}.points", points, "a list of [iteration, value] pairs of numbers")


def run(raw_spec: dict[str, Any]) -> dict[str, Any]:
    """Draw ``out_dir/eval_metrics.png`` from the spec's panels."""
    spec, done = open_step(PlotSpec, raw_spec, STEP, torch=False, resume=False)
    if done is not None:
        return done
    plot_panels({"title": spec.title, "panels": spec.panels}, Path(spec.out_dir) / FILE)
    return write_manifest(spec.out_dir, step=STEP, spec=raw_spec, files=[FILE], items_total=len(spec.panels),
                          items_reused=0, items_computed=len(spec.panels))
