"""Several evaluation sources, each scored and reported on its own (``eval_sets`` of metrics.json).

The test files are written here, so how many rows each set has per language is known by hand, and
the student's accuracy on a held-out set is worked out again from its own predictions.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from polydistill.config import load_config, validate_config
from polydistill.errors import ConfigError
from tests.conftest import FILLER, KEYWORDS, synthetic_examples, write_jsonl

# --- names and their errors --------------------------------------------------------------------


def config_from(tmp_path: Path, text: str):
    (tmp_path / "run.yaml").write_text(text)
    return load_config(tmp_path / "run.yaml")


def test_names_default_to_the_source_and_duplicates_are_refused_at_their_field(tmp_path) -> None:
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        write_jsonl(tmp_path / folder / "test.jsonl", [{"text": "x", "label": "fruit"}])
    write_jsonl(tmp_path / "legal.jsonl", [{"text": "x", "label": "fruit"}])
    head = "teacher:\n  model: t\ndata:\n  train: {path: legal.jsonl}\n  eval:\n"
    config = config_from(
        tmp_path, head + "    - path: legal.jsonl\n    - path: catalogs:sphinx\n    - path: a/test.jsonl\n      name: news\n"
    )
    assert [(field, name) for field, name, _ in config.data.named_eval_sources] == [
        ("data.eval.0", "legal"),
        ("data.eval.1", "sphinx"),
        ("data.eval.2", "news"),
    ]
    assert [
        name for _, name, _ in config_from(tmp_path, head.replace("  eval:\n", "  eval: {path: a/test.jsonl}\n")).data.named_eval_sources
    ] == ["test"]
    # two files with the same stem: the second is refused at its (derived) name, on its item's line
    with pytest.raises(ConfigError, match=r"run.yaml:7: data.eval.1.name: 'test' already names data.eval.0; give each"):
        config_from(tmp_path, head + "    - path: a/test.jsonl\n    - path: b/test.jsonl\n")
    # an explicit name: its own line
    text = head + "    - path: a/test.jsonl\n      name: same\n    - path: b/test.jsonl\n      name: same\n"
    with pytest.raises(ConfigError, match=r"run.yaml:9: data.eval.1.name: 'same' already names data.eval.0"):
        config_from(tmp_path, text)
    with pytest.raises(ConfigError, match=r"data.eval.0.name: String should have at least 1 character"):
        validate_config(
            {"teacher": {"model": "t"}, "data": {"train": {"path": "catalogs:sphinx"}, "eval": [{"path": "catalogs:sphinx", "name": ""}]}}
        )


# --- a classification run ------------------------------------------------------------------------

CLASSIFICATION_RUN = """\
teacher:
  model: {teacher}
student:
  keep_layers: 1
data:
  train: {{path: train.jsonl, lang_column: lang}}
  eval:
    - {{path: in_domain.jsonl, lang_column: lang}}
    - {{path: held_out.jsonl, lang_column: lang}}
  max_length: 32
training:
  num_train_epochs: 1
  per_device_train_batch_size: 32
  use_cpu: true
evaluation:
  efficiency: "off"
"""


def rows_in(languages: dict[str, int], seed: int) -> list[dict]:
    rows = []
    for offset, (code, count) in enumerate(languages.items()):
        rows += [example | {"lang": code} for example in synthetic_examples(count, seed=seed + offset)]
    return rows


def accuracy_by_language(model_dir: Path, rows: list[dict]) -> dict[str, float]:
    """The model's accuracy per language, from its own logits and its own class names."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from polydistill.evaluation.evaluate import predict_logits

    model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    logits = predict_logits(model, AutoTokenizer.from_pretrained(model_dir), [row["text"] for row in rows], max_length=32)
    predicted = [model.config.id2label[int(index)] for index in logits.argmax(-1)]
    result = {}
    for code in sorted({row["lang"] for row in rows}):
        hits = [name == row["label"] for name, row in zip(predicted, rows, strict=True) if row["lang"] == code]
        result[code] = sum(hits) / len(hits)
    return result


def test_a_classification_run_reports_every_eval_set_separately(tiny_teacher_dir, tmp_path) -> None:
    from polydistill.training.run import run

    write_jsonl(tmp_path / "train.jsonl", rows_in({"en": 60, "de": 60}, seed=10))
    in_domain = rows_in({"en": 34, "de": 31}, seed=20)
    held_out = rows_in({"fr": 32, "es": 5}, seed=30)  # es: too few to compare
    write_jsonl(tmp_path / "in_domain.jsonl", in_domain)
    write_jsonl(tmp_path / "held_out.jsonl", held_out)
    result = run(config_from(tmp_path, CLASSIFICATION_RUN.format(teacher=tiny_teacher_dir)), output_dir=tmp_path / "out")

    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert list(metrics["eval_sets"]) == ["in_domain", "held_out"]
    sets = metrics["eval_sets"]
    assert (sets["in_domain"]["field"], sets["in_domain"]["source"]) == ("data.eval.0", "in_domain.jsonl")
    assert (sets["held_out"]["field"], sets["held_out"]["source"]) == ("data.eval.1", "held_out.jsonl")
    for name, rows in (("in_domain", in_domain), ("held_out", held_out)):
        counts = Counter(row["lang"] for row in rows)
        assert {code: entry["n"] for code, entry in sets[name]["languages"].items()} == counts
        assert sets[name]["overall"]["n"] == len(rows)
    # the primary set is the first alone (not the two pooled): the top level is about it
    assert metrics["languages"] == sets["in_domain"]["languages"] and metrics["overall"]["n"] == len(in_domain)
    assert all("noise" in entry for entry in metrics["languages"].values())
    assert not any("noise" in entry for entry in sets["held_out"]["languages"].values())
    assert sets["held_out"]["languages"]["es"]["comparable"] is False
    # accuracies worked out again from each model's own predictions on the held-out file
    for role, directory in (("student", result.student_dir), ("teacher", tiny_teacher_dir)):
        expected = accuracy_by_language(directory, held_out)
        assert {code: entry[role]["accuracy"] for code, entry in sets["held_out"]["languages"].items()} == pytest.approx(expected)

    report = (tmp_path / "out" / "report.md").read_text()
    assert "## Evaluation sets" in report
    assert "- in_domain (data.eval.0, in_domain.jsonl, primary): mean retention" in report
    assert "- held_out (data.eval.1, held_out.jsonl): mean retention" in report
    assert "held_out: student macro-F1" in report and "5 (n.c.)" in report
    assert "On the held-out set held_out (data.eval.1): mean retention" in report  # in the verdict
    assert "<h2>Evaluation sets</h2>" in (tmp_path / "out" / "report.html").read_text()
    card = (result.student_dir / "README.md").read_text()
    assert "## Evaluation sets" in card and "- held_out (data.eval.1, held_out.jsonl): mean retention" in card
    # the one comparable held-out language is the worst, and its retention is the mean
    fr = sets["held_out"]["languages"]["fr"]["retention"]["macro_f1"]
    assert f"over 1 comparable language, worst fr ({100 * fr:.1f}%)" in report


# --- an embeddings run ---------------------------------------------------------------------------

WORDS = FILLER + [word for group in KEYWORDS for word in group]


def parallel_rows(code: str, count: int, seed: int) -> list[dict]:
    """``count`` distinct pairs of a made-up language (a fixed permutation of the vocabulary per code)."""
    translate = dict(zip(WORDS, random.Random(code).sample(WORDS, len(WORDS)), strict=True))
    rng = random.Random(seed)
    rows: dict[str, dict] = {}
    while len(rows) < count:
        words = rng.sample(WORDS, rng.randint(4, 8))
        rows.setdefault(" ".join(words), {"text": " ".join(words), "translation": " ".join(translate[w] for w in words), "lang": code})
    return list(rows.values())


EMBEDDINGS_RUN = """\
task: embeddings
teacher:
  model: {teacher}
student:
  keep_layers: 1
data:
  train: {{path: train.jsonl, translation_column: translation, lang_column: lang}}
  eval:
    - {{path: fr_test.jsonl, translation_column: translation, lang_column: lang}}
    - {{path: other.jsonl, translation_column: translation, lang_column: lang, name: elsewhere}}
  max_length: 32
training:
  num_train_epochs: 1
  per_device_train_batch_size: 32
  use_cpu: true
evaluation:
  efficiency: "off"
"""


def test_an_embeddings_run_reports_every_eval_set_separately(tiny_encoder_dir, tmp_path) -> None:
    from polydistill.training.run import run

    write_jsonl(tmp_path / "train.jsonl", parallel_rows("fr", 40, seed=1))
    write_jsonl(tmp_path / "fr_test.jsonl", parallel_rows("fr", 12, seed=2))
    write_jsonl(tmp_path / "other.jsonl", parallel_rows("de", 9, seed=3) + parallel_rows("es", 7, seed=4))
    result = run(config_from(tmp_path, EMBEDDINGS_RUN.format(teacher=tiny_encoder_dir)), output_dir=tmp_path / "out")

    metrics = result.metrics
    assert metrics is not None and list(metrics["eval_sets"]) == ["fr_test", "elsewhere"]
    sets = metrics["eval_sets"]
    assert {code: entry["n"] for code, entry in sets["fr_test"]["languages"].items()} == {"fr": 12}
    assert {code: entry["n"] for code, entry in sets["elsewhere"]["languages"].items()} == {"de": 9, "es": 7}
    assert (sets["elsewhere"]["field"], sets["elsewhere"]["source"]) == ("data.eval.1", "other.jsonl")
    assert list(metrics["languages"]) == ["fr"]  # the primary set alone
    for entry in sets["elsewhere"]["languages"].values():
        assert set(entry["student"]) == set(entry["teacher"]) == {"top1_en_to_x", "top1_x_to_en", "mrr_en_to_x", "mrr_x_to_en"}
        assert all(0.0 <= value <= 1.0 for value in entry["student"].values())
    # 9 and 7 pairs: below the comparable minimum, so the held-out set has no figure to judge
    assert "On the held-out set elsewhere (data.eval.1): no comparable language among 2" in (tmp_path / "out" / "report.md").read_text()
    assert np.isfinite(sets["elsewhere"]["overall"]["student"]["top1_x_to_en"])


# --- the report's pieces, on a document written by hand --------------------------------------------


def entry(student: float, teacher: float | None = 1.0, n: int = 40, comparable: bool = True) -> dict:
    return {
        "n": n,
        "teacher": None if teacher is None else {"macro_f1": teacher},
        "student": {"macro_f1": student},
        "retention": None if teacher is None else {"macro_f1": student / teacher},
        "comparable": comparable,
        "not_comparable_because": [] if comparable else ["too few"],
    }


def document(sets: dict[str, dict[str, dict]]) -> dict:
    eval_sets = {
        name: {"field": f"data.eval.{index}", "source": f"{name}.jsonl", "languages": languages, "overall": {"n": 1}}
        for index, (name, languages) in enumerate(sets.items())
    }
    first = next(iter(eval_sets.values()))
    return {"task": "classification", "primary_metric": "macro_f1", "languages": first["languages"], "overall": {}, "eval_sets": eval_sets}


def test_the_weakest_held_out_set_is_named_by_its_mean_and_worst_language() -> None:
    from polydistill.evaluation.report import eval_set_summaries, eval_sets_table, held_out_sentence

    metrics = document(
        {
            "home": {"en": entry(0.5), "de": entry(0.5)},  # the primary is the lowest, but not held out
            "legal": {"fr": entry(0.9), "es": entry(0.7), "it": entry(0.1, n=5, comparable=False)},  # mean 0.8, worst es
            "news": {"fr": entry(0.95), "pt": entry(0.75)},  # mean 0.85
        }
    )
    summaries = {summary.name: summary for summary in eval_set_summaries(metrics)}
    assert summaries["legal"].mean == pytest.approx(0.8) and (summaries["legal"].worst_language, summaries["legal"].worst) == ("es", 0.7)
    assert summaries["home"].primary and not summaries["legal"].primary
    assert held_out_sentence(metrics) == (
        "On the weakest of 2 held-out sets, legal (data.eval.1): mean retention 80.0% over 2 comparable languages, worst es (70.0%)."
    )
    header, rows = eval_sets_table(metrics) or ([], [])
    assert header[:5] == ["language", "home: n", "home: teacher macro-F1", "home: student macro-F1", "home: retention"]
    italian = next(row for row in rows if row[0].startswith("it"))
    assert italian[5:9] == ["5 (n.c.)", "1.000", "0.100", "10.0%"] and italian[1:5] == ["–"] * 4
    # one test set: nothing to add; no teacher: the student's scores instead of retention
    assert held_out_sentence(document({"home": {"en": entry(0.5)}})) == "" and eval_sets_table(document({"home": {}})) is None
    alone = document({"home": {"en": entry(0.5, None)}, "web": {"en": entry(0.6, None), "de": entry(0.4, None)}})
    assert (
        held_out_sentence(alone)
        == "On the held-out set web (data.eval.1): mean student macro-F1 0.500 over 2 comparable languages, lowest de (0.400)."
    )
