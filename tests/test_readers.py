"""Readers for users' own data: formats, canonical columns, and every validation error.

Each bad file is written here, small, with the problem on a known line; the error must name
the file, that line (or row index) and what was expected.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from polydistill.cli import main
from polydistill.data.readers import file_columns, read_examples, truncate_to_tokens
from polydistill.data.sources import load_source
from polydistill.errors import ConfigError, DataError

WORDS = ["the", "cat", "sat", "on", "mat", "a", "dog", "ran", "far", "away", "hello", "world"]


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerFast:
    """A whitespace word tokenizer, built in memory: one token per known word, [CLS] ... [SEP]."""
    vocab = {token: index for index, token in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *WORDS])}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]")


def write_jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def error_of(path: Path, **kwargs) -> str:
    with pytest.raises(DataError) as caught:
        read_examples(path, **kwargs)
    return str(caught.value)


# ---------------------------------------------------------------------------------------------
# Reading each format into canonical columns.


def test_jsonl_with_string_labels_and_languages(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "data.jsonl",
        [
            json.dumps({"sentence": "the cat", "y": "pos", "language": "pt_BR"}),
            "",  # blank lines are allowed
            json.dumps({"sentence": "a dog", "y": "neg", "language": "zh_CN", "extra": 1}),
        ],
    )
    dataset = read_examples(path, text_column="sentence", label_column="y", lang_column="language")
    assert dataset.column_names == ["text", "label", "lang"]
    assert dataset["text"] == ["the cat", "a dog"]
    assert dataset.features["label"].names == ["neg", "pos"]  # sorted names found
    assert dataset["label"] == [1, 0]
    assert dataset["lang"] == ["pt-BR", "zh-Hans"]


def test_csv_integer_labels_and_quoted_newlines(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text('text,label\n"the cat\nsat",2\nthe dog,0\n', encoding="utf-8")
    dataset = read_examples(path, label_column="label")
    assert dataset["text"] == ["the cat\nsat", "the dog"]
    assert dataset.features["label"].names == ["0", "1", "2"]
    assert dataset["label"] == [2, 0]


def test_csv_labels_mapped_through_given_names(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("text,label\na,neg\nb,pos\nc,neg\n", encoding="utf-8")
    assert read_examples(path, label_column="label", label_names=["pos", "neg"])["label"] == [1, 0, 1]
    path.write_text("text,label\na,1\nb,0\n", encoding="utf-8")
    assert read_examples(path, label_column="label", label_names=["neg", "pos"])["label"] == [1, 0]


def test_labels_mixing_names_and_ids_are_refused_even_with_label_names(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("text,label\na,neg\nb,1\n", encoding="utf-8")
    message = error_of(path, label_column="label", label_names=["neg", "pos"])
    assert f"{path}, line 3: 'label' mixes kinds of label: 'neg' (line 2) is a name; '1' (line 3) is an integer id" in message


def test_tsv_parallel_pairs_with_source_ids(tmp_path: Path) -> None:
    path = tmp_path / "pairs.tsv"
    path.write_text("en\tde\tlang\tid\nthe cat\tdie Katze\tde\ts1\n", encoding="utf-8")
    dataset = read_examples(path, text_column="en", translation_column="de", lang_column="lang", source_id_column="id")
    assert dataset[0] == {"text": "the cat", "lang": "de", "translation": "die Katze", "source_id": "s1"}


def test_parquet(tmp_path: Path) -> None:
    path = tmp_path / "data.parquet"
    pq.write_table(pa.table({"text": ["hello", "world"], "label": [1, 0], "lang": ["de", "fr"]}), path)
    dataset = read_examples(path, label_column="label", lang_column="lang", label_names=["neg", "pos"])
    assert dataset["label"] == [1, 0]
    assert dataset.features["label"].names == ["neg", "pos"]


def test_saved_dataset_keeps_its_label_names_and_directory(tmp_path: Path) -> None:
    saved = datasets.Dataset.from_dict(
        {"text": ["a", "b"], "label": [1, 0]},
        features=datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["x", "y"])}),
    )
    directory = tmp_path / "saved"
    saved.save_to_disk(str(directory))
    before = snapshot(directory)
    dataset = read_examples(directory, label_column="label")
    dataset = dataset.map(lambda row: {"text": row["text"].upper()})  # work on the result...
    assert dataset.features["label"].names == ["x", "y"]
    assert dataset["text"] == ["A", "B"]
    assert snapshot(directory) == before  # ...and nothing lands in the user's directory


def test_saved_dataset_dict_asks_for_one_split(tmp_path: Path) -> None:
    directory = tmp_path / "dict"
    datasets.DatasetDict({"train": datasets.Dataset.from_dict({"text": ["a"]})}).save_to_disk(str(directory))
    message = error_of(directory)
    assert str(directory) in message and "train" in message


def snapshot(directory: Path) -> dict[str, tuple[int, int]]:
    return {str(path.relative_to(directory)): (path.stat().st_size, path.stat().st_mtime_ns) for path in sorted(directory.rglob("*"))}


def test_input_file_is_not_modified(tmp_path: Path, tokenizer: PreTrainedTokenizerFast) -> None:
    path = write_jsonl(tmp_path / "data.jsonl", [json.dumps({"text": "the cat sat on the mat a dog"})])
    content, stat = path.read_bytes(), path.stat()
    dataset = read_examples(path, tokenizer=tokenizer, max_length=5, overlong="truncate")
    assert dataset["text"] == ["the cat sat"]
    assert path.read_bytes() == content
    assert path.stat().st_mtime_ns == stat.st_mtime_ns
    assert sorted(os.listdir(tmp_path)) == ["data.jsonl"]


# ---------------------------------------------------------------------------------------------
# Every validation error names the file, the line or row, and what was expected.


def test_malformed_jsonl_line(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "bad.jsonl", ['{"text": "ok"}', '{"text": "ok"}', '{"text": "no end'])
    message = error_of(path)
    assert f"{path}, line 3" in message and "not valid JSON" in message


def test_jsonl_line_that_is_not_an_object(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "bad.jsonl", ['{"text": "ok"}', '["a list"]'])
    message = error_of(path)
    assert f"{path}, line 2" in message and "expected a JSON object" in message


def test_malformed_csv_line_counts_lines_as_an_editor_does(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    # line 2-3 hold one quoted record over two lines; line 4 has a field too many
    path.write_text('text,label\n"two\nlines",a\nthree,b,extra\n', encoding="utf-8")
    message = error_of(path, label_column="label")
    assert f"{path}, line 4" in message and "3 fields, but the header has 2" in message


def test_missing_column_in_jsonl_line(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "bad.jsonl", ['{"text": "a", "label": "x"}', '{"text": "b"}'])
    message = error_of(path, label_column="label")
    assert f"{path}, line 2" in message and "missing column 'label'" in message


def test_missing_column_in_csv_header(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("sentence,label\na,x\n", encoding="utf-8")
    message = error_of(path, label_column="label")
    assert f"{path}, line 1" in message and "no column 'text'" in message and "'sentence'" in message


def test_missing_column_in_parquet(tmp_path: Path) -> None:
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"sentence": ["a"]}), path)
    message = error_of(path)
    assert str(path) in message and "no column 'text'" in message and "'sentence'" in message


@pytest.mark.parametrize("empty", ['""', '"   "', "null"])
def test_empty_text_in_jsonl(tmp_path: Path, empty: str) -> None:
    path = write_jsonl(tmp_path / "bad.jsonl", ['{"text": "a"}', f'{{"text": {empty}}}'])
    message = error_of(path)
    assert f"{path}, line 2" in message and "empty 'text'" in message and "non-empty string" in message


def test_empty_text_in_parquet_names_the_row_index(tmp_path: Path) -> None:
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"text": ["a", "b", None]}), path)
    message = error_of(path)
    assert f"{path}, row index 2" in message and "empty 'text'" in message


def test_label_outside_the_label_set(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "bad.jsonl",
        ['{"text": "a", "label": 1}', '{"text": "b", "label": "neutral"}', '{"text": "c", "label": 7}'],
    )
    message = error_of(path, label_column="label", label_names=["neg", "pos"])
    assert f"{path}, line 2: 'label' is 'neutral', not in the label set; expected one of neg, pos" in message
    assert f"{path}, line 3: 'label' is 7, outside the label set; expected an id from 0 to 1" in message


def test_labels_mixing_names_and_ids(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "bad.jsonl", ['{"text": "a", "label": "pos"}', '{"text": "b", "label": 1}'])
    message = error_of(path, label_column="label")
    assert f"{path}, line 2" in message and "all labels to be names or all integer ids" in message


def test_unknown_language_code(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("text,lang\na,de\nb,klingon\n", encoding="utf-8")
    message = error_of(path, lang_column="lang")
    assert f"{path}, line 3" in message and "unknown language code" in message and "BCP 47" in message


def test_overlong_text_refused(tmp_path: Path, tokenizer: PreTrainedTokenizerFast) -> None:
    path = write_jsonl(tmp_path / "long.jsonl", ['{"text": "the cat"}', '{"text": "the cat sat on the mat"}'])
    message = error_of(path, tokenizer=tokenizer, max_length=5)
    # [CLS] + 6 words + [SEP] = 8 tokens
    assert f"{path}, line 2: 'text' is 8 tokens long, more than the limit of 5" in message


def test_overlong_text_truncated_at_a_token_boundary(tmp_path: Path, tokenizer: PreTrainedTokenizerFast) -> None:
    path = write_jsonl(tmp_path / "long.jsonl", ['{"text": "the  cat sat on the mat"}', '{"text": "a dog"}'])
    dataset = read_examples(path, tokenizer=tokenizer, max_length=5, overlong="truncate")
    assert dataset["text"] == ["the  cat sat", "a dog"]  # 3 words + [CLS] + [SEP] = 5 tokens


def test_overlong_translation_is_checked_too(tmp_path: Path, tokenizer: PreTrainedTokenizerFast) -> None:
    path = write_jsonl(tmp_path / "pairs.jsonl", ['{"text": "a", "de": "the cat sat on the mat"}'])
    message = error_of(path, translation_column="de", tokenizer=tokenizer, max_length=5)
    assert f"{path}, line 1: 'de' is 8 tokens long" in message


def test_max_length_defaults_to_the_tokenizer_limit(tmp_path: Path, tokenizer: PreTrainedTokenizerFast) -> None:
    limited = tokenizer.__class__(
        tokenizer_object=tokenizer.backend_tokenizer,
        model_max_length=4,
        cls_token="[CLS]",
        sep_token="[SEP]",
        unk_token="[UNK]",
        pad_token="[PAD]",
    )
    path = write_jsonl(tmp_path / "long.jsonl", ['{"text": "the cat sat"}'])
    assert "limit of 4" in error_of(path, tokenizer=limited)


def test_several_problems_reported_at_once(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "bad.jsonl", ['{"text": ""}', "{", '{"text": 3}'])
    message = error_of(path)
    assert "line 1" in message and "line 2" in message and "line 3: 'text' is int 3; expected a string" in message


def test_truncate_to_tokens_is_a_prefix(tokenizer: PreTrainedTokenizerFast) -> None:
    text = "hello world the cat sat"
    for limit in range(2, 8):
        cut = truncate_to_tokens(text, tokenizer, limit)
        assert text.startswith(cut)
        assert len(tokenizer(cut)["input_ids"]) <= limit
    assert truncate_to_tokens(text, tokenizer, 4) == "hello world"


def test_unknown_extension_and_missing_file(tmp_path: Path) -> None:
    odd = tmp_path / "data.xlsx"
    odd.write_text("x")
    assert "cannot tell the format" in error_of(odd)
    assert "no such file" in error_of(tmp_path / "absent.jsonl")


def test_overlong_choice_is_checked(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", ['{"text": "a"}'])
    with pytest.raises(ConfigError):
        read_examples(path, overlong="cut")


# ---------------------------------------------------------------------------------------------
# Sources and the stats command on files.


def test_file_columns_reads_only_the_first_record_or_header(tmp_path: Path) -> None:
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_bytes(b'\xef\xbb\xbf\n{"text": "a", "lang": "de"}\n{"other": 1}\n')
    assert file_columns(jsonl) == ["text", "lang"]
    csv_file = tmp_path / "a.csv"
    csv_file.write_text("text, label\nx,1\n", encoding="utf-8")
    assert file_columns(csv_file) == ["text", "label"]
    tsv = tmp_path / "a.tab"
    tsv.write_text("text\tlang\n", encoding="utf-8")
    assert file_columns(tsv) == ["text", "lang"]
    parquet = tmp_path / "a.parquet"
    pq.write_table(pa.table({"text": ["a"], "label": [0]}), parquet)
    assert file_columns(parquet) == ["text", "label"]
    saved = tmp_path / "saved"
    datasets.Dataset.from_dict({"text": ["a"], "lang": ["de"]}).save_to_disk(str(saved))
    assert file_columns(saved) == ["text", "lang"]
    damaged = tmp_path / "bad.jsonl"
    damaged.write_text("{not json\n", encoding="utf-8")
    assert file_columns(damaged) == []  # read_examples reports the line
    with pytest.raises(DataError, match="cannot tell the format"):
        file_columns(tmp_path / "a.xlsx")


def test_load_source_reads_files_and_refuses_unknown_catalogs(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", ['{"text": "a", "lang": "de"}'])
    assert load_source(str(path), lang_column="lang")["lang"] == ["de"]
    with pytest.raises(DataError, match="unknown built-in source"):
        load_source("catalogs:nothing")


def test_data_stats_json_for_a_file(tmp_path: Path, tokenizer: PreTrainedTokenizerFast, capsys) -> None:
    path = write_jsonl(
        tmp_path / "a.jsonl",
        [
            json.dumps({"text": "the cat sat", "label": "x", "lang": "de"}),
            json.dumps({"text": "a dog", "label": "y", "lang": "de"}),
            json.dumps({"text": "hello", "label": "x", "lang": "fr"}),
        ],
    )
    tokenizer_dir = tmp_path / "tok"
    tokenizer.save_pretrained(str(tokenizer_dir))
    code = main(
        ["data", "stats", str(path), "--label-column", "label", "--lang-column", "lang", "--tokenizer", str(tokenizer_dir), "--json"]
    )
    assert code == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["length_unit"] == "tokens"
    german = stats["languages"]["de"]
    assert german["examples"] == 2
    assert german["length"] == {"mean": 4.5, "median": 4.5, "max": 5}  # 3+2 and 2+2 tokens with specials
    assert german["labels"] == {"x": 1, "y": 1}
    assert stats["languages"]["fr"]["examples"] == 1
    assert stats["labels"] == {"x": 2, "y": 1}

    assert main(["data", "stats", str(path), "--lang-column", "lang"]) == 0
    table = capsys.readouterr().out
    assert "German" in table and "French" in table and "words" in table


def test_data_stats_reports_bad_files_as_errors(tmp_path: Path, capsys) -> None:
    path = write_jsonl(tmp_path / "bad.jsonl", ['{"text": ""}'])
    assert main(["data", "stats", str(path)]) == 2
    assert f"{path}, line 1" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# Encodings: a byte-order mark is read; any other encoding is refused at its first bad byte.


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("bom.jsonl", b'\xef\xbb\xbf{"text": "a", "label": "x"}\n{"text": "b", "label": "y"}\n'),
        ("bom.csv", b"\xef\xbb\xbftext,label\r\na,x\r\nb,y\r\n"),
        ("bom.tsv", b"\xef\xbb\xbftext\tlabel\na\tx\nb\ty\n"),
    ],
)
def test_utf8_with_a_byte_order_mark_reads_like_without(tmp_path: Path, name: str, content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    assert file_columns(path) == ["text", "label"]
    dataset = read_examples(path, label_column="label")
    assert dataset["text"] == ["a", "b"]
    assert dataset.features["label"].names == ["x", "y"] and dataset["label"] == [0, 1]


def test_latin1_csv_names_line_byte_offset_likely_encoding_and_conversion(tmp_path: Path) -> None:
    path = tmp_path / "sheet.csv"
    path.write_bytes("text,label\nok,a\ncafé,b\n".encode("latin-1"))
    # 'text,label\n' is 11 bytes, 'ok,a\n' 5: line 3 starts at byte 16, its é (0xE9) is at 19
    expected = (
        f"{path}, line 3: not UTF-8 text: byte 0xE9 at byte offset 19 (invalid continuation byte); expected UTF-8. "
        f"It looks like Windows-1252 (cp1252, what spreadsheet programs on Windows save); "
        f"convert it with: iconv -f CP1252 -t UTF-8 {path} > {tmp_path / 'sheet.utf8.csv'}"
    )
    assert error_of(path, label_column="label") == expected
    with pytest.raises(DataError) as caught:
        file_columns(path)  # the peek decodes as the reader does
    assert str(caught.value) == expected


def test_cp1252_jsonl_is_refused_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "quotes.jsonl"
    path.write_bytes('{"text": "ok"}\n{"text": "\u201chi\u201d"}\n'.encode("cp1252"))
    message = error_of(path)
    # '{"text": "ok"}\n' is 15 bytes; the opening quote 0x93 follows '{"text": "' (10 bytes)
    assert message.startswith(f"{path}, line 2: not UTF-8 text: byte 0x93 at byte offset 25 (invalid start byte)")
    assert "iconv -f CP1252 -t UTF-8" in message


def test_a_byte_undefined_in_cp1252_suggests_latin1(tmp_path: Path) -> None:
    path = tmp_path / "odd.jsonl"
    path.write_bytes(b'{"text": "a\x81b"}\n')  # 0x81 is unassigned in Windows-1252
    assert "It looks like Latin-1 (ISO-8859-1)" in error_of(path)


def test_utf16_with_and_without_a_byte_order_mark(tmp_path: Path) -> None:
    with_bom = tmp_path / "excel.csv"
    with_bom.write_bytes("text\nhello\n".encode("utf-16"))
    message = error_of(with_bom)
    assert message.startswith(f"{with_bom}, line 1: not UTF-8 text: byte 0xFF at byte offset 0")
    assert "UTF-16 (it starts with a UTF-16 byte-order mark)" in message and "iconv -f UTF-16 -t UTF-8" in message
    without = tmp_path / "bare.jsonl"
    without.write_bytes('{"text": "hello"}\n'.encode("utf-16-le"))  # valid UTF-8, full of NUL bytes
    message = error_of(without)
    assert message.startswith(f"{without}, line 1: not UTF-8 text: byte 0x00 at byte offset 1")
    assert "iconv -f UTF-16LE -t UTF-8" in message
    with pytest.raises(DataError, match="UTF-16LE"):
        file_columns(without)


# ---------------------------------------------------------------------------------------------
# What is not a data file: named as what it is.


def test_git_lfs_pointer_instead_of_data(tmp_path: Path) -> None:
    pointer = "version https://git-lfs.github.com/spec/v1\noid sha256:4d7a\nsize 1234\n"
    for name in ("train.jsonl", "train.parquet"):
        path = tmp_path / name
        path.write_text(pointer, encoding="utf-8")
        message = error_of(path)
        assert message.startswith(f"{path}: a Git LFS pointer file, not the data") and "git lfs pull" in message
        with pytest.raises(DataError, match="Git LFS pointer"):
            file_columns(path)


def test_empty_files(tmp_path: Path) -> None:
    expected = {
        "a.jsonl": "JSON Lines, one object a line",
        "a.csv": "a header line naming the columns, then one example a line",
        "a.parquet": "a Parquet file",
    }
    for name, content in expected.items():
        path = tmp_path / name
        path.write_bytes(b"")
        assert error_of(path) == f"{path}: the file is empty (0 bytes); expected {content}"


def test_binary_files_under_a_text_extension(tmp_path: Path) -> None:
    workbook = tmp_path / "sheet.csv"
    workbook.write_bytes(b"PK\x03\x04\x14\x00\x06\x00")
    assert error_of(workbook).startswith(f"{workbook}: not a text file: it is a ZIP archive (an .xlsx workbook is one)")
    parquet = tmp_path / "data.jsonl"
    pq.write_table(pa.table({"text": ["a"]}), parquet)
    assert "it is a Parquet file: give it a .parquet extension" in error_of(parquet)


def test_truncated_and_damaged_parquet(tmp_path: Path) -> None:
    good = tmp_path / "good.parquet"
    pq.write_table(pa.table({"text": [f"text {i}" for i in range(200)]}), good)
    data = good.read_bytes()
    truncated = tmp_path / "cut.parquet"
    truncated.write_bytes(data[: len(data) // 2])
    message = error_of(truncated)
    assert message.startswith(
        f"{truncated}: a truncated Parquet file: it starts like one, but its footer is missing ({len(data) // 2} bytes)"
    )
    assert file_columns(truncated) == []  # the peek leaves the report to the reader

    damaged = tmp_path / "damaged.parquet"
    damaged.write_bytes(data[:4] + b"\xff" * 40 + data[44:])  # the first data page's header overwritten
    assert error_of(damaged).startswith(f"{damaged}: a damaged Parquet file: its schema reads but its data do not")

    undecodable_name = tmp_path / "names.parquet"  # found by tests/test_fuzz_readers.py: pyarrow raised UnicodeDecodeError
    undecodable_name.write_bytes(data.replace(b"text", b"t\xa9xt"))
    assert error_of(undecodable_name).startswith(f"{undecodable_name}: a damaged Parquet file")
    assert file_columns(undecodable_name) == []

    text = tmp_path / "text.parquet"
    text.write_text("text\nhello\n", encoding="utf-8")
    assert error_of(text).startswith(f"{text}: not a Parquet file: it starts with b'text', a Parquet file with b'PAR1'")


def test_a_directory_given_as_a_data_file(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "train.jsonl").write_text('{"text": "a"}\n', encoding="utf-8")
    (folder / "notes.md").write_text("x", encoding="utf-8")
    message = error_of(folder)
    assert message.startswith(f"{folder}: a directory, but not one written by Dataset.save_to_disk")
    assert message.endswith(f"it holds 'train.jsonl': point at one of them, e.g. {folder / 'train.jsonl'}")
    assert error_of(folder, format="jsonl") == f"{folder}: a directory, not a file; expected JSON Lines, one object a line"


def test_saved_dataset_with_missing_or_damaged_files(tmp_path: Path) -> None:
    for damage in ("missing", "truncated", "state"):
        saved = tmp_path / damage
        datasets.Dataset.from_dict({"text": ["a", "b"]}).save_to_disk(str(saved))
        arrow = next(saved.glob("*.arrow"))
        if damage == "missing":
            arrow.unlink()
        elif damage == "truncated":
            arrow.write_bytes(arrow.read_bytes()[:40])
        else:
            (saved / "state.json").write_text("{not json", encoding="utf-8")
        message = error_of(saved)
        assert message.startswith(f"{saved}: a saved dataset directory with missing or damaged files")
        assert message.endswith("save it again with Dataset.save_to_disk")


# ---------------------------------------------------------------------------------------------
# Values that cannot be read safely.


def test_labels_mixing_names_ids_and_number_strings_name_the_first_of_each(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "mixed.jsonl",
        [
            '{"text": "a", "label": "billing"}',
            '{"text": "b", "label": "billing"}',
            '{"text": "c", "label": 3}',
            '{"text": "d", "label": "2"}',
            '{"text": "e", "label": 1}',
        ],
    )
    assert error_of(path, label_column="label") == (
        f"{path}, line 3: 'label' mixes kinds of label: 'billing' (line 1) is a name; 3 (line 3) is an integer id; "
        "'2' (line 4) is a number written as a string; expected all labels to be names or all integer ids "
        "(write every label as a class name, or every label as its id 0..N-1)"
    )


def test_a_number_string_beside_names_is_ambiguous_but_alone_is_a_name(tmp_path: Path) -> None:
    beside = write_jsonl(tmp_path / "beside.jsonl", ['{"text": "a", "label": "billing"}', '{"text": "b", "label": "2"}'])
    message = error_of(beside, label_column="label")
    assert f"{beside}, line 2: 'label' mixes kinds of label" in message and "'2' (line 2) is a number written as a string" in message
    csv_file = tmp_path / "beside.csv"
    csv_file.write_text("text,label\na,billing\nb,2\n", encoding="utf-8")
    assert "'2' (line 3) is an integer id" in error_of(csv_file, label_column="label")
    alone = write_jsonl(tmp_path / "stars.jsonl", ['{"text": "a", "label": "5"}', '{"text": "b", "label": "1"}'])
    dataset = read_examples(alone, label_column="label")
    assert dataset.features["label"].names == ["1", "5"] and dataset["label"] == [1, 0]
    # with the teacher's label names there is nothing to guess: each label is looked up by name
    named = read_examples(beside, label_column="label", label_names=["2", "billing"])
    assert named["label"] == [1, 0]


def test_integer_ids_implying_absurdly_many_classes(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "ids.jsonl", ['{"text": "a", "label": 0}', '{"text": "b", "label": 12345678901}'])
    assert error_of(path, label_column="label") == (
        f"{path}, line 2: 'label' is 12345678901: integer ids up to it would make 12345678902 classes; "
        "expected ids 0..N-1 of at most 100000 classes (or label names)"
    )
    digits = tmp_path / "digits.csv"
    digits.write_text("text,label\na,0\nb," + "9" * 5000 + "\n", encoding="utf-8")
    assert f"{digits}, line 3: 'label' is 1000000000000000000" in error_of(digits, label_column="label")


def test_duplicate_columns_are_refused(tmp_path: Path) -> None:
    csv_file = tmp_path / "dup.csv"
    csv_file.write_text("text,label,text\na,x,b\n", encoding="utf-8")
    assert error_of(csv_file) == f"{csv_file}, line 1: the header names the column 'text' 2 times (fields 1, 3); expected each column once"
    jsonl = write_jsonl(tmp_path / "dup.jsonl", ['{"text": "a"}', '{"text": "a", "text": "b"}'])
    assert error_of(jsonl) == f"{jsonl}, line 2: malformed line: the key 'text' appears twice; expected each key once"


def test_json_beyond_pythons_limits_and_lone_surrogates(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "odd.jsonl",
        ['{"text": "a", "n": ' + "1" * 5000 + "}", '{"text": "b\\ud800c"}', "[" * 100000 + "]" * 100000],
    )
    message = error_of(path)
    assert f"{path}, line 1: malformed line: not usable JSON" in message
    assert f"{path}, line 2: 'text' holds '\\ud800' at character 1, half of a character (a lone surrogate)" in message
    assert f"{path}, line 3: malformed line: not usable JSON" in message
