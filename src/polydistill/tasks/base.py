"""The task protocol: everything that differs between one kind of run and another.

A run (:mod:`polydistill.training.run`) is one flow for every task: resolve the teacher, read the
data, build and distil the student, save it, evaluate it. What a task decides is behind
:class:`Task`: how its data are read from sources, which head the models are loaded with, which
teacher outputs are always cached, how the student is saved, how it is evaluated, and the model
card's pipeline tag. A new task is one module in :mod:`polydistill.tasks` with a class decorated
by :func:`register_task`; nothing else changes.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

if TYPE_CHECKING:
    from polydistill.compress.probes import QualityProbe
    from polydistill.config import DataSourceConfig, RunConfig


@dataclass
class EvaluationSet:
    """One source of ``data.eval``, read: scored and reported on its own (``eval_sets`` of metrics.json)."""

    #: what reports call it (the source's ``name``, or the one derived from its path)
    name: str
    #: the config field that gives it (``data.eval`` or ``data.eval.<i>``)
    field: str
    #: the source as the config wrote it (``catalogs:sphinx``, ``data/legal.jsonl``, with its split)
    source: str
    dataset: Any


@dataclass
class TaskData:
    """A run's data, read from its sources into the task's canonical columns."""

    train: Any
    #: the primary test set (the first of ``data.eval``): what the top-level figures, the verdict,
    #: the noise and efficiency measurements and the compression checks use
    evaluation: Any | None
    #: the classes, for tasks that have them (the teacher's order)
    label_names: list[str] | None = None
    #: every evaluation set, the primary (``evaluation``) first, each reported separately
    evaluation_sets: list[EvaluationSet] = dataclass_field(default_factory=list)


def read_evaluation_sets(
    config: RunConfig, read: Callable[[DataSourceConfig, list[str] | None], Any], label_names: list[str] | None = None
) -> list[EvaluationSet]:
    """Every source of ``data.eval`` read on its own with ``read(source, label_names)``, in the config's order.

    Without ``label_names``, the first set with named classes fixes their ids for the ones after
    it (as :func:`~polydistill.data.sources.read_sources` does), so a label means the same in every set.
    """
    from polydistill.data.columns import dataset_label_names

    sets = []
    for field_name, name, source in config.data.named_eval_sources:
        dataset = read(source, label_names)
        label_names = label_names or dataset_label_names(dataset)
        described = source.path if source.split is None else f"{source.path} (split {source.split})"
        sets.append(EvaluationSet(name, field_name, described, dataset))
    return sets


@dataclass
class TrainedModels:
    """What evaluation compares: the teacher as it taught, the student as it was saved."""

    teacher: Any
    teacher_tokenizer: Any
    teacher_dir: Path
    student: Any
    tokenizer: Any
    student_dir: Path


class Task(Protocol):
    #: the name a run config's ``task`` gives
    name: ClassVar[str]
    #: the Hugging Face pipeline tag of the saved student (its model card)
    pipeline_tag: ClassVar[str]
    #: objectives used when the config has no ``objectives`` section: name -> its section
    default_objectives: ClassVar[Mapping[str, Mapping[str, Any]]]
    #: teacher outputs the teacher-output cache always stores for this task (``logits``, ``embeddings``)
    cached_outputs: ClassVar[frozenset[str]]

    def check_config(self, config: RunConfig) -> Iterable[tuple[str, str]]:
        """(dotted field, problem) for every setting this task cannot honour."""
        ...

    def read_data(self, config: RunConfig, *, tokenizer: Any, teacher_config: Any) -> TaskData: ...

    def prepare_teacher(self, config: RunConfig, teacher_dir: Path, output_dir: Path, data: TaskData) -> Path:
        """The directory of the teacher that will teach (fine-tuned first where the config asks)."""
        ...

    def load_teacher(self, config: RunConfig, teacher_dir: Path, data: TaskData, *, eager_attention: bool) -> Any: ...

    def load_student_base(self, config: RunConfig, base_dir: Path, data: TaskData, teacher: Any, *, eager_attention: bool) -> Any:
        """The model named by ``student.model``, in this task's head, before layers are dropped."""
        ...

    def save_student(self, config: RunConfig, student: Any, tokenizer: Any, directory: Path) -> None: ...

    def evaluate(
        self, config: RunConfig, output_dir: Path, models: TrainedModels, evaluation: Any, evaluation_sets: Sequence[EvaluationSet] = ()
    ) -> dict[str, Any]:
        """Per-language quality of teacher and student on ``evaluation`` (the primary test set), their size and
        speed, and per-language quality on every one of ``evaluation_sets`` (``eval_sets``, the primary first);
        writes metrics.json and the report."""
        ...

    def load_saved_student(self, config: RunConfig, directory: Path) -> tuple[Any, Any]:
        """(model, tokenizer) of a student this task saved, for compressing it."""
        ...

    def quality_probe(self, config: RunConfig, evaluation: Any, label_names: list[str] | None) -> QualityProbe:
        """The per-language primary metric of any compression stage on ``evaluation`` (polydistill.compress.probes)."""
        ...


_TASKS: dict[str, type[Task]] = {}
_TaskClass = TypeVar("_TaskClass", bound=type[Task])


def register_task(task: _TaskClass) -> _TaskClass:
    """Class decorator: make a task available to run configs under ``task.name``."""
    if task.name in _TASKS and _TASKS[task.name] is not task:
        raise ValueError(f"two tasks are registered as '{task.name}'")
    _TASKS[task.name] = task
    return task


@cache
def _discover() -> None:
    import polydistill.tasks as package

    for module in pkgutil.iter_modules(package.__path__):
        if module.name != "base":
            importlib.import_module(f"{package.__name__}.{module.name}")


def task_names() -> list[str]:
    _discover()
    return sorted(_TASKS)


def get_task(name: str) -> Task:
    _discover()
    if name not in _TASKS:
        raise KeyError(f"unknown task '{name}'; expected one of: {', '.join(sorted(_TASKS))}")
    return _TASKS[name]()
