"""Users' own data: read, validate, and return it in polydistill's canonical columns.

A user's file is checked completely before any training starts, because a bad row found in
hour three of a run costs the run. Every problem is reported with the file, the line (as a text
editor numbers it, for JSONL/CSV/TSV) or the row index (for Parquet and saved ``datasets``
directories), and what was expected; up to :data:`MAX_REPORTED_PROBLEMS` problems are reported
at once so that one fix-and-retry cycle fixes them all.

Formats: JSON Lines (``.jsonl``, ``.ndjson``, ``.json`` with one object a line), CSV (``.csv``),
TSV (``.tsv``, ``.tab``), Parquet (``.parquet``, ``.pq``) and directories written by
``Dataset.save_to_disk``. Nothing is written: not to the file, not next to it (a saved dataset
is loaded into memory, so ``datasets`` puts no cache file in the user's directory).

Canonical columns of what is returned: ``text`` (str), and when their columns are named,
``label`` (int with a ``ClassLabel`` feature), ``lang`` (BCP 47 tag), ``translation`` (str: for
parallel data ``text`` is the source side and ``translation`` the target side), ``source_id``.

Sources by name (built-in catalogs or a path) are resolved by :mod:`polydistill.data.sources`.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from polydistill.data.columns import dataset_from_columns
from polydistill.data.languages import normalize_language
from polydistill.errors import ConfigError, DataError

if TYPE_CHECKING:
    import datasets

__all__ = [
    "MAX_REPORTED_PROBLEMS",
    "SUPPORTED_FORMATS",
    "detect_format",
    "file_columns",
    "read_examples",
    "truncate_to_tokens",
]

SUPPORTED_FORMATS = ("jsonl", "csv", "tsv", "parquet", "datasets")
_EXTENSION_FORMATS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
#: Problems listed in one error before the rest are only counted.
MAX_REPORTED_PROBLEMS = 20
_INTEGER = re.compile(r"^[+-]?\d+$")
_LANGUAGE_EXAMPLE = "a BCP 47 tag such as 'de', 'pt-BR' or 'zh-Hans'"

Overlong = Literal["refuse", "truncate"]


# ---------------------------------------------------------------------------------------------
# Where a row is, for messages.


@dataclass(frozen=True)
class _Location:
    path: Path
    line: int | None = None  # 1-based line of a text file
    row: int | None = None  # 0-based row index of a table

    def __str__(self) -> str:
        if self.line is not None:
            return f"{self.path}, line {self.line}"
        if self.row is not None:
            return f"{self.path}, row index {self.row}"
        return str(self.path)


class _Problems:
    """Collects problems; raises one DataError listing them in file order."""

    def __init__(self) -> None:
        self.found: list[tuple[_Location, str]] = []
        self.count = 0

    def add(self, where: _Location, message: str) -> None:
        self.count += 1
        if len(self.found) < MAX_REPORTED_PROBLEMS:
            self.found.append((where, message))

    def raise_if_any(self) -> None:
        if not self.count:
            return
        ordered = sorted(self.found, key=lambda item: (item[0].line or 0, item[0].row or 0))
        text = "\n".join(f"{where}: {message}" for where, message in ordered)
        if self.count > len(self.found):
            text += f"\n... and {self.count - len(self.found)} more problems"
        raise DataError(text)


# ---------------------------------------------------------------------------------------------
# Reading raw rows, one function per format.


@dataclass(frozen=True)
class _Columns:
    """The user's column names for each canonical column that is asked for."""

    wanted: dict[str, str]  # canonical name -> user's column name

    def missing_from(self, available: Sequence[str]) -> list[str]:
        return [user for user in self.wanted.values() if user not in available]


def detect_format(path: Path, format: str | None = None) -> str:
    """The format of ``path``: ``format`` if given, else from the extension or directory."""
    if format is not None:
        if format not in SUPPORTED_FORMATS:
            raise DataError(f"{path}: unknown format '{format}'; expected one of {', '.join(SUPPORTED_FORMATS)}")
        return format
    if path.is_dir():
        return "datasets"
    found = _EXTENSION_FORMATS.get(path.suffix.lower())
    if found is None:
        raise DataError(
            f"{path}: cannot tell the format from the extension '{path.suffix}'; expected one of "
            f"{', '.join(sorted(_EXTENSION_FORMATS))}, a saved datasets directory, or an explicit format"
        )
    return found


def file_columns(path: str | Path, format: str | None = None) -> list[str]:
    """Column names of a data file, from its first record or header, without reading the rest.

    For a caller whose columns are optional (a ``lang`` or ``label`` column used when present).
    A file too damaged to tell gives no columns; :func:`read_examples` then reports what is wrong.
    """
    path = Path(path).expanduser()
    data_format = detect_format(path, format)
    try:
        if data_format == "jsonl":
            with path.open(encoding="utf-8-sig") as handle:
                record = json.loads(next((line for line in handle if line.strip()), "{}"))
            return list(record) if isinstance(record, dict) else []
        if data_format in ("csv", "tsv"):
            with path.open(encoding="utf-8-sig", newline="") as handle:
                header = next(csv.reader(handle, delimiter="," if data_format == "csv" else "\t"), [])
            return [name.strip() for name in header]
    except (UnicodeDecodeError, json.JSONDecodeError, csv.Error):
        return []
    if data_format == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            return list(pq.read_schema(path).names)
        except (pa.ArrowException, OSError):
            return []
    import datasets

    try:
        dataset = datasets.load_from_disk(str(path))
    except Exception:  # datasets raises several types for damaged directories
        return []
    return list(dataset.column_names) if isinstance(dataset, datasets.Dataset) else []


def _jsonl_rows(path: Path, columns: _Columns, problems: _Problems) -> Iterator[tuple[_Location, dict]]:
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            where = _Location(path, line=number)
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as error:
                problems.add(where, f"malformed line: not UTF-8 ({error.reason} at byte {error.start})")
                continue
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                if number == 1 and line.lstrip().startswith("["):
                    raise DataError(f"{where}: the file is one JSON array; expected JSON Lines, one object a line") from None
                problems.add(where, f"malformed line: not valid JSON ({error.msg} at column {error.colno})")
                continue
            if not isinstance(record, dict):
                problems.add(where, f"malformed line: expected a JSON object, got {type(record).__name__}")
                continue
            missing = columns.missing_from(list(record))
            if missing:
                problems.add(
                    where,
                    f"missing column {_names(missing)}; the line has {_names(list(record)) or 'no columns'}",
                )
                continue
            yield where, record


def _delimited_rows(path: Path, delimiter: str, columns: _Columns, problems: _Problems) -> Iterator[tuple[_Location, dict]]:
    with path.open("r", encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, delimiter=delimiter, strict=True)
        previous_line = 0
        header: list[str] | None = None
        while True:
            start = previous_line + 1
            try:
                fields = next(reader)
            except StopIteration:
                break
            except csv.Error as error:
                problems.add(_Location(path, line=start), f"malformed line: {error}")
                break  # the csv module cannot resume after a quoting error
            except UnicodeDecodeError as error:
                raise DataError(f"{path}: not UTF-8 text ({error.reason})") from None
            previous_line = reader.line_num
            where = _Location(path, line=start)
            if header is None:
                header = [name.strip() for name in fields]
                missing = columns.missing_from(header)
                if missing:
                    raise DataError(f"{where}: the header has no column {_names(missing)}; it has {_names(header)}")
                continue
            if not fields:
                continue  # a blank line
            if len(fields) != len(header):
                problems.add(
                    where,
                    f"malformed line: {len(fields)} fields, but the header has {len(header)} (separator {delimiter!r})",
                )
                continue
            yield where, dict(zip(header, fields, strict=True))
        if header is None:
            raise DataError(f"{path}: the file is empty; expected a header line naming the columns")


def _parquet_rows(path: Path, columns: _Columns) -> Iterator[tuple[_Location, dict]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError) as error:
        raise DataError(f"{path}: not a readable Parquet file ({error})") from None
    missing = columns.missing_from(schema.names)
    if missing:
        raise DataError(f"{path}: no column {_names(missing)}; the file has {_names(schema.names)}")
    table = pq.read_table(path, columns=list(dict.fromkeys(columns.wanted.values())))
    yield from _table_rows(path, table.to_pydict())


def _table_rows(path: Path, table: dict[str, list]) -> Iterator[tuple[_Location, dict]]:
    names = list(table)
    length = len(table[names[0]]) if names else 0
    for index in range(length):
        yield _Location(path, row=index), {name: table[name][index] for name in names}


def _saved_dataset(path: Path, columns: _Columns) -> tuple[dict[str, list], Any]:
    """Columns of a ``save_to_disk`` directory, and its label feature (for ClassLabel names)."""
    import datasets

    if (path / "dataset_dict.json").is_file():
        splits = json.loads((path / "dataset_dict.json").read_text()).get("splits", [])
        raise DataError(
            f"{path}: a saved DatasetDict with splits {_names(splits)}; "
            f"point at one split, e.g. {path / (splits[0] if splits else 'train')}"
        )
    if not (path / "dataset_info.json").is_file() and not (path / "state.json").is_file():
        raise DataError(f"{path}: a directory, but not one written by Dataset.save_to_disk")
    try:
        dataset = datasets.load_from_disk(str(path), keep_in_memory=True)
    except Exception as error:  # datasets raises several types for damaged directories
        raise DataError(f"{path}: cannot load the saved dataset ({type(error).__name__}: {error})") from None
    missing = columns.missing_from(dataset.column_names)
    if missing:
        raise DataError(f"{path}: no column {_names(missing)}; the dataset has {_names(dataset.column_names)}")
    label_column = columns.wanted.get("label")
    label_feature = dataset.features[label_column] if label_column else None
    wanted = list(dict.fromkeys(columns.wanted.values()))
    return dataset.select_columns(wanted).to_dict(), label_feature


def _names(names: Sequence[object]) -> str:
    return ", ".join(f"'{name}'" for name in names)


# ---------------------------------------------------------------------------------------------
# Checking values.


def _checked_text(value: object, column: str, where: _Location, problems: _Problems) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        problems.add(where, f"empty {column!r}; expected a non-empty string")
        return None
    if not isinstance(value, str):
        problems.add(where, f"{column!r} is {type(value).__name__} {value!r}; expected a string")
        return None
    if not value.strip():
        problems.add(where, f"empty {column!r}; expected a non-empty string")
        return None
    return value


def _is_empty(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or (isinstance(value, str) and not value.strip())


def _checked_label(value: object, column: str, textual: bool, where: _Location, problems: _Problems) -> object:
    """A label name (str) or id (int), or None after reporting a problem."""
    expected = "expected a label name or integer id"
    if _is_empty(value):
        problems.add(where, f"empty {column!r}; {expected}")
        return None
    if isinstance(value, bool):
        problems.add(where, f"{column!r} is {value!r}; {expected}")
        return None
    if isinstance(value, float):
        if value.is_integer():
            return int(value)
        problems.add(where, f"{column!r} is {value!r}; {expected}")
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        value = value.strip()
        return _TextualLabel(value) if textual else value
    problems.add(where, f"{column!r} is {type(value).__name__} {value!r}; {expected}")
    return None


class _TextualLabel(str):
    """A label read from CSV/TSV, where every cell is text: '3' may be a name or an id."""


def _label_kind(value: object) -> str:
    if isinstance(value, int) or (isinstance(value, _TextualLabel) and _INTEGER.match(value)):
        return "id"
    return "name"


def _label_ids(
    labels: list[tuple[_Location, object]],
    label_names: Sequence[str] | None,
    column: str,
    problems: _Problems,
) -> tuple[list[int], list[str]]:
    """Map raw labels to ids; label names from ``label_names`` or found in the data."""
    if label_names is not None:
        names = [str(name) for name in label_names]
        if len(set(names)) != len(names):
            raise ConfigError(f"label names {names} contain duplicates")
    else:
        kinds = {_label_kind(value) for _, value in labels}
        if kinds == {"id"}:
            largest = max((int(str(value)) for _, value in labels), default=-1)
            names = [str(index) for index in range(largest + 1)]
        elif kinds == {"name"} or not kinds:
            names = sorted({str(value) for _, value in labels})
        else:
            first_kind = _label_kind(labels[0][1])
            for where, value in labels:
                if _label_kind(value) != first_kind:
                    problems.add(
                        where,
                        f"{column!r} is {value!r}, but the first label ({labels[0][0]}) is a "
                        f"{first_kind}; expected all labels to be names or all integer ids",
                    )
            return [], []
    index_of = {name: index for index, name in enumerate(names)}
    ids: list[int] = []
    shown = ", ".join(names) if len(names) <= 20 else ", ".join(names[:20]) + ", ..."
    for where, value in labels:
        if isinstance(value, str) and value in index_of:
            ids.append(index_of[value])
            continue
        as_id: int | None = None
        if isinstance(value, int):
            as_id = value
        elif isinstance(value, _TextualLabel) and _INTEGER.match(value):
            as_id = int(value)
        if as_id is not None and 0 <= as_id < len(names):
            ids.append(as_id)
        elif as_id is not None:
            problems.add(
                where,
                f"{column!r} is {as_id}, outside the label set; expected an id from 0 to {len(names) - 1} ({shown})",
            )
        else:
            problems.add(where, f"{column!r} is {value!r}, not in the label set; expected one of {shown}")
    return ids, names


# ---------------------------------------------------------------------------------------------
# Token lengths.


def _token_limit(tokenizer: Any, max_length: int | None) -> int | None:
    if max_length is not None:
        if tokenizer is None:
            raise ConfigError("max_length is counted in tokens: give the tokenizer of the model too")
        if max_length < 1:
            raise ConfigError(f"max_length must be a positive number of tokens, not {max_length}")
        return max_length
    if tokenizer is None:
        return None
    limit = getattr(tokenizer, "model_max_length", None)
    return int(limit) if isinstance(limit, int) and 0 < limit < 1_000_000 else None


def _token_counts(tokenizer: Any, texts: list[str], batch_size: int = 1024) -> list[int]:
    counts: list[int] = []
    for start in range(0, len(texts), batch_size):
        encoded = tokenizer(texts[start : start + batch_size], add_special_tokens=True, verbose=False)
        counts.extend(len(ids) for ids in encoded["input_ids"])
    return counts


def truncate_to_tokens(text: str, tokenizer: Any, max_length: int) -> str:
    """The longest prefix of ``text`` that fits ``max_length`` tokens (special tokens included).

    The cut falls on a token boundary, found through the fast tokenizer's offset mapping, so
    the result is the original string shortened, not a decoded approximation of it.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError("truncating over-long texts needs a fast tokenizer (offsets); refuse them instead")
    encoded = tokenizer(
        text,
        add_special_tokens=True,
        truncation=True,
        max_length=max_length,
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
    )
    offsets = zip(encoded["offset_mapping"], encoded["special_tokens_mask"], strict=True)
    ends = [end for (_, end), special in offsets if not special]
    while ends:
        candidate = text[: ends[-1]].rstrip()
        if len(tokenizer(candidate, add_special_tokens=True, verbose=False)["input_ids"]) <= max_length:
            return candidate
        ends.pop()  # re-tokenising the prefix merged differently: one token shorter
    return ""


# ---------------------------------------------------------------------------------------------
# The reader.


def read_examples(
    path: str | Path,
    *,
    text_column: str = "text",
    label_column: str | None = None,
    lang_column: str | None = None,
    translation_column: str | None = None,
    source_id_column: str | None = None,
    label_names: Sequence[str] | None = None,
    tokenizer: Any = None,
    max_length: int | None = None,
    overlong: Overlong = "refuse",
    format: str | None = None,
) -> datasets.Dataset:
    """Read and validate a user's file or saved dataset into canonical columns.

    ``label_names`` fixes the label set (labels outside it are errors); without it the set is
    the sorted label names found, or ids 0..max when the labels are integers. Language codes are
    normalised to BCP 47 and unknown ones refused. With a ``tokenizer``, texts (and
    translations) longer than ``max_length`` tokens (default: the tokenizer's
    ``model_max_length``) are refused or, with ``overlong="truncate"``, cut at a token boundary.
    Raises :class:`~polydistill.errors.DataError` naming the file, the line or row, and what
    was expected.
    """
    import datasets

    if overlong not in ("refuse", "truncate"):
        raise ConfigError(f"overlong must be 'refuse' or 'truncate', not {overlong!r}")
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    data_format = detect_format(path, format)
    wanted = {"text": text_column}
    optional = {
        "label": label_column,
        "lang": lang_column,
        "translation": translation_column,
        "source_id": source_id_column,
    }
    wanted.update({canonical: user for canonical, user in optional.items() if user is not None})
    columns = _Columns(wanted)
    limit = _token_limit(tokenizer, max_length)
    problems = _Problems()

    label_feature = None
    if data_format == "jsonl":
        rows: Iterator[tuple[_Location, dict]] = _jsonl_rows(path, columns, problems)
    elif data_format in ("csv", "tsv"):
        rows = _delimited_rows(path, "," if data_format == "csv" else "\t", columns, problems)
    elif data_format == "parquet":
        rows = _parquet_rows(path, columns)
    else:
        if not path.is_dir():
            raise DataError(f"{path}: expected a directory written by Dataset.save_to_disk")
        table, label_feature = _saved_dataset(path, columns)
        rows = _table_rows(path, table)
    textual_labels = data_format in ("csv", "tsv")
    if label_names is None and isinstance(label_feature, datasets.ClassLabel):
        label_names = label_feature.names

    out: dict[str, list] = {canonical: [] for canonical in wanted}
    locations: list[_Location] = []
    raw_labels: list[tuple[_Location, object]] = []
    for where, record in rows:
        values: dict[str, object] = {}
        valid = True
        for canonical, user in wanted.items():
            value = record[user]
            if canonical in ("text", "translation"):
                value = _checked_text(value, user, where, problems)
            elif canonical == "label":
                value = _checked_label(value, user, textual_labels, where, problems)
            elif canonical == "lang":
                value = _checked_language(value, user, where, problems)
            elif canonical == "source_id":
                value = None if value is None or str(value).strip() == "" else str(value)
                if value is None:
                    problems.add(where, f"empty {user!r}; expected an identifier of the source text")
            valid = valid and value is not None
            values[canonical] = value
        if values.get("label") is not None:
            # kept even from a row with other problems, so its label is checked too; when any
            # problem is found nothing is returned, so ids only need to align with clean data
            raw_labels.append((where, values["label"]))
        if not valid:
            continue
        locations.append(where)
        for canonical, value in values.items():
            if canonical != "label":
                out[canonical].append(value)
    names: list[str] = []
    if label_column is not None:  # before raising, so that label problems are listed too
        out["label"], names = _label_ids(raw_labels, label_names, label_column, problems)
    problems.raise_if_any()
    if not locations:
        raise DataError(f"{path}: no examples; expected at least one row with a {text_column!r}")

    if limit is not None:
        for canonical in ("text", "translation"):
            if canonical in out:
                _enforce_token_limit(out[canonical], wanted[canonical], locations, tokenizer, limit, overlong, problems)
        problems.raise_if_any()

    features = {canonical: datasets.Value("string") for canonical in out}
    if label_column is not None:
        features["label"] = datasets.ClassLabel(names=names)
    ordered = [name for name in ("text", "label", "lang", "translation", "source_id") if name in out]
    return dataset_from_columns({name: out[name] for name in ordered}, datasets.Features({name: features[name] for name in ordered}))


def _checked_language(value: object, column: str, where: _Location, problems: _Problems) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        problems.add(where, f"empty {column!r}; expected {_LANGUAGE_EXAMPLE}")
        return None
    if not isinstance(value, str):
        problems.add(where, f"{column!r} is {type(value).__name__} {value!r}; expected {_LANGUAGE_EXAMPLE}")
        return None
    try:
        return normalize_language(value)
    except ValueError as error:
        problems.add(where, f"unknown language code in {column!r}: {error}; expected {_LANGUAGE_EXAMPLE}")
        return None


def _enforce_token_limit(
    texts: list[str],
    column: str,
    locations: list[_Location],
    tokenizer: Any,
    limit: int,
    overlong: Overlong,
    problems: _Problems,
) -> None:
    """Refuse (report) or truncate, in place in ``texts`` (our copy), texts over ``limit`` tokens."""
    for index, count in enumerate(_token_counts(tokenizer, texts)):
        if count <= limit:
            continue
        if overlong == "refuse":
            problems.add(
                locations[index],
                f"{column!r} is {count} tokens long, more than the limit of {limit}; "
                "expected a shorter text (or choose to truncate over-long texts)",
            )
        else:
            texts[index] = truncate_to_tokens(texts[index], tokenizer, limit)
