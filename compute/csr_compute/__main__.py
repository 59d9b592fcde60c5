"""Command line of the compute package: ``python -m csr_compute STEP --spec SPEC.json``.

Every failure becomes an exit code from ``exit_codes.json`` and one ``error`` event, so the
launching activity can tell a bad spec (never retried) from a crash (retried).
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import signal
import sys
import threading
import time
import traceback
from typing import Any, Callable

from .contract import CLOCK, EXIT_CODES, MissingInputError, RetryableError, SpecError, emit
from .spec_file import read_spec
from .step_lock import StepFolderBusy, acquire_step_lock

# Steps that never touch torch; every other step imports it before its clock starts (start-up, not compute).
WITHOUT_TORCH = {"curate", "plot"}

# step name -> "module:function"; each function takes the parsed spec dict and returns its manifest.
STEPS: dict[str, str] = {
    "generate": "csr_compute.steps.generate:run",
    "reward": "csr_compute.steps.reward:run",
    "curate": "csr_compute.steps.curate:run",
    "dpo": "csr_compute.steps.dpo:run",
    "merge": "csr_compute.steps.merge:run",
    "evaluate": "csr_compute.evaluation.run:run",
    "toyworld-build": "csr_compute.toyworld.build:run",
    "probe": "csr_compute.probe:run",
    "plot": "csr_compute.plots:run",
}


def load_step(name: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    module_name, function_name = STEPS[name].split(":")
    return getattr(importlib.import_module(module_name), function_name)


def _is_out_of_memory(error: BaseException) -> bool:
    return isinstance(error, MemoryError) or "out of memory" in str(error).lower()


def watch_parent(poll_s: float = 1.0) -> None:
    """Die with the worker that launched us.

    The activity starts each step in its own process group and kills that group on cancellation, but a
    worker killed with SIGKILL cannot: without this, its step would go on writing beside the retry that
    Temporal starts elsewhere. When our parent changes (we were orphaned), the whole group is killed.
    """
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(poll_s)
            if os.getppid() != parent:
                emit("error", kind="orphaned", retryable=True, message=f"launching process {parent} is gone; stopping")
                os.killpg(os.getpgid(0), signal.SIGKILL)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m csr_compute", description=__doc__)
    parser.add_argument("step", choices=sorted(STEPS), help="the compute step to run")
    parser.add_argument("--spec", required=True, help="path of the step's JSON spec")
    args = parser.parse_args(argv)
    if os.environ.get("CSR_WATCH_PARENT", "1") != "0" and os.getpgid(0) == os.getpid():
        watch_parent()
    lock_fd: int | None = None
    try:
        spec = read_spec(args.spec)
        if isinstance(spec.get("out_dir"), str) and os.path.isabs(spec["out_dir"]):
            # Held until the step ends (the OS releases it however we die): one writer per folder. A relative
            # out_dir is refused by the step's own check; locking it first would create folders under the cwd.
            lock_fd = acquire_step_lock(spec["out_dir"])
        step = load_step(args.step)
        if args.step not in WITHOUT_TORCH:
            importlib.import_module("torch")  # seconds: counted in the manifest's timings.startup_s, not compute_s
        with CLOCK.running():
            step(spec)
        return EXIT_CODES["ok"]
    except SpecError as error:
        # read_spec turns a spec that is not JSON into a SpecError naming the file; a JSONDecodeError that
        # gets here came from some artifact, which is no reason to call the spec bad: it goes to the crash
        # branch below (retried, traceback with the file in the log).
        emit("error", kind="bad_spec", retryable=False, message=str(error))
        return EXIT_CODES["bad_spec"]
    except (MissingInputError, FileNotFoundError) as error:
        emit("error", kind="missing_input", retryable=False, message=str(error))
        return EXIT_CODES["missing_input"]
    except StepFolderBusy as error:
        emit("error", kind="busy", retryable=True, message=str(error))
        return EXIT_CODES["retryable"]
    except (RetryableError, KeyboardInterrupt) as error:
        emit("error", kind="retryable", retryable=True, message=str(error))
        return EXIT_CODES["retryable"]
    except Exception as error:  # noqa: BLE001 - an unknown crash is worth one more try
        traceback.print_exc(file=sys.stderr)
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            # A full disk: name it, so that whoever reads the failure frees space instead of debugging.
            where = f" writing {error.filename}" if error.filename else ""
            emit("error", kind="no_space", retryable=True,
                 message=f"{errno.errorcode[error.errno]}{where}: {error.strerror}; free space and the step is retried")
            return EXIT_CODES["retryable"]
        kind = "out_of_memory" if _is_out_of_memory(error) else "crash"
        emit("error", kind=kind, retryable=True, message=f"{type(error).__name__}: {error}")
        return EXIT_CODES["retryable"]
    finally:
        if lock_fd is not None:
            os.close(lock_fd)


if __name__ == "__main__":
    sys.exit(main())
