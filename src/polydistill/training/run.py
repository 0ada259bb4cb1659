"""One run, end to end, the same for every task: config -> teacher -> data -> student -> distillation -> saved, evaluated student.

What differs between tasks is asked of the run's :class:`~polydistill.tasks.base.Task`; this
module only strings the steps together, in the order of the one flow (docs/architecture.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from polydistill.compress.pipeline import Teacher
from polydistill.config import RunConfig, check_against_teacher
from polydistill.console import console
from polydistill.evaluation.model_card import write_model_card
from polydistill.models.loading import load_tokenizer
from polydistill.models.zoo import resolve_model_path
from polydistill.tasks import Task, TaskData, TrainedModels, get_task
from polydistill.training.distil import distil
from polydistill.training.provenance import write_run_record
from polydistill.training.student_setup import prepare_student


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
    prepared = prepare_student(config, base, tokenizer, teacher, output_dir, train=data.train)
    student, tokenizer = prepared.model, prepared.tokenizer
    student_dir = output_dir / "student"
    train_metrics = distil(config, task, teacher, teacher_tokenizer, prepared, data, work_dir=output_dir, student_dir=student_dir)
    (output_dir / "train_metrics.json").write_text(json.dumps(train_metrics, indent=2))
    result = RunResult(output_dir, student_dir, train_metrics)
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
        if config.compress is not None:
            compress_run(config, task, result, data, Teacher(teacher, teacher_tokenizer, teacher_dir), prepared.layer_maps)
    return result


def compress_run(config: RunConfig, task: Task, result: RunResult, data: TaskData, teacher: Teacher, layer_maps) -> None:
    """The config's ``compress`` section on the run's student; its ladder joins metrics.json and the report."""
    from polydistill.compress.pipeline import compress_student, raise_for_failed_checks
    from polydistill.evaluation.evaluate import METRICS_FILENAME, write_metrics
    from polydistill.evaluation.report import write_report

    document = compress_student(
        config, task, student_dir=result.student_dir, output_dir=result.output_dir, data=data, teacher=teacher, layer_maps=layer_maps
    )
    assert result.metrics is not None
    result.metrics["compression"] = document
    write_metrics(result.output_dir / METRICS_FILENAME, result.metrics)
    write_report(result.output_dir)
    console.print(f"[bold green]Compression ladder[/] in {result.output_dir / 'report.html'}")
    raise_for_failed_checks(document)


def student_layer_count(config: RunConfig, base_layers: int) -> int:
    keep = config.student.keep_layers
    if keep is None:
        return base_layers
    return keep if isinstance(keep, int) else len(keep)
