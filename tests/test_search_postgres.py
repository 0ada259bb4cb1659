"""Several worker processes share one study through a real PostgreSQL server on loopback.

Each worker takes a queued trial with the storage's compare-and-set, so no trial runs twice; a worker
killed mid-trial leaves its trial failed (marked interrupted) and queued again, and the study still
reaches the number of results asked for.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from postgres_server import postgres_server, why_unavailable
from test_search import write_config

optuna = pytest.importorskip("optuna")
pytestmark = pytest.mark.skipif(why_unavailable() is not None, reason=str(why_unavailable()))

SPACE = "  space:\n    objectives.soft_targets.temperature: {float: [1.0, 4.0]}\n  seed: 3\n  heartbeat: 2"


@pytest.fixture(scope="module")
def postgres_url():
    with postgres_server() as url:
        yield url


def start_search(config: Path, out: Path, url: str, study: str, trials: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "polydistill", "search", str(config), "--out", str(out), "--storage", url, "--study", study]
    return subprocess.Popen(
        [*command, "--trials", str(trials), "--workers", "2"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def finished(process: subprocess.Popen, seconds: float = 600) -> str:
    output, _ = process.communicate(timeout=seconds)
    assert process.returncode == 0, output
    return output


def pid_of(trial) -> int:
    return int(str(trial.user_attrs["worker"]).rpartition(":")[2])


def test_two_workers_complete_exactly_the_trials_asked_for_none_twice(tiny_teacher_dir, two_language_data, tmp_path, postgres_url):
    config = write_config(tmp_path / "shared.yaml", tiny_teacher_dir, two_language_data, SPACE)
    search = start_search(config, tmp_path / "out", postgres_url, "shared", trials=6)
    output = finished(search)

    trials = optuna.load_study(study_name="shared", storage=postgres_url).get_trials()
    assert len(trials) == 6 and all(t.state.name == "COMPLETE" for t in trials), output
    workers = Counter(pid_of(t) for t in trials)
    assert len(workers) == 2 and search.pid not in workers  # both workers took trials; the launcher only watched
    # each trial ran once: one run directory per trial, its record naming the worker the storage gave it to
    directories = sorted(p.name for p in (tmp_path / "out" / "trials").iterdir())
    assert directories == [f"{t.number:04d}" for t in trials]
    assert all(t.user_attrs["outcome"] == "complete" for t in trials)
    assert (tmp_path / "out" / "best.yaml").is_file()


def test_a_killed_worker_leaves_its_trial_failed_and_requeued_while_the_study_goes_on(
    tiny_teacher_dir, two_language_data, tmp_path, postgres_url
):
    config = write_config(tmp_path / "killed.yaml", tiny_teacher_dir, two_language_data, SPACE)
    config.write_text(config.read_text().replace("max_steps: 12", "max_steps: 60"))  # trials long enough to be killed in
    search = start_search(config, tmp_path / "out", postgres_url, "killed", trials=3)
    storage = optuna.storages.RDBStorage(postgres_url)
    victim = None
    deadline = time.monotonic() + 300
    while victim is None and time.monotonic() < deadline and search.poll() is None:
        if "killed" not in {summary.study_name for summary in optuna.get_all_study_summaries(storage)}:
            time.sleep(0.1)  # the launcher has not created the study yet
            continue
        study = optuna.load_study(study_name="killed", storage=storage)
        # a trial that is training: taken by a worker, its parameters sampled
        running = [t for t in study.get_trials(deepcopy=False) if t.state.name == "RUNNING" and "worker" in t.user_attrs and t.params]
        if running:
            victim = running[0]
            os.kill(pid_of(victim), signal.SIGKILL)
        time.sleep(0.1)
    assert victim is not None, "no trial was seen running"
    output = finished(search)

    trials = {t.number: t for t in optuna.load_study(study_name="killed", storage=storage).get_trials()}
    killed = trials[victim.number]
    assert killed.state.name == "FAIL" and f"process {pid_of(victim)}" in killed.user_attrs["interrupted"], output
    (retry,) = [t for t in trials.values() if t.user_attrs.get("retry_of") == victim.number]
    assert retry.state.name == "COMPLETE" and retry.params == killed.params
    assert sum(t.state.name == "COMPLETE" for t in trials.values()) == 3
    # whoever noticed first says so: the launcher, or the surviving worker in its log
    logs = [log.read_text() for log in sorted((tmp_path / "out" / "workers").glob("*.log"))]
    said = " ".join(" ".join([output, *logs]).split())
    assert f"Trial {victim.number} was interrupted (its worker (process {pid_of(victim)}) ended" in said and "queued again" in said
