"""Several data sources in one run: read, validated (errors name the source), pooled, and drawn
by their stated shares.

The files are tiny and written here, so which row comes from where, and what each pooled column
must hold, is known by hand.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from polydistill.config import validate_config
from polydistill.data.sampling import LanguageBalancedSampler
from polydistill.data.sources import SOURCE_INDEX, TEACHER_TEXT, require_gold_labels
from polydistill.errors import ConfigError, DataError
from polydistill.tasks import get_task
from polydistill.training.features import tokenize_for_distillation

LABELLED_EN = [
    {"text": "the cat sleeps", "label": "animal", "lang": "en"},
    {"text": "a red car", "label": "vehicle", "lang": "en"},
]
TRANSLATIONS = [  # unlabelled: the teacher reads the English source
    {"text": "die katze schläft", "en": "the cat sleeps", "lang": "de"},
    {"text": "un coche rojo", "en": "a red car", "lang": "es"},
    {"text": "le chat dort", "en": "the cat sleeps", "lang": "fr"},
]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


def config_with(tmp_path: Path, train, *, evaluation=None, objectives=None, text: str | None = None):
    write_jsonl(tmp_path / "en.jsonl", LABELLED_EN)
    write_jsonl(tmp_path / "translations.jsonl", TRANSLATIONS)
    raw = {"teacher": {"model": "teacher-dir"}, "data": {"train": train, "max_length": 16}}
    if evaluation is not None:
        raw["data"]["eval"] = evaluation
    if objectives is not None:
        raw["objectives"] = objectives
    return validate_config(raw, source_file=tmp_path / "run.yaml", source_text=text)


EN = {"path": "en.jsonl", "lang_column": "lang"}
TRANSLATED = {"path": "translations.jsonl", "lang_column": "lang", "teacher_text_column": "en", "source_as_input": False}


def read_train(config, tokenizer, label_names=("animal", "vehicle")):
    teacher_config = type("Config", (), {"id2label": dict(enumerate(label_names)), "num_labels": len(label_names)})()
    return get_task("classification").read_data(config, tokenizer=tokenizer, teacher_config=teacher_config).train


def test_sources_are_pooled_with_their_own_columns_and_missing_ones_filled(tmp_path, wordpiece_tokenizer) -> None:
    config = config_with(tmp_path, [EN, TRANSLATED])
    train = read_train(config, wordpiece_tokenizer)
    rows = train.to_list()
    assert [row[SOURCE_INDEX] for row in rows] == [0, 0, 1, 1, 1]
    # the English source has no teacher column: its teacher reads the text itself
    assert [row[TEACHER_TEXT] for row in rows] == ["the cat sleeps", "a red car", "the cat sleeps", "a red car", "the cat sleeps"]
    # labels of the first source by the teacher's names; the translations have none (-1)
    assert [row["label"] for row in rows] == [0, 1, -1, -1, -1]
    assert [row["lang"] for row in rows] == ["en", "en", "de", "es", "fr"]
    features = tokenize_for_distillation(train, wordpiece_tokenizer, teacher_text_column=TEACHER_TEXT)
    assert features["labels"] == [0, 1, -100, -100, -100]  # what the labels objective ignores
    assert features["token_aligned"] == [True, True, False, False, False]  # the English rows match token by token
    assert set(features.column_names) >= {SOURCE_INDEX, "lang"}


def test_one_source_stays_as_it_was(tmp_path, wordpiece_tokenizer) -> None:
    train = read_train(config_with(tmp_path, EN), wordpiece_tokenizer)
    assert SOURCE_INDEX not in train.column_names and len(train) == 2


def test_weights_become_shares_and_are_all_or_none(tmp_path) -> None:
    config = config_with(tmp_path, [EN | {"weight": 1}, TRANSLATED | {"weight": 3}])
    assert config.data.source_shares == [0.25, 0.75]
    assert config_with(tmp_path, [EN, TRANSLATED]).data.source_shares is None
    text = "data:\n  train:\n    - path: en.jsonl\n      weight: 1\n    - path: translations.jsonl\n"
    with pytest.raises(ConfigError, match=r"run.yaml:5: data.train.1.weight: give every training source a weight, or none"):
        config_with(tmp_path, [EN | {"weight": 1}, TRANSLATED], text=text)
    with pytest.raises(ConfigError, match=r"data.eval.0.weight: weight is a share of training examples"):
        config_with(tmp_path, EN, evaluation=[EN | {"weight": 1}])
    with pytest.raises(ConfigError, match=r"data.train: List should have at least 1 item"):
        config_with(tmp_path, [])


def test_errors_name_the_source_of_the_list(tmp_path, wordpiece_tokenizer) -> None:
    text = "data:\n  train:\n    - path: en.jsonl\n    - path: missing.jsonl\n"
    with pytest.raises(ConfigError, match=r"run.yaml:4: data.train.1.path: file 'missing.jsonl' does not exist"):
        config_with(tmp_path, [EN, {"path": "missing.jsonl"}], text=text)
    text = "data:\n  train:\n    - path: en.jsonl\n    - path: translations.jsonl\n      text_colum: x\n"
    with pytest.raises(
        ConfigError, match=r"run.yaml:5: data.train.1.text_colum: unknown key 'text_colum'; expected one of: path, text_column"
    ):
        config_with(tmp_path, [EN, TRANSLATED | {"text_colum": "x"}], text=text)
    bad = TRANSLATED | {"teacher_text_column": "english"}
    text = "data:\n  train:\n    - path: en.jsonl\n    - path: translations.jsonl\n"
    with pytest.raises(
        DataError, match=r"run.yaml:4: data.train.1 'translations.jsonl':\n.*translations.jsonl, line 1: missing column 'english'"
    ):
        read_train(config_with(tmp_path, [EN, bad], text=text), wordpiece_tokenizer)


def test_gold_labels_from_one_source_suffice(tmp_path) -> None:
    require_gold_labels(config_with(tmp_path, [EN, TRANSLATED], objectives={"labels": {}}))
    unlabelled = TRANSLATED | {"label_column": None}
    with pytest.raises(ConfigError, match=r"objectives.labels needs gold labels"):
        config_with(tmp_path, [unlabelled, unlabelled], objectives={"labels": {}})


def test_several_eval_sources_are_separate_test_sets_the_first_primary(tmp_path, wordpiece_tokenizer) -> None:
    config = config_with(tmp_path, EN, evaluation=[EN, EN | {"name": "again"}])
    teacher_config = type("Config", (), {"id2label": {0: "animal", 1: "vehicle"}, "num_labels": 2})()
    data = get_task("classification").read_data(config, tokenizer=wordpiece_tokenizer, teacher_config=teacher_config)
    assert data.evaluation["label"] == [0, 1]  # the primary set alone, not the two pooled
    assert [(s.name, s.field, s.source, s.dataset["label"]) for s in data.evaluation_sets] == [
        ("en", "data.eval.0", "en.jsonl", [0, 1]),
        ("again", "data.eval.1", "en.jsonl", [0, 1]),
    ]


def test_the_sampler_draws_each_source_by_its_share() -> None:
    # source 0: 10 rows of en; source 1: 990 rows over three languages. Shares 0.3 / 0.7.
    langs = ["en"] * 10 + ["de"] * 900 + ["fr"] * 60 + ["ja"] * 30
    sources = [0] * 10 + [1] * 990
    sampler = LanguageBalancedSampler(langs, alpha=0.0, num_samples=20000, seed=3, sources=sources, source_shares=[0.3, 0.7])
    drawn = Counter(sources[index] for index in sampler)
    assert abs(drawn[0] / 20000 - 0.3) < 0.015  # binomial sd ~0.003
    by_language = Counter(langs[index] for index in sampler if sources[index] == 1)
    for code in ("de", "fr", "ja"):  # alpha 0: the languages of source 1 equally often
        assert abs(by_language[code] / sum(by_language.values()) - 1 / 3) < 0.02
    assert sampler.probabilities == pytest.approx({"en": 0.3, "de": 0.7 / 3, "fr": 0.7 / 3, "ja": 0.7 / 3})
    with pytest.raises(ValueError, match="sum to 1"):
        LanguageBalancedSampler(langs, 1.0, sources=sources, source_shares=[0.5, 0.6])


def test_the_sampler_without_sources_is_unchanged() -> None:
    langs = ["a"] * 5 + ["b"] * 20
    with_one_source = LanguageBalancedSampler(langs, 0.5, seed=1, sources=[0] * 25, source_shares=[1.0])
    assert list(LanguageBalancedSampler(langs, 0.5, seed=1)) == list(with_one_source)


def test_trimming_corpus_files_resolve_beside_the_config_and_are_checked_first(tmp_path) -> None:
    (tmp_path / "corpus").mkdir()
    write_jsonl(tmp_path / "corpus" / "de.jsonl", [{"text": "hallo"}])
    raw = {"teacher": {"model": "t"}, "data": {"train": EN}}
    raw["student"] = {"trim_vocabulary": {"languages": ["en", "de"], "corpus": ["catalogs:all", "de=corpus/de.jsonl", "corpus/de.jsonl"]}}
    write_jsonl(tmp_path / "en.jsonl", LABELLED_EN)
    config = validate_config(raw, source_file=tmp_path / "run.yaml")
    assert [config.resolve_corpus(spec) for spec in config.student.trim_vocabulary.corpus] == [
        "catalogs:all",
        f"de={tmp_path / 'corpus' / 'de.jsonl'}",
        str(tmp_path / "corpus" / "de.jsonl"),
    ]
    raw["student"]["trim_vocabulary"]["corpus"] = ["catalogs:all", "de=corpus/missing.jsonl"]
    with pytest.raises(ConfigError, match=r"student.trim_vocabulary.corpus.1: file 'de=corpus/missing.jsonl' does not exist"):
        validate_config(raw, source_file=tmp_path / "run.yaml")


def test_the_saved_config_names_every_source_absolutely_and_validates_again(tmp_path) -> None:
    from polydistill.training.provenance import resolved_config

    config = config_with(tmp_path, [EN | {"weight": 1}, TRANSLATED | {"weight": 1}], evaluation=[EN])
    saved = resolved_config(config, tmp_path / "out")
    assert [source["path"] for source in saved["data"]["train"]] == [str(tmp_path / "en.jsonl"), str(tmp_path / "translations.jsonl")]
    assert saved["data"]["eval"][0]["path"] == str(tmp_path / "en.jsonl")
    again = validate_config(saved, source_file=tmp_path / "elsewhere" / "config.yaml")
    assert again.data.source_shares == [0.5, 0.5]


def test_a_source_left_empty_by_its_language_filter_is_named(tmp_path, wordpiece_tokenizer) -> None:
    config = config_with(tmp_path, [EN, {**TRANSLATED, "languages": ["ja"]}])
    with pytest.raises(DataError, match=r"^data\.train\.1 'translations\.jsonl': no rows in ja; expected at least one example"):
        read_train(config, wordpiece_tokenizer)
