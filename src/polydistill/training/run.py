"""One run, end to end, the same for every task: config -> teacher -> data -> student -> distillation -> saved, evaluated student.

What differs between tasks is asked of the run's :class:`~polydistill.tasks.base.Task`; this
module only strings the steps together, in the order of the one flow (docs/architecture.md).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from polydistill.atomic import atomic_write_text
from polydistill.compress.pipeline import Teacher
from polydistill.config import RunConfig, check_against_teacher, config_location
from polydistill.console import console
from polydistill.data.sources import is_builtin
from polydistill.errors import ConfigError, PolydistillError
from polydistill.evaluation.model_card import write_model_card
from polydistill.models.loading import load_model_config, load_tokenizer
from polydistill.models.zoo import resolve_model_path
from polydistill.output_dir import plan_output_dir
from polydistill.tasks import Task, TaskData, TrainedModels, get_task
from polydistill.training.arguments import check_training_runs
from polydistill.training.checkpoints import remove_rolling_checkpoints
from polydistill.training.distil import distil
from polydistill.training.finetune import carry_over_finetuned_teacher
from polydistill.training.provenance import training_data_description, update_run_record, write_run_record
from polydistill.training.resume import STUDENT_DIRNAME, ResumePoint, resume_point
from polydistill.training.student_setup import prepare_student


@dataclass
class RunResult:
    output_dir: Path
    student_dir: Path
    train_metrics: dict[str, float]
    #: the metrics.json document, when the run had evaluation data
    metrics: dict[str, Any] | None = None


#: given the run's task and data, the extra Trainer callbacks of its distillation (a search trial's reporter)
CallbackFactory = Callable[[Task, TaskData], list[Any]]


def run(
    config: RunConfig,
    output_dir: str | Path | None = None,
    *,
    overwrite: bool = False,
    resume: bool = False,
    callbacks: CallbackFactory | None = None,
    evaluate: bool = True,
) -> RunResult:
    """Run ``config`` into ``output_dir`` (default: the config's).

    A directory that holds anything is refused unless ``overwrite`` (it is moved aside first) or
    ``resume`` (the run it holds continues: :mod:`polydistill.training.resume`). Everything that can
    be checked without training is checked before the first file is written. ``callbacks`` adds
    Trainer callbacks to the distillation; ``evaluate=False`` stops after the student is saved (no
    report, model card or compression: a search trial scores its student itself).

    Under torchrun or ``accelerate launch`` every process trains; only the main one (rank 0)
    prepares the output directory, writes config.yaml, run.json and the metrics, saves, evaluates
    and compresses. The others return once training is done, with the student the main one saves.
    """
    from transformers import set_seed

    task = get_task(config.task)
    output_dir = Path(output_dir or config.output_dir)
    check_multi_process(config)
    main = is_main_process()
    plan = plan_output_dir(output_dir, overwrite=overwrite, resume=resume) if main else None
    point = resume_point(config, output_dir) if resume else None
    set_seed(config.seed)

    console.print(f"[bold]Teacher[/] {config.teacher.model}")
    trust = config.teacher.trust_remote_code
    base_teacher_dir, teacher_config = model_of(
        config, "teacher.model", config.teacher.model, revision=config.teacher.revision, trust=trust
    )
    base_dir, base_config = (
        model_of(config, "student.model", config.student.model) if config.student.model else (base_teacher_dir, teacher_config)
    )
    base_layers = base_config.num_hidden_layers
    check_against_teacher(config, teacher_config.num_hidden_layers, student_layer_count(config, base_layers), base_layers)
    check_prune_widths(config, base_config)
    check_training_runs(config, on_this_machine=True)  # a bf16 config on a machine without bf16, before anything is written

    teacher_tokenizer = load_tokenizer(base_teacher_dir, trust)
    check_max_length(config, teacher_config, teacher_tokenizer)
    data = task.read_data(config, tokenizer=teacher_tokenizer, teacher_config=teacher_config)

    previous = None
    if plan is not None:
        plan.refuse_moving(run_inputs(config, base_teacher_dir, base_dir))
        previous = plan.apply()  # the first write
    if previous is not None and config.teacher.finetune is not None:
        carry_over_finetuned_teacher(config, base_teacher_dir, previous, output_dir)
    if main:
        write_run_record(config, output_dir, teacher_dir=base_teacher_dir, base_teacher_dir=base_teacher_dir)
        update_run_record(output_dir, status="running", **({"resumed_from": str(point.checkpoint)} if point and point.checkpoint else {}))
    try:
        extra = callbacks(task, data) if callbacks is not None else []
        return _train_and_evaluate(
            config, task, output_dir, data, base_teacher_dir, base_dir, teacher_tokenizer, point, callbacks=extra, evaluate=evaluate
        )
    except BaseException as error:
        if main:
            update_run_record(output_dir, status="failed", error=f"{type(error).__name__}: {error}")
        raise


def _train_and_evaluate(
    config: RunConfig,
    task: Task,
    output_dir: Path,
    data: TaskData,
    base_teacher_dir: Path,
    base_dir: Path,
    teacher_tokenizer: Any,
    point: ResumePoint | None,
    *,
    callbacks: list[Any],
    evaluate: bool,
) -> RunResult:
    teacher_dir = task.prepare_teacher(config, base_teacher_dir, output_dir, data)
    if teacher_dir != base_teacher_dir and is_main_process():
        write_run_record(config, output_dir, teacher_dir=teacher_dir, base_teacher_dir=base_teacher_dir)
    eager = config.objectives.needs_attention_weights
    teacher = task.load_teacher(config, teacher_dir, data, eager_attention=eager)

    if config.student.model:
        base, tokenizer = task.load_student_base(config, base_dir, data, teacher, eager_attention=eager), load_tokenizer(base_dir)
    else:
        base, tokenizer = teacher, teacher_tokenizer
    prepared = prepare_student(config, base, tokenizer, teacher, output_dir, train=data.train)
    student, tokenizer = prepared.model, prepared.tokenizer
    student_dir = output_dir / STUDENT_DIRNAME
    metrics_path = output_dir / "train_metrics.json"
    if point is not None and point.student_saved:
        console.print(f"[bold]Resuming[/] after training: the student in {student_dir} was saved")
        student, tokenizer = task.load_saved_student(config, student_dir)
        train_metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    else:
        if point is not None:
            console.print(
                f"[bold]Resuming[/] from {point.checkpoint}"
                if point.checkpoint
                else "[bold]Resuming[/]: no checkpoint yet, training from the start"
            )
        resume_from = point.checkpoint if point is not None else None
        train_metrics = distil(
            config,
            task,
            teacher,
            teacher_tokenizer,
            prepared,
            data,
            work_dir=output_dir,
            student_dir=student_dir,
            resume_from=resume_from,
            callbacks=callbacks,
        )
        if not is_main_process():
            # the main process saves, records and evaluates; this one has done its share (training)
            return RunResult(output_dir, student_dir, train_metrics)
        atomic_write_text(metrics_path, json.dumps(train_metrics, indent=2))
        update_run_record(output_dir, status="trained")
        remove_rolling_checkpoints(output_dir, config.training)
    result = RunResult(output_dir, student_dir, train_metrics)
    if not is_main_process():
        return result  # resumed after training: the main process evaluates
    console.print(f"[bold green]Student saved[/] to {result.student_dir}")
    if data.evaluation is not None and evaluate:
        models = TrainedModels(teacher, teacher_tokenizer, teacher_dir, student, tokenizer, result.student_dir)
        result.metrics = evaluate_and_describe(config, task, output_dir, models, data)
        if config.compress is not None:
            compress_run(config, task, result, data, Teacher(teacher, teacher_tokenizer, teacher_dir), prepared.layer_maps)
    update_run_record(output_dir, status="finished", error=None)
    return result


def evaluate_and_describe(config: RunConfig, task: Task, output_dir: Path, models: TrainedModels, data: TaskData) -> dict[str, Any]:
    """Score the saved student beside its teacher on every eval set (metrics.json, the report) and
    write its model card; the metrics.json document."""
    metrics = task.evaluate(config, output_dir, models, data.evaluation, data.evaluation_sets)
    write_model_card(
        models.student_dir,
        metrics,
        teacher=config.teacher.model,
        data=training_data_description(config),
        languages=None,
        objectives={name: section.model_dump() for name, section in config.objectives.enabled()},
        pipeline_tag=task.pipeline_tag,
    )
    console.print(f"[bold green]Report[/] {output_dir / 'report.html'}")
    return metrics


def evaluate_saved_run(config: RunConfig, output_dir: Path) -> dict[str, Any]:
    """Evaluate the student a run without evaluation saved in ``output_dir`` (a search trial), as the
    run itself would have: the same teacher (the fine-tuned one reused), data and report."""
    task = get_task(config.task)
    trust = config.teacher.trust_remote_code
    base_teacher_dir, teacher_config = model_of(
        config, "teacher.model", config.teacher.model, revision=config.teacher.revision, trust=trust
    )
    teacher_tokenizer = load_tokenizer(base_teacher_dir, trust)
    data = task.read_data(config, tokenizer=teacher_tokenizer, teacher_config=teacher_config)
    if data.evaluation is None:
        raise ConfigError(f"{config_location(config, 'data.eval')}: data.eval: nothing to evaluate on; set data.eval")
    teacher_dir = task.prepare_teacher(config, base_teacher_dir, output_dir, data)
    teacher = task.load_teacher(config, teacher_dir, data, eager_attention=False)
    student, tokenizer = task.load_saved_student(config, output_dir / STUDENT_DIRNAME)
    models = TrainedModels(teacher, teacher_tokenizer, teacher_dir, student, tokenizer, output_dir / STUDENT_DIRNAME)
    metrics = evaluate_and_describe(config, task, output_dir, models, data)
    update_run_record(output_dir, status="finished", error=None)
    return metrics


def run_inputs(config: RunConfig, teacher_dir: Path, base_dir: Path) -> dict[str, Path]:
    """What a run reads from disk after its output directory is prepared, by what it is (for messages)."""
    inputs = {"the teacher": teacher_dir, "the student's base model": base_dir}
    if config.source_file is not None:
        inputs["the config"] = config.source_file
    sources = dict([*config.data.train_sources, *config.data.eval_sources])
    if config.teacher.finetune is not None:
        sources["teacher.finetune.data"] = config.teacher.finetune.data
    for field, source in sources.items():
        if not is_builtin(source.path):
            inputs[field] = config.resolve_path(source.path)
    return inputs


def model_of(config: RunConfig, field: str, reference: str, *, revision: str | None = None, trust: bool = False) -> tuple[Path, Any]:
    """The directory and transformers config of the model a config field names; its errors carry the field's line."""
    try:
        directory = resolve_model_path(config.resolve_model(reference), revision=revision)
        return directory, load_model_config(directory, trust)
    except PolydistillError as error:
        raise type(error)(f"{config_location(config, field)}: {field}: {error}") from None


def check_max_length(config: RunConfig, teacher_config: Any, teacher_tokenizer: Any) -> None:
    """Refuse a ``data.max_length`` beyond the teacher's positions: its inputs would be cut anyway, or fail."""
    limits = [teacher_tokenizer.model_max_length] if 0 < getattr(teacher_tokenizer, "model_max_length", 0) < 1_000_000 else []
    positions = getattr(teacher_config, "max_position_embeddings", None)
    if isinstance(positions, int) and getattr(teacher_config, "position_embedding_type", "absolute") == "absolute":
        # RoBERTa-style models count positions from padding_idx + 1
        offset = teacher_config.pad_token_id + 1 if teacher_config.model_type in ("roberta", "xlm-roberta", "camembert") else 0
        limits.append(positions - offset)
    if limits and config.data.max_length > min(limits):
        raise ConfigError(
            f"{config_location(config, 'data.max_length')}: data.max_length: {config.data.max_length} tokens, but the teacher "
            f"reads at most {min(limits)}; expected at most {min(limits)}"
        )


def check_prune_widths(config: RunConfig, base_config: Any) -> None:
    """Refuse ``compress.prune`` widths the student will not have, before training it for nothing."""
    import copy

    from polydistill.compress.prune import resolve_widths

    prune = config.compress.prune if config.compress else None
    if prune is None:
        return
    student_config = copy.deepcopy(base_config)
    for attribute in ("hidden_size", "intermediate_size", "num_attention_heads"):
        if (value := getattr(config.student, attribute)) is not None:
            setattr(student_config, attribute, value)
    try:
        resolve_widths(student_config, heads=prune.heads, ffn=prune.ffn, hidden=prune.hidden)
    except ConfigError as error:
        raise ConfigError(f"{config_location(config, 'compress.prune')}: compress.prune.{error}") from None


def is_main_process() -> bool:
    """Rank 0 of a torchrun/accelerate launch (or the only process): the one that prepares the output
    directory and writes, saves and evaluates in it."""
    return int(os.environ.get("RANK", "0")) == 0


def check_multi_process(config: RunConfig) -> None:
    """Refuse what a multi-process launch cannot do: re-distilling a pruned student is a second
    training that rank 0 would start alone after the other ranks returned (it would wait for them
    forever)."""
    prune = config.compress.prune if config.compress else None
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and prune is not None and prune.redistil:
        raise ConfigError(
            f"{config_location(config, 'compress.prune')}: compress.prune.redistil: a multi-process launch cannot re-distil "
            "the pruned student (only the main process compresses); set redistil: false, or run this config in one process"
        )


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
