"""Trainer callbacks: progress and heartbeats for the activity, metrics.jsonl, MLflow curves."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from ..contract import Progress, log
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

    Each record carries ``time_ms``, the one timestamp of its points: ``mirror`` (the live MLflow
    callback) logs them with it, and the workflow later delivers the whole file through its spooling
    tracker with it too, so a point MLflow already has is the same point (stored once) and a point lost
    in an outage arrives anyway.
    """

    def __init__(self, path: Path, mirror: "MlflowCallback | None" = None):
        self.path = path
        self.mirror = mirror

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or not any(k in logs for k in ("loss", "eval_loss")):
            return
        time_ms = int(time.time() * 1000)
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"step": state.global_step, "epoch": state.epoch, **logs, "time_ms": time_ms},
                                    sort_keys=True) + "\n")
        if self.mirror is not None:
            self.mirror.log_metrics(logs, state.global_step, time_ms)


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


class MlflowCallback:
    """Live training curves to the caller's MLflow run (MLFLOW_TRACKING_URI + MLFLOW_RUN_ID), via the official client.

    Fed by ``MetricsFileCallback`` (same points, same timestamps as metrics.jsonl, which the workflow
    delivers afterwards through its spooling tracker: what is lost here in an outage arrives then).

    Never creates a run. Logging must never fail or stall training: the server is probed once with a
    short timeout and no retries; if it is unreachable, or a later call fails, a warning goes to
    stderr and logging stops for the rest of the step.
    """

    def __init__(self, prefix: str = "dpo/"):
        self.prefix = prefix
        self.run_id = os.environ.get("MLFLOW_RUN_ID")
        self.client = None
        if not (self.run_id and os.environ.get("MLFLOW_TRACKING_URI")):
            return
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
        try:
            from mlflow.tracking import MlflowClient

            client = MlflowClient()
            client.get_run(self.run_id)
            self.client = client
        except Exception as error:  # noqa: BLE001 - any failure means: train without MLflow
            log(f"warning: MLflow run {self.run_id} unreachable ({type(error).__name__}: {error}); "
                "training continues without MLflow curves (metrics.jsonl still has them)")

    @property
    def active(self) -> bool:
        return self.client is not None

    def log_metrics(self, metrics: dict[str, Any], step: int, time_ms: int | None = None) -> None:
        if self.client is None:
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000) if time_ms is None else time_ms
        batch = [Metric(self.prefix + key, float(value), now, step)
                 for key, value in metrics.items() if isinstance(value, (int, float)) and not isinstance(value, bool)]
        if not batch:
            return
        try:
            self.client.log_batch(self.run_id, metrics=batch)
        except Exception as error:  # noqa: BLE001
            log(f"warning: MLflow logging failed ({type(error).__name__}: {error}); continuing without MLflow")
            self.client = None

