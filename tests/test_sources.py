"""One data-source layer: built-in catalogs and users' files, read for runs, embeddings and trimming.

Files are written here, small, with rows whose fate (kept, filtered, relabelled) is known by hand;
the catalog tests read Django's installed catalogs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from polydistill.config import RunConfig, load_config, validate_config
from polydistill.data.sources import (
    TEACHER_TEXT,
    UNTAGGED,
    corpus_texts_by_language,
    is_builtin,
    load_source,
    read_labelled,
    read_pairs,
    require_gold_labels,
)
from polydistill.errors import ConfigError, DataError
from polydistill.tasks import get_task

ROWS = [
    {"sentence": "the apple", "cat": "fruit", "language": "de", "english": "the apple"},
    {"sentence": "a train", "cat": "vehicle", "language": "fr", "english": "a train"},
    {"sentence": "one piano", "cat": "instrument", "language": "pt_BR", "english": "one piano"},
    {"sentence": "the pear", "cat": "fruit", "language": "PT-br", "english": "the pear"},
]


def col(dataset, name: str) -> list:
    return dataset.select_columns([name])[:][name]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def config_for(tmp_path: Path, train: dict, *, task: str = "classification") -> RunConfig:
    """A run config as if read from ``tmp_path/run.yaml`` (relative data paths resolve there)."""
    raw = {"task": task, "teacher": {"model": "teacher-dir"}, "data": {"train": train, "max_length": 16}}
    return validate_config(raw, source_file=tmp_path / "run.yaml")


def test_is_builtin() -> None:
    assert is_builtin("catalogs:django") and is_builtin("catalogs:nothing")
    assert not is_builtin("data/catalogs.jsonl") and not is_builtin("de=catalogs:django")


# ---------------------------------------------------------------------------------------------
# Labelled examples.


def test_file_source_keeps_the_languages_asked_for_and_reads_named_columns(tmp_path, wordpiece_tokenizer) -> None:
    write_jsonl(tmp_path / "train.jsonl", ROWS)
    train = {
        "path": "train.jsonl",  # relative to the config file
        "text_column": "sentence",
        "label_column": "cat",
        "lang_column": "language",
        "teacher_text_column": "english",
        "languages": ["pt-BR", "DE"],
    }
    config = config_for(tmp_path, train)
    dataset = read_labelled(config.data.train, config, tokenizer=wordpiece_tokenizer, label_names=None)
    assert col(dataset, "text") == ["the apple", "one piano", "the pear"]  # the French row is filtered out
    assert col(dataset, "lang") == ["de", "pt-BR", "pt-BR"]
    assert col(dataset, TEACHER_TEXT) == ["the apple", "one piano", "the pear"]
    # the label set is the sorted names of the whole file, the French row's 'vehicle' included
    names = dataset.features["label"].names
    assert names == ["fruit", "instrument", "vehicle"]
    assert [names[label] for label in col(dataset, "label")] == ["fruit", "instrument", "fruit"]


def test_file_source_label_column_is_optional_unless_named(tmp_path, wordpiece_tokenizer) -> None:
    write_jsonl(tmp_path / "plain.jsonl", [{"text": "the apple"}, {"text": "a train"}])
    config = config_for(tmp_path, {"path": "plain.jsonl"})
    dataset = read_labelled(config.data.train, config, tokenizer=wordpiece_tokenizer, label_names=None)
    assert dataset.column_names == ["text"]  # unlabelled data distils too
    config = config_for(tmp_path, {"path": "plain.jsonl", "label_column": "label"})
    with pytest.raises(DataError, match="missing column 'label'"):
        read_labelled(config.data.train, config, tokenizer=wordpiece_tokenizer, label_names=None)

    write_jsonl(tmp_path / "labelled.jsonl", [{"text": "the apple", "label": "fruit"}, {"text": "a bus", "label": "vehicle"}])
    config = config_for(tmp_path, {"path": "labelled.jsonl"})
    dataset = read_labelled(config.data.train, config, tokenizer=wordpiece_tokenizer, label_names=["vehicle", "fruit"])
    assert col(dataset, "label") == [1, 0]  # ids of the teacher's label names


def test_jsonl_with_a_byte_order_mark_keeps_its_default_label_column(tmp_path, wordpiece_tokenizer) -> None:
    rows = [{"text": "the apple", "label": "fruit"}, {"text": "a bus", "label": "vehicle"}]
    content = "".join(json.dumps(row) + "\n" for row in rows)
    (tmp_path / "bom.jsonl").write_bytes(b"\xef\xbb\xbf" + content.encode("utf-8"))
    config = config_for(tmp_path, {"path": "bom.jsonl"})  # label_column left at its default
    dataset = read_labelled(config.data.train, config, tokenizer=wordpiece_tokenizer, label_names=None)
    assert dataset.column_names == ["text", "label"]
    assert dataset.features["label"].names == ["fruit", "vehicle"] and col(dataset, "label") == [0, 1]


def test_a_file_in_another_encoding_is_refused_by_the_column_peek_too(tmp_path, wordpiece_tokenizer) -> None:
    (tmp_path / "sheet.csv").write_bytes("text,label\ncafé,a\n".encode("cp1252"))
    config = config_for(tmp_path, {"path": "sheet.csv"})
    with pytest.raises(DataError) as error:
        read_labelled(config.data.train, config, tokenizer=wordpiece_tokenizer, label_names=None)
    # 'text,label\n' is 11 bytes, 'caf' 3 more: the é (0xE9) is at byte 14, on line 2
    assert str(error.value).startswith(f"{tmp_path / 'sheet.csv'}, line 2: not UTF-8 text: byte 0xE9 at byte offset 14")


# ---------------------------------------------------------------------------------------------
# Gold labels that a config trains on.

LABELS_CONFIG = """task: classification
teacher:
  model: teacher-dir
data:
  train:
    path: {train}
objectives:
  soft_targets: {{}}
  labels:
    weight: 0.5
"""


def test_labels_objective_on_unlabelled_data_is_refused_at_its_line(tmp_path) -> None:
    write_jsonl(tmp_path / "plain.jsonl", [{"text": "the apple"}, {"text": "a bus"}])
    (tmp_path / "run.yaml").write_text(LABELS_CONFIG.format(train="plain.jsonl"), encoding="utf-8")
    config = load_config(tmp_path / "run.yaml")
    with pytest.raises(ConfigError) as error:
        require_gold_labels(config)
    assert str(error.value) == (
        f"{tmp_path / 'run.yaml'}:9: objectives.labels trains on gold labels, but data.train "  # 'labels:' is line 9
        f"{tmp_path / 'plain.jsonl'} has no 'label' column (its columns: text); expected labelled data: "
        "add a 'label' column, set data.train.label_column, or remove objectives.labels"
    )
    with pytest.raises(ConfigError, match=r"run.yaml:9: objectives.labels trains on gold labels"):
        get_task("classification").read_data(config, tokenizer=None, teacher_config=None)  # before any reading
    write_jsonl(tmp_path / "labelled.jsonl", [{"text": "the apple", "label": "fruit"}])
    (tmp_path / "run.yaml").write_text(LABELS_CONFIG.format(train="labelled.jsonl"), encoding="utf-8")
    require_gold_labels(load_config(tmp_path / "run.yaml"))  # labelled: nothing to refuse
    (tmp_path / "run.yaml").write_text(LABELS_CONFIG.format(train="plain.jsonl").replace("0.5", "0"), encoding="utf-8")
    require_gold_labels(load_config(tmp_path / "run.yaml"))  # weight 0: the objective is off


def test_teacher_finetune_on_unlabelled_data_is_refused(tmp_path) -> None:
    write_jsonl(tmp_path / "plain.jsonl", [{"text": "the apple"}])
    raw = {
        "task": "classification",
        "teacher": {"model": "teacher-dir", "finetune": {"data": {"path": "catalogs:django", "split": "train"}}},
        "data": {"train": {"path": "plain.jsonl"}},
    }
    config = validate_config(raw, source_file=tmp_path / "run.yaml")
    with pytest.raises(ConfigError) as error:
        require_gold_labels(config)
    assert str(error.value).startswith(
        f"{tmp_path / 'run.yaml'}: teacher.finetune trains on gold labels, but teacher.finetune.data "
        "'catalogs:django' holds translation pairs, no labels"
    )
    raw["teacher"]["finetune"]["data"] = {"path": "plain.jsonl"}
    with pytest.raises(ConfigError, match=r"teacher.finetune.data \S+plain.jsonl has no 'label' column \(its columns: text\)"):
        require_gold_labels(validate_config(raw, source_file=tmp_path / "run.yaml"))


def test_catalog_source_is_one_split_relabelled_to_the_teachers_names(tmp_path) -> None:
    pytest.importorskip("django")
    train = {"path": "catalogs:django-components", "split": "test", "languages": ["de"], "teacher_text_column": "en"}
    config = config_for(tmp_path, train)
    dataset = read_labelled(config.data.train, config, tokenizer=None, label_names=None)
    names = dataset.features["label"].names
    assert set(col(dataset, "lang")) == {"en", "de"}
    for text, lang, teacher_text in zip(col(dataset, "text"), col(dataset, "lang"), col(dataset, TEACHER_TEXT), strict=True):
        if lang == "en":
            assert teacher_text == text  # an English row's teacher reads the row itself

    reversed_names = names[::-1]
    relabelled = read_labelled(config.data.train, config, tokenizer=None, label_names=reversed_names)
    assert relabelled.features["label"].names == reversed_names
    assert [reversed_names[i] for i in col(relabelled, "label")] == [names[i] for i in col(dataset, "label")]
    with pytest.raises(ConfigError, match="differ from the teacher's"):
        read_labelled(config.data.train, config, tokenizer=None, label_names=["a", "b"])


def test_catalog_split_must_exist(tmp_path) -> None:
    config = config_for(tmp_path, {"path": "catalogs:django-components", "split": "validation"})
    with pytest.raises(ConfigError, match=r"split: expected one of train, dev, test, got 'validation'"):
        read_labelled(config.data.train, config, tokenizer=None, label_names=None)


def test_a_catalog_without_a_split_is_every_pair(tmp_path) -> None:
    pytest.importorskip("sphinx")
    from polydistill.data.catalogs import catalog_pairs

    config = config_for(tmp_path, {"path": "catalogs:sphinx", "languages": ["de", "ja"]}, task="embeddings")
    pairs = read_pairs(config.data.train, config, tokenizer=None)
    expected = catalog_pairs("sphinx", languages=["de", "ja"])
    assert sorted(zip(col(pairs, "text"), col(pairs, "translation"), col(pairs, "lang"), strict=True)) == sorted(
        zip(col(expected, "text"), col(expected, "translation"), col(expected, "lang"), strict=True)
    )


def test_unknown_catalog_names_list_the_built_in_sources(tmp_path) -> None:
    config = config_for(tmp_path, {"path": "catalogs:nothing", "split": "train"})
    where = f"{tmp_path / 'run.yaml'}: data.train 'catalogs:nothing'"
    with pytest.raises(ConfigError) as error:
        read_labelled(config.data.train, config, tokenizer=None, label_names=None)
    assert str(error.value) == (
        f"{where}: unknown built-in source; expected catalogs:django-components, catalogs:django, catalogs:sphinx, catalogs:all, "
        "catalogs:allauth, catalogs:cms, catalogs:jupyterlab or catalogs:extra"
    )
    config = config_for(tmp_path, {"path": "catalogs:django-components", "split": "train"}, task="embeddings")
    with pytest.raises(ConfigError) as error:
        read_pairs(config.data.train, config, tokenizer=None)
    assert str(error.value) == (
        f"{tmp_path / 'run.yaml'}: data.train 'catalogs:django-components': "
        "the embeddings task reads translation pairs: catalogs:django, catalogs:sphinx, catalogs:all, catalogs:allauth, "
        "catalogs:cms, catalogs:jupyterlab or catalogs:extra"
    )
    with pytest.raises(DataError) as error:
        load_source("catalogs:nothing")
    assert str(error.value) == (
        "unknown built-in source 'catalogs:nothing'; expected one of "
        "catalogs:django, catalogs:sphinx, catalogs:all, catalogs:allauth, catalogs:cms, catalogs:jupyterlab, catalogs:extra, "
        "catalogs:django-components"
    )
    with pytest.raises(DataError) as error:
        corpus_texts_by_language(["catalogs:django-components"], ["de"])
    assert str(error.value) == (
        "unknown corpus 'catalogs:django-components'; expected catalogs:django, catalogs:sphinx, catalogs:all, "
        "catalogs:allauth, catalogs:cms, catalogs:jupyterlab, catalogs:extra or a file"
    )


# ---------------------------------------------------------------------------------------------
# Parallel pairs.


def test_pairs_from_a_file_and_from_the_catalogs_have_one_layout(tmp_path, wordpiece_tokenizer) -> None:
    pytest.importorskip("django")
    write_jsonl(tmp_path / "pairs.jsonl", ROWS)
    train = {
        "path": "pairs.jsonl",
        "text_column": "english",
        "translation_column": "sentence",
        "lang_column": "language",
        "languages": ["fr"],
    }
    config = config_for(tmp_path, train, task="embeddings")
    from_file = read_pairs(config.data.train, config, tokenizer=wordpiece_tokenizer)
    assert set(from_file.column_names) == {"text", "translation", "lang"}
    assert (col(from_file, "text"), col(from_file, "translation"), col(from_file, "lang")) == (["a train"], ["a train"], ["fr"])

    pairs = []
    for split in ("train", "dev", "test"):
        config = config_for(tmp_path, {"path": "catalogs:django", "split": split, "languages": ["de"]}, task="embeddings")
        from_catalogs = read_pairs(config.data.train, config, tokenizer=None)
        assert set(from_catalogs.column_names) == {"text", "translation", "lang"}
        assert set(col(from_catalogs, "lang")) == {"de"}
        pairs += zip(col(from_catalogs, "text"), col(from_catalogs, "translation"), strict=True)
    # entries of django/contrib/admin/locale/de/LC_MESSAGES/django.po: the English source is the text
    assert {("Delete", "Löschen"), ("Log out", "Abmelden")} <= set(pairs)


# ---------------------------------------------------------------------------------------------
# Corpora for vocabulary trimming.


def test_corpus_texts_by_language_reads_files(tmp_path) -> None:
    (tmp_path / "de.txt").write_text("das haus\n\n  die katze  \n", encoding="utf-8")
    write_jsonl(
        tmp_path / "mixed.jsonl",
        [
            {"text": "le chat", "lang": "fr"},
            {"text": "дом", "lang": "ru"},
            {"text": "la maison", "lang": "FR"},
        ],
    )
    (tmp_path / "plain.csv").write_text("text\nim garten\n", encoding="utf-8")
    texts = corpus_texts_by_language(
        [f"de={tmp_path / 'de.txt'}", str(tmp_path / "mixed.jsonl"), str(tmp_path / "plain.csv")], ["de", "fr"]
    )
    assert texts == {"de": ["das haus", "die katze"], "fr": ["le chat", "la maison"], UNTAGGED: ["im garten"]}

    with pytest.raises(DataError, match="es"):
        corpus_texts_by_language([f"de={tmp_path / 'de.txt'}"], ["de", "es"])
    with pytest.raises(DataError, match="does not exist"):
        corpus_texts_by_language([str(tmp_path / "missing.txt")], ["de"])
    with pytest.raises(DataError, match="^languages: "):
        corpus_texts_by_language([str(tmp_path / "mixed.jsonl")], ["klingon"])


def test_text_corpora_are_utf8_with_or_without_a_byte_order_mark(tmp_path) -> None:
    (tmp_path / "bom.txt").write_bytes(b"\xef\xbb\xbfdas haus\r\ndie katze\r\n")
    assert corpus_texts_by_language([f"de={tmp_path / 'bom.txt'}"], ["de"]) == {"de": ["das haus", "die katze"]}
    (tmp_path / "latin1.txt").write_bytes("das haus\ngrüße\n".encode("latin-1"))
    with pytest.raises(DataError) as error:
        corpus_texts_by_language([f"de={tmp_path / 'latin1.txt'}"], ["de"])
    # 'das haus\n' is 9 bytes, 'gr' 2 more: the ü (0xFC) is at byte 11, on line 2
    assert str(error.value).startswith(f"{tmp_path / 'latin1.txt'}, line 2: not UTF-8 text: byte 0xFC at byte offset 11")
    assert "iconv -f CP1252 -t UTF-8" in str(error.value)


def test_corpus_from_the_catalogs_is_the_translated_side_and_english_for_en() -> None:
    pytest.importorskip("django")
    texts = corpus_texts_by_language(["catalogs:django"], ["de", "en"])
    assert list(texts) == ["de", "en"]
    assert "Löschen" in texts["de"] and "Delete" not in texts["de"]
    assert "Delete" in texts["en"] and len(texts["en"]) == len(set(texts["en"]))


def test_a_bad_data_file_is_named_with_the_config_line_that_gave_it(tmp_path, wordpiece_tokenizer) -> None:
    from polydistill.config import load_config

    (tmp_path / "folder.jsonl").mkdir()
    (tmp_path / "run.yaml").write_text("teacher:\n  model: teacher-dir\ndata:\n  max_length: 16\n  train:\n    path: folder.jsonl\n")
    config = load_config(tmp_path / "run.yaml")
    with pytest.raises(DataError) as error:
        read_labelled(config.data.train, config, tokenizer=wordpiece_tokenizer, label_names=None)
    first, second = str(error.value).split("\n", 1)
    assert first == f"{tmp_path / 'run.yaml'}:6: data.train 'folder.jsonl':"
    assert second.startswith(f"{tmp_path / 'folder.jsonl'}: a directory")


# ---------------------------------------------------------------------------------------------
# The source language kept among the student's inputs.


def _translations():
    from datasets import ClassLabel, Dataset, Features, Value

    rows = [
        ("die Katze", "the cat", 0, "de"),
        ("le chat", "the cat", 0, "fr"),
        ("neko", "the cat", 0, "ja"),
        ("ein Hund", "a dog", 1, "de"),
        ("un chien", "a dog", 0, "fr"),  # a stray label: the majority of the source's translations wins
        ("inu", "a dog", 1, "ja"),
        ("a bird", "a bird", 1, "en"),  # the student reads this source already
    ]
    features = Features(
        {"text": Value("string"), "teacher_text": Value("string"), "label": ClassLabel(names=["pet", "other"]), "lang": Value("string")}
    )
    return Dataset.from_dict(
        {"text": [r[0] for r in rows], "teacher_text": [r[1] for r in rows], "label": [r[2] for r in rows], "lang": [r[3] for r in rows]},
        features=features,
    )


def test_source_texts_join_the_student_inputs_once_each(tmp_path) -> None:
    from polydistill.config import DataSourceConfig
    from polydistill.data.sources import with_source_rows

    source = DataSourceConfig(path="x.jsonl", teacher_text_column="en", source_language="en")
    dataset = with_source_rows(_translations(), source)
    texts = col(dataset, "text")
    assert [texts.count(text) for text in ("the cat", "a dog", "a bird")] == [1, 1, 1]
    added = dataset.select(range(7, len(dataset)))
    assert col(added, "text") == col(added, "teacher_text") == ["the cat", "a dog"]
    assert col(added, "label") == [0, 1] and col(added, "lang") == ["en", "en"]
    assert dataset.features == _translations().features

    assert len(with_source_rows(_translations(), source.model_copy(update={"source_as_input": False}))) == 7
    assert len(with_source_rows(_translations(), source.model_copy(update={"languages": ["de", "fr"]}))) == 7
    untagged = with_source_rows(_translations(), source.model_copy(update={"source_language": None}))
    assert col(untagged, "lang")[7:] == ["und", "und"]
