"""metrics.json layout, the HTML/Markdown report, the model card and the eval/report commands."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from conftest import LABEL_NAMES, synthetic_examples, tiny_bert_config, write_jsonl

from polydistill.cli import main as cli_main
from polydistill.errors import DataError
from polydistill.evaluation.efficiency import EFFICIENCY_KEYS, EfficiencySettings
from polydistill.evaluation.evaluate import (
    classification_report_by_language,
    evaluate_classification,
    evaluate_run,
    label_alignment,
)
from polydistill.evaluation.metrics import CLASSIFICATION_METRICS, MIN_EXAMPLES
from polydistill.evaluation.metrics_file import (
    build_metrics_document,
    read_metrics,
    write_metrics,
)
from polydistill.evaluation.model_card import write_model_card
from polydistill.evaluation.report import verdict, write_report

LANGUAGES = ["de", "ja", "sw"]


def make_classifier(tokenizer, *, seed: int, label_order: list[str] = LABEL_NAMES, layers: int = 2):
    from transformers import BertForSequenceClassification

    torch.manual_seed(seed)
    config = tiny_bert_config(tokenizer, layers=layers)
    config.id2label = dict(enumerate(label_order))
    config.label2id = {name: index for index, name in enumerate(label_order)}
    return BertForSequenceClassification(config).eval()


@pytest.fixture(scope="module")
def examples():
    rows = synthetic_examples(60, seed=5)
    for index, row in enumerate(rows):
        row["lang"] = LANGUAGES[index % len(LANGUAGES)]
    return rows


@pytest.fixture(scope="module")
def dataset(examples):
    import datasets

    features = datasets.Features(
        {"text": datasets.Value("string"), "label": datasets.ClassLabel(names=LABEL_NAMES), "lang": datasets.Value("string")}
    )
    return datasets.Dataset.from_dict(
        {
            "text": [row["text"] for row in examples],
            "label": [LABEL_NAMES.index(row["label"]) for row in examples],
            "lang": [row["lang"] for row in examples],
        },
        features=features,
    )


def argmax_names(model, tokenizer, texts: list[str]) -> list[str]:
    """Predicted class names, one text at a time (no padding, no batching): an independent path."""
    names = []
    with torch.no_grad():
        for text in texts:
            logits = model(**tokenizer(text, return_tensors="pt")).logits[0]
            names.append(model.config.id2label[int(logits.argmax())])
    return names


def test_label_alignment_by_name(wordpiece_tokenizer):
    permuted = make_classifier(wordpiece_tokenizer, seed=0, label_order=["vehicle", "instrument", "fruit"])
    assert label_alignment(LABEL_NAMES, permuted).tolist() == [1, 2, 0]
    other = make_classifier(wordpiece_tokenizer, seed=0, label_order=["fruit", "vehicle", "animal"])
    with pytest.raises(DataError, match="animal"):
        label_alignment(LABEL_NAMES, other)


def test_evaluate_classification_matches_independent_predictions(wordpiece_tokenizer, dataset, examples):
    student = make_classifier(wordpiece_tokenizer, seed=1, label_order=["vehicle", "instrument", "fruit"])
    teacher = make_classifier(wordpiece_tokenizer, seed=2, layers=3)
    result = evaluate_classification(student, wordpiece_tokenizer, dataset, teacher=teacher, batch_size=7)

    texts = [row["text"] for row in examples]
    student_names = argmax_names(student, wordpiece_tokenizer, texts)
    teacher_names = argmax_names(teacher, wordpiece_tokenizer, texts)
    for code in LANGUAGES:
        rows = [i for i, row in enumerate(examples) if row["lang"] == code]
        entry = result["languages"][code]
        assert entry["n"] == len(rows)
        gold = [examples[i]["label"] for i in rows]
        correct = sum(student_names[i] == examples[i]["label"] for i in rows)
        assert entry["student"]["accuracy"] == pytest.approx(correct / len(rows))
        assert entry["teacher"]["accuracy"] == pytest.approx(np.mean([teacher_names[i] == g for i, g in zip(rows, gold, strict=True)]))
        agreeing = sum(student_names[i] == teacher_names[i] for i in rows)
        assert entry["student"]["agreement"] == pytest.approx(agreeing / len(rows))
    assert result["overall"]["n"] == len(examples)


def test_evaluate_run_writes_layout_and_self_contained_report(wordpiece_tokenizer, dataset, tmp_path):
    student = make_classifier(wordpiece_tokenizer, seed=1)
    teacher = make_classifier(wordpiece_tokenizer, seed=2, layers=4)
    settings = EfficiencySettings.quick(peak_memory="in_process", batch_size=8, repeats=4, throughput_batches=1)
    evaluate_run(
        tmp_path,
        student=student,
        tokenizer=wordpiece_tokenizer,
        dataset=dataset,
        teacher=teacher,
        config={"teacher": "tiny-teacher", "student": "tiny-student", "data": "synthetic", "objectives": ["logits"]},
        efficiency=settings,
    )
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert {"task", "teacher", "student", "languages", "overall"} <= set(metrics)
    assert metrics["task"] == "classification" and metrics["primary_metric"] == "macro_f1"
    for role in ("teacher", "student"):
        assert set(EFFICIENCY_KEYS) <= set(metrics[role])
    assert metrics["teacher"]["parameters"] > metrics["student"]["parameters"]
    assert sorted(metrics["languages"]) == LANGUAGES
    for entry in metrics["languages"].values():
        assert set(entry) == {"n", "teacher", "student", "retention", "comparable", "not_comparable_because", "ci", "confusion", "noise"}
        assert set(CLASSIFICATION_METRICS) == set(entry["teacher"])
        assert set(CLASSIFICATION_METRICS) | {"agreement"} == set(entry["student"])
        assert set(CLASSIFICATION_METRICS) == set(entry["retention"])
        # 20 examples each: below MIN_EXAMPLES, so marked and left out of the aggregates
        assert entry["comparable"] is False and entry["not_comparable_because"][0].startswith("20 examples")
        assert set(entry["ci"]) == {"macro_f1", "accuracy"} and set(entry["ci"]["macro_f1"]) == {"student", "teacher", "difference"}
        assert entry["confusion"]["labels"] == LABEL_NAMES
        assert sum(map(sum, entry["confusion"]["student"])) == entry["n"] == sum(map(sum, entry["confusion"]["teacher"]))
        assert set(entry["noise"]) == {"student", "teacher", "student_drop", "teacher_drop"}
    overall = metrics["overall"]
    assert {"teacher", "student", "retention", "mean_language_retention", "min_retention_language", "headline", "noise"} <= set(overall)
    assert overall["headline"]["comparable_languages"] == [] and sorted(overall["headline"]["not_comparable_languages"]) == LANGUAGES
    assert metrics["meta"]["comparable"]["min_examples"] == MIN_EXAMPLES
    assert metrics["meta"]["bootstrap"] | {"method": None} == {
        "resamples": 1000,
        "level": 0.95,
        "seed": 0,
        "metrics": ["macro_f1", "accuracy"],
        "method": None,
    }
    assert metrics["meta"]["noise"]["typo_rate"] == 0.05 and metrics["meta"]["noise"]["seed"] == 0

    html = (tmp_path / "report.html").read_text()
    assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", html, flags=re.IGNORECASE)
    sources = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)""", html)
    assert sources and all(source.startswith("data:image/png;base64,") for source in sources)
    assert "<link" not in html and "@import" not in html and "<script" not in html
    for code in LANGUAGES:
        assert re.search(rf"<td>{code}\b", html)
    markdown = (tmp_path / "report.md").read_text()
    assert all(f"| {code}" in markdown for code in LANGUAGES)
    for png in (tmp_path / "plots").glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(png.name for png in (tmp_path / "plots").glob("*.png")) == [
        "confusion_student.png",
        "per_language_macro_f1.png",
        "size_vs_quality.png",
    ]
    assert "## Most frequent confusions" in markdown and "## Robustness to noise" in markdown


def hand_made_metrics(retention_by_language: dict[str, float], *, efficiency: bool = True) -> dict:
    """A metrics document whose per-language retentions are known in advance."""
    gold, teacher, langs = [], [], []
    for code in retention_by_language:  # 40 examples of two classes: comparable languages
        gold += [0, 1] * 20
        teacher += [0, 1] * 20
        langs += [code] * 40
    quality = classification_report_by_language(gold, gold, langs, teacher_pred=teacher)
    for code, ratio in retention_by_language.items():  # scale the student's numbers by hand
        entry = quality["languages"][code]
        entry["student"] = {key: value * ratio for key, value in entry["teacher"].items()} | {"agreement": ratio}
        entry["retention"] = {key: ratio for key in entry["teacher"]}
    from polydistill.evaluation.evaluate import summarise_languages

    quality["overall"].update(summarise_languages(quality["languages"]))
    teacher_efficiency = dict.fromkeys(EFFICIENCY_KEYS, 1.0) | {"parameters": 1000, "latency_ms_p50": 8.0, "disk_bytes": 4000}
    student_efficiency = teacher_efficiency | {"parameters": 250, "latency_ms_p50": 2.0, "disk_bytes": 1000}
    return build_metrics_document(
        "classification",
        quality,
        teacher_efficiency=teacher_efficiency if efficiency else None,
        student_efficiency=student_efficiency if efficiency else None,
        config={"teacher": "big", "student": "small", "data": "hand-made"},
    )


def test_verdict_flags_languages_by_retention(tmp_path):
    metrics = hand_made_metrics({"de": 0.99, "fr": 0.93, "sw": 0.84})
    status, sentence = verdict(metrics)
    assert status == "bad"
    # pooled: every language has the teacher's macro-F1 1.0, so pooled retention is the student's
    # pooled macro-F1; median of 0.99, 0.93, 0.84 is 0.93, the worst sw at 0.84
    assert "Pooled over all 120 test examples" in sentence
    assert "the median retention is 93.0% and the worst sw (84.0%)" in sentence
    assert "on average" not in sentence
    assert "4.0x fewer parameters" in sentence and "4.0x faster at batch 1" in sentence
    assert "below 90% retention: sw (84.0%)" in sentence and "fr (93.0%)" in sentence
    write_metrics(tmp_path, metrics)
    paths = write_report(tmp_path)
    html = paths["html"].read_text()
    assert '<tr class="bad"><td>sw (Swahili)</td>' in html and '<tr class="ok"><td>de (German)</td>' in html
    assert verdict(hand_made_metrics({"de": 0.97, "fr": 0.96}))[0] == "ok"


def test_report_handles_unknown_metric_keys_and_no_teacher(tmp_path):
    quality = {
        "languages": {
            "en": {"n": 10, "teacher": None, "student": {"top1_en_to_x": 1.0, "mrr": 1.0}, "retention": None},
            "ka": {"n": 12, "teacher": None, "student": {"top1_en_to_x": 0.5, "mrr": 0.7}, "retention": None},
        },
        "overall": {
            "n": 22,
            "teacher": None,
            "student": {"top1_en_to_x": 0.73, "mrr": 0.84},
            "retention": None,
            "language_mean": {"teacher": None, "student": {"top1_en_to_x": 0.75, "mrr": 0.85}},
        },
    }
    write_metrics(tmp_path / "metrics.json", build_metrics_document("embeddings", quality))
    paths = write_report(tmp_path)
    html = paths["html"].read_text()
    assert "top-1 en→x" in html and "MRR" in html and "ka (Georgian)" in html
    assert "size_vs_quality_plot" not in paths  # no efficiency numbers, no scatter
    assert read_metrics(tmp_path)["primary_metric"] == "top1_en_to_x"


def test_model_card(tmp_path):
    from huggingface_hub import ModelCard

    metrics = hand_made_metrics({"de": 0.99, "sw": 0.84})
    path = write_model_card(
        tmp_path / "student",
        metrics,
        teacher="intfloat/multilingual-e5-small",
        data="Django catalogs",
        languages=["de", "sw"],
        objectives={"logits": "KL, temperature 2"},
        limits=["Trained on short UI strings."],
    )
    card = ModelCard.load(path)
    data = card.data.to_dict()
    assert data["language"] == ["de", "sw"]
    assert {"knowledge-distillation", "polydistill"} <= set(data["tags"])
    assert data["library_name"] == "transformers" and data["pipeline_tag"] == "text-classification"
    assert data["base_model"] == "intfloat/multilingual-e5-small"
    for heading in (
        "## Teacher",
        "## Data",
        "## Languages",
        "## Objectives",
        "## Results",
        "## Efficiency",
        "## Intended use",
        "## Limits",
    ):
        assert heading in card.text
    assert "| sw (Swahili) |" in card.text and "sw (84.0%)" in card.text and "short UI strings" in card.text


def test_eval_and_report_commands(wordpiece_tokenizer, examples, tmp_path, capsys):
    student_dir, teacher_dir = tmp_path / "student", tmp_path / "teacher"
    for directory, model in (
        (student_dir, make_classifier(wordpiece_tokenizer, seed=3, label_order=["instrument", "fruit", "vehicle"])),
        (teacher_dir, make_classifier(wordpiece_tokenizer, seed=4, layers=3)),
    ):
        model.save_pretrained(directory)
        wordpiece_tokenizer.save_pretrained(directory)
    data = write_jsonl(tmp_path / "test.jsonl", examples)
    out = tmp_path / "run"
    code = cli_main(
        [
            "eval",
            str(student_dir),
            "--data",
            str(data),
            "--teacher",
            str(teacher_dir),
            "--out",
            str(out),
            "--lang-column",
            "lang",
            "--no-efficiency",
        ]
    )
    assert code == 0
    metrics = read_metrics(out)
    assert sorted(metrics["languages"]) == LANGUAGES and metrics["teacher"] is None
    assert metrics["meta"]["label_names"] == LABEL_NAMES  # the teacher's order: data ids follow its id2label
    (out / "report.html").unlink()
    assert cli_main(["report", str(out)]) == 0
    assert all(code in (out / "report.html").read_text() for code in LANGUAGES)
    assert cli_main(["report", str(tmp_path / "missing")]) == 2
    assert "no metrics file" in capsys.readouterr().err
