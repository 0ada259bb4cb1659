"""Did a compression stage keep every language? A compressed stage against its reference, per language.

The average hides the failure this module looks for: int8 can collapse a multilingual encoder in
one language while the mean over languages barely moves (optimum #151, onnxruntime #9599). So a
stage (int8, pruned, ...) is compared with the stage it was made from on the same inputs, and
each language must pass on its own:

- **drop**: the reference's primary metric minus the candidate's, in that language, at most
  ``max_drop`` (0.01 = one point). Classification: macro-F1 against gold labels
  (:func:`polydistill.evaluation.metrics.classification_metrics`); without gold labels there is
  no metric and only agreement is checked. Embeddings: top-1 translation retrieval, English ->
  language and back (:func:`polydistill.evaluation.retrieval.retrieval_metrics`), the worse
  direction counts.
- **agreement**: at least ``min_agreement`` (0.99) of the language's inputs get the same answer
  from both stages: the same argmax class, or the same top-1 retrieved candidate. Agreement
  catches a stage that keeps the score by luck but answers differently (errors that cancel).
- embeddings also report the mean cosine between each text's reference and candidate vector
  (an index built with fp32 vectors is queried with int8 ones); ``min_cosine`` makes it a check.

Both limits include their boundary: a drop of exactly ``max_drop`` passes (compared with a
1e-9 tolerance, so float rounding of the two metrics cannot fail a drop that is exact on paper).
A candidate output that is NaN or infinite is a wrong answer, never an error: that is how a
broken stage shows up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from polydistill.errors import DataError

TOLERANCE = 1e-9
DEFAULT_MAX_DROP = 0.01
DEFAULT_MIN_AGREEMENT = 0.99
_METRIC_LABELS = {"macro_f1": "macro-F1", "top1_en_to_x": "top-1 en->x retrieval", "top1_x_to_en": "top-1 x->en retrieval"}


@dataclass
class StageCheck:
    """Per-language comparison of one stage with its reference, and the languages that failed.

    ``languages[code]`` holds ``n``, ``metric`` (the key compared, or None), ``reference``,
    ``candidate``, ``drop`` (reference - candidate; None without a metric), ``agreement``, and for
    embeddings ``mean_cosine`` and both retrieval directions, plus ``failures``: one sentence per
    limit the language broke. ``failed`` lists those languages in the order they were given.
    """

    stage: str
    reference_name: str
    task: str
    metric: str | None
    max_drop: float
    min_agreement: float
    languages: dict[str, dict[str, Any]]
    min_cosine: float | None = None
    failed: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.failed = [code for code, entry in self.languages.items() if entry["failures"]]

    @property
    def passed(self) -> bool:
        return not self.failed

    @property
    def reasons(self) -> dict[str, list[str]]:
        """Failing language -> the limits it broke, in words."""
        return {code: list(self.languages[code]["failures"]) for code in self.failed}

    def failed_reasons(self) -> dict[str, list[str]]:
        """The same as :attr:`reasons`, for callers that store it (JSON-ready)."""
        return self.reasons

    def worst_margin(self) -> float:
        """The smallest slack of any limit in any language, as a share (negative: that limit failed
        by so much). Ranks failed attempts: the one closest to passing has the largest margin."""
        margins = []
        for entry in self.languages.values():
            margins.append(entry["agreement"] - self.min_agreement)
            if entry["drop"] is not None:
                margins.append(self.max_drop - entry["drop"])
            if self.min_cosine is not None and entry.get("mean_cosine") is not None:
                margins.append(entry["mean_cosine"] - self.min_cosine)
        return float(min(margins))

    def to_dict(self) -> dict[str, Any]:
        """For metrics.json: thresholds, verdict, failing languages and every language's numbers."""
        return {
            "stage": self.stage,
            "reference": self.reference_name,
            "task": self.task,
            "metric": self.metric,
            "max_drop": self.max_drop,
            "min_agreement": self.min_agreement,
            "min_cosine": self.min_cosine,
            "passed": self.passed,
            "failed": list(self.failed),
            "languages": {code: dict(entry, failures=list(entry["failures"])) for code, entry in self.languages.items()},
        }

    def describe(self) -> str:
        """One line for people: what failed where, or that every language held."""
        if self.failed:
            return "; ".join(self._describe_failure(code) for code in self.failed)
        lowest = min(self.languages, key=lambda code: self.languages[code]["agreement"])
        parts = [f"{self.stage} keeps all {len(self.languages)} languages"]
        if self.metric is not None:
            worst = max(self.languages, key=lambda code: self.languages[code]["drop"])
            parts.append(
                f"within {_points(self.max_drop)} of {self.reference_name} {_label(self.metric)} "
                f"(largest drop {_points(self.languages[worst]['drop'])} in {worst})"
            )
        parts.append(
            f"and agrees with it on at least {100 * self.min_agreement:.1f}% of each language's {self._units()} (lowest: {lowest} {_percent(self.languages[lowest]['agreement'])})"
        )
        return " ".join(parts)

    def _describe_failure(self, code: str) -> str:
        entry = self.languages[code]
        clauses = []
        drop = entry["drop"]
        metric = entry["metric"]
        if drop is not None and drop > self.max_drop + TOLERANCE:
            clauses.append(
                f"drops {_label(metric)} by {_points(drop)} in {code} ({entry['reference_metrics'][metric]:.2f} -> {entry['candidate_metrics'][metric]:.2f})"
            )
        agreement = _percent(entry["agreement"])
        if clauses:
            clauses.append(f"agrees with {self.reference_name} on {agreement} of its {self._units()}")
        else:
            clauses.append(f"agrees with {self.reference_name} on only {agreement} of {code}'s {self._units()}")
        if self.min_cosine is not None and entry.get("mean_cosine") is not None and entry["mean_cosine"] < self.min_cosine - TOLERANCE:
            clauses.append(f"its vectors' mean cosine to {self.reference_name} is {entry['mean_cosine']:.3f}")
        if entry.get("non_finite"):
            clauses.append(f"{entry['non_finite']} of its outputs are NaN or infinite")
        return f"{self.stage} " + _join(clauses)

    def _units(self) -> str:
        return "texts" if self.task == "classification" else "queries"


# --- classification --------------------------------------------------------------------------


def compare_classification(
    reference_logits: Any,
    candidate_logits: Any,
    languages: Sequence[str],
    gold: Any = None,
    *,
    max_drop: float = DEFAULT_MAX_DROP,
    min_agreement: float = DEFAULT_MIN_AGREEMENT,
    labels: Sequence[int] | None = None,
    stage: str = "int8",
    reference_name: str = "fp32",
) -> StageCheck:
    """Per language: argmax agreement of the two stages and, with ``gold`` labels, the drop of
    macro-F1 (``labels`` fixes the class set, as in ``classification_metrics``).

    ``reference_logits`` and ``candidate_logits`` are (n, classes) arrays over the same inputs in
    the same order, ``languages`` the n language codes. A candidate row with a NaN or infinite
    logit counts as a wrong, disagreeing prediction.
    """
    _check_limits(max_drop, min_agreement)
    reference = _logits(reference_logits, "reference_logits")
    candidate = _logits(candidate_logits, "candidate_logits")
    if reference.shape != candidate.shape:
        raise DataError(
            f"reference_logits {reference.shape} and candidate_logits {candidate.shape} must have the same shape (same inputs, same classes)"
        )
    if not np.isfinite(reference).all():
        raise DataError("reference_logits hold NaN or infinite values: the reference stage itself is broken")
    codes = _language_codes(languages, reference.shape[0])
    gold_labels = None
    if gold is not None:
        gold_labels = np.asarray(gold)
        if gold_labels.shape != (reference.shape[0],):
            raise DataError(f"gold has shape {gold_labels.shape}, expected one label per row: ({reference.shape[0]},)")
    broken = ~np.isfinite(candidate).all(axis=1)
    reference_pred = reference.argmax(axis=1)
    candidate_pred = np.where(broken, -1, np.nan_to_num(candidate, nan=-np.inf).argmax(axis=1))
    metric = "macro_f1" if gold_labels is not None else None

    per_language: dict[str, dict[str, Any]] = {}
    for code in dict.fromkeys(codes):
        rows = codes == code
        entry: dict[str, Any] = {
            "n": int(rows.sum()),
            "metric": metric,
            "agreement": float(np.mean(reference_pred[rows] == candidate_pred[rows])),
            "non_finite": int(broken[rows].sum()),
        }
        if gold_labels is not None:
            from polydistill.evaluation.metrics import classification_metrics

            reference_metrics = classification_metrics(gold_labels[rows], reference_pred[rows], labels)
            candidate_metrics = classification_metrics(gold_labels[rows], candidate_pred[rows], labels)
            entry.update(
                reference=reference_metrics["macro_f1"],
                candidate=candidate_metrics["macro_f1"],
                drop=reference_metrics["macro_f1"] - candidate_metrics["macro_f1"],
                reference_metrics=reference_metrics,
                candidate_metrics=candidate_metrics,
            )
        else:
            entry.update(reference=None, candidate=None, drop=None)
        entry["failures"] = _failures(entry, max_drop, min_agreement, None, reference_name, "texts")
        per_language[code] = entry
    return StageCheck(stage, reference_name, "classification", metric, max_drop, min_agreement, per_language)


def _logits(values: Any, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] < 2:
        raise DataError(f"{name} must be a (texts, classes) array with at least one text and two classes, got shape {array.shape}")
    return array


# --- embeddings ------------------------------------------------------------------------------


def compare_embeddings(
    reference_vectors: Any,
    candidate_vectors: Any,
    pairs: Sequence[tuple[int, int]],
    languages: Sequence[str],
    *,
    max_drop: float = DEFAULT_MAX_DROP,
    min_agreement: float = DEFAULT_MIN_AGREEMENT,
    min_cosine: float | None = None,
    stage: str = "int8",
    reference_name: str = "fp32",
) -> StageCheck:
    """Per language: top-1 translation retrieval of both stages, how often their top-1 answers
    agree, and the mean cosine between a text's reference and candidate vectors.

    ``reference_vectors`` and ``candidate_vectors`` are (texts, d) arrays (normalised here) with
    the same rows; ``pairs`` are (English source row, translation row) index pairs and
    ``languages`` the translation's language of each pair. Within a language, retrieval runs among
    its pairs in both directions (English -> translation and back); a source or translation that
    occurs in an earlier pair of the language is skipped, so each query has one correct answer
    (as :func:`polydistill.evaluation.retrieval.retrieval_sets` does). Agreement is over the
    queries of both directions.
    """
    from polydistill.evaluation.retrieval import one_to_one, retrieval_metrics

    _check_limits(max_drop, min_agreement)
    reference = _vectors(reference_vectors, "reference_vectors")
    candidate = _vectors(candidate_vectors, "candidate_vectors")
    if reference.shape[0] != candidate.shape[0]:
        raise DataError(
            f"reference_vectors has {reference.shape[0]} rows and candidate_vectors {candidate.shape[0]}: they must embed the same texts"
        )
    if not np.isfinite(reference).all():
        raise DataError("reference_vectors hold NaN or infinite values: the reference stage itself is broken")
    pair_rows = np.asarray(pairs, dtype=np.int64)
    if pair_rows.ndim != 2 or pair_rows.shape[1] != 2 or pair_rows.shape[0] == 0:
        raise DataError(f"pairs must be a non-empty list of (source row, translation row), got shape {pair_rows.shape}")
    if pair_rows.min() < 0 or pair_rows.max() >= reference.shape[0]:
        raise DataError(f"pairs index rows outside the {reference.shape[0]} vectors (rows {pair_rows.min()}..{pair_rows.max()})")
    codes = _language_codes(languages, pair_rows.shape[0], what="pairs")
    broken = ~np.isfinite(candidate).all(axis=1)
    candidate = np.where(broken[:, None], 0.0, candidate)  # a zero vector: similarity 0 to everything

    metric = "top1_en_to_x"
    per_language: dict[str, dict[str, Any]] = {}
    for code in dict.fromkeys(codes):
        sources, targets = (np.asarray(side, dtype=np.int64) for side in one_to_one(pair_rows[codes == code].tolist()))
        if len(sources) < 2:
            raise DataError(
                f"language '{code}' has {len(sources)} distinct translation pair(s): retrieval needs at least 2 (among one candidate it is always right)"
            )
        reference_similarity = reference[sources] @ reference[targets].T
        candidate_similarity = candidate[sources] @ candidate[targets].T
        reference_metrics = _retrieval(reference_similarity, retrieval_metrics)
        candidate_metrics = _retrieval(candidate_similarity, retrieval_metrics)
        drops = {key: reference_metrics[key] - candidate_metrics[key] for key in reference_metrics}
        worst = max(drops, key=lambda key: drops[key])
        same_answers = np.concatenate(
            [
                reference_similarity.argmax(axis=1) == candidate_similarity.argmax(axis=1),
                reference_similarity.argmax(axis=0) == candidate_similarity.argmax(axis=0),
            ]
        )
        rows = np.unique(np.concatenate([sources, targets]))
        entry: dict[str, Any] = {
            "n": len(sources),
            "metric": worst,
            "reference": reference_metrics[worst],
            "candidate": candidate_metrics[worst],
            "drop": drops[worst],
            "agreement": float(np.mean(same_answers)),
            "mean_cosine": float(np.mean(np.einsum("ij,ij->i", reference[rows], candidate[rows]))),
            "non_finite": int(broken[rows].sum()),
            "reference_metrics": reference_metrics,
            "candidate_metrics": candidate_metrics,
        }
        entry["failures"] = _failures(entry, max_drop, min_agreement, min_cosine, reference_name, "queries")
        per_language[code] = entry
    return StageCheck(stage, reference_name, "embeddings", metric, max_drop, min_agreement, per_language, min_cosine=min_cosine)


def _vectors(values: Any, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise DataError(f"{name} must be a non-empty (texts, dimensions) array, got shape {array.shape}")
    with np.errstate(invalid="ignore", over="ignore"):
        return array / np.maximum(np.linalg.norm(array, axis=1, keepdims=True), 1e-12)


def _retrieval(similarity: np.ndarray, retrieval_metrics: Any) -> dict[str, float]:
    return {"top1_en_to_x": retrieval_metrics(similarity)["top1"], "top1_x_to_en": retrieval_metrics(similarity.T)["top1"]}


# --- shared ----------------------------------------------------------------------------------


def _check_limits(max_drop: float, min_agreement: float) -> None:
    if not 0.0 <= max_drop <= 1.0 or not 0.0 <= min_agreement <= 1.0:
        raise DataError(f"max_drop and min_agreement are shares between 0 and 1 (0.01 = one point), got {max_drop} and {min_agreement}")


def _language_codes(languages: Sequence[str], count: int, *, what: str = "rows") -> np.ndarray:
    codes = np.asarray([str(code) if code is not None else "" for code in languages], dtype=object)
    if codes.shape != (count,):
        raise DataError(f"languages has {len(codes)} codes for {count} {what}: expected one language code per {what[:-1]}")
    if any(code == "" for code in codes):
        raise DataError(f"languages holds an empty code: every one of the {count} {what} needs its language")
    return codes


def _failures(
    entry: dict[str, Any], max_drop: float, min_agreement: float, min_cosine: float | None, reference_name: str, units: str
) -> list[str]:
    failures = []
    if entry["drop"] is not None and entry["drop"] > max_drop + TOLERANCE:
        failures.append(
            f"{_label(entry['metric'])} drops by {_points(entry['drop'])} ({entry['reference']:.4f} -> {entry['candidate']:.4f}), more than {_points(max_drop)}"
        )
    if entry["agreement"] < min_agreement - TOLERANCE:
        failures.append(
            f"agrees with {reference_name} on {_percent(entry['agreement'])} of {entry['n']} {units}, below {_percent(min_agreement)}"
        )
    if min_cosine is not None and entry["mean_cosine"] < min_cosine - TOLERANCE:
        failures.append(f"mean cosine to {reference_name} is {entry['mean_cosine']:.4f}, below {min_cosine}")
    return failures


def _label(metric: str | None) -> str:
    return _METRIC_LABELS.get(metric or "", metric or "agreement")


def _points(share: float) -> str:
    value = 100 * share
    return f"{value:.1f} point" if abs(value - 1.0) < 0.05 else f"{value:.1f} points"


def _percent(share: float) -> str:
    return f"{100 * share:.1f}%"


def _join(clauses: list[str]) -> str:
    return clauses[0] if len(clauses) == 1 else ", ".join(clauses[:-1]) + " and " + clauses[-1]
