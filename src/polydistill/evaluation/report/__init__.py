"""Turn a run's ``metrics.json`` into ``report.md``, a self-contained ``report.html`` and plots.

The report answers one question first: is the student good enough, and in which languages is
it not? A verdict line comes first (pooled, median and worst comparable language), then the
per-language table sorted worst first with retention flags (>= 95% ok, 90-95% warn, < 90% bad;
languages too small or with one class are marked, never flagged), each test set on its own when
the run has several (the first is the primary one, which everything else is about; a set without
gold labels shows the student's agreement with the teacher instead), the plots, the most frequent
confusions, robustness to noise, the efficiency table with ratios, the compression ladder when
the run has one, and every metric. The rooms: :mod:`.summary`
(verdict, flags, rows, tables, numbers as text), :mod:`.plots`, :mod:`.ladder` (the compression
stages as tables and a plot), :mod:`.render` (markdown and HTML).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from polydistill.atomic import atomic_write_text
from polydistill.evaluation.report.ladder import (
    LADDER_PLOT,
    CheckLine,
    check_lines,
    has_compression,
    is_compression_only,
    ladder_language_table,
    ladder_table,
    plot_ladder,
    read_report_metrics,
)
from polydistill.evaluation.report.plots import plot_confusions, plot_per_language, plot_size_vs_quality
from polydistill.evaluation.report.render import (
    markdown_table,
    render_html,
    render_ladder_html,
    render_ladder_markdown,
    render_markdown,
)
from polydistill.evaluation.report.summary import (
    RETENTION_OK,
    RETENTION_WARN,
    SMALL_SAMPLE,
    EvalSetSummary,
    LanguageRow,
    ci_note,
    config_items,
    confusion_table,
    detail_table,
    efficiency_ratio,
    efficiency_table,
    eval_set_line,
    eval_set_metrics,
    eval_set_summaries,
    eval_sets_note,
    eval_sets_table,
    format_count,
    format_efficiency,
    format_interval,
    format_metric,
    format_percent,
    has_eval_sets,
    has_noise,
    has_teacher,
    headline,
    held_out_sentence,
    language_label,
    language_name,
    language_rows,
    language_table,
    measurement_note,
    metric_keys,
    metric_name,
    noise_note,
    noise_table,
    primary_headline,
    primary_metric,
    retention_flag,
    status_headline,
    top_confusions,
    verdict,
)

PLOTS_DIRNAME = "plots"
CONFUSION_PLOT = "confusion_student.png"

__all__ = [
    "CONFUSION_PLOT",
    "LADDER_PLOT",
    "PLOTS_DIRNAME",
    "RETENTION_OK",
    "RETENTION_WARN",
    "SMALL_SAMPLE",
    "CheckLine",
    "EvalSetSummary",
    "LanguageRow",
    "check_lines",
    "ci_note",
    "config_items",
    "confusion_table",
    "detail_table",
    "efficiency_ratio",
    "efficiency_table",
    "eval_set_line",
    "eval_set_metrics",
    "eval_set_summaries",
    "eval_sets_note",
    "eval_sets_table",
    "format_count",
    "format_efficiency",
    "format_interval",
    "format_metric",
    "format_percent",
    "has_compression",
    "has_eval_sets",
    "has_noise",
    "has_teacher",
    "headline",
    "held_out_sentence",
    "is_compression_only",
    "ladder_language_table",
    "ladder_table",
    "language_label",
    "language_name",
    "language_rows",
    "language_table",
    "markdown_table",
    "measurement_note",
    "metric_keys",
    "metric_name",
    "noise_note",
    "noise_table",
    "plot_confusions",
    "plot_ladder",
    "plot_per_language",
    "plot_size_vs_quality",
    "primary_headline",
    "primary_metric",
    "read_report_metrics",
    "render_html",
    "render_ladder_html",
    "render_ladder_markdown",
    "render_markdown",
    "retention_flag",
    "status_headline",
    "top_confusions",
    "verdict",
    "write_report",
]


def write_report(run_dir: str | Path) -> dict[str, Path]:
    """Write report.md, report.html and the plots of ``run_dir/metrics.json``; return their paths.

    A run's document gets the full report (and a "Compression" section when it has a
    ``compression`` block); a compression-only document, as ``polydistill compress`` writes,
    gets the ladder alone.
    """
    run = Path(run_dir)
    metrics = read_report_metrics(run)
    plots_dir = run / PLOTS_DIRNAME
    paths: dict[str, Path] = {}
    if not is_compression_only(metrics):
        key = primary_metric(metrics)
        paths["per_language_plot"] = plot_per_language(metrics, plots_dir / f"per_language_{key}.png")
        _optional_plot(paths, "size_vs_quality_plot", plot_size_vs_quality, metrics, plots_dir / "size_vs_quality.png")
        _optional_plot(paths, "confusion_plot", plot_confusions, metrics, plots_dir / CONFUSION_PLOT)
    if has_compression(metrics):
        _optional_plot(paths, "ladder_plot", plot_ladder, metrics, plots_dir / LADDER_PLOT)
    else:
        (plots_dir / LADDER_PLOT).unlink(missing_ok=True)
    paths["markdown"] = run / "report.md"
    atomic_write_text(paths["markdown"], render_markdown(metrics, paths, run))
    paths["html"] = run / "report.html"
    atomic_write_text(paths["html"], render_html(metrics, paths))
    return paths


def _optional_plot(
    paths: dict[str, Path], name: str, plot: Callable[[Mapping[str, Any], Path], Path | None], metrics: Mapping[str, Any], path: Path
) -> None:
    written = plot(metrics, path)
    if written is not None:
        paths[name] = written
    else:
        path.unlink(missing_ok=True)  # a plot left from an earlier report would mislead
