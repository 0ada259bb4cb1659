"""One trial of a study: the base config with the sampled values, run, scored and told to Optuna.

A trial is a normal run (:func:`polydistill.training.run.run`) into ``OUT/trials/NNNN``, validated
like any config before it starts, with what a comparison of recipes does not need left out: no
compression ladder, no noise evaluation, no efficiency measurement, no teacher on the eval set
(the scorer scores the student alone, :mod:`polydistill.search.scoring`), no checkpoints (an
interrupted trial is queued again and starts over). It shares the run's
teacher-output cache and fine-tuned teacher with every other trial. Whatever a trial ends with
(complete, pruned, an invalid sampled config, a diverged loss, an error) is recorded in the
study and in ``trial.json``; none of it stops the study.
"""

from __future__ import annotations

import json
import shutil
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polydistill.atomic import atomic_write_text
from polydistill.config import RunConfig, validate_config
from polydistill.console import console
from polydistill.errors import PolydistillError
from polydistill.search.config import SearchConfig
from polydistill.search.scoring import TrialScorer
from polydistill.search.space import suggest, trial_raw_config
from polydistill.search.study import ERROR_ATTR, OUTCOME_ATTR
from polydistill.training.guard import TrainingDiverged
from polydistill.training.resume import STUDENT_DIRNAME

TRIALS_DIRNAME = "trials"
TRIAL_RECORD = "trial.json"


@dataclass
class SearchSetup:
    """What every trial of a study starts from: the validated base config, its YAML mapping, the output directory."""

    config: RunConfig
    base: dict[str, Any]
    out: Path
    #: extra Trainer callbacks for every trial (tests count the teacher's forward passes with them)
    extra_callbacks: list[Any] = field(default_factory=list)

    @property
    def search(self) -> SearchConfig:
        assert self.config.search is not None
        return self.config.search

    def trial_dir(self, number: int) -> Path:
        return self.out / TRIALS_DIRNAME / f"{number:04d}"


def full_config(setup: SearchSetup, params: dict[str, Any], output_dir: Path) -> RunConfig:
    """The base config with ``params`` set, as ``polydistill run`` would run it (the best trial's best.yaml)."""
    raw = trial_raw_config(setup.base, params)
    raw["output_dir"] = str(output_dir)
    return validate_config(raw, source_file=setup.config.source_file, source_text=setup.config.source_text)


def trial_config(setup: SearchSetup, params: dict[str, Any], output_dir: Path) -> RunConfig:
    """The run a trial makes: the full config without compression, noise or efficiency measurements."""
    raw = trial_raw_config(setup.base, params)
    raw["output_dir"] = str(output_dir)
    raw["compress"] = None
    evaluation = raw.setdefault("evaluation", {}) if isinstance(raw.get("evaluation"), dict | type(None)) else {}
    raw["evaluation"] = {**(evaluation or {}), "noise": None, "efficiency": "off"}
    if isinstance(raw.get("training"), dict | type(None)):  # an interrupted trial is run again from the start: no checkpoints
        raw["training"] = {**(raw.get("training") or {}), "save_strategy": "no"}
    return validate_config(raw, source_file=setup.config.source_file, source_text=setup.config.source_text)


def run_trial(setup: SearchSetup, study: Any, trial: Any) -> None:
    """Run ``trial`` (already RUNNING for this worker) and tell the study how it ended."""
    import optuna
    from optuna.trial import TrialState

    from polydistill.training.provenance import update_run_record
    from polydistill.training.run import run

    trial_dir = setup.trial_dir(trial.number)
    trial.set_user_attr("trial_dir", str(trial_dir))
    params = suggest(trial, setup.search.space)
    shown = ", ".join(f"{name}={json.dumps(value)}" for name, value in params.items())
    console.rule(f"Trial {trial.number}: {shown}")
    record: dict[str, Any] = {"number": trial.number, "params": params, "directory": str(trial_dir)}
    started = time.perf_counter()
    try:
        config = trial_config(setup, params, trial_dir)
    except PolydistillError as error:
        return _failed(study, trial, record, "invalid", error, started)
    scorers: list[TrialScorer] = []

    def callbacks(task, data) -> list[Any]:
        if data.evaluation is None:
            raise PolydistillError(f"{config.source_file or 'config'}: data.eval: a search scores every trial on it; set data.eval")
        probe = task.quality_probe(config, data.evaluation, data.label_names)
        scorers.append(TrialScorer(trial, probe, config.student_prefix, setup.search, prune=True, max_length=config.data.max_length))
        return [scorers[-1], *setup.extra_callbacks]

    try:
        run(config, trial_dir, callbacks=callbacks, evaluate=False)
    except optuna.TrialPruned as pruned:
        update_run_record(trial_dir, status="pruned", error=None)
        _remove_student(trial_dir)
        record |= _scored(scorers) | {"state": "PRUNED", OUTCOME_ATTR: "pruned", "reason": str(pruned)}
        _finish(study, trial, record, started, state=TrialState.PRUNED)
        return None
    except (TrainingDiverged, PolydistillError) as error:
        return _failed(study, trial, record, "diverged" if isinstance(error, TrainingDiverged) else "invalid", error, started)
    except Exception as error:  # a trial's own failure (a bug it hits, memory): recorded, the study goes on
        trial_dir.mkdir(parents=True, exist_ok=True)
        (trial_dir / "error.txt").write_text(traceback.format_exc(), encoding="utf-8")
        return _failed(study, trial, record, "failed", error, started)
    scored = _scored(scorers)
    final = scorers[-1].final
    assert final is not None  # on_train_end scores the trained student
    values = {name: final.measures[name] if name in final.measures else final.value(name) for name in setup.search.optimize}
    record |= scored | {"state": "COMPLETE", OUTCOME_ATTR: "complete", "values": values}
    _finish(study, trial, record, started, values=[values[name] for name in setup.search.optimize])
    return None


def _scored(scorers: list[TrialScorer]) -> dict[str, Any]:
    if not scorers:
        return {}
    scorer = scorers[-1]
    scored: dict[str, Any] = {
        "metric": scorer.probe.primary_metric,
        "history": [{"step": s.step, "mean": s.mean, "worst": s.worst} for s in scorer.history],
        "scoring_seconds": round(scorer.seconds, 2),
    }
    if scorer.final is not None:
        scored |= {
            "steps": scorer.final.step,
            "languages": scorer.final.languages,
            "mean": scorer.final.mean,
            "worst": scorer.final.worst,
            **scorer.final.measures,
        }
    return scored


def _failed(study: Any, trial: Any, record: dict[str, Any], outcome: str, error: BaseException, started: float) -> None:
    from optuna.trial import TrialState

    message = f"{type(error).__name__}: {error}" if outcome == "failed" else str(error)
    console.print(f"[red]Trial {trial.number}[/] {outcome}: {message}")
    trial.set_user_attr(ERROR_ATTR, message[:2000])
    record |= {"state": "FAIL", OUTCOME_ATTR: outcome, "error": message}
    _finish(study, trial, record, started, state=TrialState.FAIL)


def _finish(
    study: Any, trial: Any, record: dict[str, Any], started: float, *, values: list[float] | None = None, state: Any = None
) -> None:
    record["seconds"] = round(time.perf_counter() - started, 2)
    for key in (OUTCOME_ATTR, "seconds", "steps", "languages", "metric", "mean", "worst"):
        if key in record:
            trial.set_user_attr(key, record[key])
    directory = Path(record["directory"])
    directory.mkdir(parents=True, exist_ok=True)  # also for a trial refused before its run wrote anything
    atomic_write_text(directory / TRIAL_RECORD, json.dumps(record, indent=2) + "\n")
    study.tell(trial, values, state=state)
    if values is not None:
        shown = ", ".join(f"{name} {value:.4g}" for name, value in record["values"].items())
        console.print(f"[bold green]Trial {trial.number}[/] complete in {record['seconds']:.0f} s: {shown}")


def _remove_student(trial_dir: Path) -> None:
    shutil.rmtree(trial_dir / STUDENT_DIRNAME, ignore_errors=True)


def keep_best_students(study: Any, setup: SearchSetup) -> None:
    """Delete the student directories of complete trials that are not (or no longer) the best, unless
    ``search.keep_students``: a study of 20 trials keeps one student (or the Pareto front's)."""
    from optuna.trial import TrialState

    if setup.search.keep_students:
        return
    keep = {trial.number for trial in best_trials(study)}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if trial.number not in keep:
            _remove_student(setup.trial_dir(trial.number))


def best_trials(study: Any) -> list[Any]:
    """The best trial (one objective) or the Pareto front (several); [] before any trial completes."""
    from optuna.trial import TrialState

    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return []
    return list(study.best_trials) if len(study.directions) > 1 else [study.best_trial]
