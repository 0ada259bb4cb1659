"""Distilled student -> pruned -> re-distilled -> ONNX -> int8, every stage measured per language.

The ladder a user reads to choose what to ship: one stage per row (teacher in PyTorch, teacher
exported and quantized the plain way for a like-for-like runtime, distilled student, pruned
student, student in ONNX fp32, student in int8), each timed in the runtime it ships in and scored
per language on the run's evaluation data. Each compressed stage is also compared with the stage
it was made from; int8 must stay within ``quantize.max_drop`` of the fp32 student and agree with it
on ``quantize.min_agreement`` of the texts in *every* language (int8 is known to collapse single
languages of multilingual encoders while the average looks fine), or the run says which language
failed and ends with :class:`QualityError`, unless the user accepts the drop.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from polydistill.atomic import atomic_directory
from polydistill.compress.probes import QualityProbe
from polydistill.config import CompressConfig, RunConfig
from polydistill.console import console
from polydistill.errors import PolydistillError
from polydistill.evaluation.efficiency import EfficiencySettings, count_parameters, measure_efficiency, settings_dict, settings_for
from polydistill.evaluation.runtime_efficiency import measure_runtime_efficiency
from polydistill.objectives import LayerMaps, build_objectives
from polydistill.tasks import Task, TaskData
from polydistill.training.student_setup import PreparedStudent, prune_on_training_text

#: sentence-transformers' file names, so an ecosystem that expects them finds them
ONNX_FILE = "model.onnx"
INT8_FILE = "model_qint8_avx512_vnni.onnx"


class QualityError(PolydistillError):
    """A compressed stage lost more than allowed in some language; everything measured is kept."""


@dataclass
class Teacher:
    model: Any
    tokenizer: Any
    directory: Path


@dataclass
class Stage:
    """One row of the ladder."""

    name: str
    label: str
    runtime: str
    precision: str
    path: Path | None
    made_from: str | None
    outputs: np.ndarray
    quality: dict[str, Any]
    efficiency: dict[str, Any] | None
    agreement: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self, root: Path) -> dict[str, Any]:
        path = None
        if self.path is not None:
            path = str(self.path.relative_to(root)) if self.path.is_relative_to(root) else str(self.path)
        return {
            "name": self.name,
            "label": self.label,
            "runtime": self.runtime,
            "precision": self.precision,
            "path": path,
            "made_from": self.made_from,
            "efficiency": self.efficiency,
            "quality": self.quality,
            "agreement": self.agreement,
            **self.extra,
        }


class Ladder:
    """Builds the stages one after the other, with one probe, one set of timing settings and one thread count."""

    def __init__(self, config: RunConfig, task: Task, probe: QualityProbe, output_dir: Path) -> None:
        import torch

        self.config, self.task, self.probe, self.output_dir = config, task, probe, output_dir
        settings = settings_for(config.evaluation.efficiency, max_length=config.data.max_length)
        self.settings: EfficiencySettings | None = None
        if settings is not None:
            self.settings = replace(settings, threads=settings.threads or torch.get_num_threads())
        self.stages: dict[str, Stage] = {}
        self.checks: list[dict[str, Any]] = []

    def add_torch(self, name: str, label: str, model: Any, tokenizer: Any, directory: Path | None, *, role: str, made_from: str | None):
        console.print(f"[bold]Stage[/] {label}")
        prefix = self.config.teacher.prefix if role == "teacher" else self.config.student_prefix
        predict = self.probe.torch_predict(model, tokenizer, prefix=prefix)
        outputs = self.probe.outputs(predict, role)
        efficiency = None
        if self.settings is not None:
            efficiency = measure_efficiency(
                model,
                tokenizer,
                self.probe.texts_for(role),
                model_dir=directory,
                **settings_dict(self.settings),
            )
        return self._add(
            Stage(name, label, "pytorch", "fp32", directory, made_from, outputs, self.probe.quality(outputs).to_dict(), efficiency)
        )

    def add_onnx(self, name: str, label: str, model_dir: Path, onnx_file: Path, *, role: str, made_from: str, parameters: int | None):
        from polydistill import runtime

        console.print(f"[bold]Stage[/] {label}")
        threads = self.settings.threads if self.settings else None
        served = runtime.load(model_dir, file=onnx_file, threads=threads)
        predict = self.probe.runtime_predict(served)
        outputs = self.probe.outputs(predict, role)
        efficiency = None
        if self.settings is not None:
            efficiency = measure_runtime_efficiency(model_dir, onnx_file, self.probe.texts_for(role), self.settings, parameters=parameters)
        precision = "int8" if "int8" in name else "fp32"
        stage = Stage(
            name, label, "onnxruntime", precision, onnx_file, made_from, outputs, self.probe.quality(outputs).to_dict(), efficiency
        )
        return self._add(stage)

    def _add(self, stage: Stage) -> Stage:
        if stage.made_from is not None and stage.made_from in self.stages:
            reference = self.stages[stage.made_from]
            check = self.probe.compare(reference.outputs, stage.outputs, max_drop=1.0, min_agreement=0.0)
            stage.agreement = _agreement(check)
        self.stages[stage.name] = stage
        quality = stage.quality["overall"]
        console.print(f"  {self.probe.primary_metric} {quality:.3f}" if quality is not None else "  (no overall metric)")
        return stage

    def document(self) -> dict[str, Any]:
        return {
            "primary_metric": self.probe.primary_metric,
            "reference_stage": "student",
            "stages": [stage.to_dict(self.output_dir) for stage in self.stages.values()],
            "checks": self.checks,
            "settings": {
                "threads": self.settings.threads if self.settings else None,
                "latency_batch_size": 1,
                "throughput_batch_size": self.settings.batch_size if self.settings else None,
                "tokenization_included": True,
            },
        }


def compress_student(
    config: RunConfig,
    task: Task,
    *,
    student_dir: Path,
    output_dir: Path,
    data: TaskData,
    teacher: Teacher | None,
    layer_maps: LayerMaps | None,
) -> dict[str, Any]:
    """Run the ``compress`` section of ``config`` on the saved student in ``student_dir``.

    Returns the ``compression`` part of ``metrics.json``; raises :class:`QualityError` after
    everything is written when int8 failed its per-language check and the drop was not accepted.
    """
    settings: CompressConfig = config.compress or CompressConfig()
    student_dir, output_dir = student_dir.resolve(), output_dir.resolve()
    if data.evaluation is None:
        raise PolydistillError("compression measures every stage per language and needs evaluation data (data.eval)")
    probe = task.quality_probe(config, data.evaluation, data.label_names)
    ladder = Ladder(config, task, probe, output_dir)

    if teacher is not None:
        ladder.add_torch(
            "teacher", "teacher, PyTorch fp32", teacher.model, teacher.tokenizer, teacher.directory, role="teacher", made_from=None
        )
        if settings.teacher_onnx and settings.export:
            _teacher_int8(ladder, teacher)

    student, tokenizer = task.load_saved_student(config, student_dir)
    ladder.add_torch("student", "distilled student, PyTorch fp32", student, tokenizer, student_dir, role="student", made_from=None)
    shipped_dir, shipped_from = student_dir, "student"

    if settings.prune is not None:
        student = _prune(config, task, student, tokenizer, data, teacher, layer_maps, output_dir)
        shipped_dir, shipped_from = output_dir / "pruned", "pruned"
        ladder.add_torch("pruned", _pruned_label(settings, teacher), student, tokenizer, shipped_dir, role="student", made_from="student")

    if settings.export:
        from polydistill.compress.onnx_export import export_onnx

        console.print(f"[bold]Export[/] {shipped_dir / 'onnx' / ONNX_FILE}")
        exported = export_onnx(shipped_dir, task=task.name, check_texts=probe.texts_for("student")[:256], max_length=config.data.max_length)
        parameters = count_parameters(student)[0]
        onnx_stage = ladder.add_onnx(
            "student-onnx",
            "student, ONNX fp32",
            shipped_dir,
            Path(exported.path),
            role="student",
            made_from=shipped_from,
            parameters=parameters,
        )
        onnx_stage.extra["export_check"] = exported.to_dict()
        if settings.quantize is not None:
            _quantize(ladder, config, shipped_dir, Path(exported.path), parameters)
    return ladder.document()


def raise_for_failed_checks(document: dict[str, Any]) -> None:
    """:class:`QualityError` naming each stage whose per-language check failed and was not accepted."""
    failed = [check for check in document.get("checks", []) if check["failed"] and not check["accepted"]]
    if failed:
        lines = [f"{check['stage']}: {check['description']}" for check in failed]
        raise QualityError(
            "compression lost more than allowed in some languages (the files and the report are kept; "
            "set compress.quantize.accept_drop: true or pass --accept-drop to ship it anyway):\n  " + "\n  ".join(lines)
        )


# --- stages --------------------------------------------------------------------------------


def _teacher_int8(ladder: Ladder, teacher: Teacher) -> None:
    """The teacher exported and quantized the plain way (dynamic, per-channel, no graph fusion): the like-for-like baseline."""
    from polydistill.compress.onnx_export import export_onnx
    from polydistill.compress.quantize import quantize_int8

    with tempfile.TemporaryDirectory(prefix="polydistill-teacher-onnx-") as scratch:
        work = Path(scratch) / "teacher"
        # saved as the task saves students, with the teacher's own prefix, so the export pools and prompts as the teacher does
        as_teacher = ladder.config.model_copy(
            update={"student": ladder.config.student.model_copy(update={"prefix": ladder.config.teacher.prefix})}
        )
        ladder.task.save_student(as_teacher, teacher.model, teacher.tokenizer, work)
        console.print("[bold]Export[/] teacher (plain int8 baseline)")
        exported = export_onnx(
            work, task=ladder.task.name, check_texts=ladder.probe.texts_for("teacher")[:64], max_length=ladder.config.data.max_length
        )
        quantized = quantize_int8(
            exported.path, work / "onnx" / INT8_FILE, mode="dynamic", per_channel=True, optimize=False, quantize_embeddings=False
        )
        stage = ladder.add_onnx(
            "teacher-int8",
            "teacher, ONNX int8 (plain)",
            work,
            Path(quantized.path),
            role="teacher",
            made_from="teacher",
            parameters=count_parameters(teacher.model)[0],
        )
        stage.path = None  # measured in a scratch directory, not kept: it is the baseline, not a product


def _pruned_label(settings: CompressConfig, teacher: Teacher | None) -> str:
    prune = settings.prune
    assert prune is not None
    again = prune.redistil and teacher is not None
    return "pruned student, re-distilled, PyTorch fp32" if again else "pruned student (not re-distilled), PyTorch fp32"


def _prune(
    config: RunConfig, task: Task, student: Any, tokenizer: Any, data: TaskData, teacher: Teacher | None, layer_maps, output_dir: Path
):
    from polydistill.training.distil import distil

    prune_config = config.compress.prune if config.compress else None
    assert prune_config is not None
    result = prune_on_training_text(
        config,
        student,
        tokenizer,
        data.train,
        heads=prune_config.heads,
        ffn=prune_config.ffn,
        hidden=prune_config.hidden,
        per_language=prune_config.texts_per_language,
    )
    pruned = result.model
    pruned_dir = output_dir / "pruned"
    if prune_config.redistil and teacher is not None:
        console.print("[bold]Re-distil[/] the pruned student from the teacher, with the run's objectives")
        if layer_maps is None:
            layer_maps = LayerMaps.uniform(pruned.config.num_hidden_layers, teacher.model.config.num_hidden_layers)
        objectives = build_objectives(
            config.objectives, teacher_config=teacher.model.config, student_config=pruned.config, layer_maps=layer_maps
        )
        prepared = PreparedStudent(pruned, tokenizer, objectives, layer_maps)
        work_dir = output_dir / "pruned-training"
        work_dir.mkdir(parents=True, exist_ok=True)
        distil(
            config,
            task,
            teacher.model,
            teacher.tokenizer,
            prepared,
            data,
            work_dir=work_dir,
            student_dir=pruned_dir,
            training={**config.training, **prune_config.training},
        )
    else:
        if prune_config.redistil:
            console.print("[yellow]prune:[/] no teacher to re-distil from; the pruned student is saved as pruned")
        with atomic_directory(pruned_dir) as staging:
            task.save_student(config, pruned, tokenizer, staging)
    return pruned


def _quantize(ladder: Ladder, config: RunConfig, model_dir: Path, onnx_path: Path, parameters: int) -> None:
    """Try int8 recipes from the smallest to the most careful; keep the first that passes every language."""
    from polydistill.compress.quantize import calibration_feeds, candidate_recipes, quantize_int8

    quantize = config.compress.quantize if config.compress else None
    assert quantize is not None
    reference = ladder.stages["student-onnx"]
    recipes = [
        recipe for recipe in candidate_recipes() if quantize.mode == "auto" or recipe["kwargs"].get("mode", "dynamic") == quantize.mode
    ]
    destination = onnx_path.parent / INT8_FILE
    attempts: list[dict[str, Any]] = []
    best: tuple[float, Path, Any, dict[str, Any]] | None = None
    with tempfile.TemporaryDirectory(prefix="polydistill-int8-", dir=onnx_path.parent) as scratch:
        for index, recipe in enumerate(recipes):
            kwargs = dict(recipe["kwargs"])
            if kwargs.get("mode") == "static":
                kwargs["calibration"] = _calibration(
                    ladder, model_dir, onnx_path, quantize.calibration_texts_per_language, calibration_feeds
                )
            candidate = Path(scratch) / f"candidate-{index}.onnx"
            console.print(f"[bold]Quantize[/] int8 recipe '{recipe['name']}': {recipe['why']}")
            result = quantize_int8(onnx_path, candidate, **kwargs)
            outputs = ladder.probe.outputs(_runtime_predict(ladder, model_dir, candidate), "student")
            check = ladder.probe.compare(reference.outputs, outputs, max_drop=quantize.max_drop, min_agreement=quantize.min_agreement)
            attempt = {
                "recipe": recipe["name"],
                "why": recipe["why"],
                "bytes": int(result.bytes),
                "passed": not check.failed,
                "check": check.to_dict(),
            }
            attempts.append(attempt)
            console.print(f"  {'passes' if not check.failed else check.describe()}")
            score = check.worst_margin()
            if best is None or score > best[0]:
                best = (score, candidate, check, attempt)
            if not check.failed:
                break
        assert best is not None, "no int8 recipe to try"
        _, chosen, check, attempt = best
        chosen.replace(destination)
    stage = ladder.add_onnx(
        "student-int8", "student, ONNX int8", model_dir, destination, role="student", made_from="student-onnx", parameters=parameters
    )
    stage.extra["quantization"] = {"recipe": attempt["recipe"], "attempts": attempts}
    accepted = not check.failed or quantize.accept_drop
    ladder.checks.append(
        {
            "stage": "student-int8",
            "against": "student-onnx",
            "max_drop": quantize.max_drop,
            "min_agreement": quantize.min_agreement,
            "failed": {code: "; ".join(reasons) for code, reasons in check.failed_reasons().items()},
            "description": check.describe(),
            "accepted": accepted,
            "recipe": attempt["recipe"],
        }
    )
    if check.failed:
        colour = "yellow" if accepted else "red"
        console.print(f"[{colour}]int8 check:[/] {check.describe()}" + (" (accepted)" if accepted else ""))


def _runtime_predict(ladder: Ladder, model_dir: Path, onnx_file: Path) -> Callable[[list[str]], np.ndarray]:
    from polydistill import runtime

    served = runtime.load(model_dir, file=onnx_file, threads=ladder.settings.threads if ladder.settings else None)
    return ladder.probe.runtime_predict(served)


def _calibration(ladder: Ladder, model_dir: Path, onnx_path: Path, per_language: int, calibration_feeds) -> Any:
    from polydistill import runtime

    served = runtime.load(model_dir, file=onnx_path)
    return calibration_feeds(ladder.probe.balanced_texts(per_language), served.input_feed)


def _agreement(check: Any) -> dict[str, Any]:
    """Agreement with the stage made from, overall (pooled over texts) and per language."""
    languages = {code: float(entry["agreement"]) for code, entry in check.languages.items()}
    sizes = {code: int(entry["n"]) for code, entry in check.languages.items()}
    total = sum(sizes.values())
    overall = sum(languages[code] * sizes[code] for code in languages) / total if total else None
    return {"overall": overall, "languages": languages}
