"""Which DPO checkpoint to resume from: the newest complete one.

The Trainer writes a checkpoint's files one by one and ``trainer_state.json`` last, so a step killed
mid-save leaves a ``checkpoint-N`` folder without a readable state file (or with empty files, when the
machine lost power before the page cache reached the disk). Resuming from it fails on every retry; the
previous checkpoint is still whole (rotation deletes it only after the new one is saved), so that one
is used and the half-saved folder is removed, costing at most one checkpoint interval.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from ..contract import log

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
STATE_FILE = "trainer_state.json"


def incomplete_reason(folder: Path, step: int) -> str | None:
    """Why ``folder`` cannot be resumed from, or None when it is complete."""
    state_file = folder / STATE_FILE
    try:
        state = json.loads(state_file.read_text())
    except FileNotFoundError:
        return f"no {STATE_FILE} (the save was interrupted)"
    except (OSError, ValueError) as error:
        return f"{STATE_FILE} is unreadable ({error})"
    if not isinstance(state, dict) or state.get("global_step") != step:
        return f"{STATE_FILE} does not record step {step}"
    empty = sorted(p.name for p in folder.iterdir() if p.is_file() and p.stat().st_size == 0)
    if empty:
        return f"empty file(s) {', '.join(empty)}"
    return None


def last_complete_checkpoint(checkpoints: Path) -> Path | None:
    """The newest complete ``checkpoint-N`` under ``checkpoints``; newer incomplete ones are removed."""
    if not checkpoints.is_dir():
        return None
    found = sorted(((int(m.group(1)), p) for p in checkpoints.iterdir()
                    if p.is_dir() and (m := _CHECKPOINT.match(p.name))), reverse=True)
    for step, folder in found:
        why = incomplete_reason(folder, step)
        if why is None:
            return folder
        log(f"warning: {folder}: half-saved checkpoint skipped and removed: {why}; "
            "resuming from the previous complete one")
        # Left in place, the Trainer's rotation (by mtime) could keep it and delete a whole one.
        shutil.rmtree(folder, ignore_errors=True)
    return None
