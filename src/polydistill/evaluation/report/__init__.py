"""Turn a run's ``metrics.json`` into ``report.md``, a self-contained ``report.html`` and plots.

The report answers one question first: is the student good enough, and in which languages is
it not? A verdict line comes first, then the per-language table sorted worst first with
retention flags (>= 95% ok, 90-95% warn, < 90% bad), the plots, the efficiency table with
ratios, and every metric. The rooms: :mod:`.summary` (verdict, flags, rows, tables, numbers as
text), :mod:`.plots`, :mod:`.render` (markdown and HTML).
"""

from __future__ import annotations

from pathlib import Path

from polydistill.evaluation.metrics_file import read_metrics
from polydistill.evaluation.report.plots import plot_per_language, plot_size_vs_quality
from polydistill.evaluation.report.render import (
    markdown_table,
    render_html,
    render_markdown,
)
from polydistill.evaluation.report.summary import (
    RETENTION_OK,
    RETENTION_WARN,
    SMALL_SAMPLE,
    LanguageRow,
    config_items,
    detail_table,
    efficiency_ratio,
    efficiency_table,
    format_count,
    format_efficiency,
    format_metric,
    format_percent,
    has_teacher,
    language_label,
    language_name,
    language_rows,
    language_table,
    measurement_note,
    metric_keys,
    metric_name,
    primary_metric,
    retention_flag,
    status_headline,
    verdict,
)

PLOTS_DIRNAME = "plots"

__all__ = [
    "PLOTS_DIRNAME",
    "RETENTION_OK",
    "RETENTION_WARN",
    "SMALL_SAMPLE",
    "LanguageRow",
    "config_items",
    "detail_table",
    "efficiency_ratio",
    "efficiency_table",
    "format_count",
    "format_efficiency",
    "format_metric",
    "format_percent",
    "has_teacher",
    "language_label",
    "language_name",
    "language_rows",
    "language_table",
    "markdown_table",
    "measurement_note",
    "metric_keys",
    "metric_name",
    "plot_per_language",
    "plot_size_vs_quality",
    "primary_metric",
    "render_html",
    "render_markdown",
    "retention_flag",
    "status_headline",
    "verdict",
    "write_report",
]


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
