"""One writer per step folder: a lock that the step's process holds for its whole life.

Two processes writing one ``out_dir`` (a resume of a run still in flight, a stale attempt after a
network cut) would each compute every item and interleave their records. The lock is a POSIX record
lock (``fcntl.lockf``) on ``out_dir/.step.lock``: the kernel releases it when the holder dies, however
it dies (SIGKILL included), so a lock is never left behind, and POSIX locks also work across hosts on
NFS (flock does not everywhere). The second process fails at once with a retryable error naming the
folder and the holder: Temporal retries it later, and by then the first has written the manifest that
the retry reuses.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time
from pathlib import Path

from .contract import RetryableError

LOCK_NAME = ".step.lock"


class StepFolderBusy(RetryableError):
    """Another live process holds the step folder: retry later (it will then find the finished result)."""


def _holder(path: Path) -> str:
    """Who holds the lock, as the holder wrote it (best effort: it is only for the message)."""
    try:
        info = json.loads(path.read_text() or "{}")
        return f"pid {info.get('pid')} on {info.get('host')} since {info.get('since')}"
    except (OSError, ValueError):
        return "another process"


def acquire_step_lock(out_dir: str | os.PathLike[str]) -> int:
    """Take the folder's lock for the life of this process and return its descriptor (keep it open).

    Raises ``StepFolderBusy`` when another live process holds it.
    """
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    # O_CLOEXEC: a program we exec must not keep the descriptor; POSIX locks are not inherited by fork.
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        os.close(fd)
        if error.errno in (errno.EAGAIN, errno.EACCES):
            raise StepFolderBusy(
                f"step folder {folder} is being written by {_holder(path)}; this attempt stops so that two "
                "processes never write one folder, and a retry will reuse what the other one finishes") from None
        raise
    # Record the holder for the message a second writer prints; the lock, not this text, is the truth.
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                              "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}).encode(), 0)
    return fd
