"""Trainer callbacks: progress and heartbeats for the activity, and the curves in metrics.jsonl (no MLflow here)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from transformers import TrainerCallback

from ..contract import Progress
from ..steps.common import beat


class ProgressCallback(TrainerCallback):
    """One progress event per optimizer step; heartbeats while a checkpoint is being written."""

    def __init__(self, step_name: str):
        self.step_name = step_name
        self.progress: Progress | None = None
        self._stop: threading.Event | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.progress = Progress(self.step_name, total=state.max_steps, unit="steps")
        if state.global_step:
            self.progress.advance(state.global_step, reused=True)  # resumed from a checkpoint
        else:
            self.progress.start()

    def on_step_end(self, args, state, control, **kwargs):
        self.progress.advance(1, loss=self._last_loss(state))
        if control.should_save:
            self._start_beating("save_checkpoint")

    def on_save(self, args, state, control, **kwargs):
        self._stop_beating("save_checkpoint")

    def on_train_end(self, args, state, control, **kwargs):
        self._stop_beating("save_checkpoint")
        # max_steps is the Trainer's estimate; training ends at global_step, which is then the whole (100 %).
        if self.progress is not None and state.global_step:
            self.progress.total = self.progress.done = state.global_step
            beat(self.progress, "train:done")

    @staticmethod
    def _last_loss(state) -> float | None:
        for entry in reversed(state.log_history):
            if "loss" in entry:
                return entry["loss"]
        return None

    def _start_beating(self, phase: str) -> None:
        beat(self.progress, f"{phase}:start")
        self._stop = stop = threading.Event()

        def run() -> None:
            while not stop.wait(5.0):
                beat(self.progress, phase)
        threading.Thread(target=run, daemon=True, name=f"heartbeat-{phase}").start()

    def _stop_beating(self, phase: str) -> None:
        if self._stop is not None:
            self._stop.set()
            self._stop = None
            beat(self.progress, f"{phase}:done")


class MetricsFileCallback(TrainerCallback):
    """Appends each logged training record (loss, rewards/margins, ...) to ``metrics.jsonl``.

    Each record carries ``time_ms``, the one timestamp of its points: the workflow delivers the file
    to MLflow through its spooling tracker after the step (activities/dpo-curves.ts), and a repeated
    delivery sends the same points, which MLflow stores once. Compute steps never talk to MLflow.
    """

    def __init__(self, path: Path):
        self.path = path

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or not any(k in logs for k in ("loss", "eval_loss")):
            return
        time_ms = int(time.time() * 1000)
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"step": state.global_step, "epoch": state.epoch, **logs, "time_ms": time_ms},
                                    sort_keys=True) + "\n")


def truncate_metrics(path: Path, after_step: int) -> None:
    """Forget records logged after ``after_step``: a resumed run redoes (and relogs) those steps."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text().splitlines(keepends=True):
        # A line torn by the kill that ended the last attempt is dropped, not fatal to every retry.
        try:
            if line.endswith("\n") and json.loads(line)["step"] <= after_step:
                kept.append(line)
        except (ValueError, KeyError, TypeError):
            continue
    path.write_text("".join(kept))
