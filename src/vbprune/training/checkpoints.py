"""The Trainer's checkpoint folders: which are complete, which to resume from.

The Trainer writes ``checkpoint-N/`` in place: the weights first, then the optimizer,
scheduler and random states, and ``trainer_state.json`` last. A run killed (or a disk
filled) while saving leaves a folder without a readable ``trainer_state.json``: such a
folder is incomplete and never resumed from. (A power cut after the write but before
the disk flushed it is beyond this check.)
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from ..core.errors import CheckpointError

_NAME = re.compile(r"^checkpoint-(\d+)$")


def is_complete(checkpoint: Path) -> bool:
    """Whether a Trainer checkpoint folder was saved to the end: its
    ``trainer_state.json``, written after the weights (single-file, sharded, FSDP or
    DeepSpeed alike), parses."""
    try:
        state = json.loads((checkpoint / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(state, dict) and "global_step" in state


def checkpoints(run_dir: Path) -> list[Path]:
    """``checkpoint-N`` folders of ``run_dir``, oldest step first (hidden folders and
    anything else are not checkpoints)."""
    if not run_dir.is_dir():
        return []
    found = [p for p in run_dir.iterdir() if p.is_dir() and _NAME.match(p.name)]
    return sorted(found, key=lambda p: int(_NAME.match(p.name).group(1)))


def last_complete_checkpoint(run_dir: Path) -> Path | None:
    """The complete checkpoint of the highest step in ``run_dir`` (``None``: none)."""
    complete = [p for p in checkpoints(run_dir) if is_complete(p)]
    return complete[-1] if complete else None


def check_complete(checkpoint: Path) -> None:
    """Refuse to resume from a checkpoint that was not saved to the end.

    Raises:
        CheckpointError: naming the folder.
    """
    if not is_complete(checkpoint):
        raise CheckpointError(
            f"checkpoint {checkpoint} is incomplete (no readable trainer_state.json: the run "
            "stopped while saving it); resume from an earlier one"
        )


def remove_incomplete(run_dir: Path) -> list[Path]:
    """Delete the incomplete checkpoints of ``run_dir`` (a resumed run would otherwise
    count them against ``save_total_limit``); return what was removed."""
    removed = [p for p in checkpoints(run_dir) if not is_complete(p)]
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed
