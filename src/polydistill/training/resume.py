"""What ``polydistill run CONFIG --resume`` continues from, and whether CONFIG still describes that run.

A run is resumed to finish what an interruption (a kill, a crash, a divergence the user has since
fixed) left undone: training from the newest complete checkpoint (the Trainer's own resume: the
student, optimizer, scheduler, RNG states and data position, plus the objectives' heads; the
teacher's outputs come from the same teacher-output cache), or only the evaluation and
compression when the student was already saved. The config may change how the student is
trained (``training``: a lower learning rate after a divergence, more epochs), evaluated or
compressed; it may not change which student is trained on what, or the result would be a mix of
two runs: those sections must equal the run's saved ``config.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from polydistill.config import RunConfig
from polydistill.errors import ConfigError
from polydistill.training.checkpoints import CHECKPOINTS_DIRNAME, newest_checkpoint
from polydistill.training.provenance import read_run_record, resolved_config

#: config sections a resumed run must share with the run it resumes
FIXED_SECTIONS = ("task", "teacher", "student", "data", "objectives", "seed")
STUDENT_DIRNAME = "student"


@dataclass(frozen=True)
class ResumePoint:
    #: the checkpoint training continues from (None: training starts again from the beginning)
    checkpoint: Path | None
    #: the student was saved: only evaluation and compression remain
    student_saved: bool


def resume_point(config: RunConfig, output_dir: Path) -> ResumePoint:
    """Where the run in ``output_dir`` continues; ConfigError when ``config`` is not that run's or nothing is left to do."""
    saved_path = output_dir / "config.yaml"
    try:
        saved = yaml.safe_load(saved_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise ConfigError(
            f"--resume: {saved_path} cannot be read ({error}); the run cannot be resumed, rerun it with --overwrite"
        ) from None
    current = resolved_config(config, output_dir)
    differences = [line for section in FIXED_SECTIONS for line in _differences(section, (saved or {}).get(section), current.get(section))]
    if differences:
        raise ConfigError(
            f"{config.source_file or 'config'}: --resume: the config differs from the run in {output_dir} where it decides which "
            "student is trained on what (only training, evaluation and compress may change):\n  " + "\n  ".join(differences[:20])
        )
    record = read_run_record(output_dir)
    student_saved = record.get("status") in ("trained", "finished") and (output_dir / STUDENT_DIRNAME).is_dir()
    if record.get("status") == "finished" and student_saved:
        raise ConfigError(
            f"--resume: the run in {output_dir} has finished (student, metrics and report written); nothing to resume. "
            "Pass --overwrite to run it again"
        )
    return ResumePoint(None if student_saved else newest_checkpoint(output_dir / CHECKPOINTS_DIRNAME), student_saved)


def _differences(path: str, saved: Any, current: Any) -> list[str]:
    if isinstance(saved, dict) and isinstance(current, dict):
        return [
            line
            for key in sorted(set(saved) | set(current), key=str)
            for line in _differences(f"{path}.{key}", saved.get(key), current.get(key))
        ]
    if saved != current:
        return [f"{path}: the run had {saved!r}, the config has {current!r}"]
    return []
