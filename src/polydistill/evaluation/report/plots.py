"""The report's plots: the primary metric per language, size and speed against quality, and the
student's confusions per language."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from polydistill.evaluation.report.summary import (
    RETENTION_OK,
    RETENTION_WARN,
    LanguageRow,
    format_count,
    format_metric,
    format_percent,
    has_teacher,
    language_name,
    language_rows,
    metric_name,
    primary_headline,
    primary_metric,
    retention_flag,
)

_COLOURS = {"ok": "#2e7d32", "warn": "#ef8f00", "bad": "#c62828", "none": "#5c6bc0", "teacher": "#9e9e9e"}


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
            if not row.comparable:  # its ratio would mislead beside the others
                note = "not comparable"
            axes.text(
                max(row.student, row.teacher or 0) + top_value * 0.01,
                position,
                note,
                va="center",
                fontsize=9,
                color=_COLOURS[row.flag] if row.flag != "none" else "#333333",
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
        if any(not row.comparable for row in rows):
            handles.append(Patch(color=_COLOURS["none"], label="student, not comparable"))
        figure.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 6), fontsize=8, frameon=False)
    else:
        axes.set_title(f"student {metric_name(key)} per language, lowest at the top", fontsize=11, loc="left")
    return _save(figure, path)


def plot_size_vs_quality(metrics: Mapping[str, Any], path: Path) -> Path | None:
    """Teacher and student as points: parameters (and latency) against the primary metric,
    pooled over all test examples.

    Returns None (no plot) unless both have efficiency numbers and a score.
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullFormatter

    key = primary_metric(metrics)
    overall = metrics.get("overall") or {}  # pooled over all test examples: every language counts, none dominates
    points = []
    for role in ("teacher", "student"):
        efficiency = metrics.get(role) or {}
        quality = (overall.get(role) or {}).get(key)
        if efficiency.get("parameters") and quality is not None:
            points.append((role, efficiency, quality))
    if len(points) < 2:  # one point compares nothing
        return None
    panels: list[tuple[str, str, Callable[[float], str]]] = [("parameters", "parameters (log scale)", format_count)]
    if all(point[1].get("latency_ms_p50") for point in points):
        panels.append(("latency_ms_p50", "latency p50 at batch 1, ms (log scale)", lambda v: f"{v:.1f} ms"))
    figure = Figure(figsize=(4.6 * len(panels), 3.8), layout="constrained")
    for index, (eff_key, label, formatter) in enumerate(panels):
        axes = figure.add_subplot(1, len(panels), index + 1)
        xs = [point[1][eff_key] for point in points]
        ys = [point[2] for point in points]
        axes.annotate("", xy=(xs[1], ys[1]), xytext=(xs[0], ys[0]), arrowprops={"arrowstyle": "->", "color": "#777777"})
        for (role, _, quality), x in zip(points, xs, strict=True):
            colour = _COLOURS["teacher"] if role == "teacher" else _COLOURS[_overall_flag(metrics)]
            axes.scatter([x], [quality], s=90, color=colour, zorder=3)
            axes.annotate(
                f"{role}\n{formatter(x)}, {format_metric(quality)}",
                (x, quality),
                textcoords="offset points",
                xytext=(0, 10),
                ha="center",
                fontsize=9,
            )
        axes.set_xscale("log")
        axes.xaxis.set_minor_formatter(NullFormatter())
        axes.xaxis.set_major_formatter(NullFormatter())
        axes.set_xticks(xs, [formatter(x) for x in xs])
        low, high = min(xs), max(xs)
        axes.set_xlim(low / 2.5, high * 2.5)
        bottom = min(ys)
        axes.set_ylim(max(0.0, bottom - 0.15), min(1.05, max(ys) + 0.12) if max(ys) <= 1 else max(ys) * 1.12)
        axes.set_xlabel(label)
        axes.set_ylabel(f"{metric_name(key)}, all test examples")
        axes.grid(alpha=0.3)
        axes.spines[["top", "right"]].set_visible(False)
    figure.suptitle("size and speed against quality", fontsize=11, x=0.02, ha="left")
    return _save(figure, path)


def _overall_flag(metrics: Mapping[str, Any]) -> str:
    """The flag of the worst comparable language's retention: the verdict's status."""
    worst = (primary_headline(metrics).get("worst") or {}).get("retention")
    return retention_flag(worst["value"] if worst else None)


MAX_CONFUSION_PANELS = 16
"""At most this many languages (the worst) get a panel in the confusion plot."""


def plot_confusions(metrics: Mapping[str, Any], path: Path) -> Path | None:
    """Small multiples: the student's row-normalised confusion matrix per language, worst first.

    Row = gold class, column = predicted class, each row summing to 1 (the share of that gold
    class predicted as each class), so languages of different sizes read alike. Returns None
    (no plot) when the file has no confusion counts.
    """
    import numpy as np
    from matplotlib.figure import Figure

    panels = []
    for row in language_rows(metrics):
        confusion = metrics["languages"][row.code].get("confusion") or {}
        if confusion.get("student"):
            panels.append((row, np.asarray(confusion["student"], dtype=float), list(confusion.get("labels") or [])))
    if not panels:
        return None
    panels = panels[:MAX_CONFUSION_PANELS]
    classes = max(matrix.shape[0] for _, matrix, _ in panels)
    columns = min(4, len(panels))
    lines = -(-len(panels) // columns)
    side = 1.4 + 0.32 * classes
    figure = Figure(figsize=(side * columns + 0.8, side * lines + 0.9), layout="constrained")
    key = primary_metric(metrics)
    image = None
    for index, (row, matrix, labels) in enumerate(panels):
        axes = figure.add_subplot(lines, columns, index + 1)
        totals = matrix.sum(axis=1, keepdims=True)
        shares = np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)
        image = axes.imshow(shares, vmin=0.0, vmax=1.0, cmap="Blues")
        if matrix.shape[0] <= 8:
            for gold in range(matrix.shape[0]):
                for predicted in range(matrix.shape[1]):
                    if totals[gold, 0]:
                        value = shares[gold, predicted]
                        colour = "white" if value > 0.6 else "#333333"
                        axes.text(
                            predicted,
                            gold,
                            f"{value:.2f}".lstrip("0") if value < 1 else "1",
                            ha="center",
                            va="center",
                            fontsize=7,
                            color=colour,
                        )
        names = [_short(str(label)) for label in labels] if len(labels) == matrix.shape[0] else [str(i) for i in range(matrix.shape[0])]
        axes.set_xticks(range(matrix.shape[1]), names, fontsize=7, rotation=45, ha="right")
        axes.set_yticks(range(matrix.shape[0]), names if index % columns == 0 else [""] * len(names), fontsize=7)
        mark = "" if row.comparable else ", not comparable"
        axes.set_title(f"{row.code} (n={row.n}{mark}) {format_metric(row.student)}", fontsize=8, loc="left")
    if image is not None:
        figure.colorbar(image, ax=figure.axes, shrink=0.6, label="share of the gold class")
    figure.suptitle(
        f"student confusions per language (rows: gold, columns: predicted), worst {metric_name(key)} retention first",
        fontsize=10,
        x=0.02,
        ha="left",
    )
    return _save(figure, path)


def _short(label: str, limit: int = 12) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def _short_label(row: LanguageRow) -> str:
    name = language_name(row.code)
    if len(name) > 22:
        name = name[:21] + "…"
    mark = ", not comparable" if not row.comparable else ""
    return f"{row.code} · {name}  (n={row.n}{mark})" if name else f"{row.code}  (n={row.n}{mark})"


def _save(figure: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    # No "Software" chunk: the PNG then carries no URL, and the HTML has none even inside images.
    partial = path.with_name(f".{path.name}.partial")
    figure.savefig(partial, dpi=110, format=path.suffix.lstrip(".") or "png", metadata={"Software": None})
    os.replace(partial, path)  # a report never shows half a plot
    return path
