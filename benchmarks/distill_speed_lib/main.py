"""The parent process: one fresh subprocess of the script per step, then the aggregation."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import distill_speed_lib
from distill_speed_lib.method_polydistill import child_polydistill
from distill_speed_lib.method_st_mseloss import child_st_mseloss
from distill_speed_lib.method_trainer_kd import child_trainer_kd
from distill_speed_lib.padding import child_padding
from distill_speed_lib.prepare import child_prepare
from distill_speed_lib.quality import child_teacher, quality_of
from distill_speed_lib.settings import (
    LABELS,
    METHODS,
    QUICK_LANGUAGES,
    QUICK_STEPS,
    TASKS,
    Settings,
    task_dir,
)
from distill_speed_lib.tables import aggregate

#: the script every child runs: a fresh process of the benchmark itself
SCRIPT = Path(__file__).resolve().parents[1] / "distill_speed.py"


def run_child(settings: Settings, step: str, task: str, method: str | None) -> None:
    if settings.threads:
        import torch

        torch.set_num_threads(settings.threads)
    if step == "prepare":
        child_prepare(settings, task)
        return
    if method == "teacher":
        record = child_teacher(settings, task)
    elif method == "padding":
        record = child_padding(settings, task)
    else:
        if method.startswith("polydistill"):
            record = child_polydistill(settings, task, method)
        elif method == "trainer-kd":
            record = child_trainer_kd(settings, task)
        elif method == "st-mseloss":
            record = child_st_mseloss(settings, task)
        else:
            raise SystemExit(f"unknown method {method}")
        record["quality"] = quality_of(task, record["student_dir"], settings)
    target = task_dir(settings, task) / method / "result.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(record, indent=2))


def spawn(settings: Settings, step: str, task: str, method: str | None, console) -> float:
    """Run one step in a fresh process of this script; its output goes to a log file."""
    name = method or step
    log = task_dir(settings, task) / name / "log.txt"
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, str(SCRIPT), "--child", step, "--task", task, "--out", settings.out]
    if method:
        command += ["--method", method]
    environment = os.environ | {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    start = time.perf_counter()
    with console.status(f"[bold]{task}[/]: {LABELS.get(name, name)} (log: {log})"), log.open("w") as handle:
        code = subprocess.call(command, stdout=handle, stderr=subprocess.STDOUT, env=environment)
    seconds = time.perf_counter() - start
    if code != 0:
        tail = log.read_text(errors="replace").splitlines()[-40:]
        console.print("\n".join(tail))
        raise SystemExit(f"{task} {name} failed with exit code {code}; log: {log}")
    console.print(f"[green]done[/] {task}: {LABELS.get(name, name)} in {seconds:.0f} s")
    return seconds


def prepared_matches(settings: Settings, task: str) -> bool:
    path = task_dir(settings, task) / "prepare.json"
    if not path.is_file():
        return False
    prepared = json.loads(path.read_text())
    return prepared.get("key") == settings.prepare_key(task) and Path(prepared["student_init"]).is_dir()


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=distill_speed_lib.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=[*TASKS, "both"], default="both")
    parser.add_argument("--languages", help="comma-separated languages served besides English (default: de,ja,ar; quick: de)")
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--quick", action="store_true", help=f"one language, {QUICK_STEPS} steps per method: checks the script")
    parser.add_argument("--out", help="output directory (default: runs/distill-speed[-quick])")
    parser.add_argument("--methods", help="comma-separated subset of the methods to (re)run; the others' results are read back")
    parser.add_argument("--threads", type=int, help="torch threads in every method (default: torch's own)")
    parser.add_argument("--classification-teacher", help="an already fine-tuned classifier to use as the teacher (default: fine-tune one)")
    parser.add_argument("--child", choices=["prepare", "method"], help=argparse.SUPPRESS)
    parser.add_argument("--method", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    if arguments.child:
        run_child(Settings.load(arguments.out), arguments.child, arguments.task, arguments.method)
        return 0
    from rich.console import Console

    console = Console(width=max(shutil.get_terminal_size().columns, 200))
    tasks = list(TASKS) if arguments.task == "both" else [arguments.task]
    if arguments.languages:
        languages = [code.strip() for code in arguments.languages.split(",") if code.strip()]
    else:
        languages = QUICK_LANGUAGES if arguments.quick else ["de", "ja", "ar"]
    out = arguments.out or ("runs/distill-speed-quick" if arguments.quick else "runs/distill-speed")
    wanted = [m.strip() for m in arguments.methods.split(",")] if arguments.methods else None
    settings = Settings(
        tasks=tasks,
        languages=languages,
        epochs=arguments.epochs,
        quick=arguments.quick,
        out=str(Path(out).resolve()),
        threads=arguments.threads,
        classification_teacher=arguments.classification_teacher,
        methods={task: list(METHODS[task]) for task in tasks},
    )
    settings.save()
    for task in tasks:
        if not prepared_matches(settings, task):
            spawn(settings, "prepare", task, None, console)
        for method in [*METHODS[task], "teacher", "padding"]:
            if wanted is None or method in wanted or (method == "polydistill-cache-reused" and "polydistill-cache" in wanted):
                spawn(settings, "method", task, method, console)
    aggregate(settings, console)
    return 0
