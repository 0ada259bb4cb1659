"""``report.md`` and a self-contained ``report.html`` (PNGs as data URIs, CSS inline: it opens
anywhere, offline, as one file).

A run whose ``metrics.json`` has a ``compression`` block gets a "Compression" section; a document
with only that block (what ``polydistill compress`` writes) gets a report of the section alone.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from polydistill.evaluation.report.ladder import (
    check_lines,
    has_compression,
    is_compression_only,
    ladder_language_table,
    ladder_note,
    ladder_table,
)
from polydistill.evaluation.report.summary import (
    ci_note,
    config_items,
    confusion_table,
    detail_table,
    efficiency_table,
    eval_set_line,
    eval_set_summaries,
    eval_sets_note,
    eval_sets_table,
    language_table,
    measurement_note,
    noise_note,
    noise_table,
    status_headline,
    verdict,
)

_PLOTS = (
    ("per_language_plot", "per-language", "per-language bars, teacher vs student"),
    ("size_vs_quality_plot", "size vs quality", "size and speed against quality"),
    ("confusion_plot", "student confusions per language", "the student's row-normalised confusion matrix per language"),
)


def _title(metrics: Mapping[str, Any]) -> str:
    config = metrics.get("config") or {}
    if is_compression_only(metrics):
        return f"Compression report: {config.get('student') or 'student'}" + (f" ({metrics['task']})" if metrics.get("task") else "")
    student, teacher = config.get("student"), config.get("teacher")
    if student and teacher:
        return f"Distillation report: {student} from {teacher}"
    return f"Evaluation report: {student or 'student'} ({metrics.get('task')})"


def render_markdown(metrics: Mapping[str, Any], paths: Mapping[str, Path], run: Path) -> str:
    ladder_plot = paths["ladder_plot"].relative_to(run).as_posix() if "ladder_plot" in paths else None
    if is_compression_only(metrics):
        return "\n".join([f"# {_title(metrics)}", "", render_ladder_markdown(metrics, plot=ladder_plot)])
    status, sentence = verdict(metrics)
    lines = [f"# {_title(metrics)}", "", f"**{status_headline(metrics, status)}.** {sentence}", ""]
    header, rows, _ = language_table(metrics)
    lines += ["## Per language (worst first)", "", *markdown_table(header, rows), ""]
    note = ci_note(metrics)
    if note:
        lines += [note, ""]
    sets = eval_sets_table(metrics)
    if sets is not None:
        lines += ["## Evaluation sets", "", *(f"- {eval_set_line(metrics, summary)}" for summary in eval_set_summaries(metrics)), ""]
        lines += [*markdown_table(*sets), "", eval_sets_note(metrics), ""]
    lines += ["## Plots", ""]
    for plot_key, caption, _ in _PLOTS:
        if plot_key in paths:
            lines.append(f"![{caption}]({paths[plot_key].relative_to(run).as_posix()})")
    lines.append("")
    confusions = confusion_table(metrics)
    if confusions is not None:
        lines += ["## Most frequent confusions", "", *markdown_table(*confusions), ""]
    noise = noise_table(metrics)
    if noise is not None:
        lines += ["## Robustness to noise", "", *markdown_table(*noise), "", noise_note(metrics), ""]
    efficiency = efficiency_table(metrics)
    if efficiency is not None:
        lines += ["## Size and speed", "", *markdown_table(*efficiency), "", measurement_note(metrics), ""]
    if has_compression(metrics):
        lines += [render_ladder_markdown(metrics, plot=ladder_plot)]
    lines += ["## All metrics", "", *markdown_table(*detail_table(metrics)), ""]
    items = config_items(metrics)
    if items:
        lines += ["## Run", "", *markdown_table(["", ""], [[name, value] for name, value in items]), ""]
    return "\n".join(lines)


def render_ladder_markdown(metrics: Mapping[str, Any], *, plot: str | None = None, level: int = 2) -> str:
    """The "Compression" section: one line per check (not accepted ones first, in bold), the
    ladder, the per-language table and the plot (``plot``: its path relative to the report)."""
    mark = "#" * level
    lines = [f"{mark} Compression", ""]
    for line in check_lines(metrics):
        lines.append(f"- **{line.text}**" if line.status == "bad" else f"- {line.text}")
    lines += ["", *markdown_table(*ladder_table(metrics)), "", ladder_note(metrics), ""]
    header, rows, _ = ladder_language_table(metrics)
    if rows:
        lines += [f"{mark}# Compression per language (failed checks first)", "", *markdown_table(header, rows), ""]
    if plot is not None:
        lines += [f"![compression ladder]({plot})", ""]
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
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(_title(metrics))}</title><style>{_CSS}</style></head><body>",
        f"<h1>{esc(_title(metrics))}</h1>",
    ]
    if is_compression_only(metrics):
        parts.append(render_ladder_html(metrics, paths.get("ladder_plot")))
        parts.append(_html_footer(metrics))
        return "\n".join(parts) + "\n"
    status, sentence = verdict(metrics)
    parts.append(f'<div class="verdict v-{status}"><strong>{esc(status_headline(metrics, status))}</strong>{esc(sentence)}</div>')
    header, rows, flags = language_table(metrics)
    flag_columns = {header.index("retention"), header.index("status")} if "retention" in header else set()
    parts.append("<h2>Per language (worst first)</h2>")
    parts.append(_html_table(header, rows, row_classes=flags, flag_columns=flag_columns))
    note = ci_note(metrics)
    if note:
        parts.append(f'<p class="note">{esc(note)}</p>')
    sets = eval_sets_table(metrics)
    if sets is not None:
        parts.append("<h2>Evaluation sets</h2>")
        parts.append(
            "<ul>" + "".join(f"<li>{esc(eval_set_line(metrics, summary))}</li>" for summary in eval_set_summaries(metrics)) + "</ul>"
        )
        parts.append(_html_table(*sets))
        parts.append(f'<p class="note">{esc(eval_sets_note(metrics))}</p>')
    for plot_key, _, alt in _PLOTS:
        if plot_key in paths:
            encoded = base64.b64encode(paths[plot_key].read_bytes()).decode("ascii")
            parts.append(f'<img alt="{esc(alt)}" src="data:image/png;base64,{encoded}">')
    confusions = confusion_table(metrics)
    if confusions is not None:
        parts.append("<h2>Most frequent confusions</h2>")
        parts.append(_html_table(*confusions))
    noise = noise_table(metrics)
    if noise is not None:
        parts.append("<h2>Robustness to noise</h2>")
        parts.append(_html_table(*noise))
        parts.append(f'<p class="note">{esc(noise_note(metrics))}</p>')
    efficiency = efficiency_table(metrics)
    if efficiency is not None:
        parts.append("<h2>Size and speed</h2>")
        parts.append(_html_table(*efficiency))
        parts.append(f'<p class="note">{esc(measurement_note(metrics))}</p>')
    if has_compression(metrics):
        parts.append(render_ladder_html(metrics, paths.get("ladder_plot")))
    parts.append("<h2>All metrics</h2>")
    parts.append(_html_table(*detail_table(metrics)))
    items = config_items(metrics)
    if items:
        parts.append("<h2>Run</h2>")
        parts.append(_html_table(["", ""], [[name, value] for name, value in items]))
    parts.append(_html_footer(metrics))
    return "\n".join(parts) + "\n"


def _html_footer(metrics: Mapping[str, Any]) -> str:
    meta, esc = metrics.get("meta") or {}, html.escape
    return f'<p class="note">polydistill {esc(str(meta.get("polydistill_version", "")))}, {esc(str(meta.get("created_at", "")))}</p>\n</body></html>'


def render_ladder_html(metrics: Mapping[str, Any], plot: Path | None = None) -> str:
    """The "Compression" section as HTML: a coloured box per check, the tables, the plot embedded."""
    esc = html.escape
    parts = ["<h2>Compression</h2>"]
    for line in check_lines(metrics):
        parts.append(
            f'<div class="verdict v-{line.status}"><strong>{esc(line.stage)}: {esc(line.verdict)}</strong>{esc(line.detail)}</div>'
        )
    parts.append(_html_table(*ladder_table(metrics)))
    parts.append(f'<p class="note">{esc(ladder_note(metrics))}</p>')
    header, rows, flags = ladder_language_table(metrics)
    if rows:
        parts.append("<h2>Compression per language (failed checks first)</h2>")
        parts.append(_html_table(header, rows, row_classes=flags, flag_columns={len(header) - 1}))
    if plot is not None:
        encoded = base64.b64encode(plot.read_bytes()).decode("ascii")
        parts.append(f'<img alt="compression ladder: quality against latency and size" src="data:image/png;base64,{encoded}">')
    return "\n".join(parts)


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
            f'<td class="flag">{esc(text)}</td>' if column in flag_columns else f"<td>{esc(text)}</td>" for column, text in enumerate(row)
        )
        out.append(f"<tr{css}>{cells}</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)
