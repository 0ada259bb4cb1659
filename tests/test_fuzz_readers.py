"""A seeded mutation loop over small valid data files: whatever a user's file turns into,
reading it gives data or a PolydistillError that names the file, never another exception.

Each case starts from a valid JSONL, CSV, TSV or Parquet file and damages it one way: cut at a
random offset, bytes flipped or inserted, re-encoded (cp1252, Latin-1, UTF-16), a value's type
swapped (str, int, float, list, dict, null, bool), header columns duplicated or removed. Each
mutated file goes through :func:`read_examples`, :func:`file_columns`, and the sources-level
readers a run and ``polydistill trim`` use. Every case has its own seed (``SEED``, the case
number): a failure prints both and the mutation, and reruns alone.
"""

from __future__ import annotations

import csv
import io
import json
import random
import traceback
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from polydistill.config import validate_config
from polydistill.data.readers import file_columns, read_examples
from polydistill.data.sources import corpus_texts_by_language, read_labelled
from polydistill.errors import PolydistillError

SEED = 0
CASES = 300
ROWS = [
    {"text": "the café is open", "label": "billing", "lang": "de"},
    {"text": "naïve “quotes” here", "label": "shipping", "lang": "fr"},
    {"text": "a plain line, with a comma", "label": "billing", "lang": "pt-BR"},
    {"text": "über\ttab", "label": "returns", "lang": "de"},
]
COLUMNS = ["text", "label", "lang"]
#: values a swapped field takes: every JSON type, and ones that stretch a reader's assumptions
ODD_VALUES: list[object] = ["", "  ", "2", "x" * 300, 3, -1, 10**30, 2.5, float("nan"), None, True, [1, "a"], {"k": "v"}, "\ud800"]
#: bytes an insertion draws from: delimiters, quotes, escapes, line ends, NUL, invalid UTF-8
SPECIAL_BYTES = b'\x00\n\r\t,"\\{}[]:\xff\xfe\xe9\x93\xef\xbb\xbf'


# ---------------------------------------------------------------------------------------------
# The valid files.


def jsonl_bytes(rows: list[dict], *, ensure_ascii: bool = False) -> bytes:
    # surrogatepass: a lone surrogate is written as the (invalid UTF-8) bytes a buggy encoder makes
    return "".join(json.dumps(row, ensure_ascii=ensure_ascii) + "\n" for row in rows).encode("utf-8", "surrogatepass")


def delimited_bytes(rows: list[dict], delimiter: str, header: list[str] | None = None) -> bytes:
    header = header or COLUMNS
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([row.get(name, "") for name in header])
    return buffer.getvalue().encode("utf-8", "surrogatepass")


def parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def valid_file(kind: str) -> bytes:
    if kind == "jsonl":
        return jsonl_bytes(ROWS)
    if kind in ("csv", "tsv"):
        return delimited_bytes(ROWS, "," if kind == "csv" else "\t")
    return parquet_bytes(pa.table({name: [row[name] for row in ROWS] for name in COLUMNS}))


# ---------------------------------------------------------------------------------------------
# Mutations: (rng, kind, valid bytes) -> (damaged bytes, what was done).


def truncate(rng: random.Random, kind: str, data: bytes) -> tuple[bytes, str]:
    cut = rng.randrange(len(data))
    return data[:cut], f"cut at byte {cut}"


def flip_bytes(rng: random.Random, kind: str, data: bytes) -> tuple[bytes, str]:
    damaged = bytearray(data)
    # half of Parquet's flips hit its footer (schema, column names, offsets), the rest anywhere
    start = max(len(data) - 300, 0) if kind == "parquet" and rng.random() < 0.5 else 0
    offsets = [rng.randrange(start, len(data)) for _ in range(rng.randint(1, 4))]
    for offset in offsets:
        damaged[offset] = rng.randrange(256)
    return bytes(damaged), f"bytes replaced at {offsets}"


def insert_bytes(rng: random.Random, kind: str, data: bytes) -> tuple[bytes, str]:
    offset = rng.randrange(len(data) + 1)
    inserted = bytes(rng.choice(SPECIAL_BYTES) for _ in range(rng.randint(1, 6)))
    return data[:offset] + inserted + data[offset:], f"{inserted!r} inserted at {offset}"


def reencode(rng: random.Random, kind: str, data: bytes) -> tuple[bytes, str]:
    if kind == "parquet":
        return truncate(rng, kind, data)
    encoding = rng.choice(["cp1252", "latin-1", "utf-16", "utf-16-le", "utf-16-be", "utf-32"])
    return data.decode("utf-8").encode(encoding, errors="replace"), f"re-encoded as {encoding}"


def swap_type(rng: random.Random, kind: str, data: bytes) -> tuple[bytes, str]:
    rows = [dict(row) for row in ROWS]
    index, column = rng.randrange(len(rows)), rng.choice(COLUMNS)
    value = rng.choice(ODD_VALUES)
    rows[index][column] = value
    what = f"row {index} {column!r} = {value!r}"
    if kind == "jsonl":
        return jsonl_bytes(rows, ensure_ascii=rng.random() < 0.5), what  # a surrogate raw, or as a \\ud800 escape
    if kind in ("csv", "tsv"):
        rows[index][column] = "" if value is None else str(value)
        return delimited_bytes(rows, "," if kind == "csv" else "\t"), what
    return parquet_with_column(rng, column, [row[column] for row in rows]), what


def parquet_with_column(rng: random.Random, column: str, values: list[object]) -> bytes:
    """The valid table with one column's values replaced (as one Arrow type when they mix)."""
    columns = {name: [row[name] for row in ROWS] for name in COLUMNS}
    try:
        array = pa.array(values)
    except (pa.ArrowException, OverflowError, UnicodeEncodeError):  # mixed types, huge ints, surrogates
        array = pa.array([None if value is None else ascii(value) for value in values])
    arrays = [array if name == column else pa.array(columns[name]) for name in COLUMNS]
    return parquet_bytes(pa.Table.from_arrays(arrays, names=COLUMNS))


def reshape_header(rng: random.Random, kind: str, data: bytes) -> tuple[bytes, str]:
    header = list(COLUMNS)
    column = rng.choice(COLUMNS)
    if rng.random() < 0.5:
        header.insert(rng.randrange(len(header) + 1), column)
        what = f"column {column!r} twice"
    else:
        header.remove(column)
        what = f"column {column!r} removed"
    if kind == "jsonl":
        lines = []
        for row in ROWS:
            pairs = ", ".join(f"{json.dumps(name)}: {json.dumps(row[name])}" for name in header)
            lines.append("{" + pairs + "}\n")
        return "".join(lines).encode("utf-8"), what
    if kind in ("csv", "tsv"):
        return delimited_bytes(ROWS, "," if kind == "csv" else "\t", header), what
    arrays = [pa.array([row[name] for row in ROWS]) for name in header]
    return parquet_bytes(pa.Table.from_arrays(arrays, names=header)), what


MUTATIONS: list[Callable[[random.Random, str, bytes], tuple[bytes, str]]] = [
    truncate,
    flip_bytes,
    insert_bytes,
    reencode,
    swap_type,
    reshape_header,
]
KINDS = ["jsonl", "csv", "tsv", "parquet"]


# ---------------------------------------------------------------------------------------------
# The loop.


def readers_of(path: Path, tokenizer: object) -> list[tuple[str, Callable[[], object]]]:
    """Every reader a mutated file may meet, by name."""

    def labelled() -> object:
        raw = {"task": "classification", "teacher": {"model": "teacher-dir"}, "data": {"train": {"path": path.name}, "max_length": 16}}
        config = validate_config(raw, source_file=path.parent / "run.yaml")
        return read_labelled(config.data.train, config, tokenizer=tokenizer, label_names=None)

    return [
        ("read_examples", lambda: read_examples(path, text_column="text", label_column="label", lang_column="lang")),
        ("file_columns", lambda: file_columns(path)),
        ("read_labelled", labelled),
        ("corpus_texts_by_language", lambda: corpus_texts_by_language([str(path)], ["de"])),
    ]


def test_every_mutated_file_reads_or_fails_with_a_message_naming_it(tmp_path: Path, wordpiece_tokenizer) -> None:
    valid = {kind: valid_file(kind) for kind in KINDS}
    failures: list[str] = []
    outcomes = {"read": 0, "refused": 0}
    for case in range(CASES):
        rng = random.Random(f"{SEED}-{case}")
        kind = KINDS[case % len(KINDS)]
        mutation = MUTATIONS[(case // len(KINDS)) % len(MUTATIONS)]
        data, what = mutation(rng, kind, valid[kind])
        path = tmp_path / f"case{case:03d}.{kind}"
        path.write_bytes(data)
        for reader, call in readers_of(path, wordpiece_tokenizer):
            try:
                call()
                outcomes["read"] += 1
            except PolydistillError as error:
                outcomes["refused"] += 1
                if path.name not in str(error):
                    failures.append(
                        f"seed {SEED}, case {case} ({kind}, {mutation.__name__}: {what}), {reader}: message without the file: {error}"
                    )
            except Exception:
                failures.append(f"seed {SEED}, case {case} ({kind}, {mutation.__name__}: {what}), {reader}:\n{traceback.format_exc()}")
    assert not failures, "\n\n".join(failures[:10]) + f"\n\n{len(failures)} failures in all"
    # the loop exercises both sides: damaged files that still read and ones refused
    assert outcomes["read"] > 100 and outcomes["refused"] > 100, outcomes


@pytest.mark.parametrize("kind", KINDS)
def test_the_valid_files_read(tmp_path: Path, kind: str, wordpiece_tokenizer) -> None:
    path = tmp_path / f"valid.{kind}"
    path.write_bytes(valid_file(kind))
    dataset = read_examples(path, text_column="text", label_column="label", lang_column="lang")
    assert dataset["text"] == [row["text"] for row in ROWS]
    assert dataset["lang"] == ["de", "fr", "pt-BR", "de"]
    assert [dataset.features["label"].names[label] for label in dataset["label"]] == [row["label"] for row in ROWS]
    assert file_columns(path) == COLUMNS
