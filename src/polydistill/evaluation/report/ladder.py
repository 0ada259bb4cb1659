"""The compression ladder: every stage from the teacher down to the int8 student, side by side.

``metrics.json`` may carry a ``"compression"`` block (written by ``polydistill compress``):

```
"compression": {
  "primary_metric": "macro_f1", "reference_stage": "student",
  "stages": [{"name", "label", "runtime", "precision", "path", "made_from",
              "efficiency": {"parameters", "disk_bytes", "peak_memory_bytes", "latency_ms_p50",
                             "latency_ms_p95", "throughput_per_s", "threads", "batch_size"},
              "quality": {"overall": float|null, "languages": {code: float}},
              "agreement": {"overall", "languages"} | null}, ...],
  "checks": [{"stage", "against", "max_drop", "min_agreement", "failed": {code: message},
              "accepted": bool, "recipe"}],
  "settings": {"threads", "latency_batch_size", "throughput_batch_size", "tokenization_included"}
}
```

Here the block becomes data: the ladder table (one row per stage), the per-language table
(languages as rows, stages as columns), one line per check, and the ladder plot. Retention is
against the reference stage (the distilled student), not the teacher: the question a compressed
stage answers is "what did quantising or pruning cost", and the student's own loss against the
teacher is the run report's subject. A stage's speed-up is the teacher's p50 latency over its
own, so "4.0x faster" means four times the teacher's single-text speed. Rendering lives in
:mod:`.render`, which imports this module (never the other way round).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from polydistill.errors import DataError
from polydistill.evaluation.metrics_file import REQUIRED_KEYS, read_metrics
from polydistill.evaluation.report.plots import _COLOURS, _save
from polydistill.evaluation.report.summary import (
    efficiency_ratio,
    format_efficiency,
    format_metric,
    format_percent,
    language_label,
    metric_name,
    primary_metric,
)

COMPRESSION_KEY = "compression"
LADDER_PLOT = "ladder.png"
"""File name of the ladder plot inside the report's plots directory."""

_RUNTIMES = {"pytorch": "PyTorch", "onnxruntime": "ONNX Runtime"}


# --- reading the block -------------------------------------------------------------------


def has_compression(metrics: Mapping[str, Any]) -> bool:
    return bool(metrics.get(COMPRESSION_KEY))


def is_compression_only(metrics: Mapping[str, Any]) -> bool:
    """True for the document ``polydistill compress`` writes: the ladder without a run's tables."""
    return has_compression(metrics) and any(key not in metrics for key in REQUIRED_KEYS)


def compression_section(metrics: Mapping[str, Any]) -> Mapping[str, Any]:
    """The ``compression`` block, checked enough that every table can be built from it."""
    section = metrics.get(COMPRESSION_KEY)
    if not isinstance(section, Mapping):
        raise DataError(f"metrics.json's '{COMPRESSION_KEY}' must be an object with 'stages', got {type(section).__name__}")
    stages = section.get("stages")
    if not isinstance(stages, list) or not stages:
        raise DataError(f"metrics.json's '{COMPRESSION_KEY}.stages' must be a non-empty list of stages, got {stages!r}")
    names = []
    for index, stage in enumerate(stages):
        if not isinstance(stage, Mapping) or not stage.get("name"):
            raise DataError(f"metrics.json's '{COMPRESSION_KEY}.stages[{index}]' must be an object with a 'name', got {stage!r}")
        names.append(str(stage["name"]))
    reference = section.get("reference_stage")
    if reference is not None and str(reference) not in names:
        raise DataError(f"metrics.json's '{COMPRESSION_KEY}.reference_stage' is '{reference}', which names no stage; stages are {names}")
    return section


def read_report_metrics(path: str | Path) -> dict[str, Any]:
    """Read a run's or a compression-only ``metrics.json``, its ``compression`` block checked when it has one."""
    document = read_metrics(path)
    if has_compression(document):
        compression_section(document)
    return document


def ladder_metric(metrics: Mapping[str, Any]) -> str:
    """The metric the ladder's quality numbers are: the block's own, else the run's."""
    section = compression_section(metrics)
    if section.get("primary_metric"):
        return str(section["primary_metric"])
    try:
        return primary_metric(metrics)
    except ValueError as error:
        raise DataError(f"metrics.json's '{COMPRESSION_KEY}' has no 'primary_metric' and none follows from its task: {error}") from error


def stages(metrics: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list(compression_section(metrics)["stages"])


def reference_stage(metrics: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The stage retention is measured against (``reference_stage``, by default "student")."""
    section = compression_section(metrics)
    name = str(section.get("reference_stage") or "student")
    return next((stage for stage in section["stages"] if stage["name"] == name), None)


def teacher_stage(metrics: Mapping[str, Any], runtime: str) -> Mapping[str, Any] | None:
    """The first teacher stage (a name starting "teacher") run by ``runtime``."""
    return next(
        (stage for stage in stages(metrics) if str(stage["name"]).startswith("teacher") and stage.get("runtime") == runtime),
        None,
    )


def stage_label(stage: Mapping[str, Any]) -> str:
    return str(stage.get("label") or stage["name"])


def runtime_label(stage: Mapping[str, Any]) -> str:
    runtime = str(stage.get("runtime") or "?")
    return f"{_RUNTIMES.get(runtime, runtime)} {stage.get('precision') or '?'}"


def quality(stage: Mapping[str, Any], language: str | None = None) -> float | None:
    """The stage's primary metric overall (``language=None``) or in one language."""
    scores = stage.get("quality") or {}
    value = scores.get("overall") if language is None else (scores.get("languages") or {}).get(language)
    return None if value is None else float(value)


def retention(stage: Mapping[str, Any], reference: Mapping[str, Any] | None, language: str | None = None) -> float | None:
    """stage / reference on the primary metric; None when either is missing or the reference is 0."""
    if reference is None:
        return None
    value, base = quality(stage, language), quality(reference, language)
    if value is None or not base:
        return None
    return value / base


def worst_language(stage: Mapping[str, Any]) -> tuple[str, float] | None:
    """(code, value) of the stage's lowest-scoring language (ties: first code alphabetically)."""
    scored = [
        (float(value), str(code)) for code, value in ((stage.get("quality") or {}).get("languages") or {}).items() if value is not None
    ]
    if not scored:
        return None
    value, code = min(scored)
    return code, value


def ladder_languages(metrics: Mapping[str, Any]) -> list[str]:
    """Every language any stage was scored on, sorted by code."""
    codes = {str(code) for stage in stages(metrics) for code in ((stage.get("quality") or {}).get("languages") or {})}
    return sorted(codes)


# --- checks ------------------------------------------------------------------------------


def checks(metrics: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [check for check in compression_section(metrics).get("checks") or [] if isinstance(check, Mapping)]


def check_status(check: Mapping[str, Any]) -> str:
    """ "bad" (not accepted), "warn" (accepted although something failed) or "ok"."""
    failed = check.get("failed") or {}
    accepted = check.get("accepted")
    if accepted is None:
        accepted = not failed
    if not accepted:
        return "bad"
    return "warn" if failed else "ok"


def stage_status(metrics: Mapping[str, Any], name: str, language: str | None = None) -> str:
    """The worst check status of stage ``name`` (in ``language`` when given), or "none" without a check."""
    statuses = []
    for check in checks(metrics):
        if str(check.get("stage")) != name:
            continue
        if language is not None and language not in (check.get("failed") or {}):
            continue
        statuses.append(check_status(check))
    for status in ("bad", "warn", "ok"):
        if status in statuses:
            return status
    return "none"


@dataclass(frozen=True)
class CheckLine:
    """One check as the report says it: "student-int8: not accepted: macro-F1 drops ... in sw (Swahili); against ..."."""

    status: str
    stage: str
    verdict: str
    detail: str

    @property
    def text(self) -> str:
        return f"{self.stage}: {self.verdict}: {self.detail}"


def check_lines(metrics: Mapping[str, Any]) -> list[CheckLine]:
    """One line per check, not accepted ones first, then accepted with drops, then clean passes."""
    lines = []
    for check in checks(metrics):
        status = check_status(check)
        failed = check.get("failed") or {}
        problems = "; ".join(
            f"{message} {'overall' if code == 'overall' else 'in ' + language_label(str(code))}" for code, message in failed.items()
        )
        verdict = {"bad": "not accepted", "warn": "accepted with drops", "ok": "accepted"}[status]
        body = problems or ("within the limits" if status == "ok" else "no reason recorded")
        lines.append(CheckLine(status, str(check.get("stage", "?")), verdict, f"{body}; {_check_terms(check)}"))
    order = {"bad": 0, "warn": 1, "ok": 2}
    return sorted(lines, key=lambda line: order[line.status])


def _check_terms(check: Mapping[str, Any]) -> str:
    terms = [f"against {check.get('against') or '?'}"]
    if isinstance(check.get("max_drop"), (int, float)):
        terms.append(f"largest drop allowed {100 * check['max_drop']:.1f} points")
    if isinstance(check.get("min_agreement"), (int, float)):
        terms.append(f"agreement at least {format_percent(check['min_agreement'])}")
    if check.get("recipe"):
        terms.append(f"recipe {check['recipe']}")
    return ", ".join(terms)


# --- tables ------------------------------------------------------------------------------


def _settings(metrics: Mapping[str, Any]) -> Mapping[str, Any]:
    return compression_section(metrics).get("settings") or {}


def ladder_table(metrics: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """(header, rows): one row per stage, in ladder order: size, speed, quality and retention."""
    key = ladder_metric(metrics)
    name = metric_name(key)
    settings = _settings(metrics)
    latency_batch, throughput_batch = settings.get("latency_batch_size", 1), settings.get("throughput_batch_size", 32)
    reference = reference_stage(metrics)
    base, onnx_base = teacher_stage(metrics, "pytorch"), teacher_stage(metrics, "onnxruntime")
    header = [
        "stage",
        "runtime / precision",
        "parameters",
        "size on disk",
        "peak memory",
        f"latency p50, batch {latency_batch}",
        f"latency p95, batch {latency_batch}",
        f"throughput, batch {throughput_batch}",
    ]
    speed_bases = [(label, stage) for label, stage in (("teacher (PyTorch)", base), ("teacher (ONNX Runtime)", onnx_base)) if stage]
    header += [f"p50 vs {label}" for label, _ in speed_bases]
    header += [name, f"retention vs {reference['name'] if reference else 'reference'}", "worst language"]
    rows = []
    for stage in stages(metrics):
        efficiency = stage.get("efficiency") or {}
        cells = [stage_label(stage), runtime_label(stage)]
        cells += [
            format_efficiency(field, efficiency.get(field))
            for field in ("parameters", "disk_bytes", "peak_memory_bytes", "latency_ms_p50", "latency_ms_p95", "throughput_per_s")
        ]
        for _, speed_base in speed_bases:
            _, phrase = efficiency_ratio(
                "latency_ms_p50", (speed_base.get("efficiency") or {}).get("latency_ms_p50"), efficiency.get("latency_ms_p50")
            )
            cells.append(phrase or "–")
        worst = worst_language(stage)
        cells += [
            format_metric(quality(stage)),
            format_percent(retention(stage, reference)),
            f"{language_label(worst[0])} {format_metric(worst[1])}" if worst else "–",
        ]
        rows.append(cells)
    return header, rows


def ladder_language_table(metrics: Mapping[str, Any]) -> tuple[list[str], list[list[str]], list[str]]:
    """(header, rows, flags): languages as rows, stages as columns, failed checks first.

    A cell is "value (retention vs the reference)"; a cell whose stage failed a check in that
    language ends in "✗" (not accepted) or "(accepted)". Flags are "bad", "warn" or "none"
    per row, for the HTML row colour, and the last column names the failed stages.
    """
    stage_list = stages(metrics)
    reference = reference_stage(metrics)
    header = ["language", *(str(stage["name"]) for stage in stage_list), "checks"]
    body = []
    for code in ladder_languages(metrics):
        cells = [language_label(code)]
        failed_stages: dict[str, list[str]] = {"bad": [], "warn": []}
        for stage in stage_list:
            value = quality(stage, code)
            cell = format_metric(value)
            if value is not None and stage is not reference and reference is not None:
                cell += f" ({format_percent(retention(stage, reference, code))})"
            status = stage_status(metrics, str(stage["name"]), code)
            if status == "bad":
                cell += " ✗"
            elif status == "warn":
                cell += " (accepted)"
            if status in failed_stages:
                failed_stages[status].append(str(stage["name"]))
            cells.append(cell)
        notes = [f"not accepted: {', '.join(failed_stages['bad'])}"] if failed_stages["bad"] else []
        notes += [f"accepted drop: {', '.join(failed_stages['warn'])}"] if failed_stages["warn"] else []
        flag = "bad" if failed_stages["bad"] else "warn" if failed_stages["warn"] else "none"
        lowest = min((r for stage in stage_list if (r := retention(stage, reference, code)) is not None), default=float("inf"))
        body.append(({"bad": 0, "warn": 1, "none": 2}[flag], lowest, code, cells + ["; ".join(notes) or "–"], flag))
    body.sort(key=lambda item: item[:3])
    return header, [item[3] for item in body], [item[4] for item in body]


def ladder_note(metrics: Mapping[str, Any]) -> str:
    """One sentence on how the ladder was measured and what retention is relative to."""
    settings = _settings(metrics)
    reference = reference_stage(metrics)
    included = settings.get("tokenization_included")
    tokenisation = "?" if included is None else "included" if included else "not included"
    return (
        f"Every stage measured with {settings.get('threads', '?')} thread(s): latency at batch "
        f"{settings.get('latency_batch_size', 1)}, throughput at batch {settings.get('throughput_batch_size', 32)}, "
        f"tokenisation {tokenisation}. {metric_name(ladder_metric(metrics))} over all examples; retention is relative to "
        f"{reference['name'] if reference else 'the reference stage'}; speed-ups are ratios of p50 latency."
    )


# --- the plot ----------------------------------------------------------------------------


def plot_ladder(metrics: Mapping[str, Any], path: Path) -> Path | None:
    """Quality against p50 latency and against size on disk (log x), one point per stage.

    Stages are joined in ladder order; a thin line runs down from each point to its worst
    language's score (a one-sided error bar). Returns None when no panel has two stages.
    """
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import NullFormatter

    key = ladder_metric(metrics)
    panels = []
    for field, label in (("latency_ms_p50", "latency p50 at batch 1, ms (log scale)"), ("disk_bytes", "size on disk (log scale)")):
        points = []
        for stage in stages(metrics):
            x, y = (stage.get("efficiency") or {}).get(field), quality(stage)
            if isinstance(x, (int, float)) and x > 0 and y is not None:
                points.append((stage, float(x), y))
        if len(points) >= 2:
            panels.append((field, label, points))
    if not panels:
        return None
    figure = Figure(figsize=(5.2 * len(panels), 4.4), layout="constrained")
    for index, (field, label, points) in enumerate(panels):
        axes = figure.add_subplot(1, len(panels), index + 1)
        xs, ys = [point[1] for point in points], [point[2] for point in points]
        axes.plot(xs, ys, color="#9e9e9e", linewidth=1, zorder=1)
        lows = []
        names: dict[tuple[float, float], list[str]] = {}  # stages at one spot share one label
        for stage, x, y in points:
            colour = _stage_colour(metrics, stage)
            worst = worst_language(stage)
            if worst is not None:
                lows.append(worst[1])
                axes.plot([x, x], [worst[1], y], color=colour, linewidth=1, alpha=0.7, zorder=2)
                axes.scatter([x], [worst[1]], marker="_", s=120, color=colour, zorder=2)
                axes.annotate(worst[0], (x, worst[1]), textcoords="offset points", xytext=(4, -9), fontsize=7, color=colour)
            axes.scatter([x], [y], s=70, color=colour, zorder=3)
            names.setdefault((x, y), []).append(str(stage["name"]))
        for number, ((x, y), labels) in enumerate(names.items()):
            offset = (5, 6) if number % 2 == 0 else (5, -13)  # alternate, so neighbours do not overlap
            axes.annotate(", ".join(labels), (x, y), textcoords="offset points", xytext=offset, fontsize=8)
        axes.set_xscale("log")
        axes.xaxis.set_minor_formatter(NullFormatter())
        axes.xaxis.set_major_formatter(NullFormatter())
        ticks = sorted(set(xs))
        axes.set_xticks(ticks, [format_efficiency(field, x) for x in ticks], fontsize=7, rotation=30)
        axes.set_xlim(min(xs) / 1.6, max(xs) * 1.6)
        bottom, top = min(ys + lows), max(ys)
        axes.set_ylim(max(0.0, bottom - 0.05), top + 0.05 if top <= 1 else top * 1.08)
        axes.set_xlabel(label)
        axes.set_ylabel(f"{metric_name(key)}, all examples")
        axes.grid(alpha=0.3)
        axes.spines[["top", "right"]].set_visible(False)
    handles = [
        Line2D([], [], marker="o", linestyle="", color=_COLOURS["teacher"], label="teacher stage"),
        Line2D([], [], marker="o", linestyle="", color=_COLOURS["none"], label="student stage"),
        Line2D([], [], marker="o", linestyle="", color=_COLOURS["bad"], label="check not accepted"),
        Line2D([], [], marker="o", linestyle="", color=_COLOURS["warn"], label="accepted with drops"),
        Line2D([], [], marker="_", color="#555555", linewidth=1, label="worst language"),
    ]
    figure.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=8, frameon=False)
    figure.suptitle("compression ladder: quality against speed and size", fontsize=11, x=0.02, ha="left")
    return _save(figure, path)


def _stage_colour(metrics: Mapping[str, Any], stage: Mapping[str, Any]) -> str:
    status = stage_status(metrics, str(stage["name"]))
    if status in ("bad", "warn"):
        return _COLOURS[status]
    return _COLOURS["teacher"] if str(stage["name"]).startswith("teacher") else _COLOURS["none"]
