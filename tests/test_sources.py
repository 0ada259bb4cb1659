"""One data-source layer: built-in catalogs and users' files, read for runs, embeddings and trimming.

Files are written here, small, with rows whose fate (kept, filtered, relabelled) is known by hand;
the catalog tests read Django's installed catalogs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from polydistill.config import RunConfig, validate_config
from polydistill.data.sources import (
    TEACHER_TEXT,
    UNTAGGED,
    corpus_texts_by_language,
    is_builtin,
    load_source,
    read_labelled,
    read_pairs,
)
from polydistill.errors import ConfigError, DataError

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


def test_unknown_catalog_names_list_the_built_in_sources(tmp_path) -> None:
    config = config_for(tmp_path, {"path": "catalogs:nothing", "split": "train"})
    where = f"{tmp_path / 'run.yaml'}: data source 'catalogs:nothing'"
    with pytest.raises(ConfigError) as error:
        read_labelled(config.data.train, config, tokenizer=None, label_names=None)
    assert str(error.value) == (
        f"{where}: unknown built-in source; expected catalogs:django-components, catalogs:django, catalogs:sphinx or catalogs:all"
    )
    config = config_for(tmp_path, {"path": "catalogs:django-components", "split": "train"}, task="embeddings")
    with pytest.raises(ConfigError) as error:
        read_pairs(config.data.train, config, tokenizer=None)
    assert str(error.value) == (
        f"{tmp_path / 'run.yaml'}: data source 'catalogs:django-components': "
        "the embeddings task reads translation pairs: catalogs:django, catalogs:sphinx or catalogs:all"
    )
    with pytest.raises(DataError) as error:
        load_source("catalogs:nothing")
    assert str(error.value) == (
        "unknown built-in source 'catalogs:nothing'; expected one of "
        "catalogs:django, catalogs:sphinx, catalogs:all, catalogs:django-components"
    )
    with pytest.raises(DataError) as error:
        corpus_texts_by_language(["catalogs:django-components"], ["de"])
    assert str(error.value) == (
        "unknown corpus 'catalogs:django-components'; expected catalogs:django, catalogs:sphinx, catalogs:all or a file"
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


def test_pairs_from_a_file_need_the_translation_column(tmp_path, wordpiece_tokenizer) -> None:
    write_jsonl(tmp_path / "pairs.jsonl", ROWS)
    config = config_for(tmp_path, {"path": "pairs.jsonl", "text_column": "english"}, task="embeddings")
    with pytest.raises(ConfigError) as error:
        read_pairs(config.data.train, config, tokenizer=wordpiece_tokenizer)
    assert str(error.value) == (
        f"{tmp_path / 'run.yaml'}: data source 'pairs.jsonl': "
        "translation_column: the embeddings task needs the column holding the translation"
    )


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


def test_corpus_from_the_catalogs_is_the_translated_side_and_english_for_en() -> None:
    pytest.importorskip("django")
    texts = corpus_texts_by_language(["catalogs:django"], ["de", "en"])
    assert list(texts) == ["de", "en"]
    assert "Löschen" in texts["de"] and "Delete" not in texts["de"]
    assert "Delete" in texts["en"] and len(texts["en"]) == len(set(texts["en"]))
