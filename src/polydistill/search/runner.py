"""``polydistill search``: open the study, queue its trials, run them in one process or K, write the results.

Output directory (``--out``, default ``<output_dir>-search``)::

    study.db          the default storage (SQLite): rerunning the same command continues the study
    trials/NNNN/      each trial's run directory: run.json, config.yaml, trial.json, train_metrics.json
                      (the student directory only for the best trial, or with search.keep_students)
    workers/          the logs of the worker processes (--workers K)
    best.yaml         the best trial's config, runnable with polydistill run
    trials.csv, search.json, search_report.md/.html, plots/
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from polydistill.atomic import atomic_write_text
from polydistill.config import load_config
from polydistill.config_yaml import parse_config_yaml, read_config_text
from polydistill.console import console
from polydistill.errors import ConfigError
from polydistill.search.results import write_results
from polydistill.search.space import baseline_params, check_space
from polydistill.search.study import (
    fail_interrupted,
    has_result,
    heartbeat,
    open_storage,
    open_study,
    outcome_of,
    queue_trials,
    reclaim_dead_workers,
    redacted,
    take_trial,
)
from polydistill.search.trial import SearchSetup, keep_best_students, run_trial

STUDY_RECORD = "study.json"
DEFAULT_STORAGE_FILE = "study.db"


def load_search(config_path: str | Path, *, out: str | Path | None = None, trials: int | None = None, timeout: float | None = None):
    """The validated base config with its search section (``--trials`` / ``--timeout`` applied) as a SearchSetup."""
    path = Path(config_path)
    config = load_config(path)
    if config.search is None:
        raise ConfigError(f"{path}: no search section; expected search: {{space: {{FIELD: {{float: [low, high]}}, ...}}}}")
    if config.data.eval is None:
        raise ConfigError(f"{path}: data.eval: a search scores every trial on the eval set; set data.eval")
    updates: dict[str, Any] = {}
    if trials is not None:
        if trials < 1:
            raise ConfigError(f"--trials {trials}: expected at least 1 trial")
        updates["trials"] = trials
    if timeout is not None:
        if timeout <= 0:
            raise ConfigError(f"--timeout {timeout}: expected a number of seconds above 0")
        updates["timeout"] = timeout
    if updates:
        config.search = config.search.model_copy(update=updates)
    raw = parse_config_yaml(path, read_config_text(path))
    base = {key: value for key, value in raw.items() if key != "search"}
    check_space(config, config.search, base)
    return SearchSetup(config=config, base=base, out=Path(out or f"{config.output_dir}-search").expanduser().resolve())


def search(
    config_path: str | Path,
    *,
    out: str | Path | None = None,
    trials: int | None = None,
    timeout: float | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    workers: int = 1,
    overwrite: bool = False,
    join: bool = False,
    seed_offset: int = 0,
    extra_callbacks: list[Any] | None = None,
) -> dict[str, Any] | None:
    """Run the study of ``config_path``'s search section; its summary (None for a joining worker)."""
    setup = load_search(config_path, out=out, trials=trials, timeout=timeout)
    setup.extra_callbacks = list(extra_callbacks or [])
    if workers < 1:
        raise ConfigError(f"--workers {workers}: expected at least 1 worker process")
    name = study_name or Path(config_path).stem
    if not join:
        _prepare_out(setup.out, name, overwrite=overwrite)
    url = storage or f"sqlite:///{(setup.out / DEFAULT_STORAGE_FILE).resolve()}"
    search_config = setup.search
    study = open_study(
        open_storage(url, heartbeat=search_config.heartbeat), name, search_config, seed=search_config.seed + seed_offset, create=not join
    )
    deadline = time.time() + search_config.timeout if search_config.timeout else None
    if not join:
        atomic_write_text(setup.out / STUDY_RECORD, json.dumps({"study": name, "storage": redacted(url)}, indent=2) + "\n")
        baseline = None
        if search_config.baseline:
            baseline, why = baseline_params(setup.config, setup.base, search_config)
            if baseline is None:
                console.print(f"[yellow]Search[/] no baseline trial: {why}")
        queued = queue_trials(study, search_config, search_config.trials, baseline)
        results = sum(has_result(t) for t in study.get_trials(deepcopy=False))
        console.print(
            f"[bold]Study[/] {name} in {redacted(url)}: {results} trials with a result, {queued} queued "
            f"(of {search_config.trials}); sampler {search_config.sampler_name}, optimising {', '.join(search_config.optimize)}"
        )
    if join or workers == 1:
        work(setup, study, deadline)
    else:
        _run_workers(setup, study, config_path, url, name, workers, deadline)
    if join:
        return None
    return write_results(setup, study, storage_url=url)


def work(setup: SearchSetup, study: Any, deadline: float | None) -> None:
    """Take queued trials and run them until the queue is empty (or the deadline passes)."""
    from optuna.trial import TrialState

    from polydistill.training.student_setup import reusing_students

    with reusing_students():  # trials with the same student section train copies of one built, trimmed student
        while deadline is None or time.time() < deadline:
            reclaim_dead_workers(study)
            trial = take_trial(study)
            if trial is None:
                return
            with heartbeat(study, trial, setup.search.heartbeat):
                try:
                    run_trial(setup, study, trial)
                except BaseException:  # Ctrl-C, a kill signal turned exception: the trial has no result, queue it again
                    if study._storage.get_trial(trial._trial_id).state == TrialState.RUNNING:
                        fail_interrupted(study, trial._trial_id, "the search was interrupted")
                    raise
            keep_best_students(study, setup)
    console.print("[bold]Search[/] timeout reached: no new trial starts")


def _prepare_out(out: Path, name: str, *, overwrite: bool) -> None:
    """A new directory, or one that holds this study (continued); anything else is refused (or moved aside)."""
    from polydistill.output_dir import plan_output_dir

    record = out / STUDY_RECORD
    if record.is_file():
        recorded = json.loads(record.read_text(encoding="utf-8")).get("study")
        if recorded == name and not overwrite:
            console.print(f"[bold]Search[/] continuing the study in {out}")
            return
        if recorded != name and not overwrite:
            raise ConfigError(
                f"--out {out}: holds the study '{recorded}', not '{name}'; pass --study {recorded} to continue it, "
                "--overwrite to move it aside, or choose another directory"
            )
    plan_output_dir(out, overwrite=overwrite).apply()
    out.mkdir(parents=True, exist_ok=True)


def _run_workers(
    setup: SearchSetup, study: Any, config_path: str | Path, url: str, name: str, workers: int, deadline: float | None
) -> None:
    """K worker processes against the storage, each with its share of the cores; progress as trials finish."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    threads = max(1, cores // workers)
    logs = setup.out / "workers"
    logs.mkdir(parents=True, exist_ok=True)
    environment = os.environ | {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "TOKENIZERS_PARALLELISM": "false"}
    command = [sys.executable, "-m", "polydistill", "search", str(config_path), "--out", str(setup.out), "--storage", url, "--study", name]
    if deadline is not None:
        command += ["--timeout", f"{max(1.0, deadline - time.time()):.0f}"]
    processes: dict[int, tuple[subprocess.Popen, Path]] = {}
    for index in range(workers):
        log = logs / f"worker-{index}.log"
        with log.open("a", encoding="utf-8") as handle:
            process = subprocess.Popen(
                [*command, "--join", "--seed-offset", str(index + 1)], env=environment, stdout=handle, stderr=subprocess.STDOUT
            )
        processes[index] = (process, log)
    console.print(f"[bold]Search[/] {workers} worker processes, {threads} threads each (logs in {logs})")
    shown = None
    while processes:
        time.sleep(2.0)
        for index, (process, log) in list(processes.items()):
            code = process.poll()
            if code is None:
                continue
            del processes[index]
            if code != 0:
                console.print(f"[yellow]Worker {index}[/] exited with status {code} (log: {log}); its running trial is queued again")
                reclaim_dead_workers(study)
        progress = _progress(study)
        if progress != shown:
            console.print(f"[bold]Trials[/] {progress}")
            shown = progress
    reclaim_dead_workers(study)
    if any(t.state.name == "WAITING" for t in study.get_trials(deepcopy=False)) and (deadline is None or time.time() < deadline):
        console.print("[bold]Search[/] trials left in the queue after the workers stopped: running them here")
        work(setup, study, deadline)


def _progress(study: Any) -> str:
    counts: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        key = outcome_of(trial)
        counts[key] = counts.get(key, 0) + 1
    return ", ".join(f"{count} {key}" for key, count in sorted(counts.items()))
