"""``polydistill eval``: score a classifier (and its teacher) per language, size and speed included.

    polydistill eval MODEL --data test.jsonl [--teacher TEACHER] --out DIR

Writes DIR/metrics.json, DIR/report.md, DIR/report.html and DIR/plots/*.png.
"""

from __future__ import annotations

import argparse

from polydistill.commands.run import add_overwrite_option


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="evaluate a classifier per language (and against its teacher); write metrics.json and a report",
        description=(
            "Evaluate MODEL on a labelled data file per language: accuracy, macro precision, recall and F1; "
            "with --teacher also the teacher's scores, agreement and retention (student / teacher). Both "
            "models' size, peak memory, latency and throughput are measured the same way. Class ids are "
            "matched to the data's labels by name (the model's id2label)."
        ),
    )
    parser.add_argument("model", metavar="MODEL", help="student: a model directory, offline:<name> or a Hub id")
    parser.add_argument(
        "--data",
        required=True,
        metavar="SOURCE",
        help="labelled data: a file (JSONL, CSV/TSV, Parquet, saved dataset) or catalogs:django-components",
    )
    parser.add_argument("--teacher", metavar="MODEL", help="teacher to compare with (directory, offline:<name> or Hub id)")
    parser.add_argument("--out", required=True, metavar="DIR", help="directory for metrics.json and the report")
    parser.add_argument("--text-column", default="text", help="column with the input text (default: text)")
    parser.add_argument("--label-column", default="label", help="column with the gold label (default: label)")
    parser.add_argument("--lang-column", default=None, help="column with the BCP-47 language code; without one all rows are 'und'")
    parser.add_argument(
        "--teacher-text-column",
        default=None,
        help="column the teacher reads instead of the text (e.g. 'en', the English source of a translation)",
    )
    parser.add_argument("--split", default="test", help="split of a built-in catalogs: source (default: test)")
    parser.add_argument("--languages", default=None, help="comma-separated languages to keep from a built-in catalogs: source")
    parser.add_argument("--max-length", type=int, default=128, help="truncate inputs to this many tokens (default: 128)")
    parser.add_argument("--batch-size", type=int, default=64, help="batch size for predictions (default: 64)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads for the speed measurements")
    speed = parser.add_mutually_exclusive_group()
    speed.add_argument("--quick", action="store_true", help="short speed measurements (noisier)")
    speed.add_argument("--no-efficiency", action="store_true", help="skip size and speed measurements")
    parser.add_argument("--no-report", action="store_true", help="write metrics.json only")
    add_overwrite_option(parser)
    parser.set_defaults(func=run_eval)


def run_eval(args: argparse.Namespace) -> int:
    from pathlib import Path

    from polydistill.console import console
    from polydistill.errors import ConfigError
    from polydistill.evaluation.efficiency import EfficiencySettings
    from polydistill.evaluation.evaluate import DEFAULT_NOISE, evaluate_run, model_label_names
    from polydistill.output_dir import plan_output_dir

    if args.max_length < 2 or args.batch_size < 1 or (args.threads is not None and args.threads < 1):
        raise ConfigError("--max-length must be >= 2, --batch-size and --threads >= 1")
    plan = plan_output_dir(args.out, overwrite=args.overwrite)
    student_dir, student, tokenizer = _load_classifier(args.model)
    teacher_dir = teacher = teacher_tokenizer = None
    if args.teacher:
        teacher_dir, teacher, teacher_tokenizer = _load_classifier(args.teacher)

    dataset, teacher_text_column = _load_data(args, model_label_names(teacher if teacher is not None else student))
    console.print(f"[bold]Evaluating[/] {args.model} on {len(dataset)} examples from {args.data}")
    if args.no_efficiency:
        efficiency = None
    elif args.quick:
        efficiency = EfficiencySettings.quick(threads=args.threads)
    else:
        efficiency = EfficiencySettings(threads=args.threads)
    plan.apply()
    metrics = evaluate_run(
        Path(args.out),
        student=student,
        tokenizer=tokenizer,
        dataset=dataset,
        teacher=teacher,
        teacher_tokenizer=teacher_tokenizer,
        student_dir=student_dir,
        teacher_dir=teacher_dir,
        config={"student": args.model, "teacher": args.teacher, "data": _data_description(args)},
        batch_size=args.batch_size,
        teacher_text_column=teacher_text_column,
        max_length=args.max_length,
        efficiency=efficiency,
        noise=DEFAULT_NOISE,  # the robustness scores of a run's default evaluation.noise
        report=not args.no_report,
    )
    _print_summary(console, metrics, Path(args.out), report=not args.no_report)
    return 0


def _load_data(args: argparse.Namespace, label_names: list[str] | None):
    """(dataset in canonical columns, the column the teacher reads or None)."""
    from datasets import DatasetDict

    from polydistill.data.sources import is_builtin, load_source
    from polydistill.errors import DataError

    if is_builtin(args.data):
        options = {"languages": args.languages.split(",")} if args.languages else {}
        loaded = load_source(args.data, **options)
        if isinstance(loaded, DatasetDict):
            if args.split not in loaded:
                raise DataError(f"{args.data} has no split '{args.split}' (splits: {', '.join(loaded)})")
            loaded = loaded[args.split]
        return loaded, args.teacher_text_column
    # A file's extra column reaches the canonical layout as "translation" (the reader's name for
    # the second text of a row), which the teacher then reads.
    dataset = load_source(
        args.data,
        text_column=args.text_column,
        label_column=args.label_column,
        lang_column=args.lang_column,
        translation_column=args.teacher_text_column,
        label_names=label_names,
    )
    return dataset, "translation" if args.teacher_text_column else None


def _data_description(args: argparse.Namespace) -> str:
    from polydistill.data.sources import is_builtin

    if is_builtin(args.data):
        return f"{args.data} ({args.split} split)"
    return args.data


def _load_classifier(reference: str):
    """(directory, model, tokenizer) of a sequence classifier; no remote code is ever run, no pickle
    is loaded (see :mod:`polydistill.models.checks`)."""
    from polydistill.errors import ModelNotFoundError
    from polydistill.models.loading import load_classifier, load_tokenizer
    from polydistill.models.zoo import resolve_model_path

    directory = resolve_model_path(reference)
    tokenizer = load_tokenizer(directory)
    model, fresh_head = load_classifier(directory)
    if fresh_head:
        raise ModelNotFoundError(
            f"'{reference}' ({directory}) has no trained classification head: its scores would be those of random weights; "
            "give a fine-tuned classifier (or polydistill finetune it first)"
        )
    model.eval()
    return directory, model, tokenizer


def _print_summary(console, metrics: dict, out, *, report: bool) -> None:
    from polydistill.evaluation.report import status_headline, verdict

    status, sentence = verdict(metrics)
    colour = {"ok": "green", "warn": "yellow", "bad": "red"}.get(status, "cyan")
    console.print(f"[bold {colour}]{status_headline(metrics, status)}.[/] {sentence}")
    console.print(f"Wrote {out / 'metrics.json'}" + (f", {out / 'report.html'} and {out / 'report.md'}" if report else ""))
