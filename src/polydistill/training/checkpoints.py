"""A run's rolling checkpoints: which one a resumed run continues from.

The Trainer writes ``checkpoint-<step>`` directories and their ``trainer_state.json`` last, so a
checkpoint without one was being written when the process died and is passed over; the rotation
(``save_total_limit``) deletes the older checkpoint only after the newer one is complete.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

CHECKPOINTS_DIRNAME = "checkpoints"
#: written last into every checkpoint by ``Trainer._save_checkpoint``
TRAINER_STATE = "trainer_state.json"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def checkpoint_step(path: Path) -> int | None:
    match = _CHECKPOINT.match(path.name)
    return int(match.group(1)) if match else None


def newest_checkpoint(checkpoints_dir: Path) -> Path | None:
    """The complete checkpoint with the highest step under ``checkpoints_dir``, or None."""
    if not checkpoints_dir.is_dir():
        return None
    complete = [
        (step, path)
        for path in checkpoints_dir.iterdir()
        if (step := checkpoint_step(path)) is not None and path.is_dir() and (path / TRAINER_STATE).is_file()
    ]
    return max(complete)[1] if complete else None


def remove_rolling_checkpoints(work_dir: Path, training: dict[str, Any]) -> None:
    """Remove ``work_dir/checkpoints`` once the model they were for is saved: the rolling
    checkpoint did its job. A user who set ``save_strategy`` keeps the checkpoints asked for."""
    if "save_strategy" not in training:
        shutil.rmtree(work_dir / CHECKPOINTS_DIRNAME, ignore_errors=True)
