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
    path.write_text("text,label\na,neg\nb,1\n", encoding="utf-8")
    dataset = read_examples(path, label_column="label", label_names=["neg", "pos"])
    assert dataset["label"] == [0, 1]


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
        ['{"text": "a", "label": "pos"}', '{"text": "b", "label": "neutral"}', '{"text": "c", "label": 7}'],
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
