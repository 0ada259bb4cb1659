"""One run, end to end, the same for every task: config -> teacher -> data -> student -> distillation -> saved, evaluated student.

What differs between tasks is asked of the run's :class:`~polydistill.tasks.base.Task`; this
module only strings the steps together, in the order of the one flow (docs/architecture.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from polydistill.atomic import atomic_directory
from polydistill.config import RunConfig, check_against_teacher
from polydistill.console import console
from polydistill.data.sources import teacher_text_column
from polydistill.evaluation.model_card import write_model_card
from polydistill.models.loading import load_tokenizer
from polydistill.models.zoo import resolve_model_path
from polydistill.tasks import Task, TaskData, TrainedModels, get_task
from polydistill.training.arguments import training_arguments
from polydistill.training.features import DistillationCollator, tokenize_for_distillation
from polydistill.training.provenance import write_run_record
from polydistill.training.student_setup import prepare_student
from polydistill.training.teacher_cache import cached_teacher
from polydistill.training.trainer import DISTILLATION_HEADS_FILE, DistillationTrainer


@dataclass
class RunResult:
    output_dir: Path
    student_dir: Path
    train_metrics: dict[str, float]
    #: the metrics.json document, when the run had evaluation data
    metrics: dict[str, Any] | None = None


def run(config: RunConfig, output_dir: str | Path | None = None) -> RunResult:
    from transformers import AutoConfig, set_seed

    task = get_task(config.task)
    output_dir = Path(output_dir or config.output_dir)
    set_seed(config.seed)

    console.print(f"[bold]Teacher[/] {config.teacher.model}")
    base_teacher_dir = resolve_model_path(config.teacher.model, revision=config.teacher.revision)
    trust = config.teacher.trust_remote_code
    teacher_config = AutoConfig.from_pretrained(base_teacher_dir, trust_remote_code=trust)
    base_dir = resolve_model_path(config.student.model) if config.student.model else base_teacher_dir
    base_layers = (AutoConfig.from_pretrained(base_dir) if config.student.model else teacher_config).num_hidden_layers
    check_against_teacher(config, teacher_config.num_hidden_layers, student_layer_count(config, base_layers), base_layers)

    teacher_tokenizer = load_tokenizer(base_teacher_dir, trust)
    data = task.read_data(config, tokenizer=teacher_tokenizer, teacher_config=teacher_config)
    teacher_dir = task.prepare_teacher(config, base_teacher_dir, output_dir, data)
    write_run_record(config, output_dir, teacher_dir=teacher_dir, base_teacher_dir=base_teacher_dir)
    eager = config.objectives.needs_attention_weights
    teacher = task.load_teacher(config, teacher_dir, data, eager_attention=eager)

    if config.student.model:
        base, tokenizer = task.load_student_base(config, base_dir, data, teacher, eager_attention=eager), load_tokenizer(base_dir)
    else:
        base, tokenizer = teacher, teacher_tokenizer
    result, student, tokenizer = distil(config, task, teacher, teacher_tokenizer, base, tokenizer, data, output_dir)
    console.print(f"[bold green]Student saved[/] to {result.student_dir}")
    if data.evaluation is not None:
        models = TrainedModels(teacher, teacher_tokenizer, teacher_dir, student, tokenizer, result.student_dir)
        result.metrics = task.evaluate(config, output_dir, models, data.evaluation)
        write_model_card(
            result.student_dir,
            result.metrics,
            teacher=config.teacher.model,
            data=config.data.train.path,
            languages=None,
            objectives={name: section.model_dump() for name, section in config.objectives.enabled()},
            pipeline_tag=task.pipeline_tag,
        )
        console.print(f"[bold green]Report[/] {output_dir / 'report.html'}")
    return result


def distil(config: RunConfig, task: Task, teacher, teacher_tokenizer, base, tokenizer, data: TaskData, output_dir: Path):
    """Build the student from ``base``, train it against ``teacher`` and save it as the task saves students."""
    prepared = prepare_student(config, base, tokenizer, teacher, output_dir)
    student, tokenizer = prepared.model, prepared.tokenizer
    tokenize = dict(
        teacher_tokenizer=teacher_tokenizer,
        max_length=config.data.max_length,
        prefix=config.student_prefix,
        teacher_prefix=config.teacher.prefix,
    )
    train_features = tokenize_for_distillation(
        data.train, tokenizer, teacher_text_column=teacher_text_column(config.data.train), **tokenize
    )
    eval_features = None
    if data.evaluation is not None:
        eval_features = tokenize_for_distillation(
            data.evaluation, tokenizer, teacher_text_column=teacher_text_column(config.data.eval), **tokenize
        )
    arguments = training_arguments(config, output_dir / "checkpoints", config.training)
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
        teacher_cache=teacher_cache,
        train_dataset=train_features,
        eval_dataset=eval_features,
        data_collator=DistillationCollator(tokenizer, teacher_tokenizer),
        processing_class=tokenizer,
    )
    train_output = trainer.train()

    student_dir = output_dir / "student"
    if trainer.is_world_process_zero():
        # all of the student or none of it: a failed save never leaves a directory that loads half
        with atomic_directory(student_dir) as staging:
            task.save_student(config, student, tokenizer, staging)
        heads = trainer._objective_state()
        if heads:
            from safetensors.torch import save_file

            save_file(heads, str(output_dir / DISTILLATION_HEADS_FILE))
    (output_dir / "train_metrics.json").write_text(json.dumps(train_output.metrics, indent=2))
    return RunResult(output_dir, student_dir, train_output.metrics), student, tokenizer


def student_layer_count(config: RunConfig, base_layers: int) -> int:
    keep = config.student.keep_layers
    if keep is None:
        return base_layers
    return keep if isinstance(keep, int) else len(keep)
