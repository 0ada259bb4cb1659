"""Every data source by name, resolved in one place: the built-in catalogs and users' files.

A source is a built-in ``catalogs:<name>`` (:data:`BUILTIN_SOURCES`) or a path: a JSONL, CSV,
TSV, Parquet or plain text (``.txt``, one text a line: monolingual text the teacher labels) file
or a directory written by ``Dataset.save_to_disk``, read and validated by
:func:`polydistill.data.readers.read_examples`. Whatever reads data goes through here:

- :func:`read_labelled`: the examples of a classification run or of the teacher's fine-tuning;
- :func:`read_pairs`: the parallel pairs of an embeddings run;
- :func:`corpus_texts_by_language`: the texts vocabulary trimming counts tokens on;
- :func:`load_source`: a source as it is, for ``polydistill data stats`` and ``polydistill eval``.

Parallel pairs have one layout, from the catalogs and from files alike: ``text`` (the source
sentence, English in the catalogs: what the teacher reads), ``translation`` (its translation),
``lang`` (the language of the translation), and ``source_id`` where the source has one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polydistill.config_yaml import config_location
from polydistill.data import catalogs
from polydistill.data.columns import column_values, dataset_from_columns, dataset_label_names
from polydistill.data.languages import UNDETERMINED, normalize_language, normalize_languages
from polydistill.data.readers import file_columns, read_examples, read_utf8_text
from polydistill.errors import ConfigError, DataError

if TYPE_CHECKING:
    import datasets

    from polydistill.config import DataSourceConfig, RunConfig

__all__ = [
    "BUILTIN_SOURCES",
    "CATALOGS_PREFIX",
    "CLASSIFICATION_CATALOG",
    "DEFAULT_CORPUS",
    "PAIR_CATALOGS",
    "TEACHER_TEXT",
    "UNTAGGED",
    "corpus_texts_by_language",
    "is_builtin",
    "load_source",
    "read_labelled",
    "read_pairs",
    "require_gold_labels",
]

CATALOGS_PREFIX = "catalogs:"
#: the built-in translation pairs, one source per catalog origin
PAIR_CATALOGS: tuple[str, ...] = tuple(CATALOGS_PREFIX + origin for origin in catalogs.CATALOG_ORIGINS)
#: the built-in classification task, split train/dev/test
CLASSIFICATION_CATALOG = CATALOGS_PREFIX + "django-components"
BUILTIN_SOURCES = {
    CATALOGS_PREFIX + "django": "translation pairs from Django's gettext catalogs (98 languages)",
    CATALOGS_PREFIX + "sphinx": "translation pairs from Sphinx's gettext catalogs",
    CATALOGS_PREFIX + "all": "translation pairs from both, deduplicated",
    CATALOGS_PREFIX + "allauth": "translation pairs from django-allauth's gettext catalogs (sign-in, accounts, e-mail)",
    CATALOGS_PREFIX + "cms": "translation pairs from django CMS's gettext catalogs (page editing, publishing)",
    CATALOGS_PREFIX + "jupyterlab": "translation pairs from the JupyterLab language packs (10 languages; notebooks, editors)",
    CATALOGS_PREFIX + "extra": "translation pairs from allauth, django CMS and JupyterLab together, deduplicated",
    CLASSIFICATION_CATALOG: "Django messages labelled with their component (train/dev/test)",
}
#: the column a source's teacher text is given under, whatever it was called in the source
TEACHER_TEXT = "teacher_text"

#: the corpus when none is given: the target side of Django's and Sphinx's translation catalogs
DEFAULT_CORPUS: tuple[str, ...] = (CATALOGS_PREFIX + "all",)
#: where texts from a file without a language go in the per-language counts
UNTAGGED = "untagged"


def teacher_text_column(dataset: datasets.Dataset | None) -> str | None:
    """The column of read data that the teacher reads instead of ``text``, if it has one."""
    return TEACHER_TEXT if dataset is not None and TEACHER_TEXT in dataset.column_names else None


def is_builtin(spec: str) -> bool:
    """True for a built-in ``catalogs:<name>`` source (known or not), False for a path."""
    return spec.startswith(CATALOGS_PREFIX)


def _alternatives(names: Sequence[str]) -> str:
    return ", ".join(names[:-1]) + " or " + names[-1]


# ---------------------------------------------------------------------------------------------
# A source as it is.


def load_source(spec: str, *, split: bool = False, **kwargs: Any) -> datasets.Dataset | datasets.DatasetDict:
    """A built-in ``catalogs:<name>`` or a path, as its reader returns it.

    ``kwargs`` go to the function that reads the source:
    :func:`~polydistill.data.catalogs.catalog_pairs` (or, with ``split=True``,
    :func:`~polydistill.data.catalogs.catalog_pairs_splits`),
    :func:`~polydistill.data.catalogs.catalog_classification` (always split), or
    :func:`~polydistill.data.readers.read_examples`.
    """
    if is_builtin(spec):
        if spec in PAIR_CATALOGS:
            reader = catalogs.catalog_pairs_splits if split else catalogs.catalog_pairs
            return _call(reader, spec, spec.removeprefix(CATALOGS_PREFIX), **kwargs)
        if spec == CLASSIFICATION_CATALOG:
            return _call(catalogs.catalog_classification, spec, **kwargs)
        raise DataError(f"unknown built-in source '{spec}'; expected one of {', '.join(BUILTIN_SOURCES)}")
    if split:
        raise ConfigError(f"'{spec}': split=True is for built-in catalogs; split a file with split_by_source")
    return _call(read_examples, spec, spec, **kwargs)


def _call(reader: Any, spec: str, *args: Any, **kwargs: Any) -> Any:
    try:
        return reader(*args, **kwargs)
    except TypeError as error:
        if "unexpected keyword argument" in str(error):
            raise ConfigError(f"source '{spec}': {error}") from None
        raise


# ---------------------------------------------------------------------------------------------
# The sources of a run's config.


def _field_of(source: DataSourceConfig, config: RunConfig) -> str:
    """The config field that names ``source`` (``data.train.1``, ``data.eval``, ...)."""
    fields = [*config.data.train_sources, *config.data.eval_sources]
    if config.teacher.finetune:
        fields.append(("teacher.finetune.data", config.teacher.finetune.data))
    return next((name for name, candidate in fields if candidate is source), "data source")


def _where(source: DataSourceConfig, config: RunConfig) -> str:
    """``file:line: field 'path'`` of a source of the config, for messages about it."""
    field = _field_of(source, config)
    return f"{config_location(config, f'{field}.path')}: {field} '{source.path}'"


def _tagged(dataset: datasets.Dataset, source: DataSourceConfig) -> datasets.Dataset:
    """A file's rows with ``lang`` from the source's ``language`` (the config refuses it beside a
    ``lang_column``), so that a file of one language (a ``.txt`` has no columns) counts as it."""
    if source.language is None or "lang" in dataset.column_names:
        return dataset
    return dataset.add_column("lang", [normalize_language(source.language)] * len(dataset))


def read_sources(
    sources: Sequence[tuple[str, DataSourceConfig]],
    read: Callable[[DataSourceConfig, list[str] | None], datasets.Dataset],
    label_names: list[str] | None = None,
) -> datasets.Dataset:
    """Read every source with ``read(source, label_names)`` and pool the rows (:func:`pool_sources`).

    Without ``label_names`` (a teacher still to be fine-tuned takes its classes from the data),
    the first source with named classes fixes their ids for the ones after it, so a label means
    the same in every source.
    """
    read_datasets = []
    for field, source in sources:
        dataset = read(source, label_names)
        if len(dataset) == 0:
            wanted = f" in {', '.join(source.languages)}" if source.languages else ""
            raise DataError(f"{field} '{source.path}': no rows{wanted}; expected at least one example (check its languages and split)")
        label_names = label_names or dataset_label_names(dataset)
        read_datasets.append(dataset)
    return pool_sources(read_datasets, [field for field, _ in sources])


#: the column of pooled data that says which source (its index in the config's list) a row came from
SOURCE_INDEX = "source"
#: what a source without the column holds in pooled data: the teacher reads the text itself, the
#: language is undetermined, the row has no gold label
_FILLED = {TEACHER_TEXT: None, "lang": UNDETERMINED, "label": -1}


def pool_sources(read_datasets: Sequence[datasets.Dataset], fields: Sequence[str]) -> datasets.Dataset:
    """The rows of several read sources as one dataset, with each row's :data:`SOURCE_INDEX`.

    Columns one source lacks are filled (:data:`_FILLED`): a source without a teacher column
    gives its own text to the teacher, one without labels gets -1 (no gold label: distilled from
    the teacher only). Other columns only some sources have (a ``source_id``) are dropped. One
    source comes back unchanged.
    """
    from datasets import Features, Value, concatenate_datasets

    if len(read_datasets) == 1:
        return read_datasets[0]
    everywhere = set.intersection(*(set(dataset.column_names) for dataset in read_datasets))
    somewhere = dict.fromkeys(column for dataset in read_datasets for column in dataset.column_names)
    columns = [column for column in somewhere if column in everywhere or column in _FILLED]
    labelled = next((dataset for dataset in read_datasets if "label" in dataset.column_names), read_datasets[0])
    features = Features({column: labelled.features[column] for column in columns if column in labelled.features})
    pooled = []
    for index, (field, dataset) in enumerate(zip(fields, read_datasets, strict=True)):
        for column in (column for column in _FILLED if column in columns and column not in dataset.column_names):
            filler = _FILLED[column]
            values = column_values(dataset, "text") if filler is None else [filler] * len(dataset)
            dataset = dataset.add_column(column, values, feature=features[column] if column in features else None)
        dataset = dataset.select_columns(columns)
        try:
            dataset = dataset.cast(Features({column: features.get(column, dataset.features[column]) for column in columns}))
        except (ValueError, TypeError) as error:
            raise DataError(f"{field}: its columns do not match the other sources' ({error})") from None
        pooled.append(dataset.add_column(SOURCE_INDEX, [index] * len(dataset), feature=Value("int64")))
    return concatenate_datasets(pooled)


def _read_file(where: str, path: Path, **options: Any) -> datasets.Dataset:
    """:func:`read_examples`, its errors prefixed with the config field that named the file."""
    try:
        return read_examples(path, **options)
    except DataError as error:
        raise DataError(f"{where}:\n{error}") from None


def _split(splits: datasets.DatasetDict, source: DataSourceConfig, where: str) -> datasets.Dataset:
    """The split a built-in source names, or (no split) every row: a held-out domain needs no split."""
    import datasets

    if source.split is None:
        return datasets.concatenate_datasets(list(splits.values()))
    if source.split not in splits:
        raise ConfigError(f"{where}: split: expected one of {', '.join(splits)}, got {source.split!r}")
    return splits[source.split]


def _in_languages(dataset: datasets.Dataset, languages: Sequence[str] | None) -> datasets.Dataset:
    """The rows of a file in ``languages`` (any spelling); all rows without a list or a ``lang``."""
    if not languages or "lang" not in dataset.column_names:
        return dataset
    wanted = set(normalize_languages(languages))
    return dataset.filter(lambda row: row["lang"] in wanted)


def read_labelled(source: DataSourceConfig, config: RunConfig, *, tokenizer: Any, label_names: list[str] | None) -> datasets.Dataset:
    """One data source of the config in canonical columns: text, label, lang, teacher_text.

    A built-in source is one split (``source.split``) of the catalogs: the classification task,
    or translation pairs, whose translation is then the ``text`` and whose English source is
    ``en``, as in the classification task's rows; read without a ``teacher_text_column`` (text
    without labels, a held-out domain say), the pairs also give each distinct English source as a
    row of its own in ``en`` (when ``languages`` has ``en`` or is not given). A file is read and validated by
    :func:`~polydistill.data.readers.read_examples`; its ``label`` column is optional unless
    named (unlabelled data distils too: pooled beside labelled sources its rows get label -1,
    which the ``labels`` objective ignores). A plain text file (``.txt``) is such unlabelled text,
    one a line; ``source.language`` tags a file without a ``lang`` column. ``label_names`` fixes
    the label ids (a built-in source's labels are renumbered to them, by name).
    """
    where = _where(source, config)
    if is_builtin(source.path):
        if source.path == CLASSIFICATION_CATALOG:
            dataset = _split(catalogs.catalog_classification(languages=source.languages), source, where)
        elif source.path in PAIR_CATALOGS:
            origin = source.path.removeprefix(CATALOGS_PREFIX)
            pairs = _split(catalogs.catalog_pairs_splits(origin, languages=source.languages), source, where)
            dataset = pairs.rename_columns({"text": "en", "translation": "text"})
            if not source.teacher_text_column and (
                not source.languages or catalogs.SOURCE_LANGUAGE in normalize_languages(source.languages)
            ):
                dataset = _with_english_rows(dataset)  # read as text in every language: English is one of them
        else:
            raise ConfigError(f"{where}: unknown built-in source; expected {_alternatives((CLASSIFICATION_CATALOG, *PAIR_CATALOGS))}")
        if "label" in dataset.column_names and label_names is not None:
            dataset = _align_labels(dataset, label_names, where)
    else:
        path = config.resolve_path(source.path)
        dataset = _read_file(
            where,
            path,
            text_column=source.text_column,
            label_column=_file_label_column(source, path),
            lang_column=source.lang_column,
            translation_column=source.teacher_text_column,
            label_names=label_names,
            tokenizer=tokenizer,
            max_length=config.data.max_length,
            overlong=source.overlong,
        )
        if source.teacher_text_column:
            dataset = dataset.rename_column("translation", TEACHER_TEXT)
        dataset = _in_languages(_tagged(dataset, source), source.languages)
    if source.teacher_text_column and TEACHER_TEXT not in dataset.column_names:
        if source.teacher_text_column not in dataset.column_names:
            raise ConfigError(f"{where}: teacher_text_column: no column '{source.teacher_text_column}' (columns: {dataset.column_names})")
        dataset = dataset.add_column(TEACHER_TEXT, dataset[source.teacher_text_column])
    return dataset


def _with_english_rows(pairs: datasets.Dataset) -> datasets.Dataset:
    """Translation pairs read as text (``text`` the translation, ``en`` its English source), with one
    ``en`` row more per distinct English source of them, first, as the classification catalog has.

    Teacher and student then both read each row's own text, in every language and in English,
    the language the teacher reads best (what a held-out domain without gold labels is scored on).
    """
    from datasets import concatenate_datasets

    first: dict[str, int] = {}
    for row, english in enumerate(column_values(pairs, "en")):
        first.setdefault(english, row)
    rows = pairs.select(list(first.values())).to_dict()
    rows["text"] = list(rows["en"])
    rows["lang"] = [catalogs.SOURCE_LANGUAGE] * len(first)
    return concatenate_datasets([dataset_from_columns(rows, pairs.features), pairs])


def _file_label_column(source: DataSourceConfig, path: Path) -> str | None:
    """The label column to read from a file: the one named, or the default ``label`` column
    when the file has it (unlabelled data distil too). The peek at the file's columns decodes
    it as the reader does (a UTF-8 byte-order mark dropped), so a column the reader sees is
    never missed."""
    if source.label_column is None or "label_column" in source.model_fields_set:
        return source.label_column
    return source.label_column if source.label_column in file_columns(path) else None


def require_gold_labels(config: RunConfig) -> None:
    """Refuse, before anything trains, a config that trains on gold labels its data lack.

    A ``labels`` objective on unlabelled training data has a loss of 0 at every step, and a
    ``teacher.finetune`` section without labels has nothing to teach; both would run to the end
    and produce a student (or teacher) that learnt nothing from them. Labels a file has are
    never empty (the reader refuses empty ones), so a source has labels when it has the column.
    """
    labels = getattr(config.objectives, "labels", None)
    if labels is not None and labels.weight > 0:
        # several sources: gold labels from one suffice, the rows of the others are distilled only
        lacking = [_lacking_labels(config, source, field) for field, source in config.data.train_sources]
        if all(lacking):
            _refuse_unlabelled(config, "; ".join(map(str, lacking)), "data.train", "objectives.labels", config.data.train_sources[0][1])
    if config.teacher.finetune is not None:
        source = config.teacher.finetune.data
        if reason := _lacking_labels(config, source, "teacher.finetune.data"):
            _refuse_unlabelled(config, reason, "teacher.finetune.data", "teacher.finetune", source)


def _lacking_labels(config: RunConfig, source: DataSourceConfig, data_field: str) -> str | None:
    """Why ``source`` has no gold labels (``data_field`` named in the reason), or None when it has them."""
    if is_builtin(source.path):
        return None if source.path == CLASSIFICATION_CATALOG else f"{data_field} '{source.path}' holds translation pairs, no labels"
    if source.label_column is None:
        return f"{data_field} '{source.path}' is read without labels (label_column: null)"
    path = config.resolve_path(source.path)
    if _file_label_column(source, path) is not None:
        return None  # a named column that the file lacks is the reader's error, with its line
    return f"{data_field} {path} has no '{source.label_column}' column (its columns: {', '.join(file_columns(path)) or 'none'})"


def _refuse_unlabelled(config: RunConfig, lacking: str, data_field: str, needed_by: str, source: DataSourceConfig) -> None:
    raise ConfigError(
        f"{config_location(config, needed_by)}: {needed_by} trains on gold labels, but {lacking}; "
        f"expected labelled data: add a '{source.label_column or 'label'}' column, set {data_field}.label_column, "
        f"or remove {needed_by}"
    )


def with_source_rows(dataset: datasets.Dataset, source: DataSourceConfig) -> datasets.Dataset:
    """Training rows whose teacher reads a source text (``teacher_text``), plus one row per distinct
    source text the student does not read yet: student and teacher both read it.

    Without them a student trained on translations alone never sees the language the teacher
    reads best, and loses it (the source is English for most cross-lingual data). A source row
    takes the label most of its translations have (the first of a tie), and ``source_language``
    (default ``und``) as its language.
    """
    from collections import Counter

    from datasets import concatenate_datasets

    if not (source.teacher_text_column and source.source_as_input) or TEACHER_TEXT not in dataset.column_names:
        return dataset
    language = normalize_language(source.source_language) if source.source_language else UNDETERMINED
    if source.source_language and source.languages and language not in normalize_languages(source.languages):
        return dataset  # the source's language is filtered out, as its translations' would be
    already_read = set(column_values(dataset, "text"))
    labels = column_values(dataset, "label") if "label" in dataset.column_names else None
    votes: dict[str, Counter] = {}
    for row, text in enumerate(column_values(dataset, TEACHER_TEXT)):
        if text not in already_read:
            votes.setdefault(text, Counter())[labels[row] if labels is not None else None] += 1
    if not votes:
        return dataset
    new: dict[str, list[Any]] = {column: [None] * len(votes) for column in dataset.column_names}
    new["text"] = new[TEACHER_TEXT] = list(votes)
    if labels is not None:
        new["label"] = [count.most_common(1)[0][0] for count in votes.values()]
    if "lang" in dataset.column_names:
        new["lang"] = [language] * len(votes)
    return concatenate_datasets([dataset, dataset_from_columns(new, dataset.features)])


def _align_labels(dataset: datasets.Dataset, label_names: list[str], where: str) -> datasets.Dataset:
    """Renumber a built-in source's labels to the teacher's label ids, by name."""
    from datasets import ClassLabel

    names = dataset.features["label"].names
    if sorted(names) != sorted(label_names):
        raise ConfigError(f"{where}: its labels {names} differ from the teacher's {label_names}")
    if names == label_names:
        return dataset
    new_id = {i: label_names.index(name) for i, name in enumerate(names)}
    dataset = dataset.map(lambda row: {"label": new_id[row["label"]]})
    return dataset.cast_column("label", ClassLabel(names=label_names))


def read_pairs(source: DataSourceConfig, config: RunConfig, *, tokenizer: Any) -> datasets.Dataset:
    """Parallel data in canonical columns: ``text`` (the source, read by the teacher),
    ``translation`` (read by the student too), ``lang`` (of the translation).

    A file without a ``translation_column`` (a ``.txt`` file, one text a line, has none) is
    monolingual text: the student reads the text the teacher embeds, so ``translation`` is
    ``text``, and ``lang`` (from ``lang_column`` or ``language``) is that text's language. It
    trains, beside pairs or alone, but does not evaluate: translation retrieval needs pairs.
    """
    where = _where(source, config)
    if is_builtin(source.path):
        if source.path not in PAIR_CATALOGS:
            raise ConfigError(f"{where}: the embeddings task reads translation pairs: {_alternatives(PAIR_CATALOGS)}")
        origin = source.path.removeprefix(CATALOGS_PREFIX)
        pairs = _split(catalogs.catalog_pairs_splits(origin, languages=source.languages), source, where)
        return pairs.select_columns(["text", "translation", "lang"])
    field = _field_of(source, config)
    if source.translation_column is None and field.startswith("data.eval"):
        raise ConfigError(
            f"{config_location(config, f'{field}.translation_column')}: {field}.translation_column: "
            f"'{source.path}' is read as monolingual text, but evaluation retrieves translations and needs pairs; "
            "expected the column holding the translation of text (monolingual text can train, in data.train)"
        )
    dataset = _read_file(
        where,
        config.resolve_path(source.path),
        text_column=source.text_column,
        translation_column=source.translation_column,
        lang_column=source.lang_column,
        tokenizer=tokenizer,
        max_length=config.data.max_length,
        overlong=source.overlong,
    )
    if source.translation_column is None:  # monolingual: the student matches the teacher on the same text
        dataset = dataset.add_column("translation", column_values(dataset, "text"))
    return _in_languages(_tagged(dataset, source), source.languages)


# ---------------------------------------------------------------------------------------------
# Corpora for vocabulary trimming.


def corpus_texts_by_language(sources: Sequence[str], languages: Sequence[str], *, require_all: bool = True) -> dict[str, list[str]]:
    """The texts to count per language, from built-in catalogs and users' files.

    A source is one of :data:`PAIR_CATALOGS` (the translated side of each pair in the requested
    languages; the English side for ``en``), or a file: ``.txt`` (one text a line), or
    JSONL/CSV/TSV/Parquet read by :func:`~polydistill.data.readers.read_examples` (column
    ``text``, and ``lang`` when present, whose rows outside ``languages`` are skipped).
    ``LANG=PATH`` tags a whole file with one language. Texts of a file with neither come under
    :data:`UNTAGGED`. Languages are BCP 47 codes, normalised; a bare language with no text of its
    own takes the text of its regional variants (``uk`` the catalogs' ``uk-UA``; never another
    script: ``zh-Hans`` is not ``zh-Hant``). A language with no text at all is an error unless
    untagged texts exist or ``require_all`` is off (a held-out text need not cover every language).
    """
    wanted = normalize_languages(languages)
    if not wanted:
        raise DataError("no languages given; name the languages to keep, e.g. de,fr,ja")
    if not sources:
        raise DataError(f"no corpus given; name a built-in catalog ({DEFAULT_CORPUS[0]}) or a file")

    texts: dict[str, list[str]] = {}
    available: set[str] = set()
    for source in sources:
        if is_builtin(source):
            found, catalog_languages = _catalog_texts(source, wanted)
            available |= catalog_languages
        else:
            found = _file_texts(source, wanted)
        for language, language_texts in found.items():
            texts.setdefault(language, []).extend(language_texts)
    for language in wanted:
        if not texts.get(language) and "-" not in language:
            regional = [code for code in sorted(texts) if _is_regional_variant(code, language) and code not in wanted]
            texts[language] = [text for code in regional for text in texts[code]]
    if not any(texts.get(language) for language in [*wanted, UNTAGGED]):
        raise DataError(f"the corpus ({', '.join(sources)}) holds no text in {', '.join(wanted)}")
    missing = [language for language in wanted if not texts.get(language)]
    if missing and not texts.get(UNTAGGED) and require_all:
        hints = []
        for language in missing:
            near = sorted(code for code in available if code.split("-")[0] == language.split("-")[0])
            if near:
                hints.append(f"{language}: did you mean {', '.join(near)}?")
        raise DataError(
            f"the corpus ({', '.join(sources)}) has no text in {', '.join(missing)}"
            + (f" ({'; '.join(hints)})" if hints else "")
            + "; add a file of that language (LANG=PATH) or drop the language"
        )
    ordered = {language: texts[language] for language in wanted if texts.get(language)}
    if texts.get(UNTAGGED):
        ordered[UNTAGGED] = texts[UNTAGGED]
    return ordered


def _is_regional_variant(code: str, language: str) -> bool:
    """``uk-UA`` of ``uk``, ``pt-PT`` of ``pt``; not ``zh-Hant`` of ``zh`` (a script subtag: another writing system)."""
    base, _, region = code.partition("-")
    return base == language and (len(region) == 2 and region.isalpha() or len(region) == 3 and region.isdigit())


def _by_language(texts: Sequence[str], langs: Sequence[str], wanted: Sequence[str]) -> dict[str, list[str]]:
    """Texts per language of ``wanted``, and of the regional variants of its bare languages (folded in later)."""
    found: dict[str, list[str]] = {}
    wanted_set = set(wanted)
    bare = {language for language in wanted if "-" not in language}
    for text, language in zip(texts, langs, strict=True):
        if language in wanted_set or language.partition("-")[0] in bare and _is_regional_variant(language, language.partition("-")[0]):
            found.setdefault(language, []).append(text)
    return found


def _catalog_texts(source: str, wanted: Sequence[str]) -> tuple[dict[str, list[str]], set[str]]:
    if source not in PAIR_CATALOGS:
        raise DataError(f"unknown corpus '{source}'; expected {', '.join(PAIR_CATALOGS)} or a file")
    pairs = catalogs.catalog_pairs(source.removeprefix(CATALOGS_PREFIX))
    langs = column_values(pairs, "lang")
    found = _by_language(column_values(pairs, "translation"), langs, wanted)
    if catalogs.SOURCE_LANGUAGE in wanted:
        found[catalogs.SOURCE_LANGUAGE] = list(dict.fromkeys(column_values(pairs, "text")))
    return found, set(langs) | {catalogs.SOURCE_LANGUAGE}


def _file_texts(spec: str, wanted: Sequence[str]) -> dict[str, list[str]]:
    tag: str | None = None
    path = Path(spec).expanduser()
    if not path.exists() and "=" in spec:
        code, _, rest = spec.partition("=")
        try:
            tag = normalize_language(code)
        except ValueError:
            raise DataError(f"corpus '{spec}': '{code}' is not a language code (expected LANG=PATH)") from None
        path = Path(rest).expanduser()
    if not path.exists():
        raise DataError(f"corpus file {path} does not exist")

    if path.suffix.lower() == ".txt":
        lines = read_utf8_text(path).splitlines()
        return {tag or UNTAGGED: [line.strip() for line in lines if line.strip()]}

    has_language = tag is None and "lang" in file_columns(path)
    dataset = read_examples(path, lang_column="lang" if has_language else None)
    if not has_language:
        return {tag or UNTAGGED: column_values(dataset, "text")}
    return _by_language(column_values(dataset, "text"), column_values(dataset, "lang"), wanted)
