"""A study in its storage, and the workers that run its trials.

The launching command (``polydistill search``) opens or creates the study and puts as many
trials in its queue as the study still needs (``--trials`` counts trials with a result); each
worker, in this process or in others on any machine that reaches the storage, takes queued trials
one at a time until the queue is empty. Taking a trial is one compare-and-set in the storage
(WAITING -> RUNNING), so two workers never run the same trial. A worker that dies leaves its
trial RUNNING; the trial is marked failed and queued again with the same parameters: at once
when the dead worker was on this machine, else once its heartbeat has been silent for four
intervals.

Storage: SQLite in the output directory by default (``sqlite:///OUT/study.db``, the same command
resumes the study), any SQLAlchemy URL Optuna's RDBStorage takes (``postgresql://``,
``mysql://``) for workers on several machines, or ``journal:PATH`` (Optuna's journal file, for a
shared filesystem without a database server; it keeps no heartbeat).
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from polydistill.console import console
from polydistill.errors import ConfigError, PolydistillError
from polydistill.search.config import Choices, SearchConfig
from polydistill.search.space import grid_points

#: user attributes polydistill sets on a trial
WORKER_ATTR = "worker"  # "host:pid" of the process that runs it
OUTCOME_ATTR = "outcome"  # complete | pruned | invalid | diverged | failed: the trial has a result
ERROR_ATTR = "error"
INTERRUPTED_ATTR = "interrupted"  # why a trial without a result was failed (its worker died)
RETRY_ATTR = "retry_of"
BASELINE_ATTR = "baseline"  # the trial of the config's own values
MAX_RETRIES = 2

SPACE_ATTR = "polydistill_space"


def this_worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def redacted(url: str) -> str:
    """A storage URL without its password, for messages and reports."""
    from sqlalchemy.engine import make_url

    if url.startswith("journal:"):
        return url
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]


def open_storage(url: str, *, heartbeat: int) -> Any:
    """Optuna storage for ``url``; an unreachable database is a PolydistillError naming it."""
    import optuna

    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend

        path = Path(url.removeprefix("journal:")).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    # SQLite: wait for another worker's write instead of failing on a locked database
    engine = {"connect_args": {"timeout": 120}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    try:
        warnings.filterwarnings("ignore", message=".*heartbeat_interval.*", category=optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url,
            engine_kwargs=engine,
            heartbeat_interval=heartbeat,
            grace_period=4 * heartbeat,
            heartbeat_stale_trial_callback=requeue_stale,
        )
    except ImportError as error:  # the database's driver (Optuna re-raises SQLAlchemy's ModuleNotFoundError)
        missing = error if isinstance(error, ModuleNotFoundError) else error.__cause__
        name = getattr(missing, "name", None) or "for this database"
        hint = {"psycopg": " (pip install 'polydistill[postgres]')", "psycopg2": " (or write postgresql:// for psycopg 3)"}.get(name, "")
        raise PolydistillError(f"--storage {redacted(url)}: the database driver {name} is not installed{hint}") from None
    except Exception as error:  # sqlalchemy's errors (refused connection, bad URL) name the cause
        raise PolydistillError(f"--storage {redacted(url)}: cannot open the study storage: {type(error).__name__}: {error}") from None


def open_study(storage: Any, name: str, search: SearchConfig, *, seed: int, create: bool) -> Any:
    """The study ``name`` (created when ``create`` and missing). A study made for another space or
    other objectives is refused: its trials would not be comparable."""
    import optuna

    space = {path: dimension.model_dump(mode="json") for path, dimension in search.space.items()}
    recorded = {"space": space, "optimize": list(search.optimize)}
    try:
        study = optuna.load_study(study_name=name, storage=storage, sampler=_sampler(search, seed), pruner=_pruner(search))
    except KeyError:
        if not create:
            raise PolydistillError(f"--study {name}: no such study in the storage; start it with polydistill search first") from None
        study = optuna.create_study(
            study_name=name,
            storage=storage,
            directions=search.directions,
            sampler=_sampler(search, seed),
            pruner=_pruner(search),
            load_if_exists=True,
        )
        study.set_user_attr(SPACE_ATTR, recorded)
    existing = study.user_attrs.get(SPACE_ATTR)
    if existing is not None and existing != recorded:
        raise ConfigError(
            f"study '{name}' was started with another search space or objectives ({existing}); "
            "expected the same search section, or a new study (--study NAME)"
        )
    return study


def _sampler(search: SearchConfig, seed: int) -> Any:
    import optuna

    name = search.sampler_name
    if name == "tpe":
        # a few random trials first; constant_liar keeps parallel workers from sampling the same point
        startup = max(3, min(10, search.trials // 4))
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, multivariate=True, constant_liar=True)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(4, min(50, search.trials // 4)))
    # grid: every point is queued with its values fixed (queue_trials); nothing is left to sample
    return optuna.samplers.RandomSampler(seed=seed)


def _pruner(search: SearchConfig) -> Any:
    import optuna

    if search.pruner == "none" or len(search.optimize) > 1:
        return optuna.pruners.NopPruner()
    if search.pruner == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=max(2, min(5, search.trials // 4)), n_warmup_steps=0)


# --------------------------------------------------------------------------- the queue


def has_result(trial: Any) -> bool:
    """Whether a trial counts towards ``--trials``: it finished, was pruned, or failed for a reason of its own
    (an invalid sampled config, a diverged loss); not a trial lost with its worker."""
    from optuna.trial import TrialState

    return trial.state in (TrialState.COMPLETE, TrialState.PRUNED) or (trial.state == TrialState.FAIL and OUTCOME_ATTR in trial.user_attrs)


def outcome_of(trial: Any) -> str:
    """complete, pruned, invalid, diverged or failed (a result), interrupted (lost with its worker:
    a failed trial without an outcome of its own), or the state of a trial still to run."""
    from optuna.trial import TrialState

    if OUTCOME_ATTR in trial.user_attrs:
        return str(trial.user_attrs[OUTCOME_ATTR])
    return "interrupted" if trial.state == TrialState.FAIL else trial.state.name.lower()


def queue_trials(study: Any, search: SearchConfig, trials: int, baseline: dict[str, Any] | None = None) -> int:
    """Queue what the study lacks to reach ``trials`` results; how many were queued.

    ``baseline`` (the config's own values) goes first into a study without trials. A grid queues its
    remaining points (shuffled by the seed), at most all of them; other samplers queue empty trials,
    sampled when a worker takes them (so each sample sees every result so far).
    """
    from optuna.trial import TrialState

    reclaim_dead_workers(study)
    all_trials = study.get_trials(deepcopy=False)
    pending_states = (TrialState.WAITING, TrialState.RUNNING)
    pending = [t for t in all_trials if t.state in pending_states]
    missing = trials - sum(has_result(t) for t in all_trials) - len(pending)
    if missing <= 0:
        return 0
    if baseline is not None and not all_trials:
        study.enqueue_trial(baseline, user_attrs={BASELINE_ATTR: True})
        if missing == 1:
            return 1
        return 1 + queue_trials(study, search, trials)
    if all(isinstance(d, Choices) for d in search.space.values()) and search.sampler_name == "grid":
        taken = [t.system_attrs.get("fixed_params", t.params) for t in all_trials if has_result(t) or t.state in pending_states]
        grid = grid_points(search.space, search.seed)
        remaining = [point for point in grid if point not in taken]
        if len(remaining) < missing:
            console.print(
                f"[bold]Grid[/] of {len(grid)} points: the {len(remaining)} not run yet are queued (the study asks for {missing} more)"
            )
        for point in remaining[:missing]:
            study.enqueue_trial(point)
        return min(missing, len(remaining))
    for _ in range(missing):
        study.enqueue_trial({})
    return missing


def take_trial(study: Any) -> Any | None:
    """The next queued trial, now RUNNING for this worker alone; None when the queue is empty."""
    import optuna
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    storage = study._storage
    for waiting in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        try:
            # the storage's compare-and-set: False when another worker took it first
            if not storage.set_trial_state_values(waiting._trial_id, state=TrialState.RUNNING):
                continue
        except UpdateFinishedTrialError:
            continue
        storage.set_trial_user_attr(waiting._trial_id, WORKER_ATTR, this_worker())
        return optuna.Trial(study, waiting._trial_id)
    return None


def fail_interrupted(study: Any, trial_id: int, why: str) -> None:
    """Fail a RUNNING trial whose worker is gone (or was stopped) and queue its parameters again, at
    most :data:`MAX_RETRIES` times; after that it counts as a failed trial. The storage's
    compare-and-set makes this happen once when several workers notice the same dead one."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    storage = study._storage
    trial = storage.get_trial(trial_id)
    retries = int(trial.user_attrs.get("retries", 0))
    try:  # attributes first: a finished trial takes none
        storage.set_trial_user_attr(trial_id, INTERRUPTED_ATTR, why)
        if retries >= MAX_RETRIES:
            storage.set_trial_user_attr(trial_id, OUTCOME_ATTR, "failed")
            storage.set_trial_user_attr(trial_id, ERROR_ATTR, f"interrupted {retries + 1} times with these parameters")
        if not storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
            return
    except UpdateFinishedTrialError:
        return  # another worker reclaimed it first
    if retries < MAX_RETRIES:
        _queue_again(study, storage.get_trial(trial_id), why)


def requeue_stale(study: Any, trial: Any) -> None:
    """Optuna's callback for a trial it failed because its heartbeat went silent: queue it again."""
    retries = int(trial.user_attrs.get("retries", 0))
    if retries < MAX_RETRIES:
        _queue_again(study, trial, "its worker stopped sending heartbeats")


def _queue_again(study: Any, trial: Any, why: str) -> None:
    # the parameters it ran with (sampled ones included), else the ones it was queued with
    params = trial.params or trial.system_attrs.get("fixed_params", {})
    retries = int(trial.user_attrs.get("retries", 0)) + 1
    study.enqueue_trial(params, user_attrs={RETRY_ATTR: trial.number, "retries": retries, "retry_reason": why})
    console.print(f"[yellow]Trial {trial.number}[/] was interrupted ({why}); queued again")


def reclaim_dead_workers(study: Any) -> None:
    """Fail and requeue the RUNNING trials of workers that are gone: on this machine, a process that no
    longer exists; elsewhere, a heartbeat silent for its grace period (RDB storages)."""
    import optuna
    from optuna.trial import TrialState

    host = socket.gethostname()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker_host, _, pid = str(trial.user_attrs.get(WORKER_ATTR, "")).rpartition(":")
        if worker_host != host or not pid.isdigit() or _alive(int(pid)):
            continue
        fail_interrupted(study, trial._trial_id, f"its worker (process {pid}) ended without finishing it")
    with warnings.catch_warnings():  # experimental since Optuna 2.9, and what every heartbeat-keeping worker calls
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie (a worker this process started and has not reaped yet) is dead too
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][:1] != "Z"
    return True


@contextlib.contextmanager
def heartbeat(study: Any, trial: Any, interval: int) -> Iterator[None]:
    """Record the trial's heartbeat every ``interval`` seconds while it runs (storages that keep one)."""
    from optuna.storages._heartbeat import BaseHeartbeat  # the storages that keep heartbeats (RDB)

    storage = study._storage
    if not isinstance(storage, BaseHeartbeat) or storage.get_heartbeat_interval() is None:
        yield
        return
    stop = threading.Event()

    def beat() -> None:
        while True:
            with contextlib.suppress(Exception):  # a missed beat is retried; the trial must not die of it
                storage.record_heartbeat(trial._trial_id)
            if stop.wait(interval):
                return

    thread = threading.Thread(target=beat, name=f"heartbeat-{trial.number}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
