"""Quality metrics for one list of gold labels and predictions, and teacher/student ratios.

How the macro averages treat classes (the choice a per-language table depends on):

- With ``labels=None`` a macro average runs over the classes that occur in the gold labels
  **or** in the predictions of the rows given (scikit-learn's default). A class that a language
  has no gold example of, and that the model never predicts for it, is left out: it says
  nothing about that language. A class the model predicts although the language has no gold
  example of it stays in, with precision 0, recall 0 and F1 0, because those predictions are
  all wrong.
- A ratio with a zero denominator (precision of a class never predicted, recall of a class
  never in the gold labels) counts as 0 (``zero_division=0``), so the numbers equal the
  "macro avg" row of ``sklearn.metrics.classification_report`` and a reader can recompute them.
- Passing ``labels`` fixes the class set instead (every class of the task, say), so absent
  classes then count as zeros.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

CLASSIFICATION_METRICS: tuple[str, ...] = ("accuracy", "macro_precision", "macro_recall", "macro_f1")
"""Metric keys of a classifier, in the order tables show them."""

PRIMARY_METRIC_BY_TASK: dict[str, str] = {
    "classification": "macro_f1",
    "embeddings": "top1_en_to_x",
}
"""The one number per task that verdicts, flags and plots are about."""


def classification_metrics(
    y_true: Sequence[int] | np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    labels: Sequence[int] | None = None,
) -> dict[str, float]:
    """Accuracy and macro precision, recall and F1 of ``y_pred`` against ``y_true``.

    See the module docstring for which classes the macro averages cover. Raises ``ValueError``
    on empty or unequal-length inputs, since a metric of nothing would be a silent NaN.
    """
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    gold = np.asarray(y_true)
    predicted = np.asarray(y_pred)
    if gold.shape != predicted.shape or gold.ndim != 1:
        raise ValueError(f"y_true and y_pred must be 1-d and of equal length, got {gold.shape} and {predicted.shape}")
    if gold.size == 0:
        raise ValueError("cannot compute metrics of zero examples")
    precision, recall, f1, _ = precision_recall_fscore_support(
        gold,
        predicted,
        labels=None if labels is None else list(labels),
        average="macro",
        zero_division=0,
    )
    return {
        "accuracy": float(accuracy_score(gold, predicted)),
        "macro_precision": float(precision),
        "macro_recall": float(recall),
        "macro_f1": float(f1),
    }


def agreement(student_pred: Sequence[int] | np.ndarray, teacher_pred: Sequence[int] | np.ndarray) -> float:
    """Share of inputs where the student's predicted class equals the teacher's."""
    student = np.asarray(student_pred)
    teacher = np.asarray(teacher_pred)
    if student.shape != teacher.shape or student.size == 0:
        raise ValueError(f"need two non-empty prediction arrays of equal shape, got {student.shape} and {teacher.shape}")
    return float(np.mean(student == teacher))


def retention(student: Mapping[str, Any], teacher: Mapping[str, Any]) -> dict[str, float | None]:
    """Student metric / teacher metric for every numeric key both have.

    The value is ``None`` where the teacher scores 0 (or either value is missing), since a
    ratio to zero means nothing. Keys only the student has (``agreement``) are skipped.
    """
    ratios: dict[str, float | None] = {}
    for key, teacher_value in teacher.items():
        if key not in student or not _is_number(teacher_value):
            continue
        student_value = student[key]
        if not _is_number(student_value) or teacher_value == 0:
            ratios[key] = None
        else:
            ratios[key] = float(student_value) / float(teacher_value)
    return ratios


def primary_metric_for(task: str, available: Sequence[str] = ()) -> str:
    """The primary metric of ``task``; for an unknown task, the first available metric key."""
    if task in PRIMARY_METRIC_BY_TASK and (not available or PRIMARY_METRIC_BY_TASK[task] in available):
        return PRIMARY_METRIC_BY_TASK[task]
    if available:
        return available[0]
    raise ValueError(f"no primary metric known for task '{task}' and no metric keys to choose from")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) and np.isfinite(value)


# --- comparable or not -------------------------------------------------------------------

MIN_EXAMPLES = 30
"""A language with fewer test examples than this is left out of headline aggregates: one
example more or less moves its score by several points, so its retention says little."""
MIN_CLASSES = 2
"""A classification language needs at least this many gold classes: macro metrics over one
class are degenerate (a model that always predicts it scores macro-F1 1.0)."""


def not_comparable_reasons(
    n: int,
    gold: Sequence[int] | np.ndarray | None = None,
    *,
    label_names: Sequence[str] | None = None,
    min_examples: int = MIN_EXAMPLES,
    min_classes: int = MIN_CLASSES,
) -> list[str]:
    """Why a language's scores cannot be compared with others' (empty when they can).

    ``n`` is its number of test examples; ``gold`` (classification only) its gold labels, whose
    distinct classes must number at least ``min_classes``; ``label_names`` name them in the text.
    """
    reasons: list[str] = []
    if n < min_examples:
        reasons.append(f"{n} example{'s' if n != 1 else ''}, fewer than {min_examples}")
    if gold is not None:
        present = sorted({int(label) for label in np.asarray(gold).tolist()})
        if len(present) < min_classes:
            named = ", ".join(_class_name(label, label_names) for label in present) or "none"
            count = "only one class" if len(present) == 1 else f"{len(present)} classes"
            reasons.append(f"{count} ({named}) in {n} example{'s' if n != 1 else ''}; macro metrics need at least {min_classes}")
    return reasons


def _class_name(label: int, label_names: Sequence[str] | None) -> str:
    if label_names is not None and 0 <= label < len(label_names):
        return str(label_names[label])
    return str(label)


# --- confusion counts --------------------------------------------------------------------


def confusion_counts(gold: Sequence[int] | np.ndarray, predicted: Sequence[int] | np.ndarray, num_classes: int) -> np.ndarray:
    """(num_classes, num_classes) counts: row = gold class, column = predicted class."""
    gold_array = np.asarray(gold, dtype=np.int64)
    predicted_array = np.asarray(predicted, dtype=np.int64)
    if gold_array.shape != predicted_array.shape or gold_array.ndim != 1:
        raise ValueError(f"gold and predicted must be 1-d and of equal length, got {gold_array.shape} and {predicted_array.shape}")
    if gold_array.size and (
        min(gold_array.min(), predicted_array.min()) < 0 or max(gold_array.max(), predicted_array.max()) >= num_classes
    ):
        raise ValueError(f"class ids must lie in 0..{num_classes - 1}")
    return np.bincount(gold_array * num_classes + predicted_array, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


# --- bootstrap confidence intervals ------------------------------------------------------

BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_LEVEL = 0.95
BOOTSTRAP_SEED = 0
BOOTSTRAP_METHOD = (
    "paired percentile bootstrap over each language's test examples: the same resampled rows score "
    "student and teacher, so the difference's interval accounts for their correlation"
)
#: the metrics :func:`bootstrap_interval` can resample (all computed from confusion counts)
BOOTSTRAP_METRICS: tuple[str, ...] = CLASSIFICATION_METRICS
_BOOTSTRAP_CELLS = 4_000_000  # rows x resamples drawn at once: bounds memory for large languages


def bootstrap_interval(
    gold: Sequence[int] | np.ndarray,
    student_pred: Sequence[int] | np.ndarray,
    teacher_pred: Sequence[int] | np.ndarray | None,
    metric: str,
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    level: float = BOOTSTRAP_LEVEL,
    seed: int = BOOTSTRAP_SEED,
) -> dict[str, list[float] | None]:
    """Percentile intervals of ``metric`` for the student, the teacher and student - teacher.

    Each of ``resamples`` resamples draws ``n`` rows with replacement (``numpy`` generator seeded
    with ``seed``); student and teacher are scored on the *same* rows (a paired bootstrap). The
    macro metrics follow :func:`classification_metrics` (classes in the resample's gold labels or
    predictions). Returns ``{"student": [low, high], "teacher": [low, high] | None,
    "difference": [low, high] | None}`` at ``level`` (0.95: the 2.5th and 97.5th percentiles).
    """
    if metric not in BOOTSTRAP_METRICS:
        raise ValueError(f"no bootstrap for metric '{metric}'; choose one of {list(BOOTSTRAP_METRICS)}")
    if not 0 < level < 1 or resamples < 1:
        raise ValueError(f"need 0 < level < 1 and resamples >= 1, got level={level}, resamples={resamples}")
    gold_array = np.asarray(gold, dtype=np.int64)
    student_array = np.asarray(student_pred, dtype=np.int64)
    teacher_array = None if teacher_pred is None else np.asarray(teacher_pred, dtype=np.int64)
    if gold_array.ndim != 1 or gold_array.size == 0 or student_array.shape != gold_array.shape:
        raise ValueError(f"need non-empty 1-d gold and student arrays of equal length, got {gold_array.shape} and {student_array.shape}")
    if teacher_array is not None and teacher_array.shape != gold_array.shape:
        raise ValueError(f"teacher predictions have shape {teacher_array.shape}, gold labels {gold_array.shape}")
    arrays = [gold_array, student_array] + ([teacher_array] if teacher_array is not None else [])
    num_classes = int(max(int(array.max()) for array in arrays)) + 1
    rng = np.random.default_rng(seed)
    n = gold_array.size
    student_scores = np.empty(resamples)
    teacher_scores = np.empty(resamples) if teacher_array is not None else None
    block = max(1, _BOOTSTRAP_CELLS // n)
    for start in range(0, resamples, block):
        count = min(block, resamples - start)
        rows = rng.integers(0, n, size=(count, n))
        gold_rows = gold_array[rows]
        student_scores[start : start + count] = _resampled_metric(gold_rows, student_array[rows], num_classes, metric)
        if teacher_scores is not None and teacher_array is not None:
            teacher_scores[start : start + count] = _resampled_metric(gold_rows, teacher_array[rows], num_classes, metric)
    tail = (1 - level) / 2
    quantiles = [tail, 1 - tail]

    def interval(values: np.ndarray) -> list[float]:
        low, high = np.quantile(values, quantiles)
        return [float(low), float(high)]

    return {
        "student": interval(student_scores),
        "teacher": None if teacher_scores is None else interval(teacher_scores),
        "difference": None if teacher_scores is None else interval(student_scores - teacher_scores),
    }


def _resampled_metric(gold_rows: np.ndarray, predicted_rows: np.ndarray, num_classes: int, metric: str) -> np.ndarray:
    """``metric`` of every resample (one per row of the (resamples, n) arrays), from confusion counts."""
    count, n = gold_rows.shape
    offsets = (np.arange(count, dtype=np.int64) * num_classes * num_classes)[:, None]
    cells = (offsets + gold_rows * num_classes + predicted_rows).ravel()
    confusion = np.bincount(cells, minlength=count * num_classes * num_classes).reshape(count, num_classes, num_classes)
    true_positive = np.diagonal(confusion, axis1=1, axis2=2).astype(np.float64)
    if metric == "accuracy":
        return true_positive.sum(axis=1) / n
    gold_count = confusion.sum(axis=2).astype(np.float64)
    predicted_count = confusion.sum(axis=1).astype(np.float64)
    present = (gold_count + predicted_count) > 0  # scikit-learn's labels=None: classes in gold or predictions
    with np.errstate(divide="ignore", invalid="ignore"):
        if metric == "macro_precision":
            per_class = np.where(predicted_count > 0, true_positive / predicted_count, 0.0)
        elif metric == "macro_recall":
            per_class = np.where(gold_count > 0, true_positive / gold_count, 0.0)
        else:  # macro_f1: 2 TP / (2 TP + FP + FN) = 2 TP / (gold + predicted), 0 for an absent class
            per_class = np.where(present, 2 * true_positive / (gold_count + predicted_count), 0.0)
    return (per_class * present).sum(axis=1) / present.sum(axis=1)


# --- the robust headline -----------------------------------------------------------------


def is_comparable(entry: Mapping[str, Any]) -> bool:
    """Whether a language entry counts in headline aggregates (entries of older files, without
    the mark, do)."""
    return entry.get("comparable", True) is not False


def headline_summary(per_language: Mapping[str, Mapping[str, Any]], pooled: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Robust summaries over the comparable languages, per metric key.

    Per metric: ``pooled`` (teacher, student, retention of all test examples together, from the
    ``pooled`` entry when given), ``median`` (teacher, student, retention over comparable
    languages), ``worst`` (the lowest value and its language, per role), ``teacher_best`` (the
    teacher's highest score over comparable languages: what it could teach), and for every
    language ``retention_vs_teacher_best`` = student score / ``teacher_best``, with its median
    and worst over comparable languages. A mean of ratios is left out on purpose: one language
    with a tiny teacher score makes it arbitrarily large.
    """
    comparable = {code: entry for code, entry in per_language.items() if is_comparable(entry)}
    excluded = {code: list(entry.get("not_comparable_because") or []) for code, entry in per_language.items() if not is_comparable(entry)}
    keys: dict[str, None] = {}
    for entry in per_language.values():
        for key, value in (entry.get("student") or {}).items():
            if _is_number(value):
                keys.setdefault(key, None)
    by_metric: dict[str, Any] = {}
    for key in keys:
        values = {
            role: {code: v for code, entry in comparable.items() if (v := _number_or_none((entry.get(role) or {}).get(key))) is not None}
            for role in ("teacher", "student", "retention")
        }
        teacher_best = _extreme(values["teacher"], highest=True)
        best_value = teacher_best["value"] if teacher_best and teacher_best["value"] > 0 else None  # no ratio to zero
        versus_best: dict[str, float | None] = {}
        for code, entry in per_language.items():
            student_value = _number_or_none((entry.get("student") or {}).get(key))
            versus_best[code] = student_value / best_value if student_value is not None and best_value is not None else None
        comparable_versus_best = {code: value for code, value in versus_best.items() if code in comparable and value is not None}
        block: dict[str, Any] = {
            "median": {role: _median(role_values) for role, role_values in values.items()},
            "worst": {role: _extreme(role_values, highest=False) for role, role_values in values.items()},
            "teacher_best": teacher_best,
            "retention_vs_teacher_best": versus_best if teacher_best is not None else None,
            "median_retention_vs_teacher_best": _median(comparable_versus_best),
            "worst_retention_vs_teacher_best": _extreme(comparable_versus_best, highest=False),
        }
        if pooled is not None:
            block["pooled"] = {role: _number_or_none((pooled.get(role) or {}).get(key)) for role in ("teacher", "student", "retention")}
        by_metric[key] = block
    return {"comparable_languages": sorted(comparable), "not_comparable_languages": excluded, "by_metric": by_metric}


def _median(values: Mapping[str, float]) -> float | None:
    return float(np.median(list(values.values()))) if values else None


def _extreme(values: Mapping[str, float], *, highest: bool) -> dict[str, Any] | None:
    """{"language", "value"} of the lowest (or highest) value; ties go to the first code."""
    if not values:
        return None
    code = min(values, key=lambda c: ((-values[c] if highest else values[c]), c))
    return {"language": code, "value": values[code]}


def _number_or_none(value: Any) -> float | None:
    return float(value) if _is_number(value) else None
