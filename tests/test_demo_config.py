"""`polydistill demo`'s config: the recipe with the command line's languages applied to every data source."""

from __future__ import annotations

from pathlib import Path

from polydistill.commands.demo import _with_languages, demo_config_dict, recipe_path
from polydistill.config import validate_config

DEMO_LANGUAGES = ["en", "de", "fr", "es", "pt-BR", "ru", "uk", "ar", "hi", "ja", "zh-Hans", "ko", "sw"]


def test_the_classification_recipe_holds_out_sphinx_in_the_demo_languages_it_translates_into() -> None:
    from polydistill.data.catalogs import catalog_pairs

    raw = demo_config_dict("classification", languages=None, quick=False)
    primary, sphinx = raw["data"]["eval"]
    assert primary == {"path": "catalogs:django-components", "split": "test", "languages": DEMO_LANGUAGES}
    assert (sphinx["path"], sphinx["name"]) == ("catalogs:sphinx", "sphinx")
    # every demo language Sphinx has a catalog of, in its tag there (uk is uk-UA), and English, its source
    tags = set(catalog_pairs("sphinx")["lang"])
    expected = ["en"] + [
        next(tag for tag in sorted(tags) if tag == code or tag.startswith(code + "-")) for code in DEMO_LANGUAGES[1:] if code != "sw"
    ]
    assert sphinx["languages"] == expected and "uk-UA" in expected and not any(tag.startswith("sw") for tag in tags)
    validate_config(raw, source_file=Path(str(recipe_path("classification"))))


def test_requested_languages_narrow_the_primary_source_and_only_filter_the_others() -> None:
    raw = demo_config_dict("classification", languages=["de", "uk", "sw"], quick=True)
    assert raw["data"]["train"]["languages"] == ["en", "de", "uk", "sw"]
    primary, sphinx = raw["data"]["eval"]
    assert primary["languages"] == ["en", "de", "uk", "sw"]
    assert sphinx["languages"] == ["en", "de", "uk-UA"]  # its own spelling kept; sw, which it lacks, never added
    assert demo_config_dict("classification", languages=["zh"], quick=True)["data"]["eval"][1]["languages"] == ["en"]  # zh-Hans is not zh
    # the embeddings recipe's primary sources, without English (pairs have it on one side)
    embeddings = demo_config_dict("embeddings", languages=["de"], quick=True)["data"]
    for sources in (embeddings["train"], embeddings["eval"]):
        assert (sources[0] if isinstance(sources, list) else sources)["languages"] == ["de"]


def test_a_later_source_left_without_a_requested_language_is_dropped() -> None:
    sources = [{"path": "a", "languages": ["en", "ja"]}, {"path": "b", "languages": ["ja", "pt-PT"]}, {"path": "c", "languages": ["ko"]}]
    assert _with_languages(sources, ["en", "pt"]) == [{"path": "a", "languages": ["en", "pt"]}, {"path": "b", "languages": ["pt-PT"]}]
    assert _with_languages({"path": "a"}, ["de"]) == {"path": "a", "languages": ["de"]}
