"""What every method's child records: peak memory, times and the saved student."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from distill_speed_lib.settings import LABELS, Settings


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB, macOS bytes)."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024


def method_record(
    task: str,
    method: str,
    settings: Settings,
    *,
    teacher_pass: float,
    optimisation: float,
    end_to_end: float,
    examples_seen: int,
    train_rows: int,
    peak: float,
    student_dir: Path,
    objectives: list[str],
    sampling: str,
) -> dict[str, Any]:
    """What every method reports. Training time counts the teacher's pass over the data when it
    is separate (a cache build, the peer's precomputed labels), so a cache is not free here."""
    import torch

    train_seconds = teacher_pass + optimisation
    return {
        "task": task,
        "method": method,
        "label": LABELS[method],
        "train_seconds": train_seconds,
        "teacher_pass_seconds": teacher_pass,
        "optimisation_seconds": optimisation,
        "end_to_end_seconds": end_to_end,
        "examples_seen": examples_seen,
        "train_rows": train_rows,
        "examples_per_second": examples_seen / train_seconds,
        "peak_rss_mib": peak,
        "student_dir": str(student_dir),
        "objectives": objectives,
        "sampling": sampling,
        "torch_threads": torch.get_num_threads(),
    }
