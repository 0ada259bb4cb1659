"""The model card (``README.md``) of a saved student, in the Hugging Face convention.

Front matter (through ``huggingface_hub.ModelCardData``) carries what the Hub indexes: the
languages, ``library_name``, ``pipeline_tag``, ``base_model`` (the teacher, when it is a Hub id)
and the tags ``knowledge-distillation`` and ``polydistill``. The body says what a user needs
before trusting the model: teacher, data, languages, objectives, per-language results with
retention (and, with several test sets, each set's mean and worst language), size and speed,
intended use and limits (which languages lost too much).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from polydistill.evaluation.metrics_file import UNDETERMINED_LANGUAGE
from polydistill.evaluation.report import (
    RETENTION_OK,
    RETENTION_WARN,
    SMALL_SAMPLE,
    efficiency_table,
    eval_set_line,
    eval_set_summaries,
    format_percent,
    has_eval_sets,
    has_teacher,
    language_rows,
    language_table,
    markdown_table,
    measurement_note,
    metric_name,
    primary_metric,
    verdict,
)

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_SENTENCE_TASKS = {"sentence-similarity", "feature-extraction"}


def write_model_card(
    student_dir: str | Path,
    metrics: Mapping[str, Any],
    *,
    teacher: str,
    data: str,
    languages: Sequence[str] | None,
    objectives: Sequence[str] | Mapping[str, Any],
    pipeline_tag: str = "text-classification",
    library_name: str | None = None,
    base_model: str | None = None,
    license: str | None = None,
    model_name: str | None = None,
    intended_use: str | None = None,
    limits: Sequence[str] = (),
) -> Path:
    """Write ``student_dir/README.md`` from a run's metrics document; return its path.

    ``languages`` defaults to those in ``metrics``. ``base_model`` defaults to ``teacher`` when
    that is a Hub id (``owner/name``); local paths and ``offline:`` references are left out of
    the front matter, since the Hub could not link them. ``limits`` adds lines to the
    generated ones (for example "trained on short UI strings").
    """
    from huggingface_hub import ModelCard, ModelCardData

    directory = Path(student_dir)
    codes = list(languages) if languages is not None else list(metrics["languages"])
    hub_languages = [code for code in codes if code != UNDETERMINED_LANGUAGE]
    library = library_name or ("sentence-transformers" if pipeline_tag in _SENTENCE_TASKS else "transformers")
    if base_model is None and _HUB_ID.match(teacher) and not Path(teacher).exists():
        base_model = teacher
    tags = ["knowledge-distillation", "polydistill"] + (["multilingual"] if len(hub_languages) > 1 else [])
    card_data = ModelCardData(
        language=hub_languages or None,
        library_name=library,
        pipeline_tag=pipeline_tag,
        base_model=base_model,
        license=license,
        tags=tags,
        model_name=model_name,
    )
    name = model_name or directory.name
    body = _card_body(
        name,
        metrics,
        teacher=teacher,
        data=data,
        codes=codes,
        objectives=objectives,
        pipeline_tag=pipeline_tag,
        library=library,
        intended_use=intended_use,
        extra_limits=limits,
    )
    card = ModelCard(f"---\n{card_data.to_yaml()}\n---\n\n{body}")
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "README.md"
    card.save(path)
    return path


def _card_body(
    name: str,
    metrics: Mapping[str, Any],
    *,
    teacher: str,
    data: str,
    codes: Sequence[str],
    objectives: Sequence[str] | Mapping[str, Any],
    pipeline_tag: str,
    library: str,
    intended_use: str | None,
    extra_limits: Sequence[str],
) -> str:
    task = str(metrics.get("task"))
    _, sentence = verdict(metrics)
    lines = [
        f"# {name}",
        "",
        f"A {task} model distilled from `{teacher}` with polydistill for {len(codes)} language{'s' if len(codes) != 1 else ''}.",
        "",
        sentence,
        "",
        "## Teacher",
        "",
        f"`{teacher}`, evaluated beside the student on the same data (numbers below).",
        "",
        "## Data",
        "",
        data,
        "",
        "## Languages",
        "",
        ", ".join(f"`{code}`" for code in codes) or "–",
        "",
        "## Objectives",
        "",
        *_objective_lines(objectives),
        "",
        "## Results",
        "",
        f"Per language, worst first; primary metric {metric_name(primary_metric(metrics))}"
        + (", retention = student / teacher." if has_teacher(metrics) else "."),
        "",
        *markdown_table(*language_table(metrics)[:2]),
        "",
    ]
    if has_eval_sets(metrics):
        lines += [
            "## Evaluation sets",
            "",
            "Each test set scored on its own; the results above are the first's.",
            "",
            *(f"- {eval_set_line(metrics, summary)}" for summary in eval_set_summaries(metrics)),
            "",
        ]
    efficiency = efficiency_table(metrics)
    if efficiency is not None:
        lines += ["## Efficiency", "", *markdown_table(*efficiency), "", measurement_note(metrics), ""]
    lines += ["## How to use", "", "```python", *_usage(pipeline_tag, library, name), "```", ""]
    lines += ["## Intended use", "", intended_use or _default_intended_use(metrics, pipeline_tag), ""]
    lines += ["## Limits", "", *(f"- {line}" for line in _limits(metrics, extra_limits)), ""]
    return "\n".join(lines)


def _objective_lines(objectives: Sequence[str] | Mapping[str, Any]) -> list[str]:
    if isinstance(objectives, Mapping):
        return [f"- `{name}`: {value}" for name, value in objectives.items()] or ["–"]
    return [f"- `{name}`" for name in objectives] or ["–"]


def _usage(pipeline_tag: str, library: str, name: str) -> list[str]:
    if library == "sentence-transformers":
        return [
            "from sentence_transformers import SentenceTransformer",
            "",
            f'model = SentenceTransformer("path/to/{name}")',
            'embeddings = model.encode(["Hello world", "Hallo Welt"])',
        ]
    return [
        "from transformers import pipeline",
        "",
        f'classifier = pipeline("{pipeline_tag}", model="path/to/{name}")',
        'classifier("Save and continue editing")',
    ]


def _default_intended_use(metrics: Mapping[str, Any], pipeline_tag: str) -> str:
    labels = (metrics.get("meta") or {}).get("label_names")
    classes = f" into the classes {', '.join(f'`{label}`' for label in labels)}" if labels else ""
    ok = [row.code for row in language_rows(metrics) if row.comparable and row.flag in {"ok", "none"}]
    where = ""
    if ok and has_teacher(metrics):
        where = f" It is the teacher's match (at least {RETENTION_OK:.0%} retention) in: {', '.join(ok)}."
    return (
        f"A smaller, faster stand-in for the teacher on `{pipeline_tag}`{classes}, for text like the "
        f"evaluation data, in the languages listed above, where the teacher's size or latency is too high.{where}"
    )


def _limits(metrics: Mapping[str, Any], extra: Sequence[str]) -> list[str]:
    rows = language_rows(metrics)
    limits: list[str] = []
    bad = [row for row in rows if row.flag == "bad"]
    warn = [row for row in rows if row.flag == "warn"]
    if bad:
        limits.append(
            f"Keeps less than {RETENTION_WARN:.0%} of the teacher's quality in: "
            + ", ".join(f"{row.code} ({format_percent(row.retention)})" for row in bad)
            + "; use the teacher there."
        )
    if warn:
        limits.append(
            f"Keeps {RETENTION_WARN:.0%}-{RETENTION_OK:.0%} of the teacher's quality in: "
            + ", ".join(f"{row.code} ({format_percent(row.retention)})" for row in warn)
            + "."
        )
    excluded = [row for row in rows if not row.comparable]
    if excluded:
        limits.append(
            "Not comparable, so neither judged nor counted in the summary: "
            + ", ".join(f"{row.code} ({'; '.join(row.not_comparable_because) or 'marked in metrics.json'})" for row in excluded)
            + "."
        )
    small = [f"{row.code} (n={row.n})" for row in rows if row.comparable and row.n < SMALL_SAMPLE]
    if small:
        limits.append(f"Few evaluation examples, so the numbers are noisy, for: {', '.join(small)}.")
    limits.append("Untested in languages not listed above; quality there is unknown.")
    limits.append("Inherits the teacher's biases and errors; it was trained to imitate the teacher, not to correct it.")
    limits.extend(extra)
    return limits
