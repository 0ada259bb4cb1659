"""Users' own data: read, validate, and return it in polydistill's canonical columns.

A user's file is checked completely before any training starts, because a bad row found in
hour three of a run costs the run. Every problem is reported with the file, the line (as a text
editor numbers it, for JSONL/CSV/TSV) or the row index (for Parquet and saved ``datasets``
directories), and what was expected; up to :data:`MAX_REPORTED_PROBLEMS` problems are reported
at once so that one fix-and-retry cycle fixes them all.

Formats: JSON Lines (``.jsonl``, ``.ndjson``, ``.json`` with one object a line), CSV (``.csv``),
TSV (``.tsv``, ``.tab``), Parquet (``.parquet``, ``.pq``), directories written by
``Dataset.save_to_disk``, and plain text (``.txt``: one text a line, blank lines skipped, each
text stripped of surrounding whitespace). Plain text has no columns but its texts: unlabelled
monolingual text, which the teacher labels, tagged with one language by the caller if at all. Nothing is written: not to the file, not next to it (a saved dataset
is loaded into memory, so ``datasets`` puts no cache file in the user's directory).

Text files are UTF-8, with or without a byte-order mark, decoded the same way by every reader
here (the column peek :func:`file_columns` included). A file in another encoding is refused at
its first undecodable byte (line and byte offset), with the encoding it probably has and the
``iconv`` command that converts it; an empty file, a Git LFS pointer, a truncated Parquet file
or a damaged saved dataset is refused as what it is.

Labels are all names or all integer ids. Without ``label_names`` a mix is refused, since
``3`` or ``"2"`` beside names may be an id or a class called "2": in CSV/TSV, where every cell
is text, an integer cell counts as an id; in JSON and Parquet a string of digits counts as
neither (a mix with names or ids is refused), and all such strings alone are names.

Canonical columns of what is returned: ``text`` (str), and when their columns are named,
``label`` (int with a ``ClassLabel`` feature), ``lang`` (BCP 47 tag), ``translation`` (str: for
parallel data ``text`` is the source side and ``translation`` the target side), ``source_id``.

Sources by name (built-in catalogs or a path) are resolved by :mod:`polydistill.data.sources`.
"""

from __future__ import annotations

import codecs
import csv
import json
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TextIO

from polydistill.data.columns import dataset_from_columns
from polydistill.data.languages import normalize_language
from polydistill.errors import ConfigError, DataError
from polydistill.text_files import FOREIGN_BOMS, LFS_POINTER_PREFIX, conversion_hint

if TYPE_CHECKING:
    import datasets

__all__ = [
    "MAX_REPORTED_PROBLEMS",
    "SUPPORTED_FORMATS",
    "detect_format",
    "file_columns",
    "read_examples",
    "read_utf8_text",
    "truncate_to_tokens",
]

SUPPORTED_FORMATS = ("jsonl", "csv", "tsv", "parquet", "datasets", "text")
_EXTENSION_FORMATS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".txt": "text",
}
#: Problems listed in one error before the rest are only counted.
MAX_REPORTED_PROBLEMS = 20
#: The most classes integer label ids may imply (ids 0..max) when no label names are given.
MAX_INFERRED_LABELS = 100_000
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
# The file as a whole, before it is parsed: a data file at all, and UTF-8 text.

#: the first bytes of files that users give by mistake for a text file, and what to do instead
_MAGIC_BYTES = (
    (b"PAR1", "a Parquet file: give it a .parquet extension"),
    (b"\x1f\x8b", "gzip-compressed: decompress it first (gunzip)"),
    (b"PK\x03\x04", "a ZIP archive (an .xlsx workbook is one): export the sheet as CSV (UTF-8)"),
)
_EXPECTED_CONTENT = {
    "jsonl": "JSON Lines, one object a line",
    "csv": "a header line naming the columns, then one example a line",
    "tsv": "a header line naming the columns, then one example a line",
    "parquet": "a Parquet file",
    "text": "UTF-8 text, one text a line",
}


def _check_data_file(path: Path, data_format: str) -> None:
    """Refuse, by name, what is not a data file: a directory, an empty file, a Git LFS pointer,
    and for a text format, binary data or UTF-16 (NUL bytes, which UTF-8 text never has).

    These fail deep inside a parser otherwise, with a message about the parser, not the file
    (UTF-16 without a byte-order mark even decodes as UTF-8, to text full of NUL characters).
    """
    if data_format == "datasets":
        return  # a directory; :func:`_saved_dataset` checks what it holds
    expected = _EXPECTED_CONTENT[data_format]
    if path.is_dir():
        raise DataError(f"{path}: a directory, not a file; expected {expected}")
    try:
        with path.open("rb") as handle:
            head = handle.read(4096)
    except OSError as error:
        raise DataError(f"{path}: cannot be read ({error.strerror or error})") from None
    if not head:
        raise DataError(f"{path}: the file is empty (0 bytes); expected {expected}")
    if head.startswith(LFS_POINTER_PREFIX):
        raise DataError(
            f"{path}: a Git LFS pointer file, not the data (it starts with '{LFS_POINTER_PREFIX.decode()}'); "
            "fetch the real file with `git lfs pull` in its repository, then try again"
        )
    if data_format == "parquet":
        return
    for magic, what in _MAGIC_BYTES:
        if head.startswith(magic):
            raise DataError(f"{path}: not a text file: it is {what}; expected {expected}")
    if any(head.startswith(bom) for bom, _ in FOREIGN_BOMS):
        raise _not_utf8_at(path, head, 0, "a byte-order mark of another encoding")
    if b"\x00" in head:
        raise _not_utf8_at(path, head, head.index(b"\x00"), "a NUL byte, which UTF-8 text does not hold")


def _not_utf8(path: Path) -> DataError:
    """The error for a file that is not UTF-8: where its first undecodable byte is, the
    encoding it probably has, and the command that converts it."""
    data = path.read_bytes()
    start = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        data[start:].decode("utf-8")
    except UnicodeDecodeError as error:
        offset = start + error.start
        reason = error.reason
    else:  # the caller saw a decoding error that the whole file does not have
        return DataError(f"{path}: not UTF-8 text; expected UTF-8")
    return _not_utf8_at(path, data, offset, reason)


def _not_utf8_at(path: Path, data: bytes, offset: int, reason: str) -> DataError:
    """The error for the byte at ``offset`` of ``data`` (the file, or its first part)."""
    line = data.count(b"\n", 0, offset) + 1
    message = f"{path}, line {line}: not UTF-8 text: byte 0x{data[offset]:02X} at byte offset {offset} ({reason}); expected UTF-8"
    return DataError(f"{message}. {conversion_hint(path, data)}")


def _open_utf8(path: Path) -> TextIO:
    """A text handle on ``path`` as every reader decodes it: UTF-8, a byte-order mark dropped,
    line ends kept as they are (the csv module and editors' line numbers need them)."""
    return path.open("r", encoding="utf-8-sig", errors="strict", newline="")


def read_utf8_text(path: str | Path) -> str:
    """The whole text of a UTF-8 file (a byte-order mark dropped), for plain-text corpora.

    Raises :class:`~polydistill.errors.DataError` for a directory, an empty file, a Git LFS
    pointer, or text in another encoding (with the line and byte offset and how to convert it).
    """
    path = Path(path).expanduser()
    _check_data_file(path, "text")
    try:
        with _open_utf8(path) as handle:
            return handle.read()
    except UnicodeDecodeError:
        raise _not_utf8(path) from None


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
    The file is decoded as :func:`read_examples` decodes it (UTF-8, a byte-order mark dropped),
    so both see the same columns; what is not a data file at all (no file, an empty file, a Git
    LFS pointer, text in another encoding) raises the :class:`~polydistill.errors.DataError`
    that :func:`read_examples` would.
    """
    path = Path(path).expanduser()
    data_format = detect_format(path, format)
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    _check_data_file(path, data_format)
    if data_format == "jsonl":
        first = next(_jsonl_lines(path), None)
        try:
            record = json.loads(first[1]) if first else None
        except (ValueError, RecursionError):  # not JSON, or numbers/nesting beyond Python's limits
            return []
        return list(record) if isinstance(record, dict) else []
    if data_format == "text":
        return ["text"]  # its one column, whatever the caller calls it
    if data_format in ("csv", "tsv"):
        try:
            with _open_utf8(path) as handle:
                header = next(csv.reader(handle, delimiter="," if data_format == "csv" else "\t"), [])
        except UnicodeDecodeError:
            raise _not_utf8(path) from None
        except csv.Error:
            return []
        return [name.strip() for name in header]
    if data_format == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            return list(pq.read_schema(path).names)
        except (pa.ArrowException, OSError, ValueError):  # ValueError: undecodable names, too
            return []
    import datasets

    try:
        dataset = datasets.load_from_disk(str(path))
    except Exception:  # datasets raises several types for damaged directories
        return []
    return list(dataset.column_names) if isinstance(dataset, datasets.Dataset) else []


def _jsonl_lines(path: Path) -> Iterator[tuple[int, str]]:
    """The non-blank lines of a JSON Lines or plain text file with their numbers as an editor
    counts them, decoded as UTF-8 (a byte-order mark dropped); text in another encoding is
    refused whole, at its first undecodable byte (line and byte offset)."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError:
                raise _not_utf8(path) from None
            if line.strip():
                yield number, line


class _DuplicateKey(ValueError):
    """A JSON object naming one key twice (``json`` would keep the last value silently)."""


def _object_with_unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    record: dict[str, Any] = {}
    for key, value in pairs:
        if key in record:
            raise _DuplicateKey(key)
        record[key] = value
    return record


def _jsonl_rows(path: Path, columns: _Columns, problems: _Problems) -> Iterator[tuple[_Location, dict]]:
    for index, (number, line) in enumerate(_jsonl_lines(path)):
        where = _Location(path, line=number)
        record = _json_record(line, where, problems, first=index == 0)
        if record is None:
            continue
        missing = columns.missing_from(list(record))
        if missing:
            problems.add(where, f"missing column {_names(missing)}; the line has {_names(list(record)) or 'no columns'}")
            continue
        yield where, record


def _text_rows(path: Path, columns: _Columns) -> Iterator[tuple[_Location, dict]]:
    """The texts of a plain text file, one a line (stripped), under the caller's text column.

    A column besides the text (a label, a language, a translation) is refused before any line
    is read: a plain text file has none, and a column asked for is a column expected.
    """
    others = {canonical: user for canonical, user in columns.wanted.items() if canonical != "text"}
    if others:
        raise DataError(
            f"{path}: a plain text file (one text a line) has no column {_names(list(others.values()))}; "
            "expected JSON Lines, CSV, TSV or Parquet for texts with labels, languages or translations"
        )
    text_column = columns.wanted["text"]
    for number, line in _jsonl_lines(path):
        yield _Location(path, line=number), {text_column: line.strip()}


def _json_record(line: str, where: _Location, problems: _Problems, *, first: bool) -> dict | None:
    """The JSON object on one line, or None after reporting why the line is not one."""
    try:
        record = json.loads(line, object_pairs_hook=_object_with_unique_keys)
    except _DuplicateKey as error:
        problems.add(where, f"malformed line: the key {error.args[0]!r} appears twice; expected each key once")
        return None
    except json.JSONDecodeError as error:
        if first and line.lstrip().startswith("["):
            raise DataError(f"{where}: the file is one JSON array; expected JSON Lines, one object a line") from None
        problems.add(where, f"malformed line: not valid JSON ({error.msg} at column {error.colno})")
        return None
    except (ValueError, RecursionError) as error:  # an integer of thousands of digits, nesting too deep
        problems.add(where, f"malformed line: not usable JSON ({error}); expected one JSON object of plain values")
        return None
    if not isinstance(record, dict):
        problems.add(where, f"malformed line: expected a JSON object, got {type(record).__name__}")
        return None
    return record


def _delimited_rows(path: Path, delimiter: str, columns: _Columns, problems: _Problems) -> Iterator[tuple[_Location, dict]]:
    with _open_utf8(path) as handle:
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
            except UnicodeDecodeError:
                raise _not_utf8(path) from None
            previous_line = reader.line_num
            where = _Location(path, line=start)
            if header is None:
                header = [name.strip() for name in fields]
                _check_header(header, columns, where)
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


def _check_header(header: list[str], columns: _Columns, where: _Location) -> None:
    """Refuse a header without a wanted column, or naming one twice (which one would be read?)."""
    missing = columns.missing_from(header)
    if missing:
        raise DataError(f"{where}: the header has no column {_names(missing)}; it has {_names(header) or 'no columns (a blank line)'}")
    for name in dict.fromkeys(columns.wanted.values()):
        positions = [str(index + 1) for index, field in enumerate(header) if field == name]
        if len(positions) > 1:
            raise DataError(
                f"{where}: the header names the column {name!r} {len(positions)} times (fields {', '.join(positions)}); "
                "expected each column once"
            )


def _parquet_rows(path: Path, columns: _Columns) -> Iterator[tuple[_Location, dict]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError, ValueError) as error:  # ValueError: undecodable names, too
        raise _not_parquet(path, error) from None
    missing = columns.missing_from(schema.names)
    if missing:
        raise DataError(f"{path}: no column {_names(missing)}; the file has {_names(schema.names)}")
    twice = sorted({name for name in columns.wanted.values() if schema.names.count(name) > 1})
    if twice:
        raise DataError(f"{path}: the column {_names(twice)} appears more than once; expected each column once")
    try:
        table = pq.read_table(path, columns=list(dict.fromkeys(columns.wanted.values())))
        values = table.to_pydict()
    except (pa.ArrowException, OSError, ValueError) as error:
        raise DataError(
            f"{path}: a damaged Parquet file: its schema reads but its data do not ({error}); "
            "expected a complete Parquet file (write or copy it again)"
        ) from None
    yield from _table_rows(path, values)


def _not_parquet(path: Path, error: Exception) -> DataError:
    """Why ``path`` is no Parquet file: not one at all, or one cut short (its footer missing)."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(4)
        handle.seek(max(size - 4, 0))
        tail = handle.read(4)
    if head != b"PAR1":
        what = f"not a Parquet file: it starts with {head!r}, a Parquet file with b'PAR1'"
    elif tail != b"PAR1":
        what = f"a truncated Parquet file: it starts like one, but its footer is missing ({size} bytes); copy or write it again"
    else:
        what = "a damaged Parquet file: write or copy it again"
    return DataError(f"{path}: {what} ({error})")


def _table_rows(path: Path, table: dict[str, list]) -> Iterator[tuple[_Location, dict]]:
    names = list(table)
    length = len(table[names[0]]) if names else 0
    for index in range(length):
        yield _Location(path, row=index), {name: table[name][index] for name in names}


def _saved_dataset(path: Path, columns: _Columns) -> tuple[dict[str, list], Any]:
    """Columns of a ``save_to_disk`` directory, and its label feature (for ClassLabel names)."""
    import datasets

    if (path / "dataset_dict.json").is_file():
        splits = sorted(child.name for child in path.iterdir() if (child / "state.json").is_file())
        raise DataError(
            f"{path}: a saved DatasetDict with splits {_names(splits)}; "
            f"point at one split, e.g. {path / (splits[0] if splits else 'train')}"
        )
    if not (path / "dataset_info.json").is_file() and not (path / "state.json").is_file():
        raise DataError(_not_a_saved_dataset(path))
    damaged = f"{path}: a saved dataset directory with missing or damaged files"
    try:
        dataset = datasets.load_from_disk(str(path), keep_in_memory=True)
    except Exception as error:  # datasets raises several types for damaged directories
        raise DataError(f"{damaged} ({type(error).__name__}: {error}); save it again with Dataset.save_to_disk") from None
    if not isinstance(dataset, datasets.Dataset):
        raise DataError(f"{path}: a saved DatasetDict; point at the directory of one of its splits")
    missing = columns.missing_from(dataset.column_names)
    if missing:
        raise DataError(f"{path}: no column {_names(missing)}; the dataset has {_names(dataset.column_names)}")
    label_column = columns.wanted.get("label")
    label_feature = dataset.features[label_column] if label_column else None
    wanted = list(dict.fromkeys(columns.wanted.values()))
    try:
        return dataset.select_columns(wanted).to_dict(), label_feature
    except Exception as error:  # pyarrow's and datasets' errors for data that do not read
        raise DataError(f"{damaged} ({type(error).__name__}: {error}); save it again with Dataset.save_to_disk") from None


def _not_a_saved_dataset(path: Path) -> str:
    """The message for a directory given as data: which data files it holds, to point at one."""
    data_files = sorted(child.name for child in path.iterdir() if child.suffix.lower() in _EXTENSION_FORMATS)
    message = (
        f"{path}: a directory, but not one written by Dataset.save_to_disk (it has no state.json or dataset_info.json); "
        f"expected a data file ({', '.join(sorted(_EXTENSION_FORMATS))}) or a saved dataset directory"
    )
    if data_files:
        shown = _names(data_files[:5]) + (", ..." if len(data_files) > 5 else "")
        message += f"; it holds {shown}: point at one of them, e.g. {path / data_files[0]}"
    return message


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
    return value if _encodable(value, column, where, problems) else None


def _encodable(value: str, column: str, where: _Location, problems: _Problems) -> bool:
    """False, after reporting it, for a string with a lone surrogate (a JSON escape such as
    ``\\ud800`` that is half of a character): no UTF-8 file or Arrow column can hold it."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        problems.add(
            where,
            f"{column!r} holds {value[error.start]!r} at character {error.start}, half of a character (a lone surrogate); "
            "expected valid Unicode text",
        )
        return False
    return True


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
        if not _encodable(value, column, where, problems):
            return None
        return _TextualLabel(value) if textual else value
    problems.add(where, f"{column!r} is {type(value).__name__} {value!r}; {expected}")
    return None


class _TextualLabel(str):
    """A label read from CSV/TSV, where every cell is text: '3' may be a name or an id."""


#: what each kind of label is called in the message refusing a mix of kinds
_LABEL_KINDS = {"name": "a name", "id": "an integer id", "numeric name": "a number written as a string"}


def _label_kind(value: object) -> str:
    """``id`` (an int, or a CSV/TSV cell holding an integer), ``numeric name`` (a JSON or
    Parquet string holding an integer, such as ``"2"``), or ``name``."""
    if isinstance(value, int):
        return "id"
    if _INTEGER.match(str(value)):
        return "id" if isinstance(value, _TextualLabel) else "numeric name"
    return "name"


def _refuse_mixed_kinds(
    labels: list[tuple[_Location, object]], column: str, problems: _Problems, *, names: Sequence[str] | None = None
) -> bool:
    """Report labels of more than one kind; True when they are mixed.

    Without label names a mix cannot be read safely: beside names, ``3`` or ``"2"`` may be the
    id of a class or a class called "2", and guessing either way trains on wrong labels
    silently. All integer-like strings alone (JSON ``"1"`` .. ``"5"``) are names. With the
    teacher's label ``names``, a label that is one of them is a name, an integer (or a cell of
    digits that names no class) an id: a column of both is as likely a mistake (two files
    pasted together, ids shifted by one) and is refused too.
    """
    first_of: dict[str, tuple[_Location, object]] = {}
    for where, value in labels:
        if names is None:
            kind = _label_kind(value)
        elif isinstance(value, str) and value in names:
            kind = "name"
        elif isinstance(value, int) or _INTEGER.match(str(value)):
            kind = "id"
        else:
            continue  # neither: reported as outside the label set
        first_of.setdefault(kind, (where, value))
    if len(first_of) < 2:
        return False
    examples = [f"{value!r} ({_position(where)}) is {_LABEL_KINDS[kind]}" for kind, (where, value) in first_of.items()]
    second_where = sorted((where for where, _ in first_of.values()), key=lambda where: (where.line or 0, where.row or 0))[1]
    problems.add(
        second_where,
        f"{column!r} mixes kinds of label: {'; '.join(examples)}; expected all labels to be names or all integer ids "
        "(write every label as a class name, or every label as its id 0..N-1)",
    )
    return True


def _integer(value: object) -> int:
    """The value of an integer label (int, or text of digits); one of more than 18 digits, far
    beyond any label set, as +-10**18 (Python refuses to convert thousands of digits)."""
    if isinstance(value, int):
        return value
    text = str(value)
    if len(text.lstrip("+-")) <= 18:
        return int(text)
    return -(10**18) if text.startswith("-") else 10**18


def _position(where: _Location) -> str:
    return f"line {where.line}" if where.line is not None else f"row index {where.row}"


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
        if _refuse_mixed_kinds(labels, column, problems, names=names):
            return [], []
    elif _refuse_mixed_kinds(labels, column, problems):
        return [], []
    elif labels and _label_kind(labels[0][1]) == "id":
        largest = max(_integer(value) for _, value in labels)
        if largest >= MAX_INFERRED_LABELS:
            where = next(where for where, value in labels if _integer(value) == largest)
            problems.add(
                where,
                f"{column!r} is {largest}: integer ids up to it would make {largest + 1} classes; expected ids "
                f"0..N-1 of at most {MAX_INFERRED_LABELS} classes (or label names)",
            )
            return [], []
        names = [str(index) for index in range(largest + 1)]
    else:
        names = sorted({str(value) for _, value in labels})
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
            as_id = _integer(value)
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
    A plain text file (``.txt``) gives ``text`` alone, one row a non-blank line: naming any
    other column for it is an error. Raises :class:`~polydistill.errors.DataError` naming the
    file, the line or row, and what was expected.
    """
    import datasets

    if overlong not in ("refuse", "truncate"):
        raise ConfigError(f"overlong must be 'refuse' or 'truncate', not {overlong!r}")
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    data_format = detect_format(path, format)
    _check_data_file(path, data_format)
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
    elif data_format == "text":
        rows = _text_rows(path, columns)
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
                elif not _encodable(value, user, where, problems):
                    value = None
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
    if not _encodable(value, column, where, problems):
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
