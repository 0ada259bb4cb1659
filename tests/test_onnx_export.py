"""Export and the torch-free runtime on the tokenizers users have: BERT's (token type ids,
lowercasing) and XLM-R's (Unigram, positions from the padding index), multi-label heads, prompts.

References are transformers' own tokenizer and pipeline and sentence-transformers' encode on the
same directories; the export check is made to fail by a graph whose outputs really differ.
"""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest
import torch

from polydistill import runtime
from polydistill.compress import onnx_export
from polydistill.errors import ConfigError

WORDS = "the a apple pear train piano went over there very quickly with cars".split()
#: lengths from 1 word to past every truncation limit below; mixed case for the lowercasing tests
TEXTS = ["apple", "The train went over there", " ".join(WORDS * 3), "a pear", "Piano and cars", "x y"]


def bert_tokenizer():
    """transformers' BertTokenizer on a small vocabulary: lowercases, returns token_type_ids."""
    from transformers import BertTokenizer

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS + list("abcdefghijklmnopqrstuvwxyz:")
    vocab += ["##" + c for c in "abcdefghijklmnopqrstuvwxyz"]
    return BertTokenizer(vocab={token: index for index, token in enumerate(dict.fromkeys(vocab))}, model_max_length=24)


def xlmr_tokenizer():
    """transformers' XLMRobertaTokenizer (Unigram) on a small vocabulary: no token_type_ids, pad id 1."""
    from transformers import XLMRobertaTokenizer

    pieces = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -3.0)]
    pieces += [("▁" + word, -5.0) for word in [*WORDS, "query:"]]
    pieces += [(c, -9.0) for c in "abcdefghijklmnopqrstuvwxyzTP:"] + [("<mask>", 0.0)]
    return XLMRobertaTokenizer(vocab=pieces, model_max_length=20)


def save_classifier(directory, *, multi_label: bool = False, seed: int = 0):
    from transformers import BertConfig, BertForSequenceClassification

    tokenizer = bert_tokenizer()
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=40,
        num_labels=3,
        id2label={0: "fruit", 1: "vehicle", 2: "instrument"},
        label2id={"fruit": 0, "vehicle": 1, "instrument": 2},
        problem_type="multi_label_classification" if multi_label else None,
    )
    torch.manual_seed(seed)
    model = BertForSequenceClassification(config).eval()
    with torch.no_grad():  # logits far enough apart that the labels' order is not a coin toss
        model.classifier.bias.copy_(torch.tensor([0.0, 0.3, -0.3]))
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def save_xlmr_encoder(directory, *, prefix: str = "query: "):
    from transformers import XLMRobertaConfig, XLMRobertaModel

    from polydistill.tasks.embeddings import save_sentence_transformer

    tokenizer = xlmr_tokenizer()
    config = XLMRobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=40,
        pad_token_id=tokenizer.pad_token_id,
        type_vocab_size=1,
    )
    torch.manual_seed(1)
    save_sentence_transformer(XLMRobertaModel(config).eval(), tokenizer, directory, prefix=prefix, max_seq_length=12)
    return directory


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory):
    directory = save_classifier(tmp_path_factory.mktemp("bert-classifier"))
    onnx_export.export_onnx(directory, task="classification", check_texts=TEXTS, max_length=64)
    return directory


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    directory = save_xlmr_encoder(tmp_path_factory.mktemp("xlmr-encoder"))
    onnx_export.export_onnx(directory, task="embeddings", check_texts=TEXTS)
    return directory


def test_runtime_token_ids_equal_the_transformers_tokenizer_with_truncation(classifier_dir, encoder_dir):
    from transformers import AutoTokenizer

    served = runtime.load(classifier_dir, threads=1)
    assert served.input_names == ["input_ids", "attention_mask", "token_type_ids"]  # BERT's tokenizer makes them
    assert served.max_length == 24  # tokenizer_config's model_max_length (below 40 positions and the checked 64)
    expected = AutoTokenizer.from_pretrained(classifier_dir)(TEXTS, padding=True, truncation=True, max_length=24, return_tensors="np")
    feed = served.input_feed(TEXTS)
    assert feed["input_ids"].shape == (len(TEXTS), 24)  # the long text cut at 24 tokens
    for name in served.input_names:
        np.testing.assert_array_equal(feed[name], expected[name])

    encoder = runtime.load(encoder_dir, threads=1)
    assert encoder.input_names == ["input_ids", "attention_mask"] and encoder.max_length == 12  # sentence_bert_config
    prompted = ["query: " + text for text in TEXTS]
    expected = AutoTokenizer.from_pretrained(encoder_dir)(prompted, padding=True, truncation=True, max_length=12, return_tensors="np")
    feed = encoder.input_feed(TEXTS)
    assert feed["input_ids"][0, -1] == 1  # XLM-R pads with id 1, on the right
    for name in encoder.input_names:
        np.testing.assert_array_equal(feed[name], expected[name])


def test_bert_classifier_with_token_type_ids_serves_what_the_pipeline_returns(classifier_dir):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    served = runtime.load(classifier_dir, threads=1)
    reference = pipeline("text-classification", model=str(classifier_dir), device="cpu")
    short = TEXTS[:2] + TEXTS[3:]  # the pipeline does not truncate; the runtime's limit is the tokenizer's
    ranked = [entry["score"] for entry in reference(short[0], top_k=None)]
    assert min(np.diff(ranked[::-1])) > 1e-3, "scores this close would not test the labels' order"
    for expected, got in zip(reference(short), served.classify(short), strict=True):
        assert got["label"] == expected["label"] and got["score"] == pytest.approx(expected["score"], abs=1e-5)
    for expected, got in zip(reference(short, top_k=None), served.classify(short, top_k=None), strict=True):
        assert [g["label"] for g in got] == [e["label"] for e in expected]
        assert [g["score"] for g in got] == pytest.approx([e["score"] for e in expected], abs=1e-5)
    # one string: the pipeline's own shapes (a one-item list for top_k=1, the ranked list otherwise)
    assert served.classify(short[0]) == served.classify([short[0]])
    assert served.classify(short[0], top_k=None) == served.classify([short[0]], top_k=None)[0]

    model = AutoModelForSequenceClassification.from_pretrained(classifier_dir).eval()
    inputs = AutoTokenizer.from_pretrained(classifier_dir)(TEXTS, padding=True, truncation=True, max_length=24, return_tensors="pt")
    with torch.no_grad():
        expected_logits = model(**inputs).logits.numpy()
    for batch_size in (1, 4, 32):  # length-sorted batches come back in the caller's order
        np.testing.assert_allclose(served.logits(TEXTS, batch_size=batch_size), expected_logits, atol=1e-4)


def test_a_multi_label_classifier_is_scored_with_sigmoids(tmp_path):
    from transformers import pipeline

    directory = save_classifier(tmp_path, multi_label=True, seed=2)
    onnx_export.export_onnx(directory, task="classification", check_texts=TEXTS, max_length=24)
    served = runtime.load(directory, threads=1)
    got = served.classify(TEXTS[:2], top_k=None)
    for expected, ranked in zip(
        pipeline("text-classification", model=str(directory), device="cpu")(TEXTS[:2], top_k=None), got, strict=True
    ):
        assert [g["label"] for g in ranked] == [e["label"] for e in expected]
        assert [g["score"] for g in ranked] == pytest.approx([e["score"] for e in expected], abs=1e-5)
    logits = served.logits(TEXTS[:2])
    first = {entry["label"]: entry["score"] for entry in got[0]}
    assert first["vehicle"] == pytest.approx(1 / (1 + np.exp(-logits[0, 1])), abs=1e-6)
    assert sum(first.values()) != pytest.approx(1.0, abs=1e-3)  # not a softmax


def test_xlmr_encoder_serves_what_sentence_transformers_encodes(encoder_dir):
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(encoder_dir), device="cpu")
    served = runtime.load(encoder_dir, threads=1)
    expected = reference.encode(TEXTS)  # default prompt "query: ", truncated at 12 tokens, normalised
    np.testing.assert_allclose(served.encode(TEXTS), expected, atol=1e-5)
    np.testing.assert_allclose(served.encode(TEXTS, batch_size=2), expected, atol=1e-5)
    np.testing.assert_allclose(served.encode(TEXTS, prompt_name="query"), reference.encode(TEXTS, prompt_name="query"), atol=1e-5)
    np.testing.assert_allclose(served.encode(TEXTS, prompt="passage: "), reference.encode(TEXTS, prompt="passage: "), atol=1e-5)
    assert not np.allclose(served.encode(TEXTS, prompt=""), expected, atol=1e-3)  # the prompt is really applied
    np.testing.assert_allclose(served.encode(TEXTS[1]), expected[1], atol=1e-5)  # one string: one vector
    with pytest.raises(ConfigError, match="not one of this model's prompts"):
        served.encode(TEXTS, prompt_name="passage")


def test_do_lower_case_is_applied_as_sentence_transformers_applies_it(encoder_dir, tmp_path):
    import json

    from sentence_transformers import SentenceTransformer

    directory = tmp_path / "lowercase"
    shutil.copytree(encoder_dir, directory)
    settings = json.loads((directory / "sentence_bert_config.json").read_text())
    (directory / "sentence_bert_config.json").write_text(json.dumps(settings | {"do_lower_case": True}))
    texts = ["The Train", "Piano", "PEAR APPLE"]  # the XLM-R vocabulary knows these words only in lower case
    expected = SentenceTransformer(str(directory), device="cpu").encode(texts)
    got = runtime.load(directory, threads=1).encode(texts)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert not np.allclose(got, runtime.load(encoder_dir, threads=1).encode(texts), atol=1e-3)


def test_a_graph_exported_elsewhere_is_served_by_path(classifier_dir, tmp_path):
    result = onnx_export.export_onnx(classifier_dir, task="classification", check_texts=TEXTS[:3], out_dir=tmp_path / "elsewhere")
    served = runtime.load(classifier_dir, file=result.path, threads=1)
    assert served.onnx_path == tmp_path / "elsewhere" / "model.onnx"
    np.testing.assert_allclose(served.logits(TEXTS), runtime.load(classifier_dir, threads=1).logits(TEXTS), atol=1e-6)


class _OffsetSession:
    """An onnxruntime session whose outputs are shifted: a graph that computes something else."""

    def __init__(self, real, shift: float) -> None:
        self.real, self.shift = real, shift

    def run(self, names, feed):
        return [output + self.shift for output in self.real.run(names, feed)]

    def __getattr__(self, name):
        return getattr(self.real, name)


def _offset_sessions(monkeypatch, shift: float) -> None:
    import onnxruntime

    real = onnxruntime.InferenceSession
    monkeypatch.setattr(onnxruntime, "InferenceSession", lambda *args, **kwargs: _OffsetSession(real(*args, **kwargs), shift))


def test_logits_off_by_a_hundredth_fail_the_export_and_leave_no_file(tmp_path, monkeypatch):
    directory = save_classifier(tmp_path / "model")
    _offset_sessions(monkeypatch, 0.01)
    with pytest.raises(onnx_export.ExportError) as raised:
        onnx_export.export_onnx(directory, task="classification", check_texts=TEXTS, out_dir=tmp_path / "onnx")
    measured = float(re.search(r"by (\d\.\d+e-\d+)", str(raised.value)).group(1))
    assert measured == pytest.approx(0.01, rel=0.01)  # the shift, as measured
    assert not (tmp_path / "onnx" / "model.onnx").exists()
    assert [path.name for path in (tmp_path / "onnx").iterdir() if path.suffix == ".onnx"] == []


def test_embeddings_off_in_direction_fail_the_export(tmp_path, monkeypatch):
    directory = save_xlmr_encoder(tmp_path / "model")
    _offset_sessions(monkeypatch, 0.1)  # unit vectors of 32 dimensions moved by 0.1 each: cosine well below 0.9999
    with pytest.raises(onnx_export.ExportError) as raised:
        onnx_export.export_onnx(directory, task="embeddings", check_texts=TEXTS, out_dir=tmp_path / "onnx")
    measured = float(re.search(r"cosine (\d\.\d+)", str(raised.value)).group(1))
    assert measured < 0.9999
    assert not (tmp_path / "onnx" / "model.onnx").exists()


def test_a_directory_without_tokenizer_json_is_refused(classifier_dir, tmp_path):
    directory = tmp_path / "no-tokenizer"
    shutil.copytree(classifier_dir, directory)
    (directory / "tokenizer.json").unlink()
    with pytest.raises(ConfigError, match="no tokenizer.json"):
        runtime.load(directory)
