"""Unlabelled monolingual text as a data source: a ``.txt`` file, one text a line, that the teacher labels.

Compressing a multilingual teacher needs no translation and no gold label, only text in the
languages served: the student learns to match the teacher's outputs on it. The files are tiny
and written here, so what each row must hold (its text, its language, no gold label) is known by hand.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from polydistill.config import load_config, validate_config
from polydistill.data.readers import read_examples
from polydistill.data.sources import SOURCE_INDEX, TEACHER_TEXT, require_gold_labels
from polydistill.errors import ConfigError, DataError
from polydistill.tasks import get_task
from polydistill.training.features import DistillationCollator, tokenize_for_distillation
from tests.conftest import LABEL_NAMES, synthetic_examples, write_jsonl

#: a text file as users write them: a byte-order mark, blank lines, stray spaces, Windows line ends
GERMAN = "\ufeffdie katze schläft\n\n   ein rotes auto  \r\n\nwir sehen den zug\n"
GERMAN_TEXTS = ["die katze schläft", "ein rotes auto", "wir sehen den zug"]

TEACHER_CONFIG = type("Config", (), {"id2label": dict(enumerate(LABEL_NAMES)), "num_labels": len(LABEL_NAMES)})()


def config_with(tmp_path: Path, train, *, evaluation=None, objectives=None, task: str = "classification", text: str | None = None):
    raw: dict = {"task": task, "teacher": {"model": "teacher-dir"}, "data": {"train": train, "max_length": 64}}
    if evaluation is not None:
        raw["data"]["eval"] = evaluation
    if objectives is not None:
        raw["objectives"] = objectives
    return validate_config(raw, source_file=tmp_path / "run.yaml", source_text=text)


def read_data(config, tokenizer):
    return get_task(config.task).read_data(config, tokenizer=tokenizer, teacher_config=TEACHER_CONFIG)


def test_a_text_file_is_one_text_a_line_and_has_no_other_column(tmp_path) -> None:
    path = tmp_path / "texts.de.txt"
    path.write_text(GERMAN, encoding="utf-8")
    assert read_examples(path).to_dict() == {"text": GERMAN_TEXTS}
    with pytest.raises(DataError, match=r"texts.de.txt: a plain text file \(one text a line\) has no column 'label'"):
        read_examples(path, label_column="label")
    (tmp_path / "blank.txt").write_text("\n  \n\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"blank.txt: no examples"):
        read_examples(tmp_path / "blank.txt")


def test_invalid_utf8_in_a_text_file_names_the_file_and_the_line(tmp_path, wordpiece_tokenizer) -> None:
    # line 3 holds "schön" in Latin-1: byte 0xF6, which no UTF-8 text starts a character with
    (tmp_path / "texts.de.txt").write_bytes(b"die katze\n\nsch\xf6n\n")
    text = "data:\n  train:\n    path: texts.de.txt\n"
    config = config_with(tmp_path, {"path": "texts.de.txt"}, text=text)
    with pytest.raises(DataError, match=r"run.yaml:3: data.train 'texts.de.txt':\n.*texts.de.txt, line 3: not UTF-8 text: byte 0xF6"):
        read_data(config, wordpiece_tokenizer)


def test_language_tags_every_row_of_a_source(tmp_path, wordpiece_tokenizer) -> None:
    (tmp_path / "texts.de.txt").write_text(GERMAN, encoding="utf-8")
    write_jsonl(tmp_path / "plain.jsonl", [{"text": "le chat dort"}, {"text": "un coche rojo"}])
    config = config_with(tmp_path, [{"path": "texts.de.txt", "language": "DE"}, {"path": "plain.jsonl", "language": "fr"}])
    rows = read_data(config, wordpiece_tokenizer).train.to_list()
    assert [(row["text"], row["lang"], row[SOURCE_INDEX]) for row in rows] == [
        ("die katze schläft", "de", 0),
        ("ein rotes auto", "de", 0),
        ("wir sehen den zug", "de", 0),
        ("le chat dort", "fr", 1),
        ("un coche rojo", "fr", 1),
    ]
    # a language filter keeps the tagged source whole, or would drop it whole: refused
    config = config_with(tmp_path, [{"path": "texts.de.txt", "language": "de", "languages": ["de-DE", "DE"]}, {"path": "plain.jsonl"}])
    assert read_data(config, wordpiece_tokenizer).train["text"] == [*GERMAN_TEXTS, "le chat dort", "un coche rojo"]
    with pytest.raises(ConfigError, match=r"data.train.0.languages: the source's language 'de' is not among them"):
        config_with(tmp_path, [{"path": "texts.de.txt", "language": "de", "languages": ["fr"]}, {"path": "plain.jsonl"}])


def test_language_beside_a_lang_column_is_refused_at_the_fields_line(tmp_path) -> None:
    text = "data:\n  train:\n    path: texts.jsonl\n    lang_column: lang\n    language: de\n"
    with pytest.raises(ConfigError, match=r"run.yaml:5: data.train.language: give language .* or lang_column .*, not both"):
        config_with(tmp_path, {"path": "texts.jsonl", "lang_column": "lang", "language": "de"}, text=text)
    text = "data:\n  train:\n    - path: a.txt\n    - path: b.txt\n      language: klingon\n"
    with pytest.raises(ConfigError, match=r"run.yaml:5: data.train.1.language: .*unknown language subtag 'klingon'"):
        config_with(tmp_path, [{"path": "a.txt"}, {"path": "b.txt", "language": "klingon"}], text=text)
    with pytest.raises(ConfigError, match=r"data.train.language: 'catalogs:django' tags its rows' languages itself"):
        config_with(tmp_path, {"path": "catalogs:django", "split": "train", "language": "de"})


def test_classification_text_rows_carry_no_gold_label(tmp_path, wordpiece_tokenizer) -> None:
    (tmp_path / "texts.de.txt").write_text(GERMAN, encoding="utf-8")
    # alone: no label column at all, so no gold-label target exists; the teacher reads the text itself
    train = read_data(config_with(tmp_path, {"path": "texts.de.txt", "language": "de"}), wordpiece_tokenizer).train
    assert train.column_names == ["text", "lang"]
    assert "labels" not in tokenize_for_distillation(train, wordpiece_tokenizer).column_names
    # beside labelled data: its rows are -1, which the collated batch carries as -100 (ignored by the labels objective)
    write_jsonl(tmp_path / "labelled.jsonl", [{"text": "an apple", "label": "fruit"}, {"text": "a drum", "label": "instrument"}])
    config = config_with(tmp_path, [{"path": "labelled.jsonl"}, {"path": "texts.de.txt"}], objectives={"soft_targets": {}, "labels": {}})
    require_gold_labels(config)
    train = read_data(config, wordpiece_tokenizer).train
    assert train["label"] == [0, 2, -1, -1, -1]
    assert TEACHER_TEXT not in train.column_names  # no source has a teacher column: the teacher reads each text itself
    features = tokenize_for_distillation(train, wordpiece_tokenizer)
    batch = DistillationCollator(wordpiece_tokenizer)([features[i] for i in range(len(features))])
    assert batch["labels"].tolist() == [0, 2, -100, -100, -100]
    # gold labels from text files alone: refused before anything trains
    only_texts = config_with(tmp_path, {"path": "texts.de.txt"}, objectives={"labels": {}})
    with pytest.raises(ConfigError, match=r"objectives.labels trains on gold labels, but data.train .*texts.de.txt has no 'label' column"):
        require_gold_labels(only_texts)


def test_a_classification_run_on_a_text_file_alone_learns_from_the_teacher_only(tiny_teacher_dir, tmp_path, monkeypatch) -> None:
    from polydistill.training.run import run
    from polydistill.training.trainer import DistillationTrainer

    texts = [example["text"] for example in synthetic_examples(48, seed=11)]
    (tmp_path / "texts.en.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    (tmp_path / "run.yaml").write_text(
        f"teacher:\n  model: {tiny_teacher_dir}\nstudent:\n  keep_layers: 1\n"
        "data:\n  train: {path: texts.en.txt, language: en}\n  max_length: 32\n"
        "objectives:\n  soft_targets: {weight: 1.0}\n"
        "training:\n  num_train_epochs: 1\n  per_device_train_batch_size: 16\n  logging_steps: 1\n  use_cpu: true\n"
    )
    batches: list[set[str]] = []
    logs: list[dict] = []
    compute_loss, log = DistillationTrainer.compute_loss, DistillationTrainer.log

    def recording_compute_loss(self, model, inputs, *args, **kwargs):
        batches.append(set(inputs))
        return compute_loss(self, model, inputs, *args, **kwargs)

    def recording_log(self, entries, *args, **kwargs):
        log(self, entries, *args, **kwargs)
        logs.append(dict(entries))

    monkeypatch.setattr(DistillationTrainer, "compute_loss", recording_compute_loss)
    monkeypatch.setattr(DistillationTrainer, "log", recording_log)
    result = run(load_config(tmp_path / "run.yaml"), output_dir=tmp_path / "out")

    assert (result.student_dir / "config.json").is_file()
    assert len(batches) == 3 and all("labels" not in keys for keys in batches)  # 48 texts, 16 a batch: no gold label in any
    steps = [entry for entry in logs if "loss" in entry]
    assert len(steps) == 3
    for entry in steps:  # the whole loss is the teacher's soft targets: no other term
        assert {key for key in entry if key.startswith("loss_")} == {"loss_soft_targets"}
        assert math.isfinite(entry["loss"]) and entry["loss"] == pytest.approx(entry["loss_soft_targets"], rel=1e-3, abs=1e-5)


PAIRS = [
    {"text": "the cat sleeps", "translation": "die katze schläft", "lang": "de"},
    {"text": "a red car", "translation": "un coche rojo", "lang": "es"},
]
PAIR_SOURCE = {"path": "pairs.jsonl", "translation_column": "translation", "lang_column": "lang"}


def test_embeddings_monolingual_rows_have_the_text_as_translation(tmp_path, wordpiece_tokenizer) -> None:
    write_jsonl(tmp_path / "pairs.jsonl", PAIRS)
    (tmp_path / "texts.de.txt").write_text(GERMAN, encoding="utf-8")
    write_jsonl(tmp_path / "mono.jsonl", [{"text": "le chat dort", "lang": "fr"}])
    train = [PAIR_SOURCE, {"path": "texts.de.txt", "language": "de"}, {"path": "mono.jsonl", "lang_column": "lang"}]
    rows = read_data(config_with(tmp_path, train, task="embeddings"), wordpiece_tokenizer).train.to_list()
    assert [(row["text"], row["translation"], row["lang"], row[SOURCE_INDEX]) for row in rows] == [
        ("the cat sleeps", "die katze schläft", "de", 0),
        ("a red car", "un coche rojo", "es", 0),
        ("die katze schläft", "die katze schläft", "de", 1),
        ("ein rotes auto", "ein rotes auto", "de", 1),
        ("wir sehen den zug", "wir sehen den zug", "de", 1),
        ("le chat dort", "le chat dort", "fr", 2),
    ]
    # alone, untagged: no language column is made up
    alone = read_data(config_with(tmp_path, {"path": "texts.de.txt"}, task="embeddings"), wordpiece_tokenizer).train
    assert alone.to_dict() == {"text": GERMAN_TEXTS, "translation": GERMAN_TEXTS}


def test_embeddings_monolingual_eval_source_is_refused(tmp_path, wordpiece_tokenizer) -> None:
    write_jsonl(tmp_path / "pairs.jsonl", PAIRS)
    (tmp_path / "texts.de.txt").write_text(GERMAN, encoding="utf-8")
    text = "task: embeddings\ndata:\n  train:\n    path: pairs.jsonl\n  eval:\n    - path: pairs.jsonl\n    - path: texts.de.txt\n"
    config = config_with(tmp_path, PAIR_SOURCE, evaluation=[PAIR_SOURCE, {"path": "texts.de.txt"}], task="embeddings", text=text)
    with pytest.raises(
        ConfigError, match=r"run.yaml:7: data.eval.1.translation_column: 'texts.de.txt' is read as monolingual text.*needs pairs"
    ):
        read_data(config, wordpiece_tokenizer)


def test_an_embeddings_run_trains_on_monolingual_text_beside_pairs(tiny_encoder_dir, tmp_path, monkeypatch) -> None:
    from polydistill.training.run import run
    from polydistill.training.trainer import DistillationTrainer

    examples = [example["text"] for example in synthetic_examples(40, seed=12)]
    write_jsonl(tmp_path / "pairs.jsonl", [{"text": t, "translation": " ".join(reversed(t.split())), "lang": "fr"} for t in examples[:16]])
    (tmp_path / "texts.en.txt").write_text("\n".join(examples[16:]) + "\n", encoding="utf-8")
    (tmp_path / "run.yaml").write_text(
        f"task: embeddings\nteacher:\n  model: {tiny_encoder_dir}\nstudent:\n  keep_layers: 1\n"
        "data:\n  train:\n    - {path: pairs.jsonl, translation_column: translation, lang_column: lang}\n"
        "    - {path: texts.en.txt, language: en}\n  max_length: 32\n"
        "objectives:\n  embedding_mse: {weight: 1.0}\n"
        "training:\n  num_train_epochs: 1\n  per_device_train_batch_size: 8\n  logging_steps: 1\n  use_cpu: true\n"
    )
    pairs_seen: list[tuple[list[int], list[int]]] = []
    compute_loss = DistillationTrainer.compute_loss

    def recording_compute_loss(self, model, inputs, *args, **kwargs):
        for ids, translation_ids in zip(inputs["input_ids"].tolist(), inputs["translation_input_ids"].tolist(), strict=True):
            pairs_seen.append((ids, translation_ids))
        return compute_loss(self, model, inputs, *args, **kwargs)

    monkeypatch.setattr(DistillationTrainer, "compute_loss", recording_compute_loss)
    result = run(load_config(tmp_path / "run.yaml"), output_dir=tmp_path / "out")

    assert (result.student_dir / "modules.json").is_file()
    assert len(pairs_seen) == 40 and math.isfinite(result.train_metrics["train_loss"])
    # the 24 monolingual rows: the student reads what the teacher reads (same tokens, padding aside)
    same = [ids for ids, translation in pairs_seen if [t for t in ids if t] == [t for t in translation if t]]
    assert len(same) == 24, json.dumps(len(same))
