"""``metrics.json``: its layout, and building, writing and reading the document.

``metrics.json`` is the contract between a run and every later tool (the report, the model
card, hyperparameter search), so its layout is fixed here and only ever grows:

```
{
  "task": "classification",
  "primary_metric": "macro_f1",
  "teacher": {efficiency} | null,
  "student": {efficiency} | null,
  "languages": {
    "<code>": {"n": int, "teacher": {metrics} | null, "student": {metrics},
               "retention": {metrics} | null,
               "comparable": bool, "not_comparable_because": [str],
               "ci": {"macro_f1" | "accuracy": {"student": [low, high], "teacher": [low, high] | null,
                                                 "difference": [low, high] | null}},
               "confusion": {"labels": [name], "student": [[count]], "teacher": [[count]] | null},
               "noise": {"student": {"macro_f1", "accuracy"}, "teacher": {...} | null,
                         "student_drop": {...}, "teacher_drop": {...} | null}   (when noise was on)}
  },
  "overall": {"n", "languages", "teacher", "student", "retention", "confusion", "noise",
              "language_mean": {"teacher", "student"},
              "mean_language_retention": {metric: float}, "min_language_retention": {metric: float},
              "min_retention_language": {metric: code},
              "headline": {"comparable_languages": [code], "not_comparable_languages": {code: [str]},
                           "by_metric": {metric: {
                               "pooled": {"teacher", "student", "retention"},
                               "median": {"teacher", "student", "retention"},
                               "worst": {"teacher" | "student" | "retention": {"language", "value"} | null},
                               "teacher_best": {"language", "value"} | null,
                               "retention_vs_teacher_best": {code: float | null} | null,
                               "median_retention_vs_teacher_best": float | null,
                               "worst_retention_vs_teacher_best": {"language", "value"} | null}}}},
  "eval_sets": {"<name>": {"field": "data.eval.<i>", "source": "catalogs:sphinx" | "<path>",
                           "reference": "gold" | "teacher" (classification),
                           "languages": {...as above...}, "overall": {...as above...}}} (when a run has data.eval),
  "config": {...} (optional),
  "meta": {..., "comparable": {"min_examples", "min_classes", "rule"},
           "bootstrap": {"resamples", "level", "seed", "metrics", "method"},
           "noise": {"typo_rate", "diacritics_rate", "case_rate", "seed", "metrics", "description"} | null}
}
```

Classification metrics are ``accuracy``, ``macro_precision``, ``macro_recall``, ``macro_f1``,
plus ``agreement`` (argmax equal to the teacher's) for the student when a teacher is given.
``overall`` pools all examples (so large languages weigh more). A language is **comparable**
when it has at least ``meta.comparable.min_examples`` test examples and (classification) at
least ``min_classes`` gold classes; the others stay in ``languages``, marked with the reasons,
and are left out of every aggregate: ``language_mean`` and the retention summaries (every
comparable language weighing the same, which is what "does it work for Swahili" needs) and the
``headline`` (pooled, median and worst language, and retention against the teacher's best
comparable language: student score in L / the teacher's highest score). ``ci`` holds paired
percentile bootstrap intervals (``meta.bootstrap``) and ``confusion`` counts with rows = gold,
columns = predicted, in ``labels`` order. A ``drop`` is clean minus noisy. Files written before
these keys existed lack them; readers treat their languages as comparable. Other tasks add their
own metric keys in the same places (the embeddings task has no ``ci``, ``confusion`` or ``noise``).

``eval_sets`` holds every source of the run's ``data.eval``, by name, each scored on its own (an
in-domain test set beside held-out domains), in the config's order. The first is the primary
test set: everything above (``languages``, ``overall``, the efficiency, the compression ladder)
is about it alone, and its entry repeats the top level's ``languages`` and ``overall``. The other
entries have the same per-language layout, metrics and comparability rules, but no ``noise``
blocks, and no efficiency of their own (size and speed do not depend on the test set).

A classification entry's ``reference`` says what it is scored against. ``"gold"``: its gold labels,
as above. ``"teacher"``: a set without gold labels (text of another domain, which the task's classes
do not label; never the primary set), scored against the teacher's predicted classes (its argmax):
each language's ``teacher`` and ``retention`` are null, and the student's metrics are named so that
no reader takes them for gold-label scores: ``agreement`` (the share of texts where the student's
class is the teacher's) and ``fidelity_accuracy`` (the same number), ``fidelity_macro_precision``,
``fidelity_macro_recall``, ``fidelity_macro_f1`` (the teacher's classes taken as the reference);
``ci`` holds ``fidelity_macro_f1`` and ``fidelity_accuracy``, ``confusion`` rows are the teacher's
classes, and the comparable rule counts the teacher's predicted classes instead of gold ones
(``meta.comparable.without_gold_labels``). The headline and the language means follow those keys.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from polydistill.atomic import atomic_write_text
from polydistill.errors import DataError
from polydistill.evaluation.metrics import primary_metric_for

UNDETERMINED_LANGUAGE = "und"
#: ``reference`` of an ``eval_sets`` entry: scored against gold labels, or (text without them) the teacher's predictions
GOLD_REFERENCE = "gold"
TEACHER_REFERENCE = "teacher"
#: the prefix of a student's score against the teacher's predicted classes (``fidelity_macro_f1``)
FIDELITY_PREFIX = "fidelity_"
METRICS_FILENAME = "metrics.json"
REQUIRED_KEYS: tuple[str, ...] = ("task", "teacher", "student", "languages", "overall")
#: what ``polydistill compress`` writes: the compression ladder alone (its layout: evaluation/report/ladder.py)
COMPRESSION_ONLY_KEYS: tuple[str, ...] = ("task", "compression")


def missing_keys(metrics: Mapping[str, Any]) -> list[str]:
    """Keys of the layout that ``metrics`` lacks (a compression-only document needs only its own)."""
    missing = [key for key in REQUIRED_KEYS if key not in metrics]
    if missing and "compression" in metrics:
        return [key for key in COMPRESSION_ONLY_KEYS if key not in metrics]
    return missing


def build_metrics_document(
    task: str,
    quality: Mapping[str, Any],
    *,
    teacher_efficiency: Mapping[str, Any] | None = None,
    student_efficiency: Mapping[str, Any] | None = None,
    config: Mapping[str, Any] | None = None,
    primary_metric: str | None = None,
    meta: Mapping[str, Any] | None = None,
    eval_sets: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Assemble the ``metrics.json`` layout from a task's ``languages``/``overall`` and efficiency.

    ``eval_sets``: the entries of every evaluation set by name (:func:`eval_set_entry`), the primary first.
    """
    from polydistill import __version__

    if primary_metric is None:
        student_keys = list((quality.get("overall") or {}).get("student") or {})
        primary_metric = primary_metric_for(task, student_keys)
    document: dict[str, Any] = {
        "task": task,
        "primary_metric": primary_metric,
        "teacher": dict(teacher_efficiency) if teacher_efficiency is not None else None,
        "student": dict(student_efficiency) if student_efficiency is not None else None,
        "languages": dict(quality["languages"]),
        "overall": dict(quality["overall"]),
    }
    if eval_sets is not None:
        document["eval_sets"] = {str(name): dict(entry) for name, entry in eval_sets.items()}
    if config is not None:
        document["config"] = dict(config)
    document["meta"] = {
        "polydistill_version": __version__,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **(dict(meta) if meta else {}),
    }
    return document


def eval_set_entry(field: str, source: str, quality: Mapping[str, Any]) -> dict[str, Any]:
    """One entry of ``eval_sets``: where the set comes from and its ``languages``/``overall``."""
    return {"field": field, "source": source, "languages": dict(quality["languages"]), "overall": dict(quality["overall"])}


def write_metrics(path: str | Path, metrics: Mapping[str, Any]) -> Path:
    """Write ``metrics`` as JSON (numpy values made plain, NaN written as null)."""
    missing = missing_keys(metrics)
    if missing:
        raise ValueError(f"metrics lack the keys {missing} of the metrics.json layout")
    target = Path(path)
    if target.is_dir() or target.suffix != ".json":
        target = target / METRICS_FILENAME
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(target, json.dumps(_plain(metrics), indent=2, ensure_ascii=False, allow_nan=False) + "\n")
    return target


def read_metrics(path: str | Path) -> dict[str, Any]:
    """Read a ``metrics.json`` (or the one inside a run directory) and check its layout."""
    source = Path(path)
    if source.is_dir():
        source = source / METRICS_FILENAME
    if not source.is_file():
        raise DataError(f"no metrics file at {source}; run `polydistill eval` first")
    try:
        metrics = json.loads(source.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise DataError(f"{source} is not valid JSON (line {error.lineno}: {error.msg})") from error
    missing = missing_keys(metrics)
    if missing:
        raise DataError(f"{source} lacks the keys {missing} of the metrics.json layout")
    return metrics


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
