"""What a report says, as data and text: the verdict, retention flags, per-language rows, tables.

Tables are built from whatever metric keys ``metrics.json`` holds, so later tasks (retrieval,
similarity) need no change here; the task's primary metric drives verdict, flags and plots.
The model card reads the same pieces, so report and card never disagree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from polydistill.evaluation.efficiency import EFFICIENCY_KEYS
from polydistill.evaluation.metrics import primary_metric_for
from polydistill.evaluation.metrics_file import UNDETERMINED_LANGUAGE
from polydistill.sizes import format_bytes

RETENTION_OK = 0.95
RETENTION_WARN = 0.90
SMALL_SAMPLE = 50
"""Languages with fewer evaluation examples than this get a "noisy" mark."""

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
    """ "ok" (>= 95%), "warn" (90-95%), "bad" (< 90%) or "none" (no teacher or no ratio)."""
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
        rows.append(LanguageRow(str(code), int(entry.get("n", 0)), teacher, student, ratio, (entry.get("student") or {}).get("agreement")))
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
        parts.append(f"Student {name} is {format_metric(mean_student)} on average over {count}{tail}; no teacher to compare with")
    teacher_eff, student_eff = metrics.get("teacher") or {}, metrics.get("student") or {}
    _, size_phrase = efficiency_ratio("parameters", teacher_eff.get("parameters"), student_eff.get("parameters"))
    _, speed_phrase = efficiency_ratio("latency_ms_p50", teacher_eff.get("latency_ms_p50"), student_eff.get("latency_ms_p50"))
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
            cells += [
                format_metric(row.teacher),
                format_metric(row.student),
                format_percent(row.retention),
                *([format_metric(row.agreement)] if with_agreement else []),
                status,
            ]
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
            rows.append(
                [
                    label,
                    format_efficiency(key, teacher.get(key)),
                    format_efficiency(key, student.get(key)),
                    "–" if ratio is None else f"{ratio:.3f}",
                    phrase,
                ]
            )
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
