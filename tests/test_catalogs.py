"""Translation catalogs as data: pairs, components, splits by source, language codes.

The catalog tests read the Django and Sphinx packages installed with polydistill's ``offline``
extra; counts are checked against an independent count of the same ``.po`` files with polib.
"""

from __future__ import annotations

import importlib.util
import json
import re
import statistics
from collections import Counter, defaultdict
from pathlib import Path

import datasets
import polib
import pytest

from polydistill.cli import main
from polydistill.data import catalogs
from polydistill.data.catalogs import (
    catalog_classification,
    catalog_pairs,
    catalog_pairs_splits,
    split_by_source,
    strip_placeholders,
)
from polydistill.data.languages import is_known_language, language_name, normalize_language, normalize_languages
from polydistill.data.sources import BUILTIN_SOURCES, PAIR_CATALOGS, load_source
from polydistill.errors import ConfigError, DataError

pytest.importorskip("django")
pytest.importorskip("sphinx")

DJANGO = Path(next(iter(importlib.util.find_spec("django").submodule_search_locations)))
BCP47 = re.compile(r"^[a-z]{2,3}(-[A-Z][a-z]{3})?(-([A-Z]{2}|\d{3}))?(-[a-z0-9]{5,8})*$")
LEFTOVER_PLACEHOLDER = re.compile(r"%\(\w+\)|%[-+#0]*\d*(\.\d+)?[sdifrxX]\b|\{\w*\}|\$\{|</?[a-zA-Z][^<>]*>")


@pytest.fixture(scope="module")
def django_pairs() -> datasets.Dataset:
    return catalog_pairs("django")


@pytest.fixture(scope="module")
def all_pairs() -> datasets.Dataset:
    return catalog_pairs("all")


def col(dataset: datasets.Dataset, name: str) -> list:
    """A whole column at once (``dataset[name]`` reads row by row in datasets 4+)."""
    return dataset.select_columns([name])[:][name]


def translated_entries(language_dir: str) -> int:
    """Independent count: translated, not fuzzy, not obsolete entries of one Django language."""
    count = 0
    for path in DJANGO.glob(f"**/locale/{language_dir}/LC_MESSAGES/*.po"):
        for entry in polib.pofile(str(path)):
            if not entry.obsolete and "fuzzy" not in entry.flags and entry.translated():
                count += 1
    return count


# ---------------------------------------------------------------------------------------------
# Language codes.


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("de", "de"),
        ("pt_BR", "pt-BR"),
        ("PT-br", "pt-BR"),
        ("zh_Hans", "zh-Hans"),
        ("zh_CN", "zh-Hans"),
        ("zh_TW", "zh-Hant"),
        ("zh_TW.Big5", "zh-Hant"),
        ("zh_HK", "zh-Hant-HK"),
        ("sr@latin", "sr-Latn"),
        ("sr_Latn", "sr-Latn"),
        ("ca@valencia", "ca-valencia"),
        ("es_419", "es-419"),
        ("iw", "he"),
        ("deu", "de"),
        ("fr_FR.UTF-8", "fr-FR"),
    ],
)
def test_normalize_language(code: str, expected: str) -> None:
    assert normalize_language(code) == expected


@pytest.mark.parametrize("code", ["xx", "klingon", "de-XX", "en-Abcd", "", "de_DE@nonsense", "d e"])
def test_unknown_language_codes_are_refused(code: str) -> None:
    with pytest.raises(ValueError):
        normalize_language(code)
    assert not is_known_language(code)


def test_normalize_languages_keeps_order_once_each_and_names_the_bad_code() -> None:
    assert normalize_languages(["pt_BR", "de", "PT-br", "zh_CN"]) == ["pt-BR", "de", "zh-Hans"]
    assert normalize_languages("de, fr ja") == ["de", "fr", "ja"]
    with pytest.raises(DataError, match="^languages: .*klingon"):
        normalize_languages(["de", "klingon"])


def test_language_names() -> None:
    assert language_name("pt-BR") == "Portuguese (Brazil)"
    assert language_name("zh-Hans") == "Chinese (Simplified)"


# ---------------------------------------------------------------------------------------------
# Cleaning.


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("Add %(name)s", "Add"),
        ("Select %s to change", "Select to change"),
        ("Deleted {name} “{object}”.", "Deleted."),
        ("The {name} “{obj}” was added successfully.", "The was added successfully."),
        ("Search template <q>%(name)s</q>:", "Search template"),
        ('<a href="{}">this form</a>', "this form"),
        (
            "Ensure this value has at most %(limit_value)d characters (it has %(show_value)d).",
            "Ensure this value has at most characters (it has).",
        ),
        ("%(value).1f million", "million"),
        ("Found ${resultCount} page(s)", "Found page(s)"),
        ("50%% of %s", "50% of"),
        ("Fish &amp; chips", "Fish & chips"),
        ("(Hidden field %(name)s)", "(Hidden field)"),
        ("%s", ""),
    ],
)
def test_strip_placeholders(message: str, expected: str) -> None:
    assert strip_placeholders(message) == expected


# ---------------------------------------------------------------------------------------------
# Pairs.


def test_django_languages_are_its_locale_directories(django_pairs: datasets.Dataset) -> None:
    directories = {path.parent.parent.name for path in DJANGO.glob("**/locale/*/LC_MESSAGES/*.po")} - {"en"}
    # Django already names its locales like BCP 47 with "_": pt_BR, zh_Hans, sr_Latn
    expected = {name.replace("_", "-") for name in directories}
    assert set(col(django_pairs, "lang")) == expected
    assert len(expected) == 98


@pytest.mark.parametrize("language_dir", ["de", "ja", "pt_BR", "zh_Hans", "ar", "sw", "am"])
def test_pair_counts_are_plausible_against_the_catalogs(django_pairs: datasets.Dataset, language_dir: str) -> None:
    raw = translated_entries(language_dir)
    pairs = Counter(col(django_pairs, "lang"))[language_dir.replace("_", "-")]
    # cleaning drops placeholder-only messages and deduplicates, and never adds
    assert 0.8 * raw <= pairs <= raw


def test_django_corpus_size(django_pairs: datasets.Dataset) -> None:
    counts = Counter(col(django_pairs, "lang"))
    assert 55_000 <= len(django_pairs) <= 70_000
    assert 650 <= statistics.median(counts.values()) <= 900
    assert 70 <= sum(count >= 500 for count in counts.values()) <= 85


def test_pairs_have_no_placeholders_and_normalised_languages(all_pairs: datasets.Dataset) -> None:
    pairs = all_pairs
    for en, text in zip(col(pairs, "text"), col(pairs, "translation"), strict=True):
        assert not LEFTOVER_PLACEHOLDER.search(en), en
        assert not LEFTOVER_PLACEHOLDER.search(text), text
        assert en.strip() and text.strip()
    languages = set(col(pairs, "lang"))
    assert all(BCP47.match(lang) for lang in languages), sorted(languages)
    assert all(normalize_language(lang) == lang for lang in languages)
    assert {"zh-Hans", "zh-Hant", "pt-BR", "sr-Latn", "ca-valencia"} <= languages
    assert not any("_" in lang or "@" in lang for lang in languages)
    assert set(col(pairs, "origin")) == {"django", "sphinx"}


def test_pairs_are_deduplicated(all_pairs: datasets.Dataset) -> None:
    pairs = all_pairs
    keys = list(zip(col(pairs, "lang"), col(pairs, "text"), col(pairs, "translation"), strict=True))
    assert len(keys) == len(set(keys))


def test_source_id_is_one_per_english_message(django_pairs: datasets.Dataset) -> None:
    english_of: dict[str, set[str]] = defaultdict(set)
    for source, en in zip(col(django_pairs, "source_id"), col(django_pairs, "text"), strict=True):
        english_of[source].add(re.sub(r"[\s.:;,!?…]+$", "", en.casefold()))
    assert all(len(variants) == 1 for variants in english_of.values())


def test_languages_and_min_pairs_filters(django_pairs: datasets.Dataset) -> None:
    chosen = catalog_pairs("django", languages=["de", "pt_BR", "zh_Hans"])
    assert set(col(chosen, "lang")) == {"de", "pt-BR", "zh-Hans"}
    counts = Counter(col(django_pairs, "lang"))
    large = catalog_pairs("django", min_pairs=500)
    assert set(col(large, "lang")) == {lang for lang, count in counts.items() if count >= 500}
    with pytest.raises(DataError, match="klingon"):
        catalog_pairs("django", languages=["klingon"])
    with pytest.raises(DataError, match="no django catalog translates into"):
        catalog_pairs("django", languages=["yo"])  # a real language Django does not ship


def test_pair_splits_keep_every_english_source_in_one_split(all_pairs: datasets.Dataset) -> None:
    splits = catalog_pairs_splits("all", seed=7, split_sizes=(0.8, 0.1, 0.1))
    assert list(splits) == ["train", "dev", "test"]
    english = {name: {en.casefold() for en in col(split, "text")} for name, split in splits.items()}
    sources = {name: set(col(split, "source_id")) for name, split in splits.items()}
    texts = {name: set(zip(col(split, "lang"), col(split, "translation"), strict=True)) for name, split in splits.items()}
    for first, second in [("train", "dev"), ("train", "test"), ("dev", "test")]:
        assert not sources[first] & sources[second]
        assert not english[first] & english[second]
        assert not texts[first] & texts[second]
    total = sum(len(s) for s in sources.values())
    assert 0.7 < len(sources["train"]) / total < 0.9
    assert sum(len(split) for split in splits.values()) == len(all_pairs)


def test_pairs_have_the_parallel_layout_english_text_and_its_translation() -> None:
    pairs = catalog_pairs("django", languages=["de"])
    assert pairs.column_names == ["text", "translation", "lang", "source_id", "origin", "component"]
    # entries of django/contrib/admin/locale/de/LC_MESSAGES/django.po, read by hand
    found = set(zip(col(pairs, "text"), col(pairs, "translation"), strict=True))
    assert {("Delete", "Löschen"), ("Log out", "Abmelden"), ("Change password", "Passwort ändern")} <= found
    assert set(col(pairs, "lang")) == {"de"}


# ---------------------------------------------------------------------------------------------
# Classification by component.


def test_classification_labels_components() -> None:
    splits = catalog_classification(languages=["de", "fr", "ja"], seed=0)
    names = splits["train"].features["label"].names
    assert names == ["conf", "contrib/admin", "contrib/admindocs", "contrib/auth", "contrib/humanize", "other"]
    label_of_source: dict[str, set[int]] = defaultdict(set)
    for split in splits.values():
        for source, label, lang, text, en in zip(
            col(split, "source_id"), col(split, "label"), col(split, "lang"), col(split, "text"), col(split, "en"), strict=True
        ):
            label_of_source[source].add(label)
            assert lang in {"en", "de", "fr", "ja"}
            if lang == "en":
                assert text == en
    assert all(len(labels) == 1 for labels in label_of_source.values())  # same label in every language
    split_sources = [set(col(split, "source_id")) for split in splits.values()]
    assert not (split_sources[0] & split_sources[1] or split_sources[0] & split_sources[2] or split_sources[1] & split_sources[2])
    for split in splits.values():  # stratified: every component reaches every split
        assert set(col(split, "label")) == set(range(len(names)))


def test_conf_strings_are_labelled_conf() -> None:
    # independent: an English message only ever found in django/conf catalogs is 'conf'
    conf_only = {"January", "Monday", "Enter a valid email address.", "Welsh"}
    splits = catalog_classification(languages=["de"])
    names = splits["train"].features["label"].names
    seen = {}
    for split in splits.values():
        for text, lang, label in zip(col(split, "text"), col(split, "lang"), col(split, "label"), strict=True):
            if lang == "en" and text in conf_only:
                seen[text] = names[label]
    assert seen == {text: "conf" for text in conf_only}


def test_small_components_merge_into_other() -> None:
    contrib = {path.parent.relative_to(DJANGO).as_posix() for path in DJANGO.glob("**/locale")}
    everything = catalog_classification(languages=["de"], min_component_size=0)
    assert set(everything["train"].features["label"].names) == contrib
    merged = catalog_classification(languages=["de"], min_component_size=10**6)
    assert merged["train"].features["label"].names == ["other"]


def test_component_of_a_shared_message_is_decided_by_most_languages() -> None:
    Entry = catalogs._CatalogEntry
    entries = [
        Entry("django", "contrib/auth", "de", "Password", "Passwort"),
        Entry("django", "contrib/auth", "fr", "Password", "Mot de passe"),
        Entry("django", "contrib/admin", "de", "Password", "Passwort"),
        Entry("django", "contrib/b", "de", "Tie", "x"),
        Entry("django", "contrib/a", "fr", "Tie", "y"),
    ]
    components = catalogs._assign_components(entries)
    assert components[catalogs.source_id_for("Password")] == "contrib/auth"
    assert components[catalogs.source_id_for("Tie")] == "contrib/a"  # tie: first name


def test_classification_is_reproducible() -> None:
    first = catalog_classification(languages=["de"], seed=3)
    second = catalog_classification(languages=["de"], seed=3)
    other = catalog_classification(languages=["de"], seed=4)
    assert col(first["test"], "source_id") == col(second["test"], "source_id")
    assert set(col(first["test"], "source_id")) != set(col(other["test"], "source_id"))


def test_load_source_names() -> None:
    assert isinstance(load_source("catalogs:sphinx", languages=["de"]), datasets.Dataset)
    assert isinstance(load_source("catalogs:django", languages=["de"], split=True), datasets.DatasetDict)
    assert isinstance(load_source("catalogs:django-components", languages=["de"]), datasets.DatasetDict)


# ---------------------------------------------------------------------------------------------
# split_by_source on a small table written here.


def small_table() -> datasets.Dataset:
    rows = {"text": [], "lang": [], "source_id": [], "label": []}
    for source in range(20):
        for lang in ("de", "fr"):
            rows["text"].append(f"{lang}-{source}")
            rows["lang"].append(lang)
            rows["source_id"].append(f"s{source:02d}")
            rows["label"].append(source % 2)
    # s00 and s01 share a German translation: they must stay together
    rows["text"][2] = rows["text"][0]
    return datasets.Dataset.from_dict(rows)


def test_split_by_source_sizes_and_leaks() -> None:
    splits = split_by_source(small_table(), seed=0, sizes=(0.6, 0.2, 0.2))
    sources = {name: set(col(split, "source_id")) for name, split in splits.items()}
    assert sum(len(value) for value in sources.values()) == 20
    assert any({"s00", "s01"} <= value for value in sources.values())
    # 19 groups (s00 and s01 are one): 0.6/0.2/0.2 of 19 is 11.4/3.8/3.8 -> 11/4/4 groups
    groups = {name: len(value) - ({"s00", "s01"} <= value) for name, value in sources.items()}
    assert groups == {"train": 11, "dev": 4, "test": 4}
    names = list(sources)
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            assert not sources[first] & sources[second]


def test_split_by_source_is_seeded_and_stratified() -> None:
    table = small_table()
    first = split_by_source(table, seed=5, sizes=(0.5, 0.25, 0.25), stratify_column="label")
    again = split_by_source(table, seed=5, sizes=(0.5, 0.25, 0.25), stratify_column="label")
    assert {k: col(v, "source_id") for k, v in first.items()} == {k: col(v, "source_id") for k, v in again.items()}
    for split in first.values():
        assert set(col(split, "label")) == {0, 1}


def test_split_by_source_checks_its_arguments() -> None:
    with pytest.raises(ConfigError):
        split_by_source(small_table(), seed=0, sizes=(0.5, 0.5, 0.5))
    with pytest.raises(DataError, match="no 'source_id' column"):
        split_by_source(datasets.Dataset.from_dict({"text": ["a"]}), seed=0)


# ---------------------------------------------------------------------------------------------
# More origins: django-allauth, django CMS and the JupyterLab language packs (the offline extra).

JUPYTERLAB_LOCALES = ("ar_SA", "de_DE", "es_ES", "fr_FR", "ja_JP", "ko_KR", "pt_BR", "ru_RU", "uk_UA", "zh_CN")
needs_more_catalogs = pytest.mark.skipif(
    any(
        importlib.util.find_spec(name) is None
        for name in ("allauth", "cms", *(f"jupyterlab_language_pack_{x}" for x in JUPYTERLAB_LOCALES))
    ),
    reason="needs django-allauth, django-cms and the JupyterLab language packs of the offline extra",
)


def package_dir(name: str) -> Path:
    return Path(next(iter(importlib.util.find_spec(name).submodule_search_locations)))


@pytest.fixture(scope="module")
def extra_pairs() -> datasets.Dataset:
    return catalog_pairs("extra")


@needs_more_catalogs
@pytest.mark.parametrize(
    ("origin", "lang", "english", "translation"),
    [
        # read by hand in allauth/locale/{de,ja}/LC_MESSAGES/django.po
        ("allauth", "de", "Sign Out", "Abmelden"),
        ("allauth", "ja", "Email Addresses", "メールアドレス"),
        # "Your email has been changed from %(from_email)s to %(to_email)s." and its German
        ("allauth", "de", "Your email has been changed from to.", "Ihre E-Mail wurde von auf geändert."),
        # cms/locale/{hi,ru,de}/LC_MESSAGES/django.po
        ("cms", "hi", "Page settings", "पृष्ठ सेटिंग्स"),
        ("cms", "ru", "Advanced settings", "Расширенные настройки"),
        ("cms", "de", "Page settings", "Seiten-Einstellungen"),
        # the packs' Jed JSON (jupyterlab.json), another format of the same messages
        ("jupyterlab", "de", "Run All Cells", "Alle Zellen ausführen"),
        ("jupyterlab", "ja", "Shut Down Kernel", "カーネルをシャットダウン"),
        ("jupyterlab", "pt-BR", "Shut Down Kernel", "Desligar o kernel"),
        ("jupyterlab", "zh-Hans", "Run All Cells", "运行所有单元格"),
        ("jupyterlab", "de", "Connected", "Verbunden"),  # "\nConnected: %1" -> "\nVerbunden: %1"
    ],
)
def test_more_origins_read_real_pairs(origin: str, lang: str, english: str, translation: str) -> None:
    pairs = catalog_pairs(origin, languages=[lang])
    assert (english, translation) in set(zip(col(pairs, "text"), col(pairs, "translation"), strict=True))
    assert set(col(pairs, "origin")) == {origin} == set(col(pairs, "component"))


@needs_more_catalogs
def test_jupyterlab_locales_take_djangos_tags() -> None:
    pairs = catalog_pairs("jupyterlab")
    # one pack per locale; the region goes unless Django keeps it too (pt_BR), zh_CN is zh-Hans
    assert set(col(pairs, "lang")) == {"ar", "de", "es", "fr", "ja", "ko", "pt-BR", "ru", "uk", "zh-Hans"}


@needs_more_catalogs
def test_jupyterlab_pairs_match_the_packs_json() -> None:
    """Plain messages of the German pack's JSON (no placeholder, markup or context) are all read."""
    pairs = catalog_pairs("jupyterlab", languages=["de"])
    found = set(zip(col(pairs, "text"), col(pairs, "translation"), strict=True))
    expected = set()
    for path in (package_dir("jupyterlab_language_pack_de_DE") / "locale" / "de_DE" / "LC_MESSAGES").glob("*.json"):
        for english, forms in json.loads(path.read_text(encoding="utf-8")).items():
            plain = re.compile(r"^[A-Za-z][A-Za-z ]*[a-z]$")
            if (
                isinstance(forms, list)
                and len(forms) == 1
                and forms[0]
                and plain.match(english)
                and plain.match(forms[0].replace("ä", "a"))
            ):
                expected.add((english, forms[0]))
    assert len(expected) > 200
    assert expected <= found


@needs_more_catalogs
@pytest.mark.parametrize(("origin", "language_dir", "lang"), [("allauth", "de", "de"), ("cms", "hi", "hi"), ("cms", "pt_BR", "pt-BR")])
def test_more_origins_pair_counts_against_the_catalogs(origin: str, language_dir: str, lang: str) -> None:
    raw = 0
    for path in package_dir(origin).glob(f"**/locale/{language_dir}/LC_MESSAGES/*.po"):
        raw += sum(1 for entry in polib.pofile(str(path)) if not entry.obsolete and "fuzzy" not in entry.flags and entry.translated())
    pairs = Counter(col(catalog_pairs(origin, languages=[lang]), "lang"))[lang]
    assert 0.8 * raw <= pairs <= raw


@needs_more_catalogs
def test_extra_pairs_are_clean_and_from_the_three_origins(extra_pairs: datasets.Dataset) -> None:
    positional = re.compile(r"%\d")  # JupyterLab's %1
    leftovers = []
    for en, text, lang in zip(col(extra_pairs, "text"), col(extra_pairs, "translation"), col(extra_pairs, "lang"), strict=True):
        assert not LEFTOVER_PLACEHOLDER.search(en) and not positional.search(en), en
        if LEFTOVER_PLACEHOLDER.search(text) or positional.search(text):
            leftovers.append((lang, en))
    # the one exception: cms/locale/es/LC_MESSAGES/django.po translates "... to § this page?" with
    # "desea %%s", a literal "%s" (the cleaning keeps "%%" as "%"), a translator's slip
    assert leftovers == [("es", "Are you sure you want to § this page?")]
    languages = set(col(extra_pairs, "lang"))
    assert all(BCP47.match(lang) and normalize_language(lang) == lang for lang in languages)
    assert set(col(extra_pairs, "origin")) == {"allauth", "cms", "jupyterlab"}
    keys = list(zip(col(extra_pairs, "lang"), col(extra_pairs, "text"), col(extra_pairs, "translation"), strict=True))
    assert len(keys) == len(set(keys))
    # the demo's languages but Swahili, and Hindi from django CMS alone
    counts = Counter(col(extra_pairs, "lang"))
    assert all(counts[lang] >= 1000 for lang in ("de", "fr", "es", "pt-BR", "ru", "uk", "ar", "ja", "zh-Hans", "ko"))
    assert counts["hi"] >= 400 and counts["sw"] == 0


@needs_more_catalogs
@pytest.mark.parametrize(("origin", "min_sources"), [("allauth", 300), ("cms", 400), ("jupyterlab", 2500)])
def test_more_origins_are_mostly_other_strings_than_djangos(django_pairs: datasets.Dataset, origin: str, min_sources: int) -> None:
    sources = set(col(catalog_pairs(origin), "source_id"))
    assert len(sources) >= min_sources
    # measured: 7.6% (allauth), 12.1% (cms), 1.8% (jupyterlab) of their English messages are Django's
    assert len(sources & set(col(django_pairs, "source_id"))) / len(sources) < 0.15


@needs_more_catalogs
def test_extra_splits_keep_every_english_source_in_one_split(extra_pairs: datasets.Dataset) -> None:
    splits = catalog_pairs_splits("extra", seed=3)
    english = {name: {en.casefold() for en in col(split, "text")} for name, split in splits.items()}
    sources = {name: set(col(split, "source_id")) for name, split in splits.items()}
    texts = {name: set(zip(col(split, "lang"), col(split, "translation"), strict=True)) for name, split in splits.items()}
    for first, second in [("train", "dev"), ("train", "test"), ("dev", "test")]:
        assert not sources[first] & sources[second]
        assert not english[first] & english[second]
        assert not texts[first] & texts[second]
    assert sum(len(split) for split in splits.values()) == len(extra_pairs)


@needs_more_catalogs
def test_more_origins_are_built_in_sources_and_all_stays_django_and_sphinx(all_pairs: datasets.Dataset) -> None:
    for name in ("allauth", "cms", "jupyterlab", "extra"):
        assert f"catalogs:{name}" in BUILTIN_SOURCES and f"catalogs:{name}" in PAIR_CATALOGS
    assert isinstance(load_source("catalogs:jupyterlab", languages=["de"], split=True), datasets.DatasetDict)
    assert set(col(all_pairs, "origin")) == {"django", "sphinx"}


def test_a_missing_catalog_package_says_what_to_install(monkeypatch) -> None:
    monkeypatch.setitem(catalogs._SINGLE_ORIGINS, "allauth", catalogs._Origin((("no_such_package_x", "no-such-package-x"),), "*.po"))
    with pytest.raises(DataError, match=r"'no_such_package_x' package \(from 'no-such-package-x'\).*polydistill\[offline\]"):
        catalogs._catalog_files("allauth")


# ---------------------------------------------------------------------------------------------
# The command.


def test_data_stats_catalogs_django_shows_98_languages(capsys) -> None:
    assert main(["data", "stats", "catalogs:django", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert len(stats["languages"]) == 98
    german = stats["languages"]["de"]
    assert 0.8 * translated_entries("de") <= german["pairs"] <= translated_entries("de")
    assert german["name"] == "German"
    assert german["length"]["max"] >= german["length"]["median"] > 0
    assert stats["length_unit"] == "words"

    assert main(["data", "stats", "catalogs:django"]) == 0
    table = capsys.readouterr().out
    assert "98 languages" in table and "German" in table
