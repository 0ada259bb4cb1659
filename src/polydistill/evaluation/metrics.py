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
