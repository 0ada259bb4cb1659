"""Size and speed measurements on a tiny BERT classifier built in memory."""

from __future__ import annotations

import pytest
import torch
from conftest import synthetic_examples, tiny_bert_config

from polydistill.evaluation.efficiency import EFFICIENCY_KEYS, measure_efficiency, weight_files

HIDDEN, LAYERS, LABELS = 32, 2, 3
QUICK = {"warmup": 1, "repeats": 5, "throughput_batches": 1, "batch_size": 8}


@pytest.fixture(scope="module")
def tiny_classifier(wordpiece_tokenizer):
    from transformers import BertForSequenceClassification

    torch.manual_seed(0)
    config = tiny_bert_config(wordpiece_tokenizer, layers=LAYERS, hidden=HIDDEN, num_labels=LABELS)
    return BertForSequenceClassification(config).eval()


@pytest.fixture(scope="module")
def texts():
    return [example["text"] for example in synthetic_examples(40, seed=3)]


def expected_parameter_count(config) -> int:
    """BERT's parameter count written out from its architecture, independent of torch."""
    hidden, ffn = config.hidden_size, config.intermediate_size
    embeddings = (config.vocab_size + config.max_position_embeddings + config.type_vocab_size) * hidden + 2 * hidden
    attention = 4 * (hidden * hidden + hidden) + 2 * hidden
    feed_forward = hidden * ffn + ffn + ffn * hidden + hidden + 2 * hidden
    pooler = hidden * hidden + hidden
    classifier = hidden * config.num_labels + config.num_labels
    return embeddings + config.num_hidden_layers * (attention + feed_forward) + pooler + classifier


def test_all_keys_with_sane_values(tiny_classifier, wordpiece_tokenizer, texts, tmp_path):
    tiny_classifier.save_pretrained(tmp_path)
    threads_before = torch.get_num_threads()
    result = measure_efficiency(
        tiny_classifier, wordpiece_tokenizer, texts, model_dir=tmp_path, threads=1, peak_memory="in_process", **QUICK
    )
    assert set(EFFICIENCY_KEYS) <= set(result)
    config = tiny_classifier.config
    assert result["parameters"] == expected_parameter_count(config)
    assert result["embedding_parameters"] == config.vocab_size * HIDDEN
    assert result["disk_bytes"] == (tmp_path / "model.safetensors").stat().st_size
    assert result["peak_memory_bytes"] >= 4 * result["parameters"]  # at least the fp32 weights
    assert result["peak_memory_method"] == "in_process_rss_sampling"
    assert 0 < result["latency_ms_p50"] <= result["latency_ms_p95"] < 10_000
    assert result["throughput_per_s"] > 0
    assert result["threads"] == 1 and torch.get_num_threads() == threads_before
    assert result["repeats"] == QUICK["repeats"] and result["throughput_batch_size"] == QUICK["batch_size"]
    assert result["mean_tokens_per_text"] > 2  # [CLS] text [SEP]


def test_fresh_process_peak_memory_and_serialised_size(tiny_classifier, wordpiece_tokenizer, texts):
    result = measure_efficiency(tiny_classifier, wordpiece_tokenizer, texts, peak_memory="subprocess", **QUICK)
    fp32_weights = 4 * result["parameters"]
    # safetensors: the fp32 tensors plus a small JSON header
    assert fp32_weights <= result["disk_bytes"] < fp32_weights + 64 * 1024
    if result["peak_memory_method"] == "fresh_process_vmhwm":
        assert fp32_weights <= result["peak_memory_bytes"] < 2 * 1024**3
    else:  # a platform without /proc/self/clear_refs falls back to the in-process estimate
        assert result["peak_memory_method"] == "in_process_rss_sampling"


def test_quick_setting_and_skip(tiny_classifier, wordpiece_tokenizer, texts):
    result = measure_efficiency(tiny_classifier, wordpiece_tokenizer, texts, quick=True, peak_memory="skip", batch_size=8)
    assert result["peak_memory_bytes"] is None and result["peak_memory_method"] == "skipped"
    assert (result["warmup"], result["repeats"]) == (2, 10)


def test_needs_texts(tiny_classifier, wordpiece_tokenizer):
    with pytest.raises(ValueError):
        measure_efficiency(tiny_classifier, wordpiece_tokenizer, ["", "  "], peak_memory="skip")


def test_weight_files_rule(tmp_path):
    hf = tmp_path / "hf"
    (hf / "2_Dense").mkdir(parents=True)
    for name in ("model.safetensors", "2_Dense/model.safetensors", "training_args.bin", "tokenizer.json"):
        (hf / name).write_bytes(b"x")
    assert [path.relative_to(hf).as_posix() for path in weight_files(hf)] == ["2_Dense/model.safetensors", "model.safetensors"]
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    for name in ("pytorch_model.bin", "training_args.bin", "config.json"):
        (legacy / name).write_bytes(b"x")
    assert [path.name for path in weight_files(legacy)] == ["pytorch_model.bin"]
