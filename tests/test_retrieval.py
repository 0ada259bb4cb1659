"""Translation retrieval and similarity-structure metrics against hand-made similarities, and the
embeddings task in metrics.json and the report."""

from __future__ import annotations

import math

import numpy as np
import pytest

from polydistill.errors import DataError
from polydistill.evaluation.evaluate import build_metrics_document, read_metrics, summarise_languages, write_metrics
from polydistill.evaluation.report import language_table, verdict, write_report
from polydistill.evaluation.retrieval import (
    RETRIEVAL_METRICS,
    default_similarity_pairs,
    evaluate_embeddings,
    retrieval_metrics,
    retrieval_ranks,
    retrieval_sets,
)

# --- one similarity matrix -----------------------------------------------------------------


def test_ties_count_against_the_model():
    similarity = np.array(
        [
            [0.9, 0.9, 0.1],  # correct ties with column 1: rank 2
            [0.2, 0.5, 0.7],  # column 2 beats the correct one: rank 2
            [0.3, 0.3, 0.3],  # a three-way tie: rank 3
        ]
    )
    assert retrieval_ranks(similarity).tolist() == [2, 2, 3]
    metrics = retrieval_metrics(similarity)
    assert metrics["top1"] == 0.0
    assert metrics["mrr"] == pytest.approx((1 / 2 + 1 / 2 + 1 / 3) / 3)


def test_both_directions_of_one_matrix():
    similarity = np.array(
        [
            [1.0, 0.2, 0.2],  # rank 1 (the tie is between two wrong candidates)
            [0.5, 0.6, 0.6],  # ties with column 2: rank 2
            [0.1, 0.0, 0.4],  # rank 1
        ]
    )
    assert retrieval_metrics(similarity) == pytest.approx({"top1": 2 / 3, "mrr": (1 + 1 / 2 + 1) / 3})
    # transposed, query 2 sees [0.2, 0.6, 0.4]: 0.6 beats the correct 0.4, rank 2; the others rank 1
    assert retrieval_ranks(similarity.T).tolist() == [1, 1, 2]
    assert retrieval_metrics(similarity.T) == pytest.approx({"top1": 2 / 3, "mrr": (1 + 1 + 1 / 2) / 3})


def test_a_collapsed_model_scores_no_hit():
    metrics = retrieval_metrics(np.full((4, 4), 0.7))
    assert metrics == {"top1": 0.0, "mrr": 0.25}


def test_extra_columns_are_distractors():
    similarity = np.array([[0.8, 0.1, 0.9], [0.0, 0.5, 0.4]])  # column 2 has no query of its own
    assert retrieval_ranks(similarity).tolist() == [2, 1]


@pytest.mark.parametrize("similarity", [np.zeros((3, 2)), np.zeros((0, 0)), np.zeros(3), np.array([[1.0, np.nan], [0.0, 1.0]])])
def test_malformed_matrices_are_refused(similarity):
    with pytest.raises(ValueError):
        retrieval_metrics(similarity)


# --- the held-out pairs --------------------------------------------------------------------


def pairs_dataset(rows: list[tuple[str, str, str]]):
    import datasets

    return datasets.Dataset.from_dict({"text": [r[0] for r in rows], "translation": [r[1] for r in rows], "lang": [r[2] for r in rows]})


def test_retrieval_sets_make_candidates_unique_per_language():
    pairs = pairs_dataset(
        [
            ("Save", "Speichern", "de"),
            ("Save", "Sichern", "de"),  # second translation of one message: dropped
            ("Change password", "Passwort ändern", "de"),
            ("Password change", "Passwort ändern", "de"),  # second message with one translation: dropped
            ("Delete", "Löschen", "de"),
            ("Save", "Save", "en"),  # English is the pivot, not a target
            ("Save", "Enregistrer", "fr"),  # one pair only: nothing to retrieve among
            ("Save", "Speichern", "de"),  # an exact repeat
        ]
    )
    sets = retrieval_sets(pairs)
    assert list(sets) == ["de"]
    assert sets["de"] == (
        ["Change password", "Delete", "Save"],
        ["Passwort ändern", "Löschen", "Sichern"],
    )
    assert list(retrieval_sets(pairs, min_pairs=1)) == ["de", "fr"]
    with pytest.raises(DataError, match="lack the columns"):
        retrieval_sets(pairs.remove_columns("lang"))


def test_default_similarity_pairs_are_all_pairs_of_a_seeded_sample():
    assert default_similarity_pairs(["b", "a", "c", "a"]) == [("a", "b"), ("a", "c"), ("b", "c")]
    sentences = [f"sentence {i:03d}" for i in range(50)]
    sampled = default_similarity_pairs(sentences, max_sentences=10, seed=3)
    assert len(sampled) == 10 * 9 // 2
    assert len({s for pair in sampled for s in pair}) == 10
    assert sampled == default_similarity_pairs(list(reversed(sentences)), max_sentences=10, seed=3)


# --- evaluate_embeddings on lookup-table encoders --------------------------------------------

R = 1 / math.sqrt(2)
STUDENT_VECTORS = {
    "cat": (1, 0, 0),
    "dog": (0, 1, 0),
    "house": (0, 0, 1),
    "Katze": (1, 0, 0),
    "Hund": (1, 1, 0),
    "Haus": (0, 0, 1),  # Hund is as close to cat as to dog
    "chat": (0, 1, 0),
    "chien": (1, 0, 0),  # French swapped
}
TEACHER_VECTORS = {
    "cat": (1, 0, 0),
    "dog": (1, 1, 0),
    "house": (0, 0, 1),
    "Katze": (1, 0, 0),
    "Hund": (1, 1, 0),
    "Haus": (0, 0, 1),
    "chat": (1, 0, 0),
    "chien": (1, 1, 0),
}
PAIRS = [
    ("cat", "Katze", "de"),
    ("dog", "Hund", "de"),
    ("house", "Haus", "de"),
    ("cat", "chat", "fr"),
    ("dog", "chien", "fr"),
]


def unit_circle(degrees: float) -> tuple[float, float, float]:
    return (math.cos(math.radians(degrees)), math.sin(math.radians(degrees)), 0.0)


def lookup_encoder(table: dict[str, tuple[float, ...]], calls: list | None = None):
    def encode(texts: list[str]) -> np.ndarray:
        if calls is not None:
            calls.append(list(texts))
        return np.array([table[text] for text in texts], dtype=np.float32) * 3.0  # not unit length on purpose

    return encode


def test_retrieval_per_language_against_hand_counts():
    calls: list = []
    quality = evaluate_embeddings(
        lookup_encoder(STUDENT_VECTORS, calls), pairs_dataset(PAIRS), teacher_encode=lookup_encoder(TEACHER_VECTORS)
    )
    de, fr = quality["languages"]["de"], quality["languages"]["fr"]
    # de, student: English -> German all rank 1; German -> English: Hund ties cat and dog (rank 2)
    assert de["n"] == 3
    assert de["student"] == pytest.approx(
        {"top1_en_to_x": 1.0, "top1_x_to_en": 2 / 3, "mrr_en_to_x": 1.0, "mrr_x_to_en": (1 + 1 / 2 + 1) / 3}
    )
    # fr, student: the two translations are swapped, every query ranks its answer second
    assert fr["student"] == pytest.approx({key: value for key, value in zip(RETRIEVAL_METRICS, (0, 0, 0.5, 0.5), strict=True)})
    # the teacher puts each translation on its source: perfect, so retention equals the student's score
    assert de["teacher"] == {key: 1.0 for key in RETRIEVAL_METRICS}
    assert de["retention"] == pytest.approx(de["student"])
    assert len(calls) == 1 and len(calls[0]) == len(set(calls[0]))  # one call, every string once

    overall = quality["overall"]
    assert overall["n"] == 5 and overall["languages"] == 2
    # pair-weighted (de 3, fr 2) for "overall", every language equal for "language_mean"
    assert overall["student"]["top1_en_to_x"] == pytest.approx(3 / 5)
    assert overall["student"]["top1_x_to_en"] == pytest.approx(2 / 5)
    assert overall["student"]["mrr_en_to_x"] == pytest.approx((3 * 1 + 2 * 0.5) / 5)
    assert overall["student"]["mrr_x_to_en"] == pytest.approx((3 * 5 / 6 + 2 * 0.5) / 5)
    # 3 and 2 pairs: too few to compare languages by (top-1 moves in steps of a third), so no language aggregate
    assert not de["comparable"] and de["not_comparable_because"] == ["3 examples, fewer than 30"]
    assert overall["language_mean"]["student"] is None and overall["min_retention_language"] is None
    # default similarity pairs: all pairs of the held-out English (3); the student's English
    # vectors are orthogonal, so its similarities are constant and Spearman is undefined
    assert overall["similarity_pairs"] == 3
    assert overall["student"]["spearman_teacher_similarity"] is None


def test_spearman_of_student_and_teacher_similarities_by_hand():
    teacher_angles = {"a": 0, "b": 20, "c": 50, "d": 90}
    student_angles = {"a": 0, "b": 90, "c": 40, "d": 60}
    teacher = TEACHER_VECTORS | {s: unit_circle(angle) for s, angle in teacher_angles.items()}
    student = STUDENT_VECTORS | {s: unit_circle(angle) for s, angle in student_angles.items()}
    pairs = [("a", "b"), ("a", "c"), ("a", "d"), ("b", "c"), ("b", "d"), ("c", "d")]
    # angle gaps: teacher 20 50 90 30 70 40 -> cosine ranks 6 3 1 5 2 4;
    #             student 90 40 60 50 30 20 -> cosine ranks 1 4 2 3 5 6
    # d = 5 -1 -1 2 -3 -2, sum d^2 = 44, rho = 1 - 6 * 44 / (6 * 35) = -9/35
    quality = evaluate_embeddings(
        lookup_encoder(student), pairs_dataset(PAIRS), teacher_encode=lookup_encoder(teacher), similarity_pairs=pairs
    )
    assert quality["overall"]["student"]["spearman_teacher_similarity"] == pytest.approx(-9 / 35)
    assert quality["overall"]["similarity_pairs"] == 6
    assert "spearman_teacher_similarity" not in quality["overall"]["retention"]


def test_without_a_teacher_only_the_student_is_scored():
    quality = evaluate_embeddings(lookup_encoder(STUDENT_VECTORS), pairs_dataset(PAIRS))
    assert quality["languages"]["de"]["teacher"] is None and quality["languages"]["de"]["retention"] is None
    assert set(quality["overall"]["student"]) == set(RETRIEVAL_METRICS)
    assert quality["overall"]["mean_language_retention"] is None


def test_an_encoder_of_the_wrong_shape_is_named():
    with pytest.raises(ValueError, match="student encoder returned shape"):
        evaluate_embeddings(lambda texts: np.zeros((1, 3)), pairs_dataset(PAIRS))


def test_no_language_to_evaluate_is_a_data_error():
    with pytest.raises(DataError, match="no language"):
        evaluate_embeddings(lookup_encoder(STUDENT_VECTORS), pairs_dataset([("cat", "Katze", "de")]))


# --- metrics.json and the report -----------------------------------------------------------


def test_embeddings_metrics_file_and_report(tmp_path):
    quality = evaluate_embeddings(lookup_encoder(STUDENT_VECTORS), pairs_dataset(PAIRS), teacher_encode=lookup_encoder(TEACHER_VECTORS))
    for entry in quality["languages"].values():  # as if each language had enough pairs to compare by
        entry.update(comparable=True, not_comparable_because=[])
    quality["overall"].update(summarise_languages(quality["languages"]))
    document = build_metrics_document("embeddings", quality, config={"teacher": "t", "student": "s"})
    assert document["task"] == "embeddings" and document["primary_metric"] == "top1_en_to_x"
    write_metrics(tmp_path / "metrics.json", document)
    metrics = read_metrics(tmp_path)
    assert metrics["overall"]["student"]["spearman_teacher_similarity"] is None  # written as null

    status, sentence = verdict(metrics)
    assert status == "bad" and "top-1 en→x" in sentence and "fr (0.0%)" in sentence
    header, rows, flags = language_table(metrics)
    # the teacher's best language: de and fr tie at top-1 1.0, the first code is named
    assert header == ["language", "n", "teacher top-1 en→x", "student top-1 en→x", "retention", "vs teacher's best (de)", "status"]
    assert [row[0].split()[0] for row in rows] == ["fr", "de"] and flags == ["bad", "ok"]
    assert [row[5] for row in rows] == ["0.0%", "100.0%"]  # student 0 / 1.0 and 1 / 1.0

    paths = write_report(tmp_path)
    markdown = paths["markdown"].read_text(encoding="utf-8")
    assert "MRR x→en" in markdown and "Spearman with teacher similarities (en)" in markdown
    assert (tmp_path / "plots" / "per_language_top1_en_to_x.png").is_file()
    assert "top-1 en→x" in paths["html"].read_text(encoding="utf-8")
