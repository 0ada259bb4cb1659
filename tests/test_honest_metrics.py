"""Honest figures: comparable languages, bootstrap intervals, robust headline, confusions, noise.

Every expected value is worked out by hand from the constructed predictions (formulas in the
comments), never replayed from the code under test.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from conftest import LABEL_NAMES, synthetic_examples, tiny_bert_config

from polydistill.evaluation.evaluate import classification_report_by_language, evaluate_classification, quality_meta
from polydistill.evaluation.metrics import (
    MIN_EXAMPLES,
    bootstrap_interval,
    classification_metrics,
    confusion_counts,
    not_comparable_reasons,
)
from polydistill.evaluation.metrics_file import build_metrics_document, read_metrics, write_metrics
from polydistill.evaluation.noise import NoiseSettings, add_noise
from polydistill.evaluation.report import (
    confusion_table,
    language_table,
    noise_table,
    status_headline,
    top_confusions,
    verdict,
    write_report,
)

CLASSES = ["conf", "error", "help"]

# Two-class languages of 40 rows (gold 0 1 0 1 ...), predictions wrong on a chosen number of
# class-1 rows (predicted 0 instead):
#   4 wrong:  class 0 TP 20 FP 4 -> F1 40/44; class 1 TP 16 FN 4 -> F1 32/36
#   2 wrong:  class 0 TP 20 FP 2 -> F1 40/42; class 1 TP 18 FN 2 -> F1 36/38
F1_FOUR_WRONG = (40 / 44 + 32 / 36) / 2
F1_TWO_WRONG = (40 / 42 + 36 / 38) / 2


def two_class_rows(wrong: int) -> tuple[list[int], list[int]]:
    gold = [0, 1] * 20
    predicted = list(gold)
    for index in range(1, 2 * wrong, 2):  # the first `wrong` class-1 rows
        predicted[index] = 0
    return gold, predicted


def constructed_report(noise: bool = False) -> dict:
    """de, fr, it comparable (40 rows, two classes); ka 40 rows of one class; sw 10 rows."""
    gold, student, teacher, langs = [], [], [], []
    for code, student_wrong, teacher_wrong in (("de", 4, 0), ("fr", 0, 2), ("it", 4, 2)):
        g, s = two_class_rows(student_wrong)
        _, t = two_class_rows(teacher_wrong)
        gold += g
        student += s
        teacher += t
        langs += [code] * 40
    # ka: every gold label "error"; the student always right, the teacher right once (the user's case)
    gold += [1] * 40
    student += [1] * 40
    teacher += [1] + [0] * 39
    langs += ["ka"] * 40
    # sw: 10 rows of two classes, both models perfect
    gold += [0, 1] * 5
    student += [0, 1] * 5
    teacher += [0, 1] * 5
    langs += ["sw"] * 10
    extra = {}
    if noise:  # on noisy texts the student loses 2 more class-1 rows of de, the teacher 2 of de
        noisy_student, noisy_teacher = list(student), list(teacher)
        for index in (9, 11):  # de's 5th and 6th class-1 rows (the first four are already wrong)
            noisy_student[index] = 0
        for index in (1, 3):  # de's first two class-1 rows
            noisy_teacher[index] = 0
        extra = {"noisy_student_pred": noisy_student, "noisy_teacher_pred": noisy_teacher}
    return classification_report_by_language(gold, student, langs, teacher_pred=teacher, label_names=CLASSES, **extra)


def document(quality: dict) -> dict:
    return build_metrics_document(
        "classification", quality, config={"teacher": "big", "student": "small"}, meta={"label_names": CLASSES, **quality_meta(None)}
    )


# --- comparable or not ---------------------------------------------------------------------


def test_single_class_and_small_languages_are_marked_and_left_out():
    quality = constructed_report()
    languages, overall = quality["languages"], quality["overall"]
    assert [code for code, entry in languages.items() if entry["comparable"]] == ["de", "fr", "it"]
    assert languages["ka"]["not_comparable_because"] == ["only one class (error) in 40 examples; macro metrics need at least 2"]
    assert languages["sw"]["not_comparable_because"] == [f"10 examples, fewer than {MIN_EXAMPLES}"]
    assert languages["de"]["not_comparable_because"] == []
    # ka's degenerate macro-F1: student 1.0 over one class; teacher class 0 (P 0, R 0/0) and class 1 (P 1, R 1/40, F1 2/41)
    assert languages["ka"]["retention"]["macro_f1"] == pytest.approx(1.0 / ((2 / 41) / 2))

    # retentions of the comparable languages only: de F1_FOUR_WRONG / 1, fr 1 / F1_TWO_WRONG, it F1_FOUR_WRONG / F1_TWO_WRONG
    de, fr, it = F1_FOUR_WRONG, 1 / F1_TWO_WRONG, F1_FOUR_WRONG / F1_TWO_WRONG
    assert overall["mean_language_retention"]["macro_f1"] == pytest.approx((de + fr + it) / 3)
    assert overall["min_language_retention"]["macro_f1"] == pytest.approx(de)
    assert overall["min_retention_language"]["macro_f1"] == "de"
    assert overall["language_mean"]["student"]["macro_f1"] == pytest.approx((F1_FOUR_WRONG + 1 + F1_FOUR_WRONG) / 3)
    assert overall["headline"]["comparable_languages"] == ["de", "fr", "it"]
    assert set(overall["headline"]["not_comparable_languages"]) == {"ka", "sw"}
    # ... but the pooled figures keep every example (3 x 40 + 40 + 10 rows)
    assert overall["n"] == 170


def test_not_comparable_languages_are_shown_never_flagged_and_never_drive_the_verdict():
    metrics = document(constructed_report())
    header, rows, flags = language_table(metrics)
    codes = [row[0].split()[0] for row in rows]
    assert codes[-2:] == ["ka", "sw"]  # after the comparable ones
    status_column = header.index("status")
    for row, flag in zip(rows[-2:], flags[-2:], strict=True):
        assert row[status_column].startswith("not comparable: ") and flag == "none"
    status, sentence = verdict(metrics)
    # worst comparable retention is de's F1_FOUR_WRONG = 0.899 < 0.90: bad, because of de alone
    assert status == "bad" and "below 90% retention: de (89.9%)" in sentence
    assert "ka (" not in sentence and "left out as not comparable: ka, sw" in sentence
    assert "on average" not in sentence and f"{100 * (1 / (2 / 41 / 2)):.1f}%" not in sentence
    assert (
        status_headline(metrics, status) == "Not good enough in 1 of 3 comparable languages, borderline in 1 more (2 more not comparable)"
    )


def test_reasons_name_the_class_and_both_thresholds():
    assert not_comparable_reasons(5, [2, 2, 2, 2, 2], label_names=CLASSES) == [
        f"5 examples, fewer than {MIN_EXAMPLES}",
        "only one class (help) in 5 examples; macro metrics need at least 2",
    ]
    assert not_comparable_reasons(MIN_EXAMPLES, [0, 1] * (MIN_EXAMPLES // 2)) == []
    assert not_comparable_reasons(MIN_EXAMPLES) == []  # retrieval: examples only


# --- the robust headline -------------------------------------------------------------------


def test_median_worst_and_retention_against_the_teachers_best_language_by_hand():
    block = constructed_report()["overall"]["headline"]["by_metric"]["macro_f1"]
    # teacher: de 1, fr F1_TWO_WRONG, it F1_TWO_WRONG (ka's 2/41/2 and sw's 1.0 do not count)
    assert block["teacher_best"] == {"language": "de", "value": pytest.approx(1.0)}
    assert block["median"]["teacher"] == pytest.approx(F1_TWO_WRONG)
    assert block["worst"]["teacher"] == {"language": "fr", "value": pytest.approx(F1_TWO_WRONG)}  # fr and it tie: first code
    # student: de F1_FOUR_WRONG, fr 1, it F1_FOUR_WRONG
    assert block["median"]["student"] == pytest.approx(F1_FOUR_WRONG)
    assert block["worst"]["student"] == {"language": "de", "value": pytest.approx(F1_FOUR_WRONG)}
    # retention: de 0.899, fr 1.053, it 0.946 -> median it's, worst de's
    assert block["median"]["retention"] == pytest.approx(F1_FOUR_WRONG / F1_TWO_WRONG)
    assert block["worst"]["retention"] == {"language": "de", "value": pytest.approx(F1_FOUR_WRONG)}
    # against the teacher's best (de, 1.0): student score / 1.0 in every language, ka and sw included but not aggregated
    versus = block["retention_vs_teacher_best"]
    assert versus == {
        "de": pytest.approx(F1_FOUR_WRONG),
        "fr": pytest.approx(1.0),
        "it": pytest.approx(F1_FOUR_WRONG),
        "ka": pytest.approx(1.0),
        "sw": pytest.approx(1.0),
    }
    assert block["median_retention_vs_teacher_best"] == pytest.approx(F1_FOUR_WRONG)
    assert block["worst_retention_vs_teacher_best"] == {"language": "de", "value": pytest.approx(F1_FOUR_WRONG)}
    # pooled over the 170 rows: the student's accuracy (de 4 + it 4 wrong) and the teacher's (fr 2 + it 2 + ka 39 wrong)
    accuracy = constructed_report()["overall"]["headline"]["by_metric"]["accuracy"]["pooled"]
    assert accuracy["student"] == pytest.approx(162 / 170) and accuracy["teacher"] == pytest.approx(127 / 170)


def test_teachers_best_teacher_below_one():
    # two comparable languages whose teacher is best in en (0.8 accuracy) : sw student 0.6 -> 0.75 of the best
    gold = [0, 1] * 20 + [0, 1] * 20
    teacher = [0, 1] * 16 + [1, 0] * 4 + [0, 1] * 14 + [1, 0] * 6  # en 32/40 right, sw 28/40
    student = [0, 1] * 16 + [1, 0] * 4 + [0, 1] * 12 + [1, 0] * 8  # en 32/40, sw 24/40
    langs = ["en"] * 40 + ["sw"] * 40
    block = classification_report_by_language(gold, student, langs, teacher_pred=teacher)["overall"]["headline"]["by_metric"]["accuracy"]
    assert block["teacher_best"] == {"language": "en", "value": pytest.approx(0.8)}
    assert block["retention_vs_teacher_best"] == {"en": pytest.approx(1.0), "sw": pytest.approx(0.6 / 0.8)}
    assert block["worst"]["retention"] == {"language": "sw", "value": pytest.approx(0.6 / 0.7)}


def test_the_table_shows_the_interval_and_the_teachers_best_column():
    metrics = document(constructed_report())
    header, rows, _ = language_table(metrics)
    assert "student − teacher (95% CI)" in header and "vs teacher's best (de)" in header
    fr = next(row for row in rows if row[0].startswith("fr"))
    assert fr[header.index("vs teacher's best (de)")] == "100.0%"


# --- bootstrap intervals -------------------------------------------------------------------


def correct_on(share: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """A boolean mask with exactly round(share * n) True entries, at random rows."""
    mask = np.zeros(n, dtype=bool)
    mask[rng.permutation(n)[: round(share * n)]] = True
    return mask


def paired_example(n: int, seed: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    gold = np.arange(n) % 2
    student = np.where(correct_on(0.8, n, rng), gold, 1 - gold)
    teacher = np.where(correct_on(0.6, n, rng), gold, 1 - gold)  # independent of the student's rows
    return gold, student, teacher


def test_bootstrap_interval_covers_a_known_difference():
    gold, student, teacher = paired_example(200)
    interval = bootstrap_interval(gold, student, teacher, "accuracy", resamples=1000, level=0.95, seed=0)
    low, high = interval["difference"]
    assert low < 0.2 < high and low > 0  # 0.8 - 0.6 exactly; 0 excluded
    # independent rows: sd of the difference ~ sqrt(.8 * .2 / 200 + .6 * .4 / 200) = 0.0447, so width ~ 2 * 1.96 * 0.0447 = 0.175
    assert 0.12 < high - low < 0.23
    student_low, student_high = interval["student"]
    assert student_low < 0.8 < student_high and 0.07 < student_high - student_low < 0.15  # 2 * 1.96 * sqrt(.16 / 200) = 0.111
    f1 = bootstrap_interval(gold, student, teacher, "macro_f1", resamples=1000, level=0.95, seed=0)
    assert f1["difference"][0] > 0


def test_bootstrap_width_shrinks_with_n_and_pairing_cancels_shared_rows():
    widths = {}
    for n in (200, 800):
        gold, student, teacher = paired_example(n)
        low, high = bootstrap_interval(gold, student, teacher, "accuracy", resamples=1000, level=0.95, seed=0)["difference"]
        widths[n] = high - low
    assert widths[800] < 0.65 * widths[200]  # 1 / sqrt(n): half the width at four times the rows
    # identical predictions: every paired resample has difference 0
    gold, student, _ = paired_example(100)
    assert bootstrap_interval(gold, student, student, "macro_f1", resamples=200, level=0.95, seed=0)["difference"] == [0.0, 0.0]
    assert bootstrap_interval(gold, student, None, "accuracy", resamples=50)["teacher"] is None


def test_one_resample_is_scored_like_scikit_learn():
    # the resample is numpy's default_rng(seed).integers(0, n, (resamples, n)), as the docstring says
    gold = np.array([0, 0, 1, 1, 2, 2, 2, 1])
    predicted = np.array([0, 1, 1, 2, 2, 0, 2, 1])
    rows = np.random.default_rng(7).integers(0, 8, size=(1, 8))[0]
    for metric in ("accuracy", "macro_f1", "macro_precision", "macro_recall"):
        expected = classification_metrics(gold[rows], predicted[rows])[metric]
        interval = bootstrap_interval(gold, predicted, None, metric, resamples=1, level=0.95, seed=7)["student"]
        assert interval == [pytest.approx(expected), pytest.approx(expected)]


def test_bootstrap_of_thirteen_languages_is_fast():
    import time

    rng = np.random.default_rng(0)
    gold = rng.integers(0, 4, 1300)
    student = np.where(rng.random(1300) < 0.8, gold, rng.integers(0, 4, 1300))
    teacher = np.where(rng.random(1300) < 0.9, gold, rng.integers(0, 4, 1300))
    start = time.perf_counter()
    for language in range(13):
        rows = slice(language * 100, (language + 1) * 100)
        for metric in ("macro_f1", "accuracy"):
            bootstrap_interval(gold[rows], student[rows], teacher[rows], metric)
    assert time.perf_counter() - start < 2.0


def test_bad_bootstrap_inputs_raise():
    with pytest.raises(ValueError, match="no bootstrap for metric"):
        bootstrap_interval([0, 1], [0, 1], None, "spearman")
    with pytest.raises(ValueError):
        bootstrap_interval([], [], None, "accuracy")
    with pytest.raises(ValueError):
        bootstrap_interval([0, 1], [0, 1], None, "accuracy", level=1.5)


# --- confusion counts ----------------------------------------------------------------------


def test_confusion_counts_by_hand():
    # gold 0 0 1 2 2 2, predicted 0 1 1 2 0 2: row gold, column predicted
    assert confusion_counts([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2], 3).tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    with pytest.raises(ValueError):
        confusion_counts([0, 3], [0, 1], 3)


def test_confusions_per_language_in_the_file_and_the_report():
    quality = constructed_report()
    de = quality["languages"]["de"]["confusion"]
    # de: the student predicts conf for 4 error rows; the teacher is perfect; help never occurs
    assert de == {"labels": CLASSES, "student": [[20, 0, 0], [4, 16, 0], [0, 0, 0]], "teacher": [[20, 0, 0], [0, 20, 0], [0, 0, 0]]}
    assert quality["languages"]["ka"]["confusion"]["teacher"] == [[0, 0, 0], [39, 1, 0], [0, 0, 0]]
    assert top_confusions([[5, 2, 3], [1, 0, 7], [0, 2, 9]], CLASSES, top=2) == [("error", "help", 7), ("conf", "help", 3)]
    header, rows = confusion_table(document(quality))
    de_row = next(row for row in rows if row[0].startswith("de"))
    assert de_row[2:] == ["error → conf (4)", "none"]
    ka_row = next(row for row in rows if row[0].startswith("ka"))
    assert "(not comparable)" in ka_row[0] and ka_row[3] == "error → conf (39)"


# --- robustness to noise -------------------------------------------------------------------


def test_noise_drops_from_stubbed_predictions():
    quality = constructed_report(noise=True)
    noise = quality["languages"]["de"]["noise"]
    # student on noisy de: 6 class-1 rows wrong (F1 class 0: 40/46, class 1: 28/34); teacher: 2 wrong (F1_TWO_WRONG)
    student_noisy = (40 / 46 + 28 / 34) / 2
    assert noise["student"] == {"macro_f1": pytest.approx(student_noisy), "accuracy": pytest.approx(34 / 40)}
    assert noise["teacher"] == {"macro_f1": pytest.approx(F1_TWO_WRONG), "accuracy": pytest.approx(38 / 40)}
    assert noise["student_drop"] == {"macro_f1": pytest.approx(F1_FOUR_WRONG - student_noisy), "accuracy": pytest.approx(2 / 40)}
    assert noise["teacher_drop"] == {"macro_f1": pytest.approx(1 - F1_TWO_WRONG), "accuracy": pytest.approx(2 / 40)}
    assert quality["languages"]["fr"]["noise"]["student_drop"]["accuracy"] == 0.0
    assert quality["overall"]["noise"]["student_drop"]["accuracy"] == pytest.approx(2 / 170)

    metrics = document(quality)
    header, rows = noise_table(metrics)
    assert header[-1] == "student loses no more than teacher"
    de = next(row for row in rows if row[0].startswith("de"))
    # macro-F1 drops: student 0.8990 - 0.8469 = 0.052, teacher 1 - 0.9499 = 0.050: the student loses more
    assert de[4] == f"{1 - F1_TWO_WRONG:+.3f}" and de[7] == f"{F1_FOUR_WRONG - student_noisy:+.3f}" and de[-1] == "no"
    fr = next(row for row in rows if row[0].startswith("fr"))
    assert fr[-1] == "yes" and rows[-1][0] == "pooled (all examples)"


def make_classifier(tokenizer, *, seed: int, layers: int = 2):
    from transformers import BertForSequenceClassification

    torch.manual_seed(seed)
    return BertForSequenceClassification(tiny_bert_config(tokenizer, layers=layers)).eval()


def predicted_ids(model, tokenizer, texts: list[str]) -> np.ndarray:
    """One text at a time, no batching: an independent path to the predictions."""
    with torch.no_grad():
        return np.array([int(model(**tokenizer(text, return_tensors="pt")).logits[0].argmax()) for text in texts])


def test_evaluate_classification_scores_both_models_on_the_same_noisy_texts(wordpiece_tokenizer):
    import datasets

    rows = synthetic_examples(40, seed=11)
    texts = [row["text"].capitalize() for row in rows]  # capitals, so changed case changes something
    langs = ["de" if index % 2 else "tr" for index in range(len(rows))]
    gold = np.array([LABEL_NAMES.index(row["label"]) for row in rows])
    features = datasets.Features(
        {"text": datasets.Value("string"), "label": datasets.ClassLabel(names=LABEL_NAMES), "lang": datasets.Value("string")}
    )
    dataset = datasets.Dataset.from_dict({"text": texts, "label": gold.tolist(), "lang": langs}, features=features)
    student = make_classifier(wordpiece_tokenizer, seed=5)
    teacher = make_classifier(wordpiece_tokenizer, seed=6, layers=3)
    settings = NoiseSettings(typo_rate=0.5, diacritics_rate=0.0, case_rate=1.0, seed=2)
    result = evaluate_classification(student, wordpiece_tokenizer, dataset, teacher=teacher, batch_size=8, noise=settings)

    noisy = add_noise(texts, settings, languages=langs)
    assert noisy != texts
    noisy_student = predicted_ids(student, wordpiece_tokenizer, noisy)
    noisy_teacher = predicted_ids(teacher, wordpiece_tokenizer, noisy)
    clean_student = predicted_ids(student, wordpiece_tokenizer, texts)
    for code in ("de", "tr"):
        mask = np.array(langs) == code
        entry = result["languages"][code]
        student_accuracy = float(np.mean(noisy_student[mask] == gold[mask]))
        assert entry["noise"]["student"]["accuracy"] == pytest.approx(student_accuracy)
        assert entry["noise"]["teacher"]["accuracy"] == pytest.approx(float(np.mean(noisy_teacher[mask] == gold[mask])))
        clean_accuracy = float(np.mean(clean_student[mask] == gold[mask]))
        assert entry["noise"]["student_drop"]["accuracy"] == pytest.approx(clean_accuracy - student_accuracy)
    assert "noise" not in evaluate_classification(student, wordpiece_tokenizer, dataset, batch_size=8)["languages"]["de"]


def test_noise_is_on_by_default_in_the_config_and_null_turns_it_off():
    from pydantic import ValidationError

    from polydistill.config import EvaluationConfig

    default = EvaluationConfig().noise
    assert default is not None
    assert (default.typo_rate, default.diacritics_rate, default.case_rate, default.seed) == (0.05, 0.3, 0.2, 0)
    assert EvaluationConfig.model_validate({"noise": None}).noise is None
    assert EvaluationConfig.model_validate({"noise": {"typo_rate": 0.1}}).noise.typo_rate == 0.1
    with pytest.raises(ValidationError):
        EvaluationConfig.model_validate({"noise": {"case_rate": 1.5}})


def test_meta_states_thresholds_bootstrap_and_noise():
    meta = quality_meta(NoiseSettings())
    assert meta["comparable"]["min_examples"] == MIN_EXAMPLES and meta["comparable"]["min_classes"] == 2
    assert (meta["bootstrap"]["resamples"], meta["bootstrap"]["level"], meta["bootstrap"]["seed"]) == (1000, 0.95, 0)
    assert meta["noise"]["typo_rate"] == 0.05 and meta["noise"]["seed"] == 0 and "seed 0" in meta["noise"]["description"]
    assert quality_meta(None)["noise"] is None


# --- the report ----------------------------------------------------------------------------


def test_report_has_the_new_sections(tmp_path):
    write_metrics(tmp_path, document(constructed_report(noise=True)))
    paths = write_report(tmp_path)
    markdown = paths["markdown"].read_text(encoding="utf-8")
    for heading in ("## Most frequent confusions", "## Robustness to noise"):
        assert heading in markdown
    assert "point estimates without confidence intervals" in markdown
    assert "not comparable: only one class (error) in 40 examples" in markdown
    assert paths["confusion_plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list((tmp_path / "plots").glob(".*partial"))


def test_an_old_metrics_file_still_renders(tmp_path):
    old = document(constructed_report())
    for entry in [*old["languages"].values(), old["overall"]]:
        for key in ("comparable", "not_comparable_because", "ci", "confusion", "noise", "headline"):
            entry.pop(key, None)
    for key in ("comparable", "bootstrap", "noise"):
        old["meta"].pop(key)
    (tmp_path / "metrics.json").write_text(json.dumps(old), encoding="utf-8")
    paths = write_report(tmp_path)
    markdown = paths["markdown"].read_text(encoding="utf-8")
    assert "Most frequent confusions" not in markdown and "Robustness to noise" not in markdown
    assert "confusion_plot" not in paths
    # without marks every language counts: the headline is worked out from the stored languages
    status, sentence = verdict(read_metrics(tmp_path))
    assert "over 5 comparable languages" in sentence and status == "bad"
    header, _, _ = language_table(copy.deepcopy(old))
    assert not any("CI" in column for column in header)
