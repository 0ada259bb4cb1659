"""Turn a run's ``metrics.json`` into ``report.md``, a self-contained ``report.html`` and plots.

The report answers one question first: is the student good enough, and in which languages is
it not? A verdict line comes first, then the per-language table sorted worst first with
retention flags (>= 95% ok, 90-95% warn, < 90% bad), the plots, the efficiency table with
ratios, and every metric. Tables are built from whatever metric keys the file holds, so later
tasks (retrieval, similarity) need no change here; the task's primary metric drives verdict,
flags and plots. ``report.html`` embeds its PNGs as data URIs and its CSS inline: it opens
anywhere, offline, as one file.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from polydistill.evaluation.efficiency import EFFICIENCY_KEYS
from polydistill.evaluation.evaluate import UNDETERMINED_LANGUAGE, read_metrics
from polydistill.evaluation.metrics import primary_metric_for

RETENTION_OK = 0.95
RETENTION_WARN = 0.90
SMALL_SAMPLE = 50
"""Languages with fewer evaluation examples than this get a "noisy" mark."""

PLOTS_DIRNAME = "plots"
_COLOURS = {"ok": "#2e7d32", "warn": "#ef8f00", "bad": "#c62828", "none": "#5c6bc0", "teacher": "#9e9e9e"}
_METRIC_NAMES = {
    "accuracy": "accuracy",
    "macro_precision": "macro precision",
    "macro_recall": "macro recall",
    "macro_f1": "macro-F1",
    "agreement": "agreement with teacher",
    "top1_en_to_x": "top-1 en→x",
    "top1_x_to_en": "top-1 x→en",
    "mrr": "MRR",
    "mrr_en_to_x": "MRR en→x",
    "mrr_x_to_en": "MRR x→en",
    "spearman": "Spearman",
    "spearman_teacher_similarity": "Spearman with teacher similarities (en)",
}
_EFFICIENCY_NAMES = {
    "parameters": "parameters",
    "embedding_parameters": "embedding parameters",
    "disk_bytes": "size on disk (weights)",
    "peak_memory_bytes": "peak memory",
    "latency_ms_p50": "latency p50, batch 1",
    "latency_ms_p95": "latency p95, batch 1",
    "throughput_per_s": "throughput, batch 32",
}


# --- reading the metrics -----------------------------------------------------------------


@dataclass(frozen=True)
class LanguageRow:
    """One language of the per-language table: the primary metric and its retention."""

    code: str
    n: int
    teacher: float | None
    student: float | None
    retention: float | None
    agreement: float | None

    @property
    def flag(self) -> str:
        return retention_flag(self.retention)


def metric_name(key: str) -> str:
    """How a metric key reads in a table ("macro_f1" -> "macro-F1")."""
    return _METRIC_NAMES.get(key, key.replace("_", " "))


def retention_flag(value: float | None) -> str:
    """"ok" (>= 95%), "warn" (90-95%), "bad" (< 90%) or "none" (no teacher or no ratio)."""
    if value is None:
        return "none"
    if value >= RETENTION_OK:
        return "ok"
    return "warn" if value >= RETENTION_WARN else "bad"


def primary_metric(metrics: Mapping[str, Any]) -> str:
    """The metric the verdict is about: the file's ``primary_metric`` or the task's default."""
    if metrics.get("primary_metric"):
        return str(metrics["primary_metric"])
    overall_student = (metrics.get("overall") or {}).get("student") or {}
    return primary_metric_for(str(metrics.get("task")), list(overall_student))


def has_teacher(metrics: Mapping[str, Any]) -> bool:
    return any(entry.get("teacher") for entry in metrics["languages"].values())


def language_rows(metrics: Mapping[str, Any]) -> list[LanguageRow]:
    """Per-language rows, worst first (by retention, or by student score without a teacher)."""
    key = primary_metric(metrics)
    rows = []
    for code, entry in metrics["languages"].items():
        teacher = (entry.get("teacher") or {}).get(key)
        student = (entry.get("student") or {}).get(key)
        ratio = (entry.get("retention") or {}).get(key)
        rows.append(
            LanguageRow(
                str(code), int(entry.get("n", 0)), teacher, student, ratio, (entry.get("student") or {}).get("agreement")
            )
        )
    if has_teacher(metrics):
        return sorted(rows, key=lambda row: (row.retention if row.retention is not None else float("inf"), row.code))
    return sorted(rows, key=lambda row: (row.student if row.student is not None else float("inf"), row.code))


def metric_keys(metrics: Mapping[str, Any], role: str) -> list[str]:
    """Metric keys a role ("teacher"/"student"/"retention") has anywhere, in first-seen order."""
    keys: dict[str, None] = {}
    for entry in [*metrics["languages"].values(), metrics.get("overall") or {}]:
        for key in entry.get(role) or {}:
            keys.setdefault(key, None)
    return list(keys)


@lru_cache(maxsize=512)
def language_name(code: str) -> str:
    """English name of a BCP-47 code ("sw" -> "Swahili"), or "" when none is known.

    Names come from CLDR through :func:`polydistill.data.languages.language_name` (Babel, which
    Sphinx brings); without Babel, codes stand alone.
    """
    if code == UNDETERMINED_LANGUAGE:
        return "undetermined"
    try:
        from polydistill.data.languages import language_name as cldr_name

        name = cldr_name(code)
    except (ImportError, ValueError, KeyError, TypeError):
        return ""
    return "" if name == code else name


def language_label(code: str) -> str:
    name = language_name(code)
    return f"{code} ({name})" if name else code


# --- numbers as words --------------------------------------------------------------------


def format_metric(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def format_percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def format_count(value: float | None) -> str:
    if value is None:
        return "–"
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:.1f}{suffix}"
    return f"{value:.0f}"


def format_bytes(value: float | None) -> str:
    if value is None:
        return "–"
    for limit, suffix in ((1024**3, "GiB"), (1024**2, "MiB"), (1024, "KiB")):
        if abs(value) >= limit:
            return f"{value / limit:.1f} {suffix}"
    return f"{value:.0f} B"


def format_efficiency(key: str, value: Any) -> str:
    if value is None:
        return "–"
    if key.endswith("bytes"):
        return format_bytes(value)
    if "parameters" in key:
        return format_count(value)
    if key.startswith("latency_ms"):
        return f"{value:.2f} ms"
    if key.startswith("throughput"):
        return f"{value:,.1f} texts/s"
    return format_metric(value)


def efficiency_ratio(key: str, teacher: Any, student: Any) -> tuple[float | None, str]:
    """(student/teacher, a phrase such as "8.4x smaller" or "3.2x faster") for one key."""
    if not isinstance(teacher, (int, float)) or not isinstance(student, (int, float)) or not teacher or not student:
        return None, ""
    ratio = student / teacher
    if key.startswith("throughput"):
        return ratio, _times(ratio, "faster", "slower")
    if key.startswith("latency"):
        return ratio, _times(1 / ratio, "faster", "slower")
    if key.endswith("bytes"):
        return ratio, _times(1 / ratio, "smaller", "larger")
    return ratio, _times(1 / ratio, "fewer", "more")


def _times(factor: float, better: str, worse: str) -> str:
    if factor >= 1:
        return f"{factor:.1f}x {better}"
    return f"{1 / factor:.1f}x {worse}"


# --- the verdict -------------------------------------------------------------------------


def verdict(metrics: Mapping[str, Any]) -> tuple[str, str]:
    """(status, sentence): status is "ok", "warn", "bad" or "none"; the sentence is the summary."""
    key = primary_metric(metrics)
    rows = language_rows(metrics)
    overall = metrics.get("overall") or {}
    name = metric_name(key)
    count = f"{len(rows)} language{'s' if len(rows) != 1 else ''}"
    parts: list[str] = []
    if has_teacher(metrics):
        mean_retention = (overall.get("mean_language_retention") or {}).get(key)
        parts.append(f"Student keeps {format_percent(mean_retention)} of the teacher's {name} on average over {count}")
    else:
        mean_student = ((overall.get("language_mean") or {}).get("student") or {}).get(key)
        lowest = rows[0] if rows else None
        tail = f" (lowest: {lowest.code} {format_metric(lowest.student)})" if lowest and len(rows) > 1 else ""
        parts.append(
            f"Student {name} is {format_metric(mean_student)} on average over {count}{tail}; no teacher to compare with"
        )
    teacher_eff, student_eff = metrics.get("teacher") or {}, metrics.get("student") or {}
    _, size_phrase = efficiency_ratio("parameters", teacher_eff.get("parameters"), student_eff.get("parameters"))
    _, speed_phrase = efficiency_ratio(
        "latency_ms_p50", teacher_eff.get("latency_ms_p50"), student_eff.get("latency_ms_p50")
    )
    if size_phrase:
        parts.append(f"has {size_phrase} parameters")
    if speed_phrase:
        parts.append(f"is {speed_phrase} at batch 1")
    sentence = ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1]
    if not has_teacher(metrics):
        return "none", sentence + "."
    bad = [row for row in rows if row.flag == "bad"]
    warn = [row for row in rows if row.flag == "warn"]
    if bad:
        sentence += f"; below {RETENTION_WARN:.0%} retention: {_list_rows(bad)}"
    if warn:
        sentence += f"; between {RETENTION_WARN:.0%} and {RETENTION_OK:.0%}: {_list_rows(warn)}"
    if not bad and not warn:
        sentence += f"; every language keeps at least {RETENTION_OK:.0%}"
    status = "bad" if bad else "warn" if warn else "ok"
    return status, sentence + "."


def _list_rows(rows: Sequence[LanguageRow], limit: int = 8) -> str:
    listed = ", ".join(f"{row.code} ({format_percent(row.retention)})" for row in rows[:limit])
    return listed + (f" and {len(rows) - limit} more" if len(rows) > limit else "")


def status_headline(metrics: Mapping[str, Any], status: str) -> str:
    rows = language_rows(metrics)
    total = len(rows)
    if status == "none":
        return "Student only (no teacher given)"
    if status == "ok":
        return f"Good enough in all {total} languages"
    bad = sum(row.flag == "bad" for row in rows)
    warn = sum(row.flag == "warn" for row in rows)
    if status == "bad":
        return f"Not good enough in {bad} of {total} languages" + (f", borderline in {warn} more" if warn else "")
    return f"Borderline in {warn} of {total} languages"


# --- plots -------------------------------------------------------------------------------


def plot_per_language(metrics: Mapping[str, Any], path: Path) -> Path:
    """Horizontal bars per language, worst at the top: teacher grey, student coloured by flag."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    key = primary_metric(metrics)
    rows = language_rows(metrics)
    with_teacher = has_teacher(metrics)
    height = 1.6 + len(rows) * (0.42 if with_teacher else 0.3)
    figure = Figure(figsize=(8.5, height), layout="constrained")
    axes = figure.add_subplot()
    positions = list(range(len(rows)))[::-1]
    bar = 0.38 if with_teacher else 0.7
    top_value = max([v for row in rows for v in (row.teacher, row.student) if v is not None] or [1.0])
    for position, row in zip(positions, rows, strict=True):
        if with_teacher and row.teacher is not None:
            axes.barh(position + bar / 2, row.teacher, height=bar, color=_COLOURS["teacher"])
            target = RETENTION_OK * row.teacher
            axes.plot([target, target], [position - bar * 1.05, position + 0.02], color="#212121", linewidth=1.6)
        student_offset = -bar / 2 if with_teacher else 0.0
        if row.student is not None:
            axes.barh(position + student_offset, row.student, height=bar, color=_COLOURS[row.flag])
            show_retention = with_teacher and row.retention is not None
            note = format_percent(row.retention) if show_retention else format_metric(row.student)
            axes.text(
                max(row.student, row.teacher or 0) + top_value * 0.01, position, note,
                va="center", fontsize=9, color=_COLOURS[row.flag] if row.flag != "none" else "#333333",
            )
    axes.set_yticks(positions, [_short_label(row) for row in rows], fontsize=9)
    axes.set_xlim(0, top_value * 1.15)
    axes.set_xlabel(metric_name(key))
    axes.set_ylim(-0.7, len(rows) - 0.3)
    axes.grid(axis="x", alpha=0.3)
    axes.spines[["top", "right"]].set_visible(False)
    if with_teacher:
        axes.set_title(f"{metric_name(key)} per language, worst retention at the top", fontsize=11, loc="left")
        handles = [
            Patch(color=_COLOURS["teacher"], label="teacher"),
            Patch(color=_COLOURS["ok"], label=f"student, retention ≥ {RETENTION_OK:.0%}"),
            Patch(color=_COLOURS["warn"], label=f"student, {RETENTION_WARN:.0%}–{RETENTION_OK:.0%}"),
            Patch(color=_COLOURS["bad"], label=f"student, < {RETENTION_WARN:.0%}"),
            Line2D([], [], color="#212121", linewidth=1.6, label=f"{RETENTION_OK:.0%} of teacher"),
        ]
        figure.legend(handles=handles, loc="outside lower center", ncols=5, fontsize=8, frameon=False)
    else:
        axes.set_title(f"student {metric_name(key)} per language, lowest at the top", fontsize=11, loc="left")
    return _save(figure, path)


def plot_size_vs_quality(metrics: Mapping[str, Any], path: Path) -> Path | None:
    """Teacher and student as points: parameters (and latency) against the primary metric.

    Returns None (no plot) unless both have efficiency numbers and a score.
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullFormatter

    key = primary_metric(metrics)
    means = (metrics.get("overall") or {}).get("language_mean") or {}
    points = []
    for role in ("teacher", "student"):
        efficiency = metrics.get(role) or {}
        quality = (means.get(role) or {}).get(key)
        if efficiency.get("parameters") and quality is not None:
            points.append((role, efficiency, quality))
    if len(points) < 2:  # one point compares nothing
        return None
    panels = [("parameters", "parameters (log scale)", format_count)]
    if all(point[1].get("latency_ms_p50") for point in points):
        panels.append(("latency_ms_p50", "latency p50 at batch 1, ms (log scale)", lambda v: f"{v:.1f} ms"))
    figure = Figure(figsize=(4.6 * len(panels), 3.8), layout="constrained")
    for index, (eff_key, label, formatter) in enumerate(panels):
        axes = figure.add_subplot(1, len(panels), index + 1)
        xs = [point[1][eff_key] for point in points]
        ys = [point[2] for point in points]
        axes.annotate("", xy=(xs[1], ys[1]), xytext=(xs[0], ys[0]), arrowprops={"arrowstyle": "->", "color": "#777777"})
        for (role, efficiency, quality), x in zip(points, xs, strict=True):
            colour = _COLOURS["teacher"] if role == "teacher" else _COLOURS[_overall_flag(metrics)]
            axes.scatter([x], [quality], s=90, color=colour, zorder=3)
            axes.annotate(f"{role}\n{formatter(x)}, {format_metric(quality)}", (x, quality), textcoords="offset points",
                          xytext=(0, 10), ha="center", fontsize=9)
        axes.set_xscale("log")
        axes.xaxis.set_minor_formatter(NullFormatter())
        axes.xaxis.set_major_formatter(NullFormatter())
        axes.set_xticks(xs, [formatter(x) for x in xs])
        low, high = min(xs), max(xs)
        axes.set_xlim(low / 2.5, high * 2.5)
        bottom = min(ys)
        axes.set_ylim(max(0.0, bottom - 0.15), min(1.05, max(ys) + 0.12) if max(ys) <= 1 else max(ys) * 1.12)
        axes.set_xlabel(label)
        axes.set_ylabel(f"{metric_name(key)}, mean over languages")
        axes.grid(alpha=0.3)
        axes.spines[["top", "right"]].set_visible(False)
    figure.suptitle("size and speed against quality", fontsize=11, x=0.02, ha="left")
    return _save(figure, path)


def _overall_flag(metrics: Mapping[str, Any]) -> str:
    ratio = ((metrics.get("overall") or {}).get("mean_language_retention") or {}).get(primary_metric(metrics))
    return retention_flag(ratio)


def _short_label(row: LanguageRow) -> str:
    name = language_name(row.code)
    if len(name) > 22:
        name = name[:21] + "…"
    return f"{row.code} · {name}  (n={row.n})" if name else f"{row.code}  (n={row.n})"


def _save(figure: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    # No "Software" chunk: the PNG then carries no URL, and the HTML has none even inside images.
    figure.savefig(path, dpi=110, metadata={"Software": None})
    return path


# --- tables ------------------------------------------------------------------------------


def language_table(metrics: Mapping[str, Any]) -> tuple[list[str], list[list[str]], list[str]]:
    """(header, rows, flags) of the per-language table of the primary metric."""
    key = primary_metric(metrics)
    with_teacher = has_teacher(metrics)
    name = metric_name(key)
    rows = language_rows(metrics)
    with_agreement = any(row.agreement is not None for row in rows)  # classifiers have it, embeddings not
    header = ["language", "n"]
    if with_teacher:
        header += [f"teacher {name}", f"student {name}", "retention", *(["agreement"] if with_agreement else []), "status"]
    else:
        header += [f"student {name}"]
    body, flags = [], []
    for row in rows:
        cells = [language_label(row.code), str(row.n)]
        if with_teacher:
            status = {"ok": "ok", "warn": "warn", "bad": "BAD", "none": "–"}[row.flag]
            if row.n < SMALL_SAMPLE:
                status += " (few examples)"
            cells += [format_metric(row.teacher), format_metric(row.student), format_percent(row.retention),
                      *([format_metric(row.agreement)] if with_agreement else []), status]
        else:
            cells += [format_metric(row.student)]
        body.append(cells)
        flags.append(row.flag)
    return header, body, flags


def efficiency_table(metrics: Mapping[str, Any]) -> tuple[list[str], list[list[str]]] | None:
    """(header, rows) comparing teacher and student size and speed, or None without numbers."""
    teacher, student = metrics.get("teacher") or {}, metrics.get("student") or {}
    if not teacher and not student:
        return None
    keys = [key for key in EFFICIENCY_KEYS if key in teacher or key in student]
    if teacher and student:
        header = ["", "teacher", "student", "student / teacher", ""]
    else:
        header = ["", "teacher" if teacher else "student"]
    rows = []
    for key in keys:
        label = _EFFICIENCY_NAMES.get(key, key.replace("_", " "))
        if teacher and student:
            ratio, phrase = efficiency_ratio(key, teacher.get(key), student.get(key))
            rows.append([label, format_efficiency(key, teacher.get(key)), format_efficiency(key, student.get(key)),
                         "–" if ratio is None else f"{ratio:.3f}", phrase])
        else:
            source = teacher or student
            rows.append([label, format_efficiency(key, source.get(key))])
    return header, rows


def measurement_note(metrics: Mapping[str, Any]) -> str:
    """One sentence on how the efficiency numbers were taken (threads, device, repeats)."""
    source = metrics.get("student") or metrics.get("teacher") or {}
    if not source:
        return ""
    return (
        f"Measured in one process on {source.get('device', '?')} with {source.get('threads', '?')} thread(s), "
        f"{source.get('dtype', '?')} weights; latency: median and p95 of {source.get('repeats', '?')} single-text calls "
        f"after {source.get('warmup', '?')} warm-up calls on texts from the evaluated data (tokenisation included); "
        f"throughput over {source.get('throughput_batches', '?')} batches of {source.get('throughput_batch_size', '?')}; "
        f"peak memory: {_MEMORY_METHODS.get(str(source.get('peak_memory_method')), source.get('peak_memory_method'))}; "
        "size on disk: weight files only."
    )


_MEMORY_METHODS = {
    "fresh_process_vmhwm": "resident memory a fresh process adds to load the tokenizer and model and run one batch",
    "cuda_max_memory_allocated": "weights plus the peak CUDA memory of one batch",
    "in_process_rss_sampling": "weights plus the sampled resident-memory rise of one batch (in-process estimate)",
    "skipped": "not measured",
}


def detail_table(metrics: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Every metric key of every role, per language and overall (alphabetical, overall last)."""
    roles = [role for role in ("teacher", "student", "retention") if metric_keys(metrics, role)]
    columns = [(role, key) for role in roles for key in metric_keys(metrics, role)]
    header = ["language", "n"] + [f"{role} {metric_name(key)}" for role, key in columns]
    rows = []
    entries = sorted(metrics["languages"].items()) + [("overall", metrics.get("overall") or {})]
    for code, entry in entries:
        cells = [code, str(entry.get("n", ""))]
        for role, key in columns:
            value = (entry.get(role) or {}).get(key)
            cells.append(format_percent(value) if role == "retention" else format_metric(value))
        rows.append(cells)
    return header, rows


def config_items(metrics: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Flat (name, value) pairs of the run's config summary, for a small table."""
    config = metrics.get("config") or {}
    items = []
    for name, value in config.items():
        if isinstance(value, (list, tuple)):
            value = ", ".join(str(item) for item in value)
        elif isinstance(value, Mapping):
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        items.append((str(name), str(value)))
    return items


# --- writers -----------------------------------------------------------------------------


def write_report(run_dir: str | Path) -> dict[str, Path]:
    """Write report.md, report.html and the plots of ``run_dir/metrics.json``; return their paths."""
    run = Path(run_dir)
    metrics = read_metrics(run)
    plots_dir = run / PLOTS_DIRNAME
    key = primary_metric(metrics)
    paths: dict[str, Path] = {"per_language_plot": plot_per_language(metrics, plots_dir / f"per_language_{key}.png")}
    scatter_path = plots_dir / "size_vs_quality.png"
    scatter = plot_size_vs_quality(metrics, scatter_path)
    if scatter is not None:
        paths["size_vs_quality_plot"] = scatter
    else:
        scatter_path.unlink(missing_ok=True)  # a plot left from an earlier report would mislead
    paths["markdown"] = run / "report.md"
    paths["markdown"].write_text(render_markdown(metrics, paths, run), encoding="utf-8")
    paths["html"] = run / "report.html"
    paths["html"].write_text(render_html(metrics, paths), encoding="utf-8")
    return paths


def _title(metrics: Mapping[str, Any]) -> str:
    config = metrics.get("config") or {}
    student, teacher = config.get("student"), config.get("teacher")
    if student and teacher:
        return f"Distillation report: {student} from {teacher}"
    return f"Evaluation report: {student or 'student'} ({metrics.get('task')})"


def render_markdown(metrics: Mapping[str, Any], paths: Mapping[str, Path], run: Path) -> str:
    status, sentence = verdict(metrics)
    lines = [f"# {_title(metrics)}", "", f"**{status_headline(metrics, status)}.** {sentence}", ""]
    header, rows, _ = language_table(metrics)
    lines += ["## Per language (worst first)", "", *markdown_table(header, rows), ""]
    lines += ["## Plots", ""]
    for plot_key, caption in (("per_language_plot", "per-language"), ("size_vs_quality_plot", "size vs quality")):
        if plot_key in paths:
            lines.append(f"![{caption}]({paths[plot_key].relative_to(run).as_posix()})")
    lines.append("")
    efficiency = efficiency_table(metrics)
    if efficiency is not None:
        lines += ["## Size and speed", "", *markdown_table(*efficiency), "", measurement_note(metrics), ""]
    lines += ["## All metrics", "", *markdown_table(*detail_table(metrics)), ""]
    items = config_items(metrics)
    if items:
        lines += ["## Run", "", *markdown_table(["", ""], [[name, value] for name, value in items]), ""]
    return "\n".join(lines)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    def cell(text: str) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(text) for text in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(text) for text in row) + " |" for row in rows]
    return lines


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;max-width:1100px;
padding:0 1rem;color:#222;line-height:1.45}
h1{font-size:1.5rem;margin-bottom:.5rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd}
.verdict{padding:1rem 1.2rem;border-radius:8px;border-left:8px solid;font-size:1.05rem;margin:1rem 0}
.verdict strong{display:block;font-size:1.25rem;margin-bottom:.3rem}
.v-ok{background:#e8f5e9;border-color:#2e7d32}.v-warn{background:#fff3e0;border-color:#ef8f00}
.v-bad{background:#ffebee;border-color:#c62828}.v-none{background:#e8eaf6;border-color:#5c6bc0}
table{border-collapse:collapse;margin:.5rem 0;font-size:.9rem}
th,td{border:1px solid #ddd;padding:.25rem .6rem;text-align:right}
th{background:#f5f5f5}td:first-child,th:first-child{text-align:left}
tr.ok td.flag{background:#c8e6c9}tr.warn td.flag{background:#ffe0b2}tr.bad td.flag{background:#ffcdd2;font-weight:600}
.scroll{overflow-x:auto}img{max-width:100%;height:auto;display:block;margin:.8rem 0}
.note{color:#555;font-size:.85rem}
"""


def render_html(metrics: Mapping[str, Any], paths: Mapping[str, Path]) -> str:
    status, sentence = verdict(metrics)
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(_title(metrics))}</title><style>{_CSS}</style></head><body>",
        f"<h1>{esc(_title(metrics))}</h1>",
        f'<div class="verdict v-{status}"><strong>{esc(status_headline(metrics, status))}</strong>{esc(sentence)}</div>',
    ]
    header, rows, flags = language_table(metrics)
    flag_columns = {header.index("retention"), header.index("status")} if "retention" in header else set()
    parts.append("<h2>Per language (worst first)</h2>")
    parts.append(_html_table(header, rows, row_classes=flags, flag_columns=flag_columns))
    for plot_key, alt in (("per_language_plot", "per-language bars, teacher vs student"),
                          ("size_vs_quality_plot", "size and speed against quality")):
        if plot_key in paths:
            encoded = base64.b64encode(paths[plot_key].read_bytes()).decode("ascii")
            parts.append(f'<img alt="{esc(alt)}" src="data:image/png;base64,{encoded}">')
    efficiency = efficiency_table(metrics)
    if efficiency is not None:
        parts.append("<h2>Size and speed</h2>")
        parts.append(_html_table(*efficiency))
        parts.append(f'<p class="note">{esc(measurement_note(metrics))}</p>')
    parts.append("<h2>All metrics</h2>")
    parts.append(_html_table(*detail_table(metrics)))
    items = config_items(metrics)
    if items:
        parts.append("<h2>Run</h2>")
        parts.append(_html_table(["", ""], [[name, value] for name, value in items]))
    meta = metrics.get("meta") or {}
    parts.append(f'<p class="note">polydistill {esc(str(meta.get("polydistill_version", "")))}, '
                 f'{esc(str(meta.get("created_at", "")))}</p>')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _html_table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    row_classes: Sequence[str] | None = None,
    flag_columns: set[int] | None = None,
) -> str:
    esc = html.escape
    flag_columns = flag_columns or set()
    out = ['<div class="scroll"><table><thead><tr>', *(f"<th>{esc(text)}</th>" for text in header), "</tr></thead><tbody>"]
    for index, row in enumerate(rows):
        css = f' class="{row_classes[index]}"' if row_classes else ""
        cells = "".join(
            f'<td class="flag">{esc(text)}</td>' if column in flag_columns else f"<td>{esc(text)}</td>"
            for column, text in enumerate(row)
        )
        out.append(f"<tr{css}>{cells}</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)
