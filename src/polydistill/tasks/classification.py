"""Sequence classification: labelled (or unlabelled) text in, a classifier student out.

The teacher is a classifier with a trained head, or an encoder that ``teacher.finetune`` first
teaches the task; its label names fix the classes' order for every source. The student is saved
as a Hugging Face directory that ``pipeline("text-classification", model=...)`` loads, and
evaluated per language by accuracy and macro precision, recall and F1 beside the teacher. An
evaluation source after the first may lack gold labels (text of another domain, which the task's
classes do not label): it is scored against the teacher's predictions instead, per language, by
the student's agreement with them (``"reference": "teacher"`` in metrics.json).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from polydistill.compress.probes import ClassificationProbe
from polydistill.config_yaml import config_location
from polydistill.console import console
from polydistill.data.columns import language_column
from polydistill.data.sources import read_labelled, read_sources, require_gold_labels, teacher_text_column, with_source_rows
from polydistill.errors import ConfigError
from polydistill.evaluation.efficiency import settings_for
from polydistill.evaluation.evaluate import dataset_label_names, evaluate_run
from polydistill.models.loading import classifier_label_names, load_classifier, load_tokenizer, save_model_dir
from polydistill.tasks.base import EvaluationSet, TaskData, TrainedModels, read_evaluation_sets, register_task
from polydistill.training.finetune import FINETUNED_TEACHER_DIRNAME, finetune_teacher
from polydistill.training.provenance import run_summary

if TYPE_CHECKING:
    from polydistill.config import RunConfig


@register_task
class Classification:
    name: ClassVar[str] = "classification"
    pipeline_tag: ClassVar[str] = "text-classification"
    default_objectives: ClassVar[Mapping[str, Mapping[str, Any]]] = {"soft_targets": {}}
    cached_outputs: ClassVar[frozenset[str]] = frozenset({"logits"})

    def check_config(self, config: RunConfig) -> Iterable[tuple[str, str]]:
        return ()

    def read_data(self, config: RunConfig, *, tokenizer: Any, teacher_config: Any) -> TaskData:
        require_gold_labels(config)  # a labels objective or teacher.finetune on unlabelled data
        # a teacher still to be fine-tuned has no classes yet: the training data name them
        label_names = classifier_label_names(teacher_config) if not config.teacher.finetune else None
        train = read_sources(
            config.data.train_sources,
            lambda source, names: with_source_rows(read_labelled(source, config, tokenizer=tokenizer, label_names=names), source),
            label_names,
        )
        label_names = label_names or dataset_label_names(train)
        # each test set on its own, with the training data's classes: a label means the same in every set
        sets = read_evaluation_sets(
            config, lambda source, names: read_labelled(source, config, tokenizer=tokenizer, label_names=names), label_names
        )
        if sets and "label" not in sets[0].dataset.column_names:
            _refuse_unlabelled_primary(config, sets[0])
        if config.teacher.finetune is not None:  # read (again, when fine-tuning) now: its errors come before a run writes anything
            read_labelled(config.teacher.finetune.data, config, tokenizer=tokenizer, label_names=label_names)
        return TaskData(train, sets[0].dataset if sets else None, label_names, sets)

    def prepare_teacher(self, config: RunConfig, teacher_dir: Path, output_dir: Path, data: TaskData) -> Path:
        if config.teacher.finetune is None:
            return teacher_dir
        return finetune_teacher(config, teacher_dir, output_dir / FINETUNED_TEACHER_DIRNAME, label_names=data.label_names)

    def load_teacher(self, config: RunConfig, teacher_dir: Path, data: TaskData, *, eager_attention: bool) -> Any:
        teacher, fresh_head = load_classifier(
            teacher_dir, label_names=data.label_names, eager_attention=eager_attention, trust_remote_code=config.teacher.trust_remote_code
        )
        if fresh_head:
            raise ConfigError(
                f"{config.source_file or 'config'}: teacher.model: '{config.teacher.model}' has no trained "
                "classification head for this task; add a teacher.finetune section or give a fine-tuned classifier"
            )
        return teacher

    def load_student_base(self, config: RunConfig, base_dir: Path, data: TaskData, teacher: Any, *, eager_attention: bool) -> Any:
        label_names = data.label_names or classifier_label_names(teacher.config)
        return load_classifier(base_dir, label_names=label_names, eager_attention=eager_attention)[0]

    def save_student(self, config: RunConfig, student: Any, tokenizer: Any, directory: Path) -> None:
        save_model_dir(student, tokenizer, directory)

    def evaluate(
        self, config: RunConfig, output_dir: Path, models: TrainedModels, evaluation: Any, evaluation_sets: Sequence[EvaluationSet] = ()
    ) -> dict[str, Any]:
        from polydistill.evaluation.noise import NoiseSettings

        assert config.data.eval is not None  # evaluation data are read from data.eval only
        console.print("[bold]Evaluating[/] teacher and student per language")
        models.student.eval()
        return evaluate_run(
            output_dir,
            student=models.student,
            tokenizer=models.tokenizer,
            dataset=evaluation,
            teacher=models.teacher,
            teacher_tokenizer=models.teacher_tokenizer,
            student_dir=models.student_dir,
            teacher_dir=models.teacher_dir,
            config=run_summary(config),
            batch_size=config.evaluation.batch_size,
            max_length=config.data.max_length,
            efficiency=settings_for(config.evaluation.efficiency, max_length=config.data.max_length),
            noise=None if config.evaluation.noise is None else NoiseSettings(**config.evaluation.noise.model_dump()),
            teacher_text_column=teacher_text_column(evaluation),
            evaluation_sets=evaluation_sets,
        )

    def load_saved_student(self, config: RunConfig, directory: Path) -> tuple[Any, Any]:
        return load_classifier(directory)[0], load_tokenizer(directory)

    def quality_probe(self, config: RunConfig, evaluation: Any, label_names: list[str] | None) -> ClassificationProbe:
        texts = [str(text) for text in evaluation["text"]]
        teacher_column = teacher_text_column(evaluation)
        return ClassificationProbe(
            texts=texts,
            teacher_texts=[str(text) for text in evaluation[teacher_column]] if teacher_column else texts,
            gold=np.asarray(evaluation["label"], dtype=np.int64),
            languages=language_column(evaluation),
            label_names=dataset_label_names(evaluation) or label_names,
            max_length=config.data.max_length,
            batch_size=config.evaluation.batch_size,
        )


def _refuse_unlabelled_primary(config: RunConfig, primary: EvaluationSet) -> None:
    """The first evaluation source is the primary test set: the verdict, the per-language table, the noise
    scores and the compression checks score the student against its gold labels. Text without labels is
    scored against the teacher's predictions, and only as a later ``data.eval`` source."""
    raise ConfigError(
        f"{config_location(config, f'{primary.field}.path')}: {primary.field}: '{primary.source}' has no gold labels, but the "
        "first evaluation source is the primary test set, which the verdict, the per-language table and the compression checks "
        "score against gold labels; expected a labelled source first (text without labels is scored against the teacher's "
        "predictions as a later source of data.eval)"
    )
