"""Output directories that keep what they hold: a command never writes over an earlier result unasked.

A run (or ``polydistill eval``) given a directory that exists and holds anything refuses it, before
it reads a model or writes a file, unless the user says what to do with it:

- ``--overwrite`` moves the whole directory aside to ``<name>.previous-<timestamp>`` beside it (a
  rename: nothing is deleted, not even the files the command did not write) and starts afresh;
- ``--resume`` (runs only) continues the run the directory holds (:mod:`polydistill.training.run`).

The decision is taken by :func:`plan_output_dir`, which only looks; :meth:`OutputPlan.apply`
makes the move when every other check has passed, so a command that fails on its config leaves
the directory as it found it.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from polydistill.console import console
from polydistill.errors import ConfigError

#: what marks a directory as holding a run
RUN_RECORD = "run.json"
_SHOWN_ENTRIES = 5


@dataclass(frozen=True)
class OutputPlan:
    directory: Path
    mode: Literal["new", "overwrite", "resume"]
    #: where ``--overwrite`` moves the old directory (chosen when the plan is made, made by :meth:`apply`)
    previous: Path | None = None

    def refuse_moving(self, inputs: dict[str, Path]) -> None:
        """Refuse an ``--overwrite`` that would move one of the command's ``inputs`` (what -> path) aside with the directory."""
        if self.mode != "overwrite":
            return
        inside = [f"{what} ({path})" for what, path in inputs.items() if Path(path).resolve().is_relative_to(self.directory.resolve())]
        if inside:
            raise ConfigError(
                f"--overwrite would move {self.directory} aside, and with it {', '.join(inside)}, which this command reads; "
                "choose another output directory"
            )

    def apply(self) -> Path | None:
        """Move the old directory aside (``--overwrite``) and create the directory; where the old one went."""
        if self.mode == "overwrite" and self.previous is not None and self.directory.exists():
            previous = _free_name(self.previous)
            os.replace(self.directory, previous)
            console.print(f"[bold]Moved[/] the previous contents of {self.directory} to {previous}")
            self.directory.mkdir(parents=True)
            return previous
        self.directory.mkdir(parents=True, exist_ok=True)
        return None


def plan_output_dir(directory: str | Path, *, overwrite: bool = False, resume: bool = False, flag: str = "--out") -> OutputPlan:
    """What a command may do with ``directory``; raises ConfigError when it must not write there."""
    directory = Path(directory).expanduser()
    if not str(directory).strip() or Path.cwd().resolve().is_relative_to(directory.resolve()):
        raise ConfigError(
            f"{flag} {str(directory)!r}: the working directory (or one above it) cannot be an output directory; name a new one"
        )
    if overwrite and resume:
        raise ConfigError("--overwrite and --resume exclude each other: resume continues the run, overwrite moves it aside")
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"{flag} {directory}: is a file, not a directory; give a directory to write into")
    entries = _entries(directory)
    if resume:
        if not (directory / RUN_RECORD).is_file():
            what = "does not exist" if not directory.exists() else f"holds no run ({RUN_RECORD} is missing)"
            raise ConfigError(f"{flag} {directory}: nothing to resume: the directory {what}; run without --resume")
        return OutputPlan(directory, "resume")
    if not entries:
        return OutputPlan(directory, "new")
    previous = directory.with_name(f"{directory.name}.previous-{datetime.datetime.now():%Y%m%d-%H%M%S}")
    if overwrite:
        return OutputPlan(directory, "overwrite", previous)
    holds = "a previous run" if (directory / RUN_RECORD).is_file() else "files"
    shown = ", ".join(entries[:_SHOWN_ENTRIES]) + (f" and {len(entries) - _SHOWN_ENTRIES} more" if len(entries) > _SHOWN_ENTRIES else "")
    resume_hint = " --resume to continue it," if holds == "a previous run" else ""
    raise ConfigError(
        f"{flag} {directory}: already holds {holds} ({shown}); nothing was written. Pass{resume_hint} "
        f"--overwrite to move it aside to {previous.name}, or choose another directory"
    )


def _entries(directory: Path) -> list[str]:
    if not directory.is_dir():
        return []
    try:
        return sorted(entry.name + ("/" if entry.is_dir() else "") for entry in directory.iterdir())
    except OSError as error:
        raise ConfigError(f"{directory}: cannot be read ({error.strerror})") from None


def _free_name(path: Path) -> Path:
    candidate, number = path, 1
    while candidate.exists():
        number += 1
        candidate = path.with_name(f"{path.name}-{number}")
    return candidate
