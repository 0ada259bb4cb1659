"""Train a prepared student against its teacher and save it: the step a run and a re-distillation after pruning share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from polydistill.atomic import atomic_directory
from polydistill.config import RunConfig
from polydistill.data.sources import teacher_text_column
from polydistill.tasks import Task, TaskData
from polydistill.training.arguments import training_arguments
from polydistill.training.checkpoints import CHECKPOINTS_DIRNAME
from polydistill.training.features import DistillationCollator, tokenize_for_distillation
from polydistill.training.guard import NonFiniteGuard, check_finite_weights
from polydistill.training.student_setup import PreparedStudent
from polydistill.training.teacher_cache import cached_teacher
from polydistill.training.trainer import DISTILLATION_HEADS_FILE, DistillationTrainer


def distil(
    config: RunConfig,
    task: Task,
    teacher: Any,
    teacher_tokenizer: Any,
    prepared: PreparedStudent,
    data: TaskData,
    *,
    work_dir: Path,
    student_dir: Path,
    training: dict[str, Any] | None = None,
    resume_from: Path | None = None,
    callbacks: list[Any] | None = None,
) -> dict[str, float]:
    """Train ``prepared.model`` with its objectives, save it as the task saves students; the train metrics.

    Checkpoints go to ``work_dir/checkpoints`` (``resume_from`` names one to continue from) and the
    objectives' learned heads (projections) to ``work_dir/distillation_heads.safetensors``.
    ``training`` replaces the config's training arguments (a re-distillation's own). A loss or
    gradient that stops being finite raises :class:`~polydistill.training.guard.TrainingDiverged`
    before anything is saved (:mod:`polydistill.training.guard`). ``callbacks`` join the Trainer's.
    """
    student, tokenizer = prepared.model, prepared.tokenizer
    tokenize: dict[str, Any] = dict(
        teacher_tokenizer=teacher_tokenizer,
        max_length=config.data.max_length,
        prefix=config.student_prefix,
        teacher_prefix=config.teacher.prefix,
    )
    train_features = tokenize_for_distillation(data.train, tokenizer, teacher_text_column=teacher_text_column(data.train), **tokenize)
    eval_features = None
    if data.evaluation is not None:
        eval_features = tokenize_for_distillation(
            data.evaluation, tokenizer, teacher_text_column=teacher_text_column(data.evaluation), **tokenize
        )
    overrides = config.training if training is None else training
    checkpoints = work_dir / CHECKPOINTS_DIRNAME
    arguments = training_arguments(config, checkpoints, overrides)
    teacher_cache = None
    if config.teacher.cache:
        teacher_cache, train_features = cached_teacher(
            config, task, teacher, teacher_tokenizer, tokenizer, train_features, prepared.objectives, arguments
        )
    trainer = DistillationTrainer(
        model=student,
        args=arguments,
        teacher=teacher,
        objectives=prepared.objectives,
        language_alpha=config.data.balance_alpha,
        source_shares=config.data.source_shares,
        teacher_cache=teacher_cache,
        guard=NonFiniteGuard(max_skipped_steps=int(overrides.get("max_nonfinite_steps", 0)), checkpoints_dir=checkpoints),
        train_dataset=train_features,
        eval_dataset=eval_features,
        data_collator=DistillationCollator(tokenizer, teacher_tokenizer),
        processing_class=tokenizer,
        callbacks=callbacks,
    )
    train_output = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    check_finite_weights(student, "the trained student")

    if trainer.is_world_process_zero():
        # all of the student or none of it: a failed save never leaves a directory that loads half
        with atomic_directory(student_dir) as staging:
            task.save_student(config, student, tokenizer, staging)
        heads = trainer._objective_state()
        if heads:
            from safetensors.torch import save_file

            save_file(heads, str(work_dir / DISTILLATION_HEADS_FILE))
    metrics = dict(train_output.metrics)
    if trainer.guard.skipped:
        metrics["nonfinite_steps_skipped"] = len(trainer.guard.skipped)
    return metrics
