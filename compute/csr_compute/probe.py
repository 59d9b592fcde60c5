"""The ``probe`` step: what this worker's compute environment can do (torch, device, CUDA).

Workers run it at start to report their health, and the activity tests use its ``sleep_s`` /
``exit_with`` / ``write_file`` knobs to exercise supervision (heartbeats, cancellation, exit-code
mapping, a full disk) on a real child process without loading a model.
"""

from __future__ import annotations

import os
import platform
import time
from typing import Any

from .contract import EXIT_CODES, Progress, SpecError, emit


def run(spec: dict[str, Any]) -> dict[str, Any]:
    import torch

    sleep_s = spec.get("sleep_s", 0)
    if not isinstance(sleep_s, (int, float)) or isinstance(sleep_s, bool) or sleep_s < 0:
        raise SpecError("sleep_s", sleep_s, "number >= 0")
    write_file = spec.get("write_file")
    if write_file is not None and not (isinstance(write_file, str) and os.path.isabs(write_file)):
        raise SpecError("write_file", write_file, "an absolute path")
    exit_with = spec.get("exit_with")
    if exit_with is not None and exit_with not in EXIT_CODES.values():
        raise SpecError("exit_with", exit_with, f"one of {sorted(v for v in EXIT_CODES.values() if isinstance(v, int))}")
    report = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda_available": torch.cuda.is_available(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        "threads": torch.get_num_threads(),
        "pid": os.getpid(),
    }
    emit("probe", **report)
    steps = max(int(sleep_s * 10), 1)
    progress = Progress(step="probe", total=steps, unit="ticks", min_interval_s=0.2)
    progress.start()
    for _ in range(steps):
        time.sleep(sleep_s / steps)
        progress.advance()
    if write_file is not None:  # e.g. /dev/full: how a step meets a full disk
        with open(write_file, "a", encoding="utf-8") as handle:
            handle.write("probe\n")
            handle.flush()
    if exit_with is not None and exit_with != EXIT_CODES["ok"]:
        raise SystemExit(exit_with)
    return report
