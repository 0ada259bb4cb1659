"""How a trial scores its student: the primary metric per language on the first eval set, during and after training.

The score comes from the task's quality probe (:mod:`polydistill.compress.probes`), the student
alone: a trial never runs the teacher on the eval set (the best trial's full report, teacher
beside student, is written once at the end of the study). During training the scorer reports
to Optuna each epoch or every N steps, so the study's pruner can stop a trial that falls behind.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

from transformers import TrainerCallback

from polydistill.console import console
from polydistill.search.config import SearchConfig


@dataclass
class Score:
    """One evaluation of a student: its primary metric per language, their mean and worst."""

    step: int
    languages: dict[str, float]
    #: what else the trial optimises, measured on the trained student: latency (ms, batch 1), size (parameters)
    measures: dict[str, float] = field(default_factory=dict)

    @property
    def mean(self) -> float:
        return sum(self.languages.values()) / len(self.languages)

    @property
    def worst(self) -> float:
        return min(self.languages.values())

    def value(self, objective: str) -> float:
        return self.mean if objective == "mean" else self.worst


def quality_objective(search: SearchConfig) -> str:
    """The quality objective the pruner watches: the first of mean/worst that ``optimize`` lists."""
    return next(name for name in search.optimize if name in ("mean", "worst"))


@dataclass
class TrialScorer(TrainerCallback):
    """A Trainer callback that scores the student on ``probe`` and reports to ``trial``.

    ``prune``: ask the study's pruner after each report and raise :class:`optuna.TrialPruned`
    when it says stop (Optuna prunes single-objective studies only).
    """

    trial: Any
    probe: Any
    prefix: str
    search: SearchConfig
    prune: bool
    max_length: int = 128
    history: list[Score] = field(default_factory=list)
    final: Score | None = None
    seconds: float = 0.0

    def score(self, model: Any, tokenizer: Any, step: int) -> Score:
        started = time.perf_counter()
        was_training = model.training
        model.eval()
        try:
            outputs = self.probe.outputs(self.probe.torch_predict(model, tokenizer, prefix=self.prefix), "student")
            quality = self.probe.quality(outputs)
        finally:
            model.train(was_training)
        self.seconds += time.perf_counter() - started
        languages = {code: float(value) for code, value in quality.languages.items() if value is not None and math.isfinite(value)}
        if not languages:
            raise ValueError("the first eval set gives no finite score in any language")
        return Score(step, languages)

    def _report(self, args, state, kwargs) -> None:
        if not state.is_world_process_zero:
            return
        score = self.score(kwargs["model"], kwargs["processing_class"], state.global_step)
        self.history.append(score)
        objective = quality_objective(self.search)
        value = score.value(objective)
        console.print(f"[bold]Trial {self.trial.number}[/] step {state.global_step}: {objective} {self.probe.primary_metric} {value:.4f}")
        if len(self.search.optimize) > 1:
            return  # Optuna records intermediate values of single-objective studies only
        self.trial.report(value, state.global_step)
        if self.prune and self.trial.should_prune():
            import optuna

            raise optuna.TrialPruned(f"pruned at step {state.global_step}: {objective} {value:.4f}")

    def on_epoch_end(self, args, state, control, **kwargs):
        at_end = state.max_steps and state.global_step >= state.max_steps
        if self.search.report_every == "epoch" and not at_end:
            self._report(args, state, kwargs)

    def on_step_end(self, args, state, control, **kwargs):
        every = self.search.report_every
        if isinstance(every, int) and state.global_step % every == 0 and state.global_step < state.max_steps:
            self._report(args, state, kwargs)

    def on_train_end(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        model, tokenizer = kwargs["model"], kwargs["processing_class"]
        self.final = self.score(model, tokenizer, state.global_step)
        if "size" in self.search.optimize:
            from polydistill.evaluation.efficiency import count_parameters

            self.final.measures["size"] = float(count_parameters(model)[0])
        if "latency" in self.search.optimize:
            from polydistill.evaluation.efficiency import EfficiencySettings, median_latency_ms

            was_training = model.training
            model.eval()
            settings = EfficiencySettings.quick(max_length=self.max_length, repeats=30)
            self.final.measures["latency"] = median_latency_ms(model, tokenizer, self.probe.texts_for("student"), settings)
            model.train(was_training)
