"""A held-out domain without gold labels: a classification eval set scored against the teacher's decisions.

The agreement and fidelity figures are worked out again from each model's own logits (its argmax,
read through its own class names), and the rows of a translation catalog read as text from the
catalog's pairs themselves.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from polydistill.config import load_config, validate_config
from polydistill.errors import ConfigError
from tests.conftest import synthetic_examples, write_jsonl

RUN = """\
teacher:
  model: {teacher}
student:
  keep_layers: 1
data:
  train: {{path: train.jsonl, lang_column: lang}}
  eval:
{eval}
  max_length: 32
objectives:
  soft_targets: {{}}
  labels: {{weight: 0.5}}
training:
  num_train_epochs: 1
  per_device_train_batch_size: 32
  use_cpu: true
evaluation:
  efficiency: "off"
  noise: null
"""
LABELLED_FIRST = "    - {path: in_domain.jsonl, lang_column: lang}\n    - {path: held_out.jsonl, lang_column: lang, label_column: null}"


def rows_in(languages: dict[str, int], seed: int) -> list[dict]:
    rows = []
    for offset, (code, count) in enumerate(languages.items()):
        rows += [example | {"lang": code} for example in synthetic_examples(count, seed=seed + offset)]
    return rows


def config_in(tmp_path: Path, teacher: Path, eval_block: str):
    (tmp_path / "run.yaml").write_text(RUN.format(teacher=teacher, eval=eval_block))
    return load_config(tmp_path / "run.yaml")


def predicted_names(model_dir: Path, texts: list[str]) -> list[str]:
    """The class names a saved classifier predicts: its own logits' argmax, through its own id2label."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from polydistill.evaluation.evaluate import predict_logits

    model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    logits = predict_logits(model, AutoTokenizer.from_pretrained(model_dir), texts, max_length=32)
    return [model.config.id2label[int(index)] for index in logits.argmax(-1)]


def test_an_unlabelled_eval_set_is_scored_by_agreement_with_the_teacher(tiny_teacher_dir, tmp_path) -> None:
    from sklearn.metrics import f1_score

    from polydistill.training.run import run

    write_jsonl(tmp_path / "train.jsonl", rows_in({"en": 60, "de": 60}, seed=10))
    write_jsonl(tmp_path / "in_domain.jsonl", rows_in({"en": 31, "de": 31}, seed=20))
    # labels in the file, read without them (label_column: null): nothing may score against them
    held_out = rows_in({"fr": 40, "es": 33, "it": 6}, seed=30)
    write_jsonl(tmp_path / "held_out.jsonl", [row | {"label": "not-a-class"} for row in held_out])
    # a labels objective needs gold labels in the training data, not in an eval source
    result = run(config_in(tmp_path, tiny_teacher_dir, LABELLED_FIRST), output_dir=tmp_path / "out")

    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    sets = metrics["eval_sets"]
    assert sets["in_domain"]["reference"] == "gold" and sets["held_out"]["reference"] == "teacher"
    assert sets["held_out"]["field"] == "data.eval.1"

    texts = [row["text"] for row in held_out]
    teacher = predicted_names(tiny_teacher_dir, texts)
    student = predicted_names(result.student_dir, texts)
    assert len(set(teacher)) > 1  # the check below compares decisions, not one constant class
    languages = sets["held_out"]["languages"]
    assert set(languages) == {"fr", "es", "it"}
    for code, entry in languages.items():
        rows = [index for index, row in enumerate(held_out) if row["lang"] == code]
        their_teacher, their_student = [teacher[i] for i in rows], [student[i] for i in rows]
        expected_agreement = np.mean([s == t for s, t in zip(their_student, their_teacher, strict=True)])
        assert entry["n"] == len(rows)
        assert entry["student"]["agreement"] == pytest.approx(expected_agreement)
        assert entry["student"]["fidelity_accuracy"] == pytest.approx(expected_agreement)
        assert entry["student"]["fidelity_macro_f1"] == pytest.approx(
            f1_score(their_teacher, their_student, average="macro", zero_division=0)
        )
        # no gold labels: no teacher score, no retention, and nothing named like a gold-label score
        assert entry["teacher"] is None and entry["retention"] is None
        assert not {"accuracy", "macro_f1"} & set(entry["student"]) and set(entry["ci"]) == {"fidelity_macro_f1", "fidelity_accuracy"}
        # the comparable rule: min examples, and at least two of the teacher's predicted classes
        assert entry["comparable"] is (len(rows) >= 30 and len(set(their_teacher)) >= 2)
    assert languages["it"]["comparable"] is False and "6 examples, fewer than 30" in languages["it"]["not_comparable_because"]
    overall = sets["held_out"]["overall"]
    assert overall["n"] == len(held_out)
    assert overall["student"]["agreement"] == pytest.approx(np.mean([s == t for s, t in zip(student, teacher, strict=True)]))
    # the top level stays the labelled primary set's
    assert metrics["overall"]["n"] == 62 and metrics["overall"]["teacher"]["macro_f1"] is not None

    comparable = {code: entry["student"]["agreement"] for code, entry in languages.items() if entry["comparable"]}
    assert comparable  # fr and es have enough texts; their teacher predicts several classes
    worst = min(comparable, key=lambda code: (comparable[code], code))
    figure = (
        f"student agrees with the teacher on {100 * np.mean(list(comparable.values())):.1f}% of texts "
        f"(mean over {len(comparable)} comparable language{'s' if len(comparable) != 1 else ''}), "
        f"worst {worst} ({100 * comparable[worst]:.1f}%)"
    )
    report = (tmp_path / "out" / "report.md").read_text()
    assert f"- held_out (data.eval.1, held_out.jsonl, no gold labels: scored against the teacher's predictions): {figure}" in report
    assert f"On the held-out set without gold labels held_out (data.eval.1): {figure}." in report  # in the verdict
    assert "held_out: student agreement with teacher" in report and "held_out: student macro-F1 against the teacher's classes" in report
    assert "held_out has no gold labels: scored against the teacher's predictions" in report
    card = (result.student_dir / "README.md").read_text()
    assert f"- held_out (data.eval.1, held_out.jsonl, no gold labels: scored against the teacher's predictions): {figure}" in card


def test_an_unlabelled_primary_eval_source_is_refused(tiny_teacher_dir, tmp_path) -> None:
    from polydistill.training.run import run

    write_jsonl(tmp_path / "train.jsonl", rows_in({"en": 40}, seed=1))
    write_jsonl(tmp_path / "in_domain.jsonl", rows_in({"en": 31}, seed=2))
    write_jsonl(tmp_path / "held_out.jsonl", rows_in({"fr": 31}, seed=3))
    first_unlabelled = (
        "    - {path: held_out.jsonl, lang_column: lang, label_column: null}\n    - {path: in_domain.jsonl, lang_column: lang}"
    )
    with pytest.raises(ConfigError, match=r"run.yaml:8: data.eval.0: 'held_out.jsonl' has no gold labels, but the first evaluation source"):
        run(config_in(tmp_path, tiny_teacher_dir, first_unlabelled), output_dir=tmp_path / "out")
    (tmp_path / "de.txt").write_text("eins\nzwei\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"data.eval: 'de.txt' has no gold labels.*scored against the teacher's predictions"):
        run(config_in(tmp_path, tiny_teacher_dir, "    path: de.txt\n    language: de"), output_dir=tmp_path / "out2")


def test_a_pairs_catalog_read_as_classification_text_has_every_translation_and_each_english_source(tmp_path) -> None:
    from polydistill.data.catalogs import catalog_pairs
    from polydistill.data.sources import read_labelled

    def read(source: dict):
        primary = {"path": "catalogs:django-components", "split": "test"}
        raw = {
            "teacher": {"model": "t"},
            "data": {"train": {"path": "catalogs:django-components", "split": "train"}, "eval": [primary, source]},
        }
        config = validate_config(raw, source_file=tmp_path / "run.yaml")
        return read_labelled(config.data.eval_sources[1][1], config, tokenizer=None, label_names=None)

    pairs = catalog_pairs("sphinx", languages=["de", "uk-UA"])
    translations = list(zip(pairs["translation"], pairs["lang"], strict=True))
    english = sorted(set(pairs["text"]))
    dataset = read({"path": "catalogs:sphinx", "languages": ["en", "de", "uk-UA"]})
    assert "label" not in dataset.column_names and "teacher_text" not in dataset.column_names
    rows = Counter(zip(dataset["text"], dataset["lang"], strict=True))
    assert rows == Counter(translations) + Counter((text, "en") for text in english)
    assert Counter(dataset["lang"])["en"] == len(english)
    # every row's English source stays beside it (an English row's is itself)
    assert all(source == text for text, lang, source in zip(dataset["text"], dataset["lang"], dataset["en"], strict=True) if lang == "en")
    # English not asked for: the translations alone
    without_english = read({"path": "catalogs:sphinx", "languages": ["de", "uk-UA"]})
    assert Counter(zip(without_english["text"], without_english["lang"], strict=True)) == Counter(translations)
    # the teacher reading the English source (training on translations): no rows of its own here
    taught = read({"path": "catalogs:sphinx", "languages": ["en", "de"], "teacher_text_column": "en"})
    assert "en" not in set(taught["lang"]) and len(taught) == sum(lang == "de" for lang in pairs["lang"])
