"""Quality of sentence embeddings per language: translation retrieval and similarity structure.

Two questions, answered in the ``languages``/``overall`` layout of ``metrics.json`` (task
``embeddings``, see :mod:`polydistill.evaluation.evaluate`):

- Does a translation find its English source, and the English source its translation?
  Per language, top-1 accuracy and mean reciprocal rank of translation retrieval in both
  directions over held-out catalog pairs, among that language's held-out pairs.
- Does the student keep the teacher's similarity structure? In English, the Spearman
  correlation of the student's cosine similarities with the teacher's over sentence pairs.

**Ties count against the model.** The rank of the correct candidate is 1 plus the number of
*other* candidates whose score is greater than *or equal to* its own, so a hit at top-1 needs
the correct candidate to be strictly best. A model that cannot tell the right candidate from
another one has not retrieved it: a collapsed model (every vector the same) scores top-1 0 and
MRR 1/n, not 1, and an English-only teacher that turns two different Hindi strings into the
same run of ``[UNK]`` gets no credit for guessing between them.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import numpy as np

from polydistill.errors import DataError
from polydistill.evaluation.evaluate import summarise_languages
from polydistill.evaluation.metrics import not_comparable_reasons, retention

T = TypeVar("T")

Encoder = Callable[[list[str]], np.ndarray]
"""texts -> (len(texts), d) sentence embeddings (normalised again here, so cosine either way)."""

SOURCE_LANGUAGE = "en"
RETRIEVAL_METRICS: tuple[str, ...] = ("top1_en_to_x", "top1_x_to_en", "mrr_en_to_x", "mrr_x_to_en")
"""Per-language metric keys of an embedding model, in the order tables show them."""
SIMILARITY_METRIC = "spearman_teacher_similarity"
"""Student-only key in ``overall``: Spearman of student vs teacher cosine similarities (English)."""
DEFAULT_SIMILARITY_SENTENCES = 200


# --- metrics of one similarity matrix ----------------------------------------------------


def retrieval_ranks(similarity: np.ndarray) -> np.ndarray:
    """1-based rank of the correct candidate of every query (row i's correct column is i).

    Rank = 1 + the number of other columns scoring at least as high as the correct one (ties
    count against the model; see the module docstring). More columns than rows are extra
    distractors.
    """
    scores = np.asarray(similarity, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[0] == 0 or scores.shape[1] < scores.shape[0]:
        raise ValueError(f"need a (queries, candidates) matrix with candidates >= queries >= 1, got {scores.shape}")
    if not np.isfinite(scores).all():
        raise ValueError("the similarity matrix holds NaN or infinite values")
    rows = np.arange(scores.shape[0])
    correct = scores[rows, rows]
    # the correct column itself is counted once by ">=", which is the "1 +"
    return (scores >= correct[:, None]).sum(axis=1)


def retrieval_metrics(similarity: np.ndarray) -> dict[str, float]:
    """``top1`` (share of queries whose correct candidate is strictly best) and ``mrr`` (mean of
    1 / rank) of a (queries, candidates) similarity matrix whose correct pairs are its diagonal."""
    ranks = retrieval_ranks(similarity)
    return {"top1": float(np.mean(ranks == 1)), "mrr": float(np.mean(1.0 / ranks))}


# --- the held-out pairs ------------------------------------------------------------------


def retrieval_sets(
    pairs: Any,
    *,
    min_pairs: int = 2,
    text_column: str = "text",
    translation_column: str = "translation",
    lang_column: str = "lang",
) -> dict[str, tuple[list[str], list[str]]]:
    """Per language, English sources and their translations as two aligned lists, one to one.

    ``pairs`` has the parallel layout of :mod:`polydistill.data.sources`: ``text`` the English
    source, ``translation`` its translation, ``lang`` the translation's language.

    Within a language every English string and every translation occurs once, so each query has
    exactly one correct candidate: pairs are taken in (English, translation) order and a pair
    whose English or whose translation was already taken is dropped (an English message with two
    translations keeps the first; two messages with one translation keep the first message).
    Rows in English itself are skipped (English is the pivot), as are languages left with fewer
    than ``min_pairs`` pairs (retrieval among one candidate is always right).
    """
    from polydistill.data.columns import column_values

    columns = (text_column, translation_column, lang_column)
    missing = [column for column in columns if column not in pairs.column_names]
    if missing:
        raise DataError(f"the retrieval pairs lack the columns {missing} (columns: {pairs.column_names})")
    by_language: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for english, text, lang in zip(*(column_values(pairs, column) for column in columns), strict=True):
        if english and text and lang and lang != SOURCE_LANGUAGE:
            by_language[str(lang)].add((str(english), str(text)))
    sets: dict[str, tuple[list[str], list[str]]] = {}
    for lang in sorted(by_language):
        english_list, text_list = one_to_one(sorted(by_language[lang]))
        if len(english_list) >= max(min_pairs, 1):
            sets[lang] = (english_list, text_list)
    return sets


def one_to_one(pairs: Iterable[tuple[T, T]]) -> tuple[list[T], list[T]]:
    """(sources, targets) of ``pairs`` in order, dropping a pair whose source or target was already
    taken: every query then has exactly one correct candidate."""
    sources_seen: set[T] = set()
    targets_seen: set[T] = set()
    sources: list[T] = []
    targets: list[T] = []
    for source, target in pairs:
        if source in sources_seen or target in targets_seen:
            continue
        sources_seen.add(source)
        targets_seen.add(target)
        sources.append(source)
        targets.append(target)
    return sources, targets


def default_similarity_pairs(
    sentences: Sequence[str], *, max_sentences: int = DEFAULT_SIMILARITY_SENTENCES, seed: int = 0
) -> list[tuple[str, str]]:
    """Every pair among up to ``max_sentences`` distinct sentences (a seeded sample of them, drawn
    from the sorted set, so the same data gives the same pairs on every machine)."""
    unique = sorted(set(sentences))
    if len(unique) > max_sentences:
        unique = sorted(random.Random(seed).sample(unique, max_sentences))
    return [(unique[i], unique[j]) for i in range(len(unique)) for j in range(i + 1, len(unique))]


# --- evaluation --------------------------------------------------------------------------


def evaluate_embeddings(
    student_encode: Encoder,
    pairs: Any,
    *,
    teacher_encode: Encoder | None = None,
    similarity_pairs: Sequence[tuple[str, str]] | None = None,
    max_similarity_sentences: int = DEFAULT_SIMILARITY_SENTENCES,
    seed: int = 0,
    min_pairs: int = 2,
    text_column: str = "text",
    translation_column: str = "translation",
    lang_column: str = "lang",
) -> dict[str, Any]:
    """Per-language translation retrieval of the student (and teacher), and how much of the
    teacher's English similarity structure the student keeps.

    ``pairs`` is a held-out ``datasets.Dataset`` of parallel pairs (columns ``text``, the English
    source, ``translation`` and ``lang``; split by English source, so none of it was trained
    on); see
    :func:`retrieval_sets` for how each language's candidates are made unique. Each encoder is
    called once, on every distinct string needed. Returns ``{"languages", "overall"}`` for
    :func:`~polydistill.evaluation.evaluate.build_metrics_document` with task ``"embeddings"``:

    - per language: ``n`` (pairs), ``teacher``/``student`` with :data:`RETRIEVAL_METRICS`, and
      ``retention`` (student / teacher) per key;
    - ``overall``: the same keys as the pair-weighted mean over languages (retrieval pools of
      different languages cannot be merged into one), ``languages``, the every-language-equal
      summaries of :func:`summarise_languages`, and, with a teacher, the student's
      ``spearman_teacher_similarity`` over ``similarity_pairs`` of English sentences (default:
      :func:`default_similarity_pairs` of the held-out English sources), with their count in
      ``similarity_pairs``. A constant similarity on either side makes Spearman undefined: None.
    """
    sets = retrieval_sets(
        pairs,
        min_pairs=min_pairs,
        text_column=text_column,
        translation_column=translation_column,
        lang_column=lang_column,
    )
    if not sets:
        raise DataError(f"no language has at least {min_pairs} distinct translation pairs to retrieve among")
    if teacher_encode is not None and similarity_pairs is None:
        english = [sentence for english_list, _ in sets.values() for sentence in english_list]
        similarity_pairs = default_similarity_pairs(english, max_sentences=max_similarity_sentences, seed=seed)
    similarity_pairs = [(str(a), str(b)) for a, b in (similarity_pairs or ())] if teacher_encode is not None else []

    texts = sorted(
        {text for english_list, text_list in sets.values() for text in (*english_list, *text_list)}
        | {sentence for pair in similarity_pairs for sentence in pair}
    )
    student_vectors = _VectorTable(student_encode, texts, "student")
    teacher_vectors = None if teacher_encode is None else _VectorTable(teacher_encode, texts, "teacher")

    per_language: dict[str, Any] = {}
    for lang, (english_list, text_list) in sets.items():
        student_metrics = _retrieval_entry(student_vectors, english_list, text_list)
        teacher_metrics = None if teacher_vectors is None else _retrieval_entry(teacher_vectors, english_list, text_list)
        reasons = not_comparable_reasons(len(english_list))  # too few pairs: top-1 moves in big steps
        per_language[lang] = {
            "n": len(english_list),
            "teacher": teacher_metrics,
            "student": student_metrics,
            "retention": None if teacher_metrics is None else retention(student_metrics, teacher_metrics),
            "comparable": not reasons,
            "not_comparable_because": reasons,
        }

    sizes = {lang: entry["n"] for lang, entry in per_language.items()}
    overall_student: dict[str, Any] = _weighted_mean([entry["student"] for entry in per_language.values()], sizes)
    overall_teacher = None
    if teacher_vectors is not None:
        overall_teacher = _weighted_mean([entry["teacher"] for entry in per_language.values()], sizes)
        overall_student[SIMILARITY_METRIC] = similarity_spearman(student_vectors, teacher_vectors, similarity_pairs)
    overall: dict[str, Any] = {
        "n": sum(sizes.values()),
        "languages": len(per_language),
        "teacher": overall_teacher,
        "student": overall_student,
        "retention": None if overall_teacher is None else retention(overall_student, overall_teacher),
    }
    if teacher_vectors is not None:
        overall["similarity_pairs"] = len(similarity_pairs)
    overall.update(summarise_languages(per_language))
    return {"languages": per_language, "overall": overall}


class _VectorTable:
    """Unit-length embeddings of a fixed list of texts, looked up by text."""

    def __init__(self, encode: Encoder, texts: list[str], role: str):
        vectors = np.asarray(encode(list(texts)), dtype=np.float64)
        if vectors.ndim != 2 or vectors.shape[0] != len(texts):
            raise ValueError(f"the {role} encoder returned shape {vectors.shape} for {len(texts)} texts")
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        self.vectors = vectors / np.maximum(norms, 1e-12)
        self.row = {text: index for index, text in enumerate(texts)}

    def __getitem__(self, texts: Sequence[str]) -> np.ndarray:
        return self.vectors[[self.row[text] for text in texts]]


def _retrieval_entry(vectors: _VectorTable, english: list[str], translations: list[str]) -> dict[str, float]:
    similarity = vectors[english] @ vectors[translations].T  # rows: English queries
    en_to_x = retrieval_metrics(similarity)
    x_to_en = retrieval_metrics(similarity.T)
    return {
        "top1_en_to_x": en_to_x["top1"],
        "top1_x_to_en": x_to_en["top1"],
        "mrr_en_to_x": en_to_x["mrr"],
        "mrr_x_to_en": x_to_en["mrr"],
    }


def _weighted_mean(records: list[dict[str, float]], sizes: dict[str, int]) -> dict[str, float]:
    weights = np.asarray(list(sizes.values()), dtype=np.float64)
    return {key: float(np.average([record[key] for record in records], weights=weights)) for key in RETRIEVAL_METRICS}


def similarity_spearman(student: _VectorTable, teacher: _VectorTable, sentence_pairs: Sequence[tuple[str, str]]) -> float | None:
    """Spearman correlation (average ranks for ties) of student and teacher cosine similarities over
    ``sentence_pairs``; None with fewer than 3 pairs or a constant similarity on either side."""
    from scipy.stats import spearmanr

    if len(sentence_pairs) < 3:
        return None
    firsts = [a for a, _ in sentence_pairs]
    seconds = [b for _, b in sentence_pairs]
    student_cosines = np.einsum("ij,ij->i", student[firsts], student[seconds])
    teacher_cosines = np.einsum("ij,ij->i", teacher[firsts], teacher[seconds])
    if np.ptp(student_cosines) == 0 or np.ptp(teacher_cosines) == 0:
        return None
    return float(spearmanr(student_cosines, teacher_cosines).statistic)
