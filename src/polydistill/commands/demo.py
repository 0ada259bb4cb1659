"""``polydistill demo``: the case study end to end, offline, on the CPU.

A multilingual teacher (multilingual-e5-small, fine-tuned on English Django messages) teaches a
student with a trimmed vocabulary and three layers the same task in every demo language,
through the translations in Django's catalogs; both are evaluated per language and the report
is written. The recipe is ``configs/demo-classification.yaml``; the config actually used is
saved in the output directory, so ``polydistill run OUT/config.yaml`` reproduces the run.
"""

from __future__ import annotations

import argparse
from importlib import resources
from pathlib import Path

from polydistill.commands.run import add_output_options

DEMO_RECIPES = {"classification": "demo-classification.yaml", "embeddings": "demo-embeddings.yaml"}
#: --quick: a first look in a few minutes (three languages besides English, two in non-Latin scripts)
QUICK_LANGUAGES = ["de", "ja", "ar"]
#: --quick's training: the teacher's fine-tuning halved (cached under its own key, so a second quick
#: run skips it), the student's longer at a higher rate than the full demo's, since an epoch over four
#: languages is a third of one over thirteen; measured in benchmarks/README.md ("Every language as good
#: as the teacher's best").
QUICK_TEACHER_EPOCHS = 3
QUICK_TRAINING = {"num_train_epochs": 5, "learning_rate": 3.0e-4}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="run the offline case study end to end", description=__doc__)
    parser.add_argument("--task", choices=sorted(DEMO_RECIPES), default="classification")
    parser.add_argument("--languages", help="comma-separated BCP 47 codes served besides English (default: the recipe's)")
    parser.add_argument("--out", help="output directory (default: runs/demo-<task>[-quick])")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="English and three languages, no compression: a first look in about 3 minutes once the teacher is cached",
    )
    add_output_options(parser)
    parser.set_defaults(func=_demo)


def demo_config_dict(task: str, *, languages: list[str] | None, quick: bool) -> dict:
    """The recipe with the command line's choices applied."""
    from polydistill.config_yaml import parse_config_yaml, read_config_text

    path = Path(str(recipe_path(task)))
    raw = parse_config_yaml(path, read_config_text(path))
    if quick:  # distillation and evaluation only: compression is the full demo's
        languages = languages or QUICK_LANGUAGES
        if "finetune" in raw["teacher"]:
            raw["teacher"]["finetune"]["training"]["num_train_epochs"] = QUICK_TEACHER_EPOCHS
        raw["training"].update(QUICK_TRAINING)
        raw["output_dir"] = raw["output_dir"] + "-quick"
        raw.pop("compress", None)
        raw.setdefault("evaluation", {})["efficiency"] = "quick"
    if languages:
        served = ["en"] + [code for code in languages if code != "en"]
        raw["student"]["trim_vocabulary"]["languages"] = served
        # classification trains and evaluates in English too; translation pairs have English on one side
        data_languages = served if task == "classification" else served[1:]
        raw["data"]["train"] = _with_languages(raw["data"]["train"], data_languages)
        raw["data"]["eval"] = _with_languages(raw["data"]["eval"], data_languages)
    return raw


def _with_languages(sources: dict | list[dict], languages: list[str]) -> dict | list[dict]:
    """One source, or a list of them, narrowed to ``languages``.

    The first source (the primary one) gets ``languages`` as they are. Every later one (a held-out
    domain) keeps only the requested languages it already lists, in its own spelling (``uk-UA``
    for ``uk``: a catalog's tag for it), since it may not have the others; one left with none is
    dropped.
    """
    if isinstance(sources, dict):
        return {**sources, "languages": languages}
    first, *others = sources
    narrowed = [{**first, "languages": languages}]
    for source in others:
        kept = [code for code in source.get("languages") or [] if any(_names(code, wanted) for wanted in languages)]
        if kept:
            narrowed.append({**source, "languages": kept})
    return narrowed


def _names(code: str, wanted: str) -> bool:
    """Whether a source's language ``code`` is the requested ``wanted``, or its regional variant
    (``uk-UA`` of ``uk``, ``pt-BR`` of ``pt``; never another script, ``zh-Hant`` of ``zh``)."""
    from polydistill.data.languages import normalize_language

    code, wanted = normalize_language(code), normalize_language(wanted)
    base, _, region = code.partition("-")
    return code == wanted or "-" not in wanted and base == wanted and (len(region) == 2 and region.isalpha() or region.isdigit())


def recipe_path(task: str):
    return resources.files("polydistill.recipes").joinpath(DEMO_RECIPES[task])


def _demo(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from polydistill.config import validate_config
    from polydistill.training.run import run

    languages = [code.strip() for code in args.languages.split(",") if code.strip()] if args.languages else None
    raw = demo_config_dict(args.task, languages=languages, quick=args.quick)
    path = Path(str(recipe_path(args.task)))
    config = validate_config(raw, source_file=path, source_text=path.read_text(encoding="utf-8"))
    result = run(config, output_dir=args.out, overwrite=args.overwrite, resume=args.resume)

    from polydistill.evaluation.metrics import primary_metric_for
    from polydistill.evaluation.report import format_interval, language_rows, metric_name, status_headline, verdict

    metrics = result.metrics
    assert metrics is not None  # both demo recipes have data.eval, so every demo run is evaluated
    metric = primary_metric_for(metrics["task"])
    table = Table(title=f"Teacher vs student, {metric_name(metric)} per language (test split), worst first")
    for column in ("language", "n", "teacher", "student", "retention", "student − teacher (95% CI)", "comparable"):
        table.add_column(column, justify="left" if column in {"language", "comparable"} else "right")
    for row in language_rows(metrics):
        table.add_row(
            row.code,
            str(row.n),
            "n/a" if row.teacher is None else f"{row.teacher:.3f}",
            "n/a" if row.student is None else f"{row.student:.3f}",
            "n/a" if row.retention is None else f"{row.retention:.1%}",
            format_interval(row.difference_ci),
            "yes" if row.comparable else "no: " + "; ".join(row.not_comparable_because),
        )
    console = Console()
    console.print(table)
    status, sentence = verdict(metrics)
    colour = {"ok": "green", "warn": "yellow", "bad": "red"}.get(status, "cyan")
    console.print(f"[bold {colour}]{status_headline(metrics, status)}.[/] {sentence}")
    teacher, student = metrics["teacher"], metrics["student"]
    console.print(
        f"student/teacher parameters: {student['parameters'] / teacher['parameters']:.3f}, "
        f"speed-up at batch 1: {teacher['latency_ms_p50'] / student['latency_ms_p50']:.1f}x"
    )
    console.print(f"report: {result.output_dir / 'report.html'}")
    return 0
