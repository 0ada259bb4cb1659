"""``polydistill compress STUDENT_DIR --out DIR``: prune, re-distil, export and quantize a distilled student.

    polydistill compress runs/demo/student --out shipped --prune heads=0.5,ffn=0.5,hidden=0.5
    polydistill compress my-student --out shipped --eval test.jsonl --teacher my-teacher --data train.jsonl

A student of a polydistill run (STUDENT_DIR inside a run directory) reuses that run's config: its
teacher, objectives, training and evaluation data; flags override them. Any other student needs
``--eval`` (per-language evaluation data), and ``--teacher`` with ``--data`` to re-distil after
pruning. Writes DIR/student (the shipped student: safetensors, ``onnx/model.onnx``,
``onnx/model_qint8_avx512_vnni.onnx``), DIR/metrics.json and the ladder report DIR/report.{md,html};
exits non-zero when int8 loses more than allowed in some language, unless ``--accept-drop``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from polydistill.commands.run import add_overwrite_option


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compress",
        help="prune, re-distil, export to ONNX and quantize a student; every stage measured per language",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("student", metavar="STUDENT_DIR", help="a distilled student (classifier or sentence-transformers directory)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory (new or empty, unless --overwrite)")
    parser.add_argument(
        "--config", metavar="RUN.yaml", help="the run config to take teacher, data and objectives from (default: the run's own)"
    )
    parser.add_argument(
        "--prune", metavar="SPEC", help="widths to prune, e.g. heads=0.5,ffn=0.3,hidden=0.25 (shares removed) or heads=6 (kept)"
    )
    parser.add_argument("--no-redistil", action="store_true", help="prune without training against the teacher again")
    parser.add_argument("--teacher", metavar="MODEL", help="teacher to re-distil from and compare with (directory, offline:<name>, Hub id)")
    parser.add_argument("--data", metavar="SOURCE", help="training text for ranking channels and re-distillation")
    parser.add_argument("--eval", metavar="SOURCE", help="evaluation data, per language (default: the run's data.eval)")
    parser.add_argument(
        "--task", choices=["classification", "embeddings"], help="default: embeddings for a sentence-transformers directory"
    )
    parser.add_argument("--text-column", default="text")
    parser.add_argument("--label-column", default="label")
    parser.add_argument("--lang-column", default=None)
    parser.add_argument("--translation-column", default="translation", help="embeddings: the column holding the translation of the text")
    parser.add_argument("--export", choices=["onnx", "none"], default="onnx")
    parser.add_argument("--quantize", choices=["int8", "none"], default="int8")
    parser.add_argument("--quantize-mode", choices=["auto", "dynamic", "static"], default="auto")
    parser.add_argument(
        "--max-drop", type=float, default=None, help="largest drop of the primary metric allowed in a language (default 0.01)"
    )
    parser.add_argument("--accept-drop", action="store_true", help="ship int8 even when a language fails the check")
    parser.add_argument("--no-teacher-onnx", action="store_true", help="skip the teacher's plain int8 baseline")
    parser.add_argument("--quick", action="store_true", help="short speed measurements (noisier)")
    add_overwrite_option(parser)
    parser.set_defaults(func=run_compress)


def run_compress(args: argparse.Namespace) -> int:
    from polydistill.atomic import atomic_directory
    from polydistill.compress.pipeline import Teacher, compress_student, raise_for_failed_checks
    from polydistill.console import console
    from polydistill.evaluation.evaluate import METRICS_FILENAME, write_metrics
    from polydistill.evaluation.report import write_report
    from polydistill.models.checks import check_model_dir
    from polydistill.models.loading import load_tokenizer
    from polydistill.output_dir import plan_output_dir
    from polydistill.tasks import get_task

    student_dir = Path(args.student)
    check_model_dir(student_dir, reference=args.student)
    out = Path(args.out)
    plan = plan_output_dir(out, overwrite=args.overwrite)

    config, teacher_dir = _config(args, student_dir)
    plan.apply()
    task = get_task(config.task)
    shipped = out / "student"
    with atomic_directory(shipped) as staging:  # the input stays untouched; the shipped copy gets onnx/
        _copy_model_dir(student_dir, staging)

    teacher = None
    tokenizer_dir = teacher_dir or shipped
    tokenizer = load_tokenizer(tokenizer_dir)
    from polydistill.models.loading import load_model_config

    data = task.read_data(config, tokenizer=tokenizer, teacher_config=load_model_config(teacher_dir or shipped))
    if teacher_dir is not None:
        eager = config.objectives.needs_attention_weights
        teacher = Teacher(task.load_teacher(config, teacher_dir, data, eager_attention=eager), tokenizer, teacher_dir)
    elif config.compress and config.compress.prune and config.compress.prune.redistil:
        console.print("[yellow]No teacher[/] (--teacher): the pruned student is not re-distilled")

    layer_maps = _layer_maps(config, shipped, teacher)
    document = compress_student(config, task, student_dir=shipped, output_dir=out, data=data, teacher=teacher, layer_maps=layer_maps)
    metrics: dict[str, Any] = {
        "task": config.task,
        "compression": document,
        "meta": {"student": str(student_dir), "teacher": str(teacher_dir) if teacher_dir else None},
    }
    write_metrics(out / METRICS_FILENAME, metrics)
    report = write_report(out)
    console.print(f"[bold green]Compression ladder[/] {report['html']}")
    raise_for_failed_checks(document)
    return 0


def _config(args: argparse.Namespace, student_dir: Path):
    """The run config the compression runs under, and the teacher's directory (None without a teacher)."""
    import json

    import yaml

    from polydistill.config import load_config, validate_config
    from polydistill.errors import ConfigError
    from polydistill.models.zoo import resolve_model_path

    run_config = Path(args.config) if args.config else student_dir.parent / "config.yaml"
    raw: dict[str, Any]
    teacher_dir: Path | None = None
    if run_config.is_file():
        base = load_config(run_config)
        raw = base.model_dump(mode="json", exclude_none=True)
        record = student_dir.parent / "run.json"
        if record.is_file():  # the teacher that taught (fine-tuned first, where the run did)
            teacher_dir = Path(json.loads(record.read_text())["teacher"]["directory"])
        source = run_config
    else:
        if not args.eval:
            raise ConfigError(f"{student_dir} is not the student of a polydistill run: give --eval (per-language evaluation data)")
        task = args.task or ("embeddings" if (student_dir / "modules.json").is_file() else "classification")
        columns = {"text_column": args.text_column, "label_column": args.label_column, "lang_column": args.lang_column}
        if task == "embeddings":
            columns.pop("label_column")
            columns["translation_column"] = args.translation_column
        raw = {
            "task": task,
            "teacher": {"model": args.teacher or str(student_dir)},
            "data": {"train": {"path": args.data or args.eval, **columns}, "eval": {"path": args.eval, **columns}},
        }
        source = None
    if args.teacher:
        raw["teacher"] = {**raw["teacher"], "model": args.teacher}
        raw["teacher"].pop("finetune", None)
        teacher_dir = resolve_model_path(args.teacher)
    elif source is None:
        teacher_dir = None
    for flag, field in (("data", "train"), ("eval", "eval")):
        if getattr(args, flag) and source is not None:
            raw["data"][field] = {**raw["data"].get(field, {}), "path": getattr(args, flag)}
    raw["compress"] = _compress_section(args, raw.get("compress") or {})
    if args.quick:
        raw.setdefault("evaluation", {})["efficiency"] = "quick"
    raw.pop("output_dir", None)
    if args.prune and not args.data and source is None:
        raise ConfigError("--prune ranks channels on training text: give --data (the evaluation data would leak into the ranking)")
    try:
        config = validate_config(raw, source_file=source, source_text=source.read_text() if source else yaml.safe_dump(raw))
    except ConfigError as error:
        raise ConfigError(f"{error}\n  (the compress section comes from the command's flags: --prune, --quantize, --max-drop)") from None
    return config, teacher_dir


def _compress_section(args: argparse.Namespace, section: dict[str, Any]) -> dict[str, Any]:
    from polydistill.errors import ConfigError

    section = dict(section)
    if args.prune:
        prune: dict[str, Any] = {}
        for part in args.prune.split(","):
            key, sep, value = part.partition("=")
            if not sep or key.strip() not in {"heads", "ffn", "hidden"}:
                raise ConfigError(f"--prune: '{part}' is not heads=X, ffn=X or hidden=X (X a share to remove, or a count to keep)")
            try:
                prune[key.strip()] = float(value)
            except ValueError:
                raise ConfigError(f"--prune: '{value}' in '{part}' is not a number") from None
        section["prune"] = {**(section.get("prune") or {}), **prune}
    if args.no_redistil and section.get("prune"):
        section["prune"]["redistil"] = False
    section["export"] = None if args.export == "none" else "onnx"
    if args.quantize == "none":
        section["quantize"] = None
    else:
        quantize = dict(section.get("quantize") or {})
        quantize["mode"] = args.quantize_mode
        if args.max_drop is not None:
            quantize["max_drop"] = args.max_drop
        if args.accept_drop:
            quantize["accept_drop"] = True
        section["quantize"] = quantize
    if args.no_teacher_onnx:
        section["teacher_onnx"] = False
    return section


def _copy_model_dir(source: Path, destination: Path) -> None:
    import shutil

    for item in source.iterdir():
        if item.name.startswith("checkpoint-") or item.name == "onnx":
            continue
        target = destination / item.name
        shutil.copytree(item, target) if item.is_dir() else shutil.copy2(item, target)


def _layer_maps(config, student_dir: Path, teacher):
    """The run's teacher layer for each student layer (kept layers), so re-distillation maps layers as the run did."""
    from polydistill.models.loading import load_model_config
    from polydistill.models.student import spread_layers
    from polydistill.objectives import LayerMaps

    if teacher is None:
        return None
    keep = config.student.keep_layers
    teacher_layers = teacher.model.config.num_hidden_layers
    student_layers = load_model_config(student_dir).num_hidden_layers
    if keep is not None and not config.student.model:
        kept = spread_layers(keep, teacher_layers) if isinstance(keep, int) else list(keep)
        if len(kept) == student_layers:
            return LayerMaps.from_kept_layers(kept)
    try:
        return LayerMaps.uniform(student_layers, teacher_layers)
    except ValueError:  # no uniform map; objectives that need one say so when they are built
        return LayerMaps({}, {})
