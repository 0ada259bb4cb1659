"""Evaluate a student (and its teacher) per language, and write ``metrics.json``.

The file's layout, and its reading and writing, live in :mod:`polydistill.evaluation.metrics_file`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from polydistill.data.columns import dataset_label_names  # noqa: F401  (re-exported: callers found it here)
from polydistill.errors import DataError
from polydistill.evaluation.efficiency import (
    EfficiencySettings,
    measure_teacher_and_student,
    settings_dict,
)
from polydistill.evaluation.metrics import (
    BOOTSTRAP_LEVEL,
    BOOTSTRAP_METHOD,
    BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED,
    MIN_CLASSES,
    MIN_EXAMPLES,
    agreement,
    bootstrap_interval,
    classification_metrics,
    confusion_counts,
    headline_summary,
    is_comparable,
    not_comparable_reasons,
    retention,
)
from polydistill.evaluation.metrics_file import (  # read_metrics: re-exported, callers found it here
    FIDELITY_PREFIX,
    GOLD_REFERENCE,
    METRICS_FILENAME,
    TEACHER_REFERENCE,
    UNDETERMINED_LANGUAGE,
    build_metrics_document,
    eval_set_entry,
    read_metrics,  # noqa: F401
    write_metrics,
)
from polydistill.evaluation.noise import NoiseSettings, add_noise, describe_noise, noise_settings_dict
from polydistill.evaluation.report import write_report

if TYPE_CHECKING:
    from polydistill.tasks.base import EvaluationSet

_DEFAULT_LABEL_NAME = re.compile(r"^LABEL_\d+$")


# --- predictions -------------------------------------------------------------------------

#: full measurement settings (frozen, so one instance serves every call)
DEFAULT_EFFICIENCY = EfficiencySettings()
#: the noise of the robustness scores (``evaluation.noise`` in a run's config; frozen, so one instance serves)
DEFAULT_NOISE = NoiseSettings()


def predict_logits(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    batch_size: int = 64,
    max_length: int = 128,
    description: str = "predicting",
) -> np.ndarray:
    """Logits of ``model`` for ``texts``, in input order, shape (len(texts), num_labels).

    Texts are batched by length (less padding, same results) and truncated to ``max_length``
    tokens; a progress bar shows on stderr.
    """
    import torch
    from tqdm.auto import tqdm

    if len(texts) == 0:
        raise ValueError("no texts to predict")
    device = next(model.parameters()).device
    model.eval()
    order = np.argsort([len(text) for text in texts], kind="stable")
    chunks: list[np.ndarray] = []
    with torch.inference_mode():
        for start in tqdm(range(0, len(order), batch_size), desc=description, unit="batch", leave=False):
            batch = [texts[index] for index in order[start : start + batch_size]]
            inputs = tokenizer(batch, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
            logits = model(**{name: tensor.to(device) for name, tensor in inputs.items()}).logits
            chunks.append(logits.float().cpu().numpy())
    ordered = np.concatenate(chunks)
    logits = np.empty_like(ordered)
    logits[order] = ordered
    return logits


def model_label_names(model: Any) -> list[str] | None:
    """Class names of a classifier by class id, or None when it only has ``LABEL_<i>`` defaults."""
    id2label = getattr(getattr(model, "config", None), "id2label", None) or {}
    names = [str(id2label[key]) for key in sorted(id2label, key=int)]
    if not names or all(_DEFAULT_LABEL_NAME.match(name) for name in names):
        return None
    return names


def label_alignment(dataset_label_names: Sequence[str] | None, model: Any, *, model_role: str = "model") -> np.ndarray:
    """Array mapping each class id of ``model`` to the dataset's label id for the same name.

    Where either side has no class names, ids must already agree and only the counts are
    checked. Raises :class:`DataError` naming the differences when the names do not match.
    """
    num_labels = int(getattr(model.config, "num_labels", 0) or len(model.config.id2label))
    names = model_label_names(model)
    if dataset_label_names is None or names is None:
        if dataset_label_names is not None and len(dataset_label_names) != num_labels:
            raise DataError(
                f"the data has {len(dataset_label_names)} classes {list(dataset_label_names)} but the "
                f"{model_role} has {num_labels} unnamed classes; give the {model_role} id2label names"
            )
        return np.arange(num_labels)
    if set(names) != set(dataset_label_names):
        only_data = sorted(set(dataset_label_names) - set(names))
        only_model = sorted(set(names) - set(dataset_label_names))
        raise DataError(
            f"label names of the data and the {model_role} differ: only in the data {only_data}, "
            f"only in the {model_role} {only_model}. Evaluate on data labelled with the {model_role}'s classes."
        )
    position = {name: index for index, name in enumerate(dataset_label_names)}
    return np.array([position[name] for name in names])


# --- classification ----------------------------------------------------------------------


def evaluate_classification(
    student: Any,
    tokenizer: Any,
    dataset: Any,
    *,
    teacher: Any = None,
    teacher_tokenizer: Any = None,
    batch_size: int = 64,
    max_length: int = 128,
    teacher_text_column: str | None = None,
    text_column: str = "text",
    label_column: str = "label",
    lang_column: str = "lang",
    noise: NoiseSettings | None = None,
) -> dict[str, Any]:
    """Per-language and overall quality of ``student`` (and ``teacher``) on ``dataset``.

    Returns ``{"languages": ..., "overall": ...}`` in the ``metrics.json`` layout. Model class
    ids are mapped to the dataset's label ids by name (see :func:`label_alignment`).
    ``teacher_text_column`` lets the teacher read another column (an English source text,
    say); ``teacher_tokenizer`` defaults to the student's tokenizer. With ``noise``, both models
    predict again on noisy copies of the texts (:func:`polydistill.evaluation.noise.add_noise`;
    the teacher on noisy copies of its own column) and every entry gets a ``noise`` block.
    """
    for column in (text_column, label_column):
        if column not in dataset.column_names:
            raise DataError(f"the evaluation data has no '{column}' column (columns: {dataset.column_names})")
    texts = [str(text) for text in dataset[text_column]]
    gold = np.asarray(dataset[label_column], dtype=np.int64)
    if gold.size == 0:
        raise DataError("the evaluation data is empty")
    if (gold < 0).any():
        raise DataError(f"{int((gold < 0).sum())} evaluation rows have no label (label < 0)")
    languages = _language_codes(dataset, lang_column)
    names = dataset_label_names(dataset, label_column)

    def predict(model: Any, model_tokenizer: Any, role: str, inputs: Sequence[str], description: str) -> np.ndarray:
        return predicted_ids(
            model, model_tokenizer, names, inputs, role=role, batch_size=batch_size, max_length=max_length, description=description
        )

    student_pred = predict(student, tokenizer, "student", texts, "student")
    teacher_pred = noisy_teacher_pred = noisy_student_pred = None
    teacher_texts = texts
    if teacher is not None:
        if teacher_text_column is not None and teacher_text_column not in dataset.column_names:
            raise DataError(f"the evaluation data has no teacher text column '{teacher_text_column}'")
        teacher_texts = [str(text) for text in dataset[teacher_text_column]] if teacher_text_column else texts
        teacher_pred = predict(teacher, teacher_tokenizer or tokenizer, "teacher", teacher_texts, "teacher")
    if noise is not None:
        noisy_texts = add_noise(texts, noise, languages=languages)
        noisy_student_pred = predict(student, tokenizer, "student", noisy_texts, "student, noisy texts")
        if teacher is not None:
            # the teacher's own column is not in the row's language (an English source, say): cased language-neutrally
            noisy_teacher_texts = noisy_texts if teacher_texts is texts else add_noise(teacher_texts, noise)
            noisy_teacher_pred = predict(teacher, teacher_tokenizer or tokenizer, "teacher", noisy_teacher_texts, "teacher, noisy texts")
    return classification_report_by_language(
        gold,
        student_pred,
        languages,
        teacher_pred=teacher_pred,
        label_names=names,
        noisy_student_pred=noisy_student_pred,
        noisy_teacher_pred=noisy_teacher_pred,
    )


def predicted_ids(
    model: Any,
    tokenizer: Any,
    label_names: Sequence[str] | None,
    texts: Sequence[str],
    *,
    role: str = "model",
    batch_size: int = 64,
    max_length: int = 128,
    description: str | None = None,
) -> np.ndarray:
    """The class ids (in ``label_names`` order) ``model`` predicts for ``texts``: its argmax, mapped by name."""
    mapping = label_alignment(label_names, model, model_role=role)
    logits = predict_logits(model, tokenizer, texts, batch_size=batch_size, max_length=max_length, description=description or role)
    return mapping[logits.argmax(-1)]


def evaluate_against_teacher(
    student: Any,
    tokenizer: Any,
    dataset: Any,
    *,
    teacher: Any,
    teacher_tokenizer: Any = None,
    batch_size: int = 64,
    max_length: int = 128,
    teacher_text_column: str | None = None,
    text_column: str = "text",
    lang_column: str = "lang",
) -> dict[str, Any]:
    """Per-language fidelity of ``student`` to ``teacher`` on text without gold labels (a held-out domain).

    The teacher's argmax is the reference: the result has :func:`evaluate_classification`'s layout with
    ``"reference": "teacher"``, no teacher scores, and the student's scores against the teacher's classes
    named ``agreement`` and ``fidelity_<metric>`` (see :func:`classification_report_by_language`). The
    classes are the teacher's (the student's are mapped to them by name); the teacher reads
    ``teacher_text_column`` when given, else the text itself.
    """
    for column in (text_column, *([teacher_text_column] if teacher_text_column else [])):
        if column not in dataset.column_names:
            raise DataError(f"the evaluation data has no '{column}' column (columns: {dataset.column_names})")
    texts = [str(text) for text in dataset[text_column]]
    if not texts:
        raise DataError("the evaluation data is empty")
    names = model_label_names(teacher)
    teacher_texts = [str(text) for text in dataset[teacher_text_column]] if teacher_text_column else texts
    teacher_pred = predicted_ids(
        teacher, teacher_tokenizer or tokenizer, names, teacher_texts, role="teacher", batch_size=batch_size, max_length=max_length
    )
    student_pred = predicted_ids(student, tokenizer, names, texts, role="student", batch_size=batch_size, max_length=max_length)
    return classification_report_by_language(
        teacher_pred, student_pred, _language_codes(dataset, lang_column), label_names=names, reference=TEACHER_REFERENCE
    )


def fidelity_metrics(metrics: Mapping[str, float], agreement_value: float) -> dict[str, float]:
    """A student's :func:`~polydistill.evaluation.metrics.classification_metrics` against the teacher's
    predicted classes, named so that no reader takes them for gold-label scores: ``agreement`` (the share
    of texts where its class is the teacher's; the same number as ``fidelity_accuracy``) and
    ``fidelity_<metric>`` for each metric."""
    return {"agreement": agreement_value, **{FIDELITY_PREFIX + key: value for key, value in metrics.items()}}


NOISE_METRICS: tuple[str, ...] = ("macro_f1", "accuracy")
"""Metrics scored again on noisy texts (the primary metric and accuracy)."""
CI_METRICS: tuple[str, ...] = ("macro_f1", "accuracy")
"""Metrics with bootstrap intervals per language (the primary metric and accuracy)."""


def classification_report_by_language(
    gold: Sequence[int] | np.ndarray,
    student_pred: Sequence[int] | np.ndarray,
    languages: Sequence[str],
    *,
    teacher_pred: Sequence[int] | np.ndarray | None = None,
    label_names: Sequence[str] | None = None,
    noisy_student_pred: Sequence[int] | np.ndarray | None = None,
    noisy_teacher_pred: Sequence[int] | np.ndarray | None = None,
    reference: str = GOLD_REFERENCE,
) -> dict[str, Any]:
    """The ``reference``, ``languages`` and ``overall`` parts of ``metrics.json`` from predictions alone.

    Every language is marked ``comparable`` or not (:func:`~polydistill.evaluation.metrics.not_comparable_reasons`),
    gets bootstrap intervals (``ci``) of :data:`CI_METRICS` and confusion counts; with noisy
    predictions (of the same rows, on noisy texts) a ``noise`` block. Class ids index
    ``label_names`` when given.

    ``reference="teacher"`` scores text without gold labels: ``gold`` then holds the teacher's
    predicted classes (and ``teacher_pred`` is not given), so the student's metrics, intervals and
    confusion rows are against the teacher's decisions, its metrics are named as such
    (:func:`fidelity_metrics`: ``agreement``, ``fidelity_macro_f1``, ...; the intervals'
    ``fidelity_macro_f1``, ``fidelity_accuracy``), and the comparable rule counts the teacher's
    predicted classes.
    """
    if reference not in (GOLD_REFERENCE, TEACHER_REFERENCE):
        raise ValueError(f"reference must be '{GOLD_REFERENCE}' or '{TEACHER_REFERENCE}', got {reference!r}")
    against_teacher = reference == TEACHER_REFERENCE
    if against_teacher and (teacher_pred is not None or noisy_student_pred is not None):
        raise ValueError("scored against the teacher's predictions (given as gold), there are no teacher or noisy predictions to compare")
    ci_prefix = FIDELITY_PREFIX if against_teacher else ""
    gold = np.asarray(gold)
    student_pred = np.asarray(student_pred)
    teacher_array = None if teacher_pred is None else np.asarray(teacher_pred)
    noisy_student = None if noisy_student_pred is None else np.asarray(noisy_student_pred)
    noisy_teacher = None if noisy_teacher_pred is None else np.asarray(noisy_teacher_pred)
    language_array = np.asarray(languages, dtype=object)
    if not (len(gold) == len(student_pred) == len(language_array)) or any(
        array is not None and len(array) != len(gold) for array in (teacher_array, noisy_student, noisy_teacher)
    ):
        raise ValueError("gold labels, predictions and languages must have the same length")
    if noisy_teacher is not None and (noisy_student is None or teacher_array is None):
        raise ValueError("noisy teacher predictions need the teacher's clean predictions and the student's noisy ones")
    arrays = [array for array in (gold, student_pred, teacher_array, noisy_student, noisy_teacher) if array is not None]
    num_classes = max(len(label_names or ()), max(int(array.max()) for array in arrays) + 1 if gold.size else 0)
    class_labels = list(label_names) if label_names is not None else [str(index) for index in range(num_classes)]

    def pick(array: np.ndarray | None, rows: np.ndarray | slice) -> np.ndarray | None:
        return None if array is None else array[rows]

    def entry_for(rows: np.ndarray | slice) -> dict[str, Any]:
        entry = _quality_entry(gold[rows], student_pred[rows], pick(teacher_array, rows))
        if against_teacher:
            entry["student"] = fidelity_metrics(entry["student"], agreement(student_pred[rows], gold[rows]))
        entry["confusion"] = _confusion_entry(gold[rows], student_pred[rows], pick(teacher_array, rows), num_classes, class_labels)
        if noisy_student is not None:
            entry["noise"] = _noise_entry(entry, gold[rows], noisy_student[rows], pick(noisy_teacher, rows))
        return entry

    per_language: dict[str, Any] = {}
    for code in sorted(set(language_array.tolist())):
        rows = language_array == code
        entry = entry_for(rows)
        reasons = not_comparable_reasons(int(rows.sum()), gold[rows], label_names=class_labels)
        entry["comparable"] = not reasons
        entry["not_comparable_because"] = reasons
        entry["ci"] = {
            ci_prefix + metric: bootstrap_interval(
                gold[rows],
                student_pred[rows],
                pick(teacher_array, rows),
                metric,
                resamples=BOOTSTRAP_RESAMPLES,
                level=BOOTSTRAP_LEVEL,
                seed=BOOTSTRAP_SEED,
            )
            for metric in CI_METRICS
        }
        per_language[code] = entry
    overall = entry_for(slice(None))
    overall["languages"] = len(per_language)
    overall.update(summarise_languages(per_language, pooled=overall))
    return {"reference": reference, "languages": per_language, "overall": overall}


def _confusion_entry(
    gold: np.ndarray, student_pred: np.ndarray, teacher_pred: np.ndarray | None, num_classes: int, labels: list[str]
) -> dict[str, Any]:
    return {
        "labels": labels,
        "student": confusion_counts(gold, student_pred, num_classes).tolist(),
        "teacher": None if teacher_pred is None else confusion_counts(gold, teacher_pred, num_classes).tolist(),
    }


def _noise_entry(clean: Mapping[str, Any], gold: np.ndarray, noisy_student: np.ndarray, noisy_teacher: np.ndarray | None) -> dict[str, Any]:
    """Scores on noisy texts and the drops (clean - noisy: positive means the noise hurt)."""

    def scores(predicted: np.ndarray) -> dict[str, float]:
        metrics = classification_metrics(gold, predicted)
        return {key: metrics[key] for key in NOISE_METRICS}

    student = scores(noisy_student)
    teacher = None if noisy_teacher is None or clean.get("teacher") is None else scores(noisy_teacher)
    return {
        "student": student,
        "teacher": teacher,
        "student_drop": {key: float(clean["student"][key]) - student[key] for key in NOISE_METRICS},
        "teacher_drop": None if teacher is None else {key: float(clean["teacher"][key]) - teacher[key] for key in NOISE_METRICS},
    }


def quality_meta(noise: NoiseSettings | None) -> dict[str, Any]:
    """The thresholds and settings behind the ``comparable``, ``ci`` and ``noise`` entries, for ``meta``."""
    meta: dict[str, Any] = {
        "comparable": {
            "min_examples": MIN_EXAMPLES,
            "min_classes": MIN_CLASSES,
            "rule": (
                f"a language with fewer than {MIN_EXAMPLES} test examples, or (classification) fewer than "
                f"{MIN_CLASSES} gold classes, is left out of the headline aggregates"
            ),
            "without_gold_labels": (
                f"on an evaluation set without gold labels (reference: teacher) the classes counted are the teacher's "
                f"predicted classes: fewer than {MIN_CLASSES} of them, or fewer than {MIN_EXAMPLES} texts, and the language is left out"
            ),
        },
        "bootstrap": {
            "resamples": BOOTSTRAP_RESAMPLES,
            "level": BOOTSTRAP_LEVEL,
            "seed": BOOTSTRAP_SEED,
            "metrics": list(CI_METRICS),
            "method": BOOTSTRAP_METHOD,
        },
        "noise": None,
    }
    if noise is not None:
        meta["noise"] = noise_settings_dict(noise) | {"metrics": list(NOISE_METRICS), "description": describe_noise(noise)}
    return meta


def _quality_entry(gold: np.ndarray, student_pred: np.ndarray, teacher_pred: np.ndarray | None) -> dict[str, Any]:
    student_metrics: dict[str, Any] = classification_metrics(gold, student_pred)
    if teacher_pred is None:
        return {"n": int(gold.size), "teacher": None, "student": student_metrics, "retention": None}
    teacher_metrics = classification_metrics(gold, teacher_pred)
    student_metrics["agreement"] = agreement(student_pred, teacher_pred)
    return {
        "n": int(gold.size),
        "teacher": teacher_metrics,
        "student": student_metrics,
        "retention": retention(student_metrics, teacher_metrics),
    }


def summarise_languages(per_language: Mapping[str, Mapping[str, Any]], pooled: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Every comparable language weighing the same: mean metrics, mean/min retention with its
    language, and the robust ``headline`` (:func:`~polydistill.evaluation.metrics.headline_summary`).

    Languages marked ``"comparable": false`` are left out of every aggregate (entries without
    the mark count). Works for any metric keys (later tasks add their own). Retention summaries
    are ``None`` without a teacher. ``pooled`` (the all-examples entry) fills the headline's
    ``pooled`` figures.
    """
    comparable = {code: entry for code, entry in per_language.items() if is_comparable(entry)}
    summary: dict[str, Any] = {"language_mean": {}, "headline": headline_summary(per_language, pooled)}
    for role in ("teacher", "student"):
        summary["language_mean"][role] = _mean_by_key([entry.get(role) for entry in comparable.values()])
    ratios = {code: ratio for code, entry in comparable.items() if (ratio := entry.get("retention"))}
    if not ratios:
        summary.update(mean_language_retention=None, min_language_retention=None, min_retention_language=None)
        return summary
    summary["mean_language_retention"] = _mean_by_key(list(ratios.values()))
    summary["min_language_retention"] = {}
    summary["min_retention_language"] = {}
    for key in sorted({key for values in ratios.values() for key in values}):
        defined = {code: values[key] for code, values in ratios.items() if values.get(key) is not None}
        if defined:
            lowest = min(defined, key=lambda code: (defined[code], code))
            summary["min_language_retention"][key] = defined[lowest]
            summary["min_retention_language"][key] = lowest
    return summary


def _mean_by_key(records: Sequence[Mapping[str, Any] | None]) -> dict[str, float] | None:
    present = [record for record in records if record]
    if not present:
        return None
    means: dict[str, float] = {}
    for key in dict.fromkeys(key for record in present for key in record):
        values = [record[key] for record in present if isinstance(record.get(key), (int, float))]
        if values:
            means[key] = float(np.mean(values))
    return means


def _language_codes(dataset: Any, lang_column: str) -> list[str]:
    if lang_column not in dataset.column_names:
        return [UNDETERMINED_LANGUAGE] * len(dataset)
    return [str(code) if code not in (None, "") else UNDETERMINED_LANGUAGE for code in dataset[lang_column]]


# --- several evaluation sets -------------------------------------------------------------


def score_eval_sets(
    primary: Mapping[str, Any], evaluation_sets: Sequence[EvaluationSet], score: Callable[[Any], Mapping[str, Any]]
) -> dict[str, Any]:
    """The ``eval_sets`` of ``metrics.json``: the first set's entry from ``primary`` (the scores of the
    top level, already worked out on it), every other set's from ``score(its dataset)``.

    ``score`` is the task's per-language evaluation (:func:`evaluate_classification`,
    :func:`~polydistill.evaluation.retrieval.evaluate_embeddings`), so every set follows the
    same metrics and comparability rules as the primary one.
    """
    from polydistill.console import console

    block: dict[str, Any] = {}
    for index, evaluation_set in enumerate(evaluation_sets):
        if index:
            console.print(f"[bold]Evaluating[/] teacher and student on {evaluation_set.name} ({evaluation_set.field})")
        quality = primary if index == 0 else score(evaluation_set.dataset)
        block[evaluation_set.name] = eval_set_entry(evaluation_set.field, evaluation_set.source, quality)
        if "reference" in quality:  # what a classification set is scored against: gold labels or the teacher's predictions
            block[evaluation_set.name]["reference"] = quality["reference"]
    return block


# --- one call at the end of a run --------------------------------------------------------


def evaluate_run(
    out_dir: str | Path,
    *,
    student: Any,
    tokenizer: Any,
    dataset: Any,
    teacher: Any = None,
    teacher_tokenizer: Any = None,
    student_dir: str | Path | None = None,
    teacher_dir: str | Path | None = None,
    config: Mapping[str, Any] | None = None,
    batch_size: int = 64,
    max_length: int = 128,
    teacher_text_column: str | None = None,
    efficiency: EfficiencySettings | None = DEFAULT_EFFICIENCY,
    noise: NoiseSettings | None = DEFAULT_NOISE,
    report: bool = True,
    evaluation_sets: Sequence[EvaluationSet] = (),
) -> dict[str, Any]:
    """Evaluate a classifier (and teacher), measure both, write ``metrics.json`` and the report.

    ``efficiency=None`` skips size and speed (``teacher``/``student`` are then null). Teacher
    and student are measured one after the other in this process with the same settings and
    texts drawn from ``dataset`` (each model on the column it reads). ``noise=None`` skips the
    robustness scores on noisy texts. ``evaluation_sets``: every test set of the run, the first
    being ``dataset``; each is scored per language into ``eval_sets`` (no noise, no efficiency:
    those stay the primary set's): a set without a ``label`` column against the teacher's
    predictions (:func:`evaluate_against_teacher`, ``"reference": "teacher"``). Returns the document.
    """
    quality = evaluate_classification(
        student,
        tokenizer,
        dataset,
        teacher=teacher,
        teacher_tokenizer=teacher_tokenizer,
        batch_size=batch_size,
        max_length=max_length,
        teacher_text_column=teacher_text_column,
        noise=noise,
    )
    eval_sets = None
    if evaluation_sets:
        from polydistill.data.sources import teacher_text_column as column_of_teacher

        def score(other: Any) -> dict[str, Any]:
            has_gold = "label" in other.column_names
            if not has_gold and teacher is None:  # text without gold labels: the teacher's predictions are the reference
                raise DataError("an evaluation set without gold labels is scored against the teacher's predictions; give the teacher")
            scorer = evaluate_classification if has_gold else evaluate_against_teacher
            return scorer(
                student,
                tokenizer,
                other,
                teacher=teacher,
                teacher_tokenizer=teacher_tokenizer,
                batch_size=batch_size,
                max_length=max_length,
                teacher_text_column=column_of_teacher(other),
            )

        eval_sets = score_eval_sets(quality, evaluation_sets, score)
    teacher_efficiency = student_efficiency = None
    if efficiency is not None:
        student_texts = [str(text) for text in dataset["text"]]
        teacher_efficiency, student_efficiency = measure_teacher_and_student(
            efficiency,
            student=student,
            tokenizer=tokenizer,
            student_texts=student_texts,
            student_dir=student_dir,
            teacher=teacher,
            teacher_tokenizer=teacher_tokenizer,
            teacher_texts=[str(text) for text in dataset[teacher_text_column]] if teacher_text_column else None,
            teacher_dir=teacher_dir,
            max_length=max_length,
        )
    document = build_metrics_document(
        "classification",
        quality,
        teacher_efficiency=teacher_efficiency,
        student_efficiency=student_efficiency,
        config=config,
        meta={
            "label_names": dataset_label_names(dataset),
            "max_length": max_length,
            # the settings as used: timed inputs are truncated like the evaluated ones
            "efficiency_settings": None if efficiency is None else settings_dict(efficiency) | {"max_length": max_length},
            **quality_meta(noise),
        },
        eval_sets=eval_sets,
    )
    out = Path(out_dir)
    write_metrics(out / METRICS_FILENAME, document)
    if report:
        write_report(out)
    return document
