"""Built-in multilingual data: the gettext catalogs that ship inside packages of the ``offline`` extra.

Every translated entry of a gettext catalog is a human translation of an English message, so
the catalogs installed with ``django`` (98 languages) and ``sphinx`` (50+ languages) are a real
parallel corpus that needs no network. Three more origins widen it with other strings (their
English messages are 8%, 12% and 2% Django's): ``allauth`` (django-allauth: sign-in, accounts,
e-mail; 45 languages, about 380 pairs each), ``cms`` (django CMS: page editing and publishing;
64 languages, about 480 pairs each, Hindi among them) and ``jupyterlab`` (the JupyterLab language
packs, one package per language, compiled ``.mo`` catalogs of JupyterLab and its extensions: 3,000
English messages; 10 languages, from 250 pairs in Arabic to 3,200 in French and Chinese). Their
locales are regional (``de_DE``); the region is dropped unless Django keeps it (``pt_BR``), so the
tags match Django's. Origin ``all`` is Django and Sphinx, ``extra`` the three others; each origin
is a list of packages and a glob of catalog files inside them (``_SINGLE_ORIGINS``).

Django's messages also carry a label, the *component* whose catalog holds them (``conf``,
``contrib/admin``, ``contrib/auth``, ...): the same English message has the same component in
every language, which makes a cross-lingual classification task (train on English, test on every
other language).

What is read, and how:
- entries that are fuzzy, obsolete or untranslated are skipped; for a plural entry the
  singular English message is paired with the catalog's form for n = 1 (from its Plural-Forms);
- placeholders (``%(name)s``, ``%s``, ``%.1f``, ``%1``, ``{name}``, ``{}``, ``${name}``) and markup
  (HTML tags, entities) are stripped from both sides, then quotes and brackets left empty, stray
  punctuation and whitespace are tidied; a pair whose either side keeps no letter is dropped;
- the catalog directory name becomes a BCP 47 tag (:func:`~polydistill.data.languages.normalize_language`);
  English catalogs themselves (the source language) are not read;
- pairs are deduplicated on (language, English, translation); for ``all``, Django comes first
  (for ``extra``: allauth, django CMS, JupyterLab). Components of origins other than Django are the origin.

``source_id`` identifies an English message: a hash of the cleaned English text, case-folded,
whitespace collapsed, trailing punctuation removed (so ``Name`` and ``Name:`` are one source).
Splits are made on it, never on rows: every translation of one English message lands in the
same split, and English messages that share an identical translation in some language ("Change
password" / "Password change") are kept together too, so no text crosses splits
(:func:`split_by_source`; Django's 828 sources form 600 such groups, the largest of 45).

A message's component: the component whose catalogs translate it into the most languages; ties
go to the component name that sorts first. Components with fewer than ``min_component_size``
distinct English sources are merged into ``other``. For ``catalogs:all`` the ``component`` of a
pairs row is decided the same way with Sphinx counted as one more component named ``sphinx``.

Parsing every catalog takes a few seconds; the parsed result is cached in-process.
"""

from __future__ import annotations

import functools
import gettext
import hashlib
import html
import importlib.util
import random
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from polydistill.data.columns import column_values, dataset_from_columns
from polydistill.data.languages import normalize_language, normalize_languages
from polydistill.errors import ConfigError, DataError

if TYPE_CHECKING:
    import datasets

__all__ = [
    "CATALOG_ORIGINS",
    "DEFAULT_MIN_COMPONENT_SIZE",
    "DEFAULT_SPLIT_SIZES",
    "OTHER_COMPONENT",
    "SPLIT_NAMES",
    "catalog_classification",
    "catalog_pairs",
    "catalog_pairs_splits",
    "component_sizes",
    "source_id_for",
    "split_by_source",
    "strip_placeholders",
]

SPLIT_NAMES = ("train", "dev", "test")
DEFAULT_SPLIT_SIZES = (0.8, 0.1, 0.1)
#: Components with fewer distinct English sources than this merge into ``other``.
DEFAULT_MIN_COMPONENT_SIZE = 30
OTHER_COMPONENT = "other"
SOURCE_LANGUAGE = "en"

# ---------------------------------------------------------------------------------------------
# Cleaning: placeholders and markup out, text a model should see in.

_PLACEHOLDER = re.compile(
    r"%%"  # a literal percent sign, kept as "%"
    r"|%(?:\([^)\s]*\))?[-#0+]*(?:\d+|\*)?(?:\.(?:\d+|\*)?)?[hlL]?[A-Za-z]"  # printf, strftime
    r"|%\([^)\s]*\)"  # a named placeholder whose conversion a translator lost
    r"|%\d+"  # positional %1, %2 (JupyterLab's)
    r"|\$\{[^{}]*\}"  # JavaScript template / interpolate ${name}
    r"|\{[^{}\s]*\}"  # str.format {name}, {0}, {}
)
_TAG = re.compile(r"</?[^\W\d_][^<>]*>|<!--.*?-->", re.DOTALL)  # also translated tag names
_QUOTE_PAIRS = (
    "“”",
    "‘’",
    "””",
    "„“",
    "„”",
    "«»",
    "»«",
    "‹›",
    "「」",
    "『』",
    "《》",
    "〈〉",
    "（）",
    '""',
    "''",
    "`'",
    "``",
    "()",
    "[]",
    "<>",
    "{}",
)
# a pair of quotes or brackets that lost its content, perhaps keeping a sentence's punctuation
_EMPTY_PAIR = re.compile("|".join(rf"{re.escape(pair[0])}([\s.,:;!?…]*){re.escape(pair[1])}" for pair in _QUOTE_PAIRS))
_SPACE_BEFORE = re.compile(r"\s+([,.)\]])")
_SPACE_AFTER = re.compile(r"([(\[])\s+")
_EDGE_JUNK_LEFT = re.compile(r"^[\s,.:;\-–—/|<>]+")
_EDGE_JUNK_RIGHT = re.compile(r"[\s,:;\-–—/|<>]+$")
_WHITESPACE = re.compile(r"\s+")
_LETTER = re.compile(r"[^\W\d_]")


def _placeholder_replacement(match: re.Match[str]) -> str:
    return "%" if match.group(0) == "%%" else ""


def _inner_punctuation(match: re.Match[str]) -> str:
    return "".join(group for group in match.groups() if group).strip()


def strip_placeholders(message: str) -> str:
    """Return ``message`` without format placeholders and markup, tidied for a model to read.

    ``"Deleted {name} “{object}”."`` -> ``"Deleted."``; ``"<b>%(count)s</b> items"`` -> ``"items"``.
    """
    text = unicodedata.normalize("NFC", message)
    text = _PLACEHOLDER.sub(_placeholder_replacement, text)
    text = _TAG.sub(" ", text)
    text = html.unescape(text)
    text = _WHITESPACE.sub(" ", text)
    previous = None
    while previous != text:  # "(“”)" needs two passes
        previous = text
        text = _EMPTY_PAIR.sub(_inner_punctuation, text)
    text = _WHITESPACE.sub(" ", text)
    text = _SPACE_BEFORE.sub(r"\1", text)
    text = _SPACE_AFTER.sub(r"\1", text)
    text = _EDGE_JUNK_LEFT.sub("", text)
    text = _EDGE_JUNK_RIGHT.sub("", text)
    return text.strip()


def _has_letter(text: str) -> bool:
    return _LETTER.search(text) is not None


@functools.lru_cache(maxsize=65536)
def source_id_for(english: str) -> str:
    """Identifier of an English message: case, spacing and trailing punctuation do not count."""
    key = _WHITESPACE.sub(" ", english.casefold()).strip()
    key = re.sub(r"[\s.:;,!?…]+$", "", key)
    return hashlib.sha1(key.encode("utf-8")).hexdigest()[:12]


# ---------------------------------------------------------------------------------------------
# Reading the installed catalogs.


@dataclass(frozen=True)
class _CatalogEntry:
    """One cleaned, translated catalog entry."""

    origin: str
    component: str
    lang: str
    en: str
    text: str


@dataclass(frozen=True)
class _Origin:
    """Where one origin's catalogs are: packages and a glob of catalog files inside each."""

    #: (import name, the distribution to ``pip install`` for it)
    packages: tuple[tuple[str, str], ...]
    pattern: str
    #: drop a locale's region unless Django's catalogs keep it (``de_DE`` -> ``de``, ``pt_BR`` stays)
    drop_region: bool = False


_JUPYTERLAB_LOCALES = ("ar_SA", "de_DE", "es_ES", "fr_FR", "ja_JP", "ko_KR", "pt_BR", "ru_RU", "uk_UA", "zh_CN")
_SINGLE_ORIGINS = {
    "django": _Origin((("django", "django"),), "**/locale/*/LC_MESSAGES/*.po"),
    "sphinx": _Origin((("sphinx", "sphinx"),), "**/locale/*/LC_MESSAGES/*.po"),
    "allauth": _Origin((("allauth", "django-allauth"),), "**/locale/*/LC_MESSAGES/*.po"),
    "cms": _Origin((("cms", "django-cms"),), "**/locale/*/LC_MESSAGES/*.po"),
    "jupyterlab": _Origin(
        tuple(
            (f"jupyterlab_language_pack_{locale}", f"jupyterlab-language-pack-{locale.replace('_', '-')}") for locale in _JUPYTERLAB_LOCALES
        ),
        "locale/*/LC_MESSAGES/*.mo",  # the packs ship compiled catalogs (and Jed JSON of the same messages)
        drop_region=True,
    ),
}
#: origins that are several single origins, read in this order
_COMBINED_ORIGINS = {"all": ("django", "sphinx"), "extra": ("allauth", "cms", "jupyterlab")}
#: Origins a user can ask for; ``all`` is Django then Sphinx, ``extra`` the other three.
CATALOG_ORIGINS = ("django", "sphinx", "all", "allauth", "cms", "jupyterlab", "extra")
assert set(CATALOG_ORIGINS) == {*_SINGLE_ORIGINS, *_COMBINED_ORIGINS}


def _package_dir(package: str, distribution: str) -> Path:
    spec = importlib.util.find_spec(package)  # finds the directory without importing the package
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            f"the built-in catalogs need the '{package}' package (from '{distribution}'), which is not installed; "
            "install it with `pip install 'polydistill[offline]'`"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _catalog_files(origin: str) -> list[tuple[Path, str, str]]:
    """(path, component, language directory) of every catalog of one single origin, sorted."""
    spec = _SINGLE_ORIGINS[origin]
    files = []
    for package_name, distribution in spec.packages:
        package = _package_dir(package_name, distribution)
        for path in sorted(package.glob(spec.pattern)):
            locale_dir = path.parent.parent
            base = locale_dir.parent.parent  # the directory that holds "locale"
            if origin == "django":
                component = base.relative_to(package).as_posix() or "django"
            else:
                component = origin
            files.append((path, component, locale_dir.name))
    return files


@functools.cache
def _django_regional_tags() -> frozenset[str]:
    """Tags of Django's locale directories that keep a region (``pt-BR``, ``en-GB``, ...)."""
    package = _package_dir("django", "django")
    tags = set()
    for locale_dir in (package / "conf" / "locale").iterdir():
        if not locale_dir.is_dir() or locale_dir.name.startswith("_"):
            continue
        try:
            tags.add(normalize_language(locale_dir.name))
        except ValueError:
            continue
    return frozenset(tag for tag in tags if "-" in tag)


def _language_of(locale_dir: str, spec: _Origin) -> str:
    """BCP 47 tag of a catalog directory; with ``drop_region``, the tag Django would use for it."""
    lang = normalize_language(locale_dir)
    if spec.drop_region and lang not in _django_regional_tags():
        parts = lang.split("-")
        if len(parts) > 1 and (parts[-1].isupper() or parts[-1].isdigit()):  # a region subtag
            lang = "-".join(parts[:-1])
    return lang


def _singular_index(plural_forms: str | None) -> int:
    """Index of the msgstr form a catalog uses for n = 1 (0 when it cannot be told)."""
    if not plural_forms:
        return 0
    match = re.search(r"plural\s*=\s*(.+?)\s*;?\s*$", plural_forms)
    if not match:
        return 0
    try:
        return int(gettext.c2py(match.group(1))(1))
    except (ValueError, SyntaxError, RecursionError):
        return 0


def _read_catalog(path: Path) -> Iterable[tuple[str, str]]:
    """(English, translation) of every usable entry of one ``.po`` file, uncleaned."""
    import polib

    compiled = path.suffix == ".mo"
    catalog = polib.mofile(str(path)) if compiled else polib.pofile(str(path))
    singular = _singular_index(catalog.metadata.get("Plural-Forms"))
    for entry in catalog:
        if compiled:  # a compiled catalog keeps neither fuzzy nor obsolete entries; its header has no msgid
            if not entry.msgid or not (all(entry.msgstr_plural.values()) if entry.msgid_plural else entry.msgstr):
                continue
        elif entry.obsolete or "fuzzy" in entry.flags or not entry.translated():
            continue
        if entry.msgid_plural:
            forms = entry.msgstr_plural
            translation = forms.get(singular) or forms.get(0, "")
        else:
            translation = entry.msgstr
        if translation:
            yield entry.msgid, translation


@functools.cache
def _origin_entries(origin: str) -> tuple[_CatalogEntry, ...]:
    """Every cleaned entry of one origin's catalogs (cached: parsing takes seconds)."""
    from tqdm.auto import tqdm

    entries: list[_CatalogEntry] = []
    clean_cache: dict[str, str] = {}

    def clean(message: str) -> str:
        cleaned = clean_cache.get(message)
        if cleaned is None:
            cleaned = clean_cache[message] = strip_placeholders(message)
        return cleaned

    spec = _SINGLE_ORIGINS[origin]
    files = _catalog_files(origin)
    progress = tqdm(files, desc=f"reading {origin} catalogs", unit="file", leave=False)
    for path, component, locale_dir in progress:
        try:
            lang = _language_of(locale_dir, spec)
        except ValueError as error:
            raise DataError(f"{path}: cannot tell the language of catalog directory '{locale_dir}': {error}") from None
        if lang == SOURCE_LANGUAGE:
            continue
        for english, translation in _read_catalog(path):
            en, text = clean(english), clean(translation)
            if _has_letter(en) and _has_letter(text):
                entries.append(_CatalogEntry(origin, component, lang, en, text))
    return tuple(entries)


def _origins(origin: str) -> tuple[str, ...]:
    if origin not in CATALOG_ORIGINS:
        raise DataError(f"unknown catalog origin '{origin}'; expected one of {', '.join(CATALOG_ORIGINS)}")
    return _COMBINED_ORIGINS.get(origin, (origin,))


def _deduplicated(entries: Iterable[_CatalogEntry]) -> list[_CatalogEntry]:
    seen: set[tuple[str, str, str]] = set()
    unique = []
    for entry in entries:
        key = (entry.lang, entry.en, entry.text)
        if key not in seen:
            seen.add(key)
            unique.append(entry)
    return unique


def _assign_components(entries: Iterable[_CatalogEntry]) -> dict[str, str]:
    """source_id -> the component that translates it into the most languages (ties by name)."""
    languages: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for entry in entries:
        languages[source_id_for(entry.en)][entry.component].add(entry.lang)
    return {
        source: min(by_component, key=lambda component: (-len(by_component[component]), component))
        for source, by_component in languages.items()
    }


def _select_languages(entries: list[_CatalogEntry], languages: Sequence[str] | None, min_pairs: int, what: str) -> list[_CatalogEntry]:
    """Keep the languages asked for (all by default) that have at least ``min_pairs`` pairs."""
    counts = Counter(entry.lang for entry in entries)
    wanted = None if languages is None else normalize_languages(languages)
    if wanted is not None:
        missing = [code for code in wanted if code not in counts and code != SOURCE_LANGUAGE]
        if missing:
            raise DataError(f"no {what} catalog translates into {', '.join(missing)}; available: {', '.join(sorted(counts))}")
        keep = {code for code in wanted if counts.get(code, 0) >= min_pairs}
    else:
        keep = {code for code, count in counts.items() if count >= min_pairs}
    return [entry for entry in entries if entry.lang in keep]


def _entries_of(origin: str) -> list[_CatalogEntry]:
    entries: list[_CatalogEntry] = []
    for name in _origins(origin):
        entries.extend(_origin_entries(name))
    return entries


# ---------------------------------------------------------------------------------------------
# Public datasets.


def catalog_pairs(
    origin: str = "django",
    *,
    languages: Sequence[str] | None = None,
    min_pairs: int = 0,
) -> datasets.Dataset:
    """Parallel pairs from the installed catalogs, in the canonical parallel layout of every source.

    Columns: ``text`` (the English message, what a teacher reads), ``translation`` (its
    translation), ``lang`` (BCP 47 tag of ``translation``), ``source_id``, ``origin``
    (``django``, ``sphinx``, ``allauth``, ``cms``, ``jupyterlab``), ``component`` (see module
    docstring). ``languages`` keeps only those languages (any spelling; normalised); ``min_pairs``
    drops languages with fewer pairs. Rows are sorted by language, then English, then translation.
    """
    import datasets

    raw = _entries_of(origin)
    components = _assign_components(raw)
    entries = _select_languages(_deduplicated(raw), languages, min_pairs, origin)
    entries.sort(key=lambda entry: (entry.lang, entry.en, entry.text, entry.origin))
    source_ids = [source_id_for(entry.en) for entry in entries]
    columns = {
        "text": [entry.en for entry in entries],
        "translation": [entry.text for entry in entries],
        "lang": [entry.lang for entry in entries],
        "source_id": source_ids,
        "origin": [entry.origin for entry in entries],
        "component": [components[source] for source in source_ids],
    }
    features = datasets.Features({name: datasets.Value("string") for name in columns})
    return dataset_from_columns(columns, features)


def catalog_pairs_splits(
    origin: str = "django",
    *,
    languages: Sequence[str] | None = None,
    min_pairs: int = 0,
    seed: int = 0,
    split_sizes: Sequence[float] = DEFAULT_SPLIT_SIZES,
) -> datasets.DatasetDict:
    """:func:`catalog_pairs` split into train/dev/test by English source (fractions of sources)."""
    pairs = catalog_pairs(origin, languages=languages, min_pairs=min_pairs)
    return split_by_source(pairs, seed=seed, sizes=split_sizes)


def component_sizes(*, min_component_size: int = 0) -> dict[str, int]:
    """Distinct English sources per Django component, after merging small ones into ``other``."""
    components = _assign_components(_origin_entries("django"))
    return dict(sorted(Counter(_merge_small(components, min_component_size).values()).items()))


def _merge_small(components: dict[str, str], min_component_size: int) -> dict[str, str]:
    sizes = Counter(components.values())
    return {source: component if sizes[component] >= min_component_size else OTHER_COMPONENT for source, component in components.items()}


def catalog_classification(
    *,
    languages: Sequence[str] | None = None,
    min_pairs: int = 0,
    min_component_size: int = DEFAULT_MIN_COMPONENT_SIZE,
    seed: int = 0,
    split_sizes: Sequence[float] = DEFAULT_SPLIT_SIZES,
    include_english: bool = True,
) -> datasets.DatasetDict:
    """Django messages labelled with their component, split train/dev/test by English source.

    Each row: ``text``, ``label`` (``ClassLabel`` of component names, ``other`` for merged small
    ones), ``lang``, ``source_id``, ``en``. Every English source contributes one row per distinct
    English wording, with ``lang`` ``en`` and ``text == en`` (the training language of the
    classic setting: kept whatever ``languages`` says, unless ``include_english`` is False), and
    one row per distinct translation in each kept language. ``languages`` and ``min_pairs``
    choose the other languages as in :func:`catalog_pairs`. The split is stratified by label, so
    that every component appears in every split that is not empty.
    """
    import datasets

    raw = list(_origin_entries("django"))
    components = _merge_small(_assign_components(raw), min_component_size)
    entries = _select_languages(_deduplicated(raw), languages, min_pairs, "django")
    label_names = sorted(set(components.values()))
    label_of = {name: index for index, name in enumerate(label_names)}

    rows: dict[str, list] = {"text": [], "label": [], "lang": [], "source_id": [], "en": []}
    seen: set[tuple[str, str, str]] = set()

    def add(text: str, lang: str, source: str, english: str) -> None:
        key = (lang, text, source)
        if key in seen:
            return
        seen.add(key)
        rows["text"].append(text)
        rows["label"].append(label_of[components[source]])
        rows["lang"].append(lang)
        rows["source_id"].append(source)
        rows["en"].append(english)

    if include_english:
        for english in sorted({entry.en for entry in raw}):
            source = source_id_for(english)
            add(english, SOURCE_LANGUAGE, source, english)
    for entry in sorted(entries, key=lambda entry: (entry.lang, entry.en, entry.text)):
        source = source_id_for(entry.en)
        add(entry.text, entry.lang, source, entry.en)

    features = datasets.Features(
        {
            "text": datasets.Value("string"),
            "label": datasets.ClassLabel(names=label_names),
            "lang": datasets.Value("string"),
            "source_id": datasets.Value("string"),
            "en": datasets.Value("string"),
        }
    )
    dataset = dataset_from_columns(rows, features)
    return split_by_source(dataset, seed=seed, sizes=split_sizes, stratify_column="label")


# ---------------------------------------------------------------------------------------------
# Splitting by source.


def _checked_sizes(sizes: Sequence[float]) -> tuple[float, float, float]:
    values = tuple(float(size) for size in sizes)
    if len(values) != 3 or any(size < 0 for size in values) or abs(sum(values) - 1.0) > 1e-6:
        raise ConfigError(
            f"split sizes {list(sizes)} must be three non-negative fractions (train, dev, test) of the English sources that sum to 1"
        )
    return values


def _allocate(count: int, sizes: tuple[float, float, float]) -> list[int]:
    """Split ``count`` items by ``sizes`` with the largest-remainder rule (exact total)."""
    exact = [count * size for size in sizes]
    shares = [int(value) for value in exact]
    by_remainder = sorted(range(len(sizes)), key=lambda index: (-(exact[index] - shares[index]), index))
    for index in by_remainder[: count - sum(shares)]:
        shares[index] += 1
    return shares


def _source_groups(dataset: datasets.Dataset, sources: list[str], link_columns: Sequence[str]) -> dict[str, str]:
    """source -> its group: sources that share an identical text (in one language) are one group.

    Two English messages can have one translation ("Change password" and "Password change"
    are both "Passwort ändern"); were they split apart, that text would be in train and test.
    Groups are the connected components of "shares a text", named by their smallest source.
    """
    parent = {source: source for source in sources}

    def root(source: str) -> str:
        while parent[source] != source:
            parent[source] = parent[parent[source]]
            source = parent[source]
        return source

    langs = column_values(dataset, "lang") if "lang" in dataset.column_names else [None] * len(sources)
    for column in link_columns:
        if column not in dataset.column_names:
            continue
        first_source: dict[tuple[object, str], str] = {}
        for source, lang, text in zip(sources, langs, column_values(dataset, column), strict=True):
            if text is None:
                continue
            key = (lang, text)
            other = first_source.setdefault(key, source)
            if other != source:
                a, b = root(other), root(source)
                if a != b:
                    parent[max(a, b)] = min(a, b)
    return {source: root(source) for source in parent}


def split_by_source(
    dataset: datasets.Dataset,
    *,
    seed: int = 0,
    sizes: Sequence[float] = DEFAULT_SPLIT_SIZES,
    stratify_column: str | None = None,
    source_column: str = "source_id",
    link_columns: Sequence[str] = ("text", "translation"),
) -> datasets.DatasetDict:
    """Split rows into train/dev/test so that no ``source_column`` value is in two splits.

    Sources that share an identical text in one language (any of ``link_columns``, compared
    within ``lang`` when the data has it) are kept together too, so no text crosses splits
    either; pass ``link_columns=()`` to split on sources alone. ``sizes`` are fractions of
    these source groups, not of rows. Groups are sorted, then shuffled by
    ``random.Random(seed)``: a seed gives the same split on every machine. With
    ``stratify_column``, groups are split within each value of that column (a group takes the
    value most of its rows have), so small classes reach every split.
    """
    import datasets

    fractions = _checked_sizes(sizes)
    if source_column not in dataset.column_names:
        raise DataError(f"cannot split by source: the data has no '{source_column}' column (columns: {', '.join(dataset.column_names)})")
    sources = [str(source) for source in column_values(dataset, source_column)]
    group_of = _source_groups(dataset, sources, link_columns)
    strata: dict[object, list[str]] = defaultdict(list)
    if stratify_column is None:
        strata[None] = sorted(set(group_of.values()))
    else:
        values: dict[str, Counter] = defaultdict(Counter)
        for source, value in zip(sources, column_values(dataset, stratify_column), strict=True):
            values[group_of[source]][value] += 1
        for group in sorted(values):
            top = min(values[group].items(), key=lambda item: (-item[1], str(item[0])))[0]
            strata[top].append(group)

    rng = random.Random(seed)
    split_of_group: dict[str, int] = {}
    for value in sorted(strata, key=str):
        members = strata[value]
        rng.shuffle(members)
        start = 0
        for split_index, share in enumerate(_allocate(len(members), fractions)):
            for group in members[start : start + share]:
                split_of_group[group] = split_index
            start += share

    indices: list[list[int]] = [[] for _ in SPLIT_NAMES]
    for row, source in enumerate(sources):
        indices[split_of_group[group_of[source]]].append(row)
    splits = {}
    for name, rows in zip(SPLIT_NAMES, indices, strict=True):
        # an explicit fingerprint: hashing a long index list with dill takes about a second
        fingerprint = hashlib.sha1(f"{dataset._fingerprint}/{name}/".encode() + ",".join(map(str, rows)).encode()).hexdigest()[:16]
        splits[name] = dataset.select(rows, new_fingerprint=fingerprint)
    return datasets.DatasetDict(splits)
