"""What a report says, as data and text: the verdict, retention flags, per-language rows, tables.

Tables are built from whatever metric keys ``metrics.json`` holds, so later tasks (retrieval,
similarity) need no change here; the task's primary metric drives verdict, flags and plots.
The model card reads the same pieces, so report and card never disagree.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from polydistill.evaluation.efficiency import EFFICIENCY_KEYS
from polydistill.evaluation.metrics import MIN_EXAMPLES, headline_summary, is_comparable, primary_metric_for
from polydistill.evaluation.metrics_file import FIDELITY_PREFIX, GOLD_REFERENCE, TEACHER_REFERENCE, UNDETERMINED_LANGUAGE
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
    "fidelity_accuracy": "accuracy against the teacher's classes",
    "fidelity_macro_precision": "macro precision against the teacher's classes",
    "fidelity_macro_recall": "macro recall against the teacher's classes",
    "fidelity_macro_f1": "macro-F1 against the teacher's classes",
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
    """One language of the per-language table: the primary metric, its retention and marks.

    ``retention`` is against the teacher in the same language, ``retention_vs_teacher_best``
    against the teacher's best comparable language; ``difference_ci`` is the bootstrap interval
    of student - teacher. A language that is not ``comparable`` is shown but never flagged.
    """

    code: str
    n: int
    teacher: float | None
    student: float | None
    retention: float | None
    agreement: float | None
    comparable: bool = True
    not_comparable_because: tuple[str, ...] = ()
    difference_ci: tuple[float, float] | None = None
    retention_vs_teacher_best: float | None = None

    @property
    def flag(self) -> str:
        return retention_flag(self.retention) if self.comparable else "none"


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
    """Per-language rows: comparable languages worst first (by retention, or by student score
    without a teacher), then the languages that are not comparable, by code."""
    key = primary_metric(metrics)
    versus_best = primary_headline(metrics).get("retention_vs_teacher_best") or {}
    rows = []
    for code, entry in metrics["languages"].items():
        teacher = (entry.get("teacher") or {}).get(key)
        student = (entry.get("student") or {}).get(key)
        ratio = (entry.get("retention") or {}).get(key)
        difference = ((entry.get("ci") or {}).get(key) or {}).get("difference")
        rows.append(
            LanguageRow(
                str(code),
                int(entry.get("n", 0)),
                teacher,
                student,
                ratio,
                (entry.get("student") or {}).get("agreement"),
                comparable=is_comparable(entry),
                not_comparable_because=tuple(entry.get("not_comparable_because") or ()),
                difference_ci=(float(difference[0]), float(difference[1])) if difference else None,
                retention_vs_teacher_best=versus_best.get(code),
            )
        )
    order = "retention" if has_teacher(metrics) else "student"

    def sort_key(row: LanguageRow) -> tuple[bool, float, str]:
        value = getattr(row, order)
        return (not row.comparable, value if value is not None and row.comparable else float("inf"), row.code)

    return sorted(rows, key=sort_key)


def headline(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """``overall.headline`` of the file, or the same summaries worked out from its languages
    (files written before it existed count every language as comparable)."""
    overall = metrics.get("overall") or {}
    stored = overall.get("headline")
    if isinstance(stored, Mapping) and "by_metric" in stored:
        return dict(stored)
    return headline_summary(metrics["languages"], pooled=overall)


def primary_headline(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The headline block of the primary metric (empty when the file has no such scores)."""
    return dict((headline(metrics).get("by_metric") or {}).get(primary_metric(metrics)) or {})


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
    """(status, sentence): status is "ok", "warn", "bad" or "none"; the sentence is the summary.

    Only pooled figures, medians and worst languages, over the comparable languages: a mean of
    per-language ratios is left out, since one language with a tiny teacher score dominates it.
    Status: "bad"/"warn" when a comparable language keeps less than 90%/95% of the teacher,
    "warn" too when no language is comparable, "none" without a teacher. All of it is about the
    primary test set; with several, one sentence more names the weakest held-out set's figures
    (:func:`held_out_sentence`), which do not change the status.
    """
    key = primary_metric(metrics)
    name = metric_name(key)
    rows = language_rows(metrics)
    comparable = [row for row in rows if row.comparable]
    excluded = [row for row in rows if not row.comparable]
    block = primary_headline(metrics)
    overall = metrics.get("overall") or {}
    with_teacher = has_teacher(metrics)
    pooled = {role: (overall.get(role) or {}).get(key) for role in ("teacher", "student", "retention")}
    total = overall.get("n")
    examples = f"all {total:,} test examples" if isinstance(total, int) else "all test examples"
    count = f"{len(comparable)} comparable language{'s' if len(comparable) != 1 else ''}"
    median, worst = block.get("median") or {}, block.get("worst") or {}
    clauses: list[str] = []
    if with_teacher:
        clauses.append(
            f"Pooled over {examples}, the student's {name} is {format_metric(pooled['student'])} against the teacher's "
            f"{format_metric(pooled['teacher'])} ({format_percent(pooled['retention'])} retained)"
        )
        if len(comparable) == 1:  # a median and a worst of one language say the same thing twice
            only = worst.get("retention")
            clauses.append(
                f"in the one comparable language, {only['language']}, it keeps {format_percent(only['value'])}"
                if only
                else "the one comparable language has no retention"
            )
        elif comparable:
            clauses.append(
                f"over {count} the median retention is {format_percent(median.get('retention'))} and the worst "
                f"{_named(worst.get('retention'), format_percent)}"
            )
            best = block.get("teacher_best")
            if best:
                clauses.append(
                    f"against the teacher's best language, {best['language']} ({format_metric(best['value'])}), the student keeps a median "
                    f"{format_percent(block.get('median_retention_vs_teacher_best'))}, worst "
                    f"{_named(block.get('worst_retention_vs_teacher_best'), format_percent)}"
                )
    else:
        clauses.append(f"Pooled over {examples}, the student's {name} is {format_metric(pooled['student'])}")
        if comparable:
            clauses.append(
                f"over {count} the median is {format_metric(median.get('student'))} and the lowest "
                f"{_named(worst.get('student'), format_metric)}"
            )
        clauses.append("no teacher to compare with")
    if not comparable:
        clauses.append(
            f"no language is comparable (each needs at least {_min_examples(metrics)} test examples and, for a classifier, two classes)"
        )
    bad = [row for row in comparable if row.flag == "bad"]
    warn = [row for row in comparable if row.flag == "warn"]
    if with_teacher and bad:
        clauses.append(f"below {RETENTION_WARN:.0%} retention: {_list_rows(bad)}")
    if with_teacher and warn:
        clauses.append(f"between {RETENTION_WARN:.0%} and {RETENTION_OK:.0%}: {_list_rows(warn)}")
    if with_teacher and comparable and not bad and not warn:
        clauses.append(f"every comparable language keeps at least {RETENTION_OK:.0%}")
    if excluded:
        listed = ", ".join(row.code for row in excluded[:8]) + (f" and {len(excluded) - 8} more" if len(excluded) > 8 else "")
        clauses.append(f"left out as not comparable: {listed}")
    sentence = "; ".join(clauses) + "."
    efficiency = _efficiency_sentence(metrics)
    if efficiency:
        sentence += " " + efficiency
    held_out = held_out_sentence(metrics)
    if held_out:
        sentence += " " + held_out
    if not with_teacher:
        return "none", sentence
    status = "bad" if bad else "warn" if warn or not comparable else "ok"
    return status, sentence


def _efficiency_sentence(metrics: Mapping[str, Any]) -> str:
    teacher_eff, student_eff = metrics.get("teacher") or {}, metrics.get("student") or {}
    _, size_phrase = efficiency_ratio("parameters", teacher_eff.get("parameters"), student_eff.get("parameters"))
    _, speed_phrase = efficiency_ratio("latency_ms_p50", teacher_eff.get("latency_ms_p50"), student_eff.get("latency_ms_p50"))
    phrases = ([f"has {size_phrase} parameters"] if size_phrase else []) + ([f"is {speed_phrase} at batch 1"] if speed_phrase else [])
    return f"The student {' and '.join(phrases)}." if phrases else ""


def _named(item: Mapping[str, Any] | None, formatter: Callable[[Any], str]) -> str:
    return "–" if not item else f"{item['language']} ({formatter(item['value'])})"


def _min_examples(metrics: Mapping[str, Any]) -> int:
    rule = (metrics.get("meta") or {}).get("comparable") or {}
    return int(rule.get("min_examples", MIN_EXAMPLES))


def _list_rows(rows: Sequence[LanguageRow], limit: int = 8) -> str:
    listed = ", ".join(f"{row.code} ({format_percent(row.retention)})" for row in rows[:limit])
    return listed + (f" and {len(rows) - limit} more" if len(rows) > limit else "")


def status_headline(metrics: Mapping[str, Any], status: str) -> str:
    rows = language_rows(metrics)
    comparable = [row for row in rows if row.comparable]
    total = len(comparable)
    excluded = len(rows) - total
    tail = f" ({excluded} more not comparable)" if excluded else ""
    if status == "none":
        return "Student only (no teacher given)"
    if not comparable:
        return f"No comparable language among {len(rows)}"
    if status == "ok":
        return ("Good enough in the one comparable language" if total == 1 else f"Good enough in all {total} comparable languages") + tail
    bad = sum(row.flag == "bad" for row in comparable)
    warn = sum(row.flag == "warn" for row in comparable)
    if status == "bad":
        return f"Not good enough in {bad} of {total} comparable languages" + (f", borderline in {warn} more" if warn else "") + tail
    return f"Borderline in {warn} of {total} comparable languages{tail}"


# --- several evaluation sets --------------------------------------------------------------


def has_eval_sets(metrics: Mapping[str, Any]) -> bool:
    """True when the run was scored on more than one test set (``eval_sets`` of metrics.json)."""
    return len(metrics.get("eval_sets") or {}) > 1


def eval_set_metrics(metrics: Mapping[str, Any], name: str) -> dict[str, Any]:
    """One evaluation set as a document of its own (its ``languages`` and ``overall``; the file's task,
    primary metric and meta), so every per-language helper here reads it as it reads the top level."""
    entry = metrics["eval_sets"][name]
    return {**metrics, "languages": dict(entry.get("languages") or {}), "overall": dict(entry.get("overall") or {})}


def against_teacher(entry: Mapping[str, Any]) -> bool:
    """Whether an entry of ``eval_sets`` was scored against the teacher's predictions (text without gold labels)."""
    return entry.get("reference") == TEACHER_REFERENCE


@dataclass(frozen=True)
class EvalSetSummary:
    """One evaluation set in figures: the mean and the worst of its comparable languages, by retention
    of the primary metric (by the student's score when there is no teacher; by the student's agreement
    with the teacher on a set without gold labels, ``reference`` "teacher")."""

    name: str
    field: str
    source: str
    primary: bool
    with_teacher: bool
    comparable: int
    languages: int
    mean: float | None
    worst: float | None
    worst_language: str | None
    reference: str = GOLD_REFERENCE


def eval_set_summaries(metrics: Mapping[str, Any]) -> list[EvalSetSummary]:
    """Every set of ``eval_sets`` in the file's order (the primary first), from the same rows as the
    per-language table: languages that are not comparable are left out of the mean and the worst."""
    summaries = []
    for index, (name, entry) in enumerate((metrics.get("eval_sets") or {}).items()):
        view = eval_set_metrics(metrics, name)
        with_teacher = has_teacher(view)
        rows = [row for row in language_rows(view) if row.comparable]
        if against_teacher(entry):
            values = {row.code: row.agreement for row in rows}
        else:
            values = {row.code: row.retention if with_teacher else row.student for row in rows}
        defined = {code: value for code, value in values.items() if value is not None}
        worst_language = min(defined, key=lambda code: (defined[code], code)) if defined else None
        summaries.append(
            EvalSetSummary(
                name=str(name),
                field=str(entry.get("field") or ""),
                source=str(entry.get("source") or ""),
                primary=index == 0,
                with_teacher=with_teacher,
                comparable=len(rows),
                languages=len(view["languages"]),
                mean=sum(defined.values()) / len(defined) if defined else None,
                worst=None if worst_language is None else defined[worst_language],
                worst_language=worst_language,
                reference=TEACHER_REFERENCE if against_teacher(entry) else GOLD_REFERENCE,
            )
        )
    return summaries


def _set_figures(metrics: Mapping[str, Any], summary: EvalSetSummary) -> str:
    if summary.mean is None:
        return f"no comparable language among {summary.languages}"
    count = f"{summary.comparable} comparable language{'s' if summary.comparable != 1 else ''}"
    if summary.reference == TEACHER_REFERENCE:
        return (
            f"student agrees with the teacher on {format_percent(summary.mean)} of texts (mean over {count}), "
            f"worst {summary.worst_language} ({format_percent(summary.worst)})"
        )
    if summary.with_teacher:
        return (
            f"mean retention {format_percent(summary.mean)} over {count}, worst {summary.worst_language} ({format_percent(summary.worst)})"
        )
    name = metric_name(primary_metric(metrics))
    return (
        f"mean student {name} {format_metric(summary.mean)} over {count}, lowest {summary.worst_language} ({format_metric(summary.worst)})"
    )


def eval_set_line(metrics: Mapping[str, Any], summary: EvalSetSummary) -> str:
    """ "name (field, source): mean retention ..., worst language (...)" for one set."""
    against = "no gold labels: scored against the teacher's predictions" if summary.reference == TEACHER_REFERENCE else ""
    where = ", ".join(part for part in (summary.field, summary.source, "primary" if summary.primary else "", against) if part)
    return f"{summary.name} ({where}): {_set_figures(metrics, summary)}"


def held_out_sentence(metrics: Mapping[str, Any]) -> str:
    """The weakest held-out set (lowest mean) in one sentence, or "" with one test set; sets without gold
    labels (scored by agreement with the teacher, another scale) get a sentence of their own."""
    held_out = [summary for summary in eval_set_summaries(metrics) if not summary.primary] if has_eval_sets(metrics) else []
    sentences = []
    for reference in (GOLD_REFERENCE, TEACHER_REFERENCE):
        group = [summary for summary in held_out if summary.reference == reference]
        if not group:
            continue
        scored = [summary for summary in group if summary.mean is not None]
        weakest = min(scored, key=lambda summary: (summary.mean or 0.0, summary.name)) if scored else group[0]
        kind = "held-out set" if reference == GOLD_REFERENCE else "held-out set without gold labels"
        lead = f"On the {kind}" if len(group) == 1 else f"On the weakest of {len(group)} {kind}s,"
        sentences.append(f"{lead} {weakest.name} ({weakest.field}): {_set_figures(metrics, weakest)}.")
    return " ".join(sentences)


def eval_sets_table(metrics: Mapping[str, Any]) -> tuple[list[str], list[list[str]]] | None:
    """(header, rows) of "Evaluation sets": per language (and pooled), for each set, n, the teacher's and
    the student's primary metric and the retention (for a set without gold labels, the student's agreement
    with the teacher and its primary metric against the teacher's classes); None with one test set."""
    if not has_eval_sets(metrics):
        return None
    key = primary_metric(metrics)
    name = metric_name(key)
    views = {set_name: eval_set_metrics(metrics, set_name) for set_name in metrics["eval_sets"]}
    with_teacher = any(has_teacher(view) for set_name, view in views.items() if not against_teacher(metrics["eval_sets"][set_name]))
    # per set: (column header, the cell of one language's entry)
    gold_columns: list[tuple[str, Callable[[Mapping[str, Any]], str]]] = [
        *([(f"teacher {name}", lambda entry: format_metric((entry.get("teacher") or {}).get(key)))] if with_teacher else []),
        (f"student {name}", lambda entry: format_metric((entry.get("student") or {}).get(key))),
        *([("retention", lambda entry: format_percent((entry.get("retention") or {}).get(key)))] if with_teacher else []),
    ]
    fidelity = FIDELITY_PREFIX + key
    teacher_columns: list[tuple[str, Callable[[Mapping[str, Any]], str]]] = [
        ("student agreement with teacher", lambda entry: format_percent((entry.get("student") or {}).get("agreement"))),
        (f"student {metric_name(fidelity)}", lambda entry: format_metric((entry.get("student") or {}).get(fidelity))),
    ]
    columns = {set_name: teacher_columns if against_teacher(metrics["eval_sets"][set_name]) else gold_columns for set_name in views}
    header = ["language"]
    for set_name, set_columns in columns.items():
        header += [f"{set_name}: n", *(f"{set_name}: {title}" for title, _ in set_columns)]
    codes = sorted({code for view in views.values() for code in view["languages"]})
    rows = []
    for code in [*codes, None]:
        cells = [language_label(code) if code is not None else "pooled (all examples)"]
        for set_name, view in views.items():
            entry = view["overall"] if code is None else view["languages"].get(code)
            if entry is None:
                cells += ["–"] * (1 + len(columns[set_name]))
                continue
            mark = "" if code is None or is_comparable(entry) else " (n.c.)"
            cells.append(f"{entry.get('n', '')}{mark}")
            cells += [cell(entry) for _, cell in columns[set_name]]
        rows.append(cells)
    return header, rows


def eval_sets_note(metrics: Mapping[str, Any]) -> str:
    """What the "Evaluation sets" section shows, and which set the rest of the report is about."""
    first = next(iter(metrics.get("eval_sets") or {}), "the first")
    note = (
        f"Each test set is scored on its own, with the same metrics and comparability rules. n.c.: not comparable "
        f"(too few test examples or, for a classifier, one gold class): shown, left out of the mean and the worst language. "
        f"The verdict, the per-language table, noise robustness, size and speed and the compression checks are about "
        f"the primary set, {first}."
    )
    unlabelled = [name for name, entry in (metrics.get("eval_sets") or {}).items() if against_teacher(entry)]
    if unlabelled:
        note += (
            f" {', '.join(unlabelled)} {'has' if len(unlabelled) == 1 else 'have'} no gold labels: scored against the teacher's "
            f"predictions, not against correct answers. Agreement is the share of texts where the student's class is the teacher's; "
            f"{metric_name(FIDELITY_PREFIX + primary_metric(metrics))} takes the teacher's classes as the reference; a language "
            f"there is not comparable with too few texts or one class among the teacher's predictions."
        )
    return note


# --- tables ------------------------------------------------------------------------------


def language_table(metrics: Mapping[str, Any]) -> tuple[list[str], list[list[str]], list[str]]:
    """(header, rows, flags) of the per-language table of the primary metric.

    With a teacher: the bootstrap interval of student - teacher (when the file has one) and the
    retention against the teacher's best comparable language (named in the header). Languages
    that are not comparable say why in the status column and get no flag.
    """
    key = primary_metric(metrics)
    with_teacher = has_teacher(metrics)
    name = metric_name(key)
    rows = language_rows(metrics)
    with_agreement = any(row.agreement is not None for row in rows)  # classifiers have it, embeddings not
    with_ci = any(row.difference_ci is not None for row in rows)
    best = primary_headline(metrics).get("teacher_best")
    header = ["language", "n"]
    if with_teacher:
        header += [f"teacher {name}", f"student {name}", "retention"]
        header += [f"student − teacher ({_ci_level(metrics)} CI)"] if with_ci else []
        header += [f"vs teacher's best ({best['language']})"] if best else []
        header += [*(["agreement"] if with_agreement else []), "status"]
    with_status = not with_teacher and any(not row.comparable for row in rows)
    if not with_teacher:
        header += [f"student {name}"] + (["status"] if with_status else [])
    body, flags = [], []
    for row in rows:
        cells = [language_label(row.code), str(row.n)]
        if with_teacher:
            cells += [format_metric(row.teacher), format_metric(row.student), format_percent(row.retention)]
            cells += [format_interval(row.difference_ci)] if with_ci else []
            cells += [format_percent(row.retention_vs_teacher_best)] if best else []
            cells += [format_metric(row.agreement)] if with_agreement else []
            cells.append(_status_cell(row))
        else:
            cells.append(format_metric(row.student))
            if with_status:
                cells.append(_status_cell(row) if not row.comparable else "")
        body.append(cells)
        flags.append(row.flag)
    return header, body, flags


def _status_cell(row: LanguageRow) -> str:
    if not row.comparable:
        return "not comparable: " + "; ".join(row.not_comparable_because or ("marked in metrics.json",))
    status = {"ok": "ok", "warn": "warn", "bad": "BAD", "none": "–"}[row.flag]
    return status + (" (few examples)" if row.n < SMALL_SAMPLE else "")


def format_interval(interval: Sequence[float] | None) -> str:
    """An interval as "[-0.012, +0.090]", with " *" when it excludes 0 (bounds signed)."""
    if not interval:
        return "–"
    low, high = float(interval[0]), float(interval[1])
    excludes_zero = " *" if low > 0 or high < 0 else ""
    return f"[{low:+.3f}, {high:+.3f}]{excludes_zero}"


def _ci_level(metrics: Mapping[str, Any]) -> str:
    level = ((metrics.get("meta") or {}).get("bootstrap") or {}).get("level")
    return f"{float(level):.0%}" if isinstance(level, (int, float)) else "95%"


def ci_note(metrics: Mapping[str, Any]) -> str:
    """How the intervals and the comparable marks were made, from ``meta`` ("" when neither is there)."""
    meta = metrics.get("meta") or {}
    parts = []
    rule = meta.get("comparable") or {}
    if rule:
        parts.append(
            f"Languages with fewer than {rule.get('min_examples')} test examples or (classification) fewer than "
            f"{rule.get('min_classes')} gold classes are not comparable: they are shown, never flagged, and left out of "
            "the medians, the worst language, the teacher's best language and the verdict."
        )
    boot = meta.get("bootstrap") or {}
    if boot and any(row.difference_ci for row in language_rows(metrics)):
        parts.append(
            f"Intervals: {boot.get('method')}; {boot.get('resamples')} resamples, {_ci_level(metrics)}, seed {boot.get('seed')}. "
            "A * marks an interval of the difference that excludes 0."
        )
    return " ".join(parts)


def confusion_table(metrics: Mapping[str, Any], top: int = 3) -> tuple[list[str], list[list[str]]] | None:
    """(header, rows): per language, the ``top`` most frequent confusions (gold → predicted,
    count) of the student and the teacher; None when the file has no confusion counts."""
    rows = []
    with_teacher = False
    for row in language_rows(metrics):
        confusion = metrics["languages"][row.code].get("confusion")
        if not confusion:
            continue
        labels = list(confusion.get("labels") or [])
        with_teacher = with_teacher or confusion.get("teacher") is not None
        cells = [language_label(row.code) + ("" if row.comparable else " (not comparable)"), str(row.n)]
        for role in ("student", "teacher"):
            cells.append(_top_confusions(confusion.get(role), labels, top))
        rows.append(cells)
    if not rows:
        return None
    header = ["language", "n", "student: gold → predicted (count)", "teacher: gold → predicted (count)"]
    if not with_teacher:
        header, rows = header[:3], [cells[:3] for cells in rows]
    return header, rows


def top_confusions(matrix: Sequence[Sequence[int]] | None, labels: Sequence[str], top: int = 3) -> list[tuple[str, str, int]]:
    """The ``top`` largest off-diagonal counts as (gold, predicted, count), largest first."""
    if not matrix:
        return []
    cells = [
        (int(count), gold, predicted)
        for gold, line in enumerate(matrix)
        for predicted, count in enumerate(line)
        if gold != predicted and count
    ]
    cells.sort(key=lambda cell: (-cell[0], cell[1], cell[2]))

    def label(index: int) -> str:
        return str(labels[index]) if index < len(labels) else str(index)

    return [(label(gold), label(predicted), count) for count, gold, predicted in cells[:top]]


def _top_confusions(matrix: Sequence[Sequence[int]] | None, labels: Sequence[str], top: int) -> str:
    if matrix is None:
        return "–"
    found = top_confusions(matrix, labels, top)
    return ", ".join(f"{gold} → {predicted} ({count})" for gold, predicted, count in found) or "none"


def has_noise(metrics: Mapping[str, Any]) -> bool:
    return any(entry.get("noise") for entry in metrics["languages"].values())


def noise_table(metrics: Mapping[str, Any]) -> tuple[list[str], list[list[str]]] | None:
    """(header, rows) of "Robustness to noise": clean and noisy scores of teacher and student per
    language, the drops (clean - noisy) and whether the student loses no more than the teacher.
    None when the file has no noise scores."""
    if not has_noise(metrics):
        return None
    key = primary_metric(metrics)
    name = metric_name(key)
    with_teacher = any((entry.get("noise") or {}).get("teacher") for entry in metrics["languages"].values())
    header = ["language", "n"]
    if with_teacher:
        header += [f"teacher {name}", "teacher noisy", "teacher drop"]
    header += [f"student {name}", "student noisy", "student drop"]
    if with_teacher:
        header += ["student loses no more than teacher"]
    entries: list[tuple[LanguageRow | None, Mapping[str, Any]]] = [(row, metrics["languages"][row.code]) for row in language_rows(metrics)]
    entries.append((None, metrics.get("overall") or {}))
    body = []
    for row, entry in entries:
        noise = entry.get("noise")
        if not noise:
            continue
        label = "pooled (all examples)" if row is None else language_label(row.code) + ("" if row.comparable else " (not comparable)")
        cells = [label, str(entry.get("n", ""))]
        if with_teacher:
            cells += [
                format_metric((entry.get("teacher") or {}).get(key)),
                format_metric((noise.get("teacher") or {}).get(key)),
                _format_drop((noise.get("teacher_drop") or {}).get(key)),
            ]
        cells += [
            format_metric((entry.get("student") or {}).get(key)),
            format_metric((noise.get("student") or {}).get(key)),
            _format_drop((noise.get("student_drop") or {}).get(key)),
        ]
        if with_teacher:
            cells.append(_no_worse(noise, key))
        body.append(cells)
    return header, body


def _format_drop(value: float | None) -> str:
    return "–" if value is None else f"{value:+.3f}"


def _no_worse(noise: Mapping[str, Any], key: str) -> str:
    student = (noise.get("student_drop") or {}).get(key)
    teacher = (noise.get("teacher_drop") or {}).get(key)
    if student is None or teacher is None:
        return "–"
    return "yes" if student <= teacher + 1e-12 else "no"


def noise_note(metrics: Mapping[str, Any]) -> str:
    """What the noise was, and that the comparison is of point estimates."""
    settings = (metrics.get("meta") or {}).get("noise") or {}
    described = str(settings.get("description") or "The test texts were made noisy.")
    return (
        f"{described} Both models read the same noisy texts (the teacher a noisy copy of its own column). "
        "A drop is the clean score minus the noisy one. The comparison uses point estimates without confidence "
        "intervals: in a language with few examples a small difference between the drops may be chance."
    )


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
