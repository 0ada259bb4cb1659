"""Metrics against values computed by hand on small label lists."""

from __future__ import annotations

import pytest

from polydistill.evaluation.evaluate import classification_report_by_language, summarise_languages
from polydistill.evaluation.metrics import MIN_EXAMPLES, agreement, classification_metrics, primary_metric_for, retention


def test_three_classes_one_predicted_but_absent_from_gold():
    # gold 0 0 1 1, predicted 0 1 1 2 -> classes {0, 1, 2} (gold or predicted)
    # class 0: P = 1/1, R = 1/2, F1 = 2/3; class 1: P = 1/2, R = 1/2, F1 = 1/2
    # class 2: predicted once, never gold: P = 0/1, R = 0/0 -> 0, F1 = 0
    result = classification_metrics([0, 0, 1, 1], [0, 1, 1, 2])
    assert result["accuracy"] == pytest.approx(2 / 4)
    assert result["macro_precision"] == pytest.approx((1 + 1 / 2 + 0) / 3)
    assert result["macro_recall"] == pytest.approx((1 / 2 + 1 / 2 + 0) / 3)
    assert result["macro_f1"] == pytest.approx((2 / 3 + 1 / 2 + 0) / 3)


def test_language_missing_a_class_averages_over_the_classes_it_has():
    # The task has classes 0, 1, 2; this language has no gold 2 and the model predicts no 2.
    # class 0: TP 2, FP 1, FN 0 -> P 2/3, R 1, F1 0.8; class 1: TP 2, FP 0, FN 1 -> P 1, R 2/3, F1 0.8
    gold, predicted = [0, 1, 1, 0, 1], [0, 1, 0, 0, 1]
    result = classification_metrics(gold, predicted)
    assert result == pytest.approx(
        {"accuracy": 4 / 5, "macro_precision": (2 / 3 + 1) / 2, "macro_recall": (1 + 2 / 3) / 2, "macro_f1": 0.8}
    )
    # Fixing the class set to all task classes counts the absent class as zeros instead.
    fixed = classification_metrics(gold, predicted, labels=[0, 1, 2])
    assert fixed["macro_f1"] == pytest.approx((0.8 + 0.8 + 0) / 3)
    assert fixed["macro_precision"] == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert fixed["accuracy"] == pytest.approx(4 / 5)


def test_gold_class_never_predicted_has_precision_zero():
    # class 0: P 1, R 1; class 1: P 1/2, R 1, F1 2/3; class 2: never predicted: P 0/0 -> 0, R 0, F1 0
    result = classification_metrics([0, 1, 2], [0, 1, 1])
    assert result["macro_precision"] == pytest.approx((1 + 1 / 2 + 0) / 3)
    assert result["macro_recall"] == pytest.approx((1 + 1 + 0) / 3)
    assert result["macro_f1"] == pytest.approx((1 + 2 / 3 + 0) / 3)


def test_bad_inputs_raise():
    with pytest.raises(ValueError):
        classification_metrics([], [])
    with pytest.raises(ValueError):
        classification_metrics([0, 1], [0])


def test_agreement_and_retention():
    assert agreement([0, 1, 2, 2], [0, 1, 1, 2]) == pytest.approx(3 / 4)
    ratios = retention(
        {"accuracy": 0.45, "macro_f1": 0.3, "agreement": 0.9},
        {"accuracy": 0.5, "macro_f1": 0.0},
    )
    assert ratios == {"accuracy": pytest.approx(0.9), "macro_f1": None}  # no ratio to a zero; agreement has no teacher value


def test_primary_metric_per_task():
    assert primary_metric_for("classification") == "macro_f1"
    assert primary_metric_for("embeddings", ["top1_en_to_x", "mrr"]) == "top1_en_to_x"
    assert primary_metric_for("ranking", ["ndcg", "mrr"]) == "ndcg"


def test_per_language_report_by_hand():
    # de: gold 0 1 0 1, teacher 0 1 0 1 (perfect), student 0 1 1 1
    # sw: gold 0 0 1, teacher 0 1 1, student 0 0 0 (class 1 never predicted by the student)
    gold = [0, 1, 0, 1, 0, 0, 1]
    teacher = [0, 1, 0, 1, 0, 1, 1]
    student = [0, 1, 1, 1, 0, 0, 0]
    langs = ["de"] * 4 + ["sw"] * 3
    result = classification_report_by_language(gold, student, langs, teacher_pred=teacher)
    de, sw = result["languages"]["de"], result["languages"]["sw"]
    assert (de["n"], sw["n"]) == (4, 3)

    # de student: gold 0 at rows 0 and 2, the student predicts 0 at row 0 only.
    # class 0: TP 1, FP 0, FN 1 -> P 1, R 1/2, F1 2/3; class 1: TP 2, FP 1, FN 0 -> P 2/3, R 1, F1 4/5
    assert de["student"]["accuracy"] == pytest.approx(3 / 4)
    assert de["student"]["macro_f1"] == pytest.approx((2 / 3 + 4 / 5) / 2)
    assert de["teacher"]["macro_f1"] == pytest.approx(1.0)
    assert de["student"]["agreement"] == pytest.approx(3 / 4)
    assert de["retention"]["macro_f1"] == pytest.approx((2 / 3 + 4 / 5) / 2)

    # sw teacher: class 0: TP 1, FN 1 -> P 1, R 1/2, F1 2/3; class 1: TP 1, FP 1 -> P 1/2, R 1, F1 2/3
    # sw student: class 0: TP 2, FP 1 -> P 2/3, R 1, F1 4/5; class 1: TP 0, FN 1 -> P 0, R 0, F1 0
    assert sw["teacher"]["macro_f1"] == pytest.approx(2 / 3)
    assert sw["student"]["macro_f1"] == pytest.approx(2 / 5)
    assert sw["student"]["agreement"] == pytest.approx(1 / 3)
    sw_retention = (2 / 5) / (2 / 3)
    assert sw["retention"]["macro_f1"] == pytest.approx(sw_retention)

    overall = result["overall"]
    assert overall["n"] == 7 and overall["languages"] == 2
    assert overall["student"]["accuracy"] == pytest.approx(5 / 7)
    # 4 and 3 examples are far below MIN_EXAMPLES: neither language enters the aggregates
    assert not de["comparable"] and not sw["comparable"]
    assert de["not_comparable_because"] == [f"4 examples, fewer than {MIN_EXAMPLES}"]
    assert overall["mean_language_retention"] is None and overall["language_mean"]["student"] is None

    # marked comparable (as larger languages would be), the every-language-equal summaries by hand
    for entry in (de, sw):
        entry["comparable"] = True
    summary = summarise_languages(result["languages"])
    assert summary["mean_language_retention"]["macro_f1"] == pytest.approx(((2 / 3 + 4 / 5) / 2 + sw_retention) / 2)
    assert summary["min_language_retention"]["macro_f1"] == pytest.approx(sw_retention)
    assert summary["min_retention_language"]["macro_f1"] == "sw"
    assert summary["language_mean"]["student"]["macro_f1"] == pytest.approx(((2 / 3 + 4 / 5) / 2 + 2 / 5) / 2)


def test_per_language_report_without_teacher():
    result = classification_report_by_language([0, 1, 1], [0, 1, 0], ["und"] * 3)
    entry = result["languages"]["und"]
    assert entry["teacher"] is None and entry["retention"] is None
    assert "agreement" not in entry["student"]
    assert result["overall"]["mean_language_retention"] is None
