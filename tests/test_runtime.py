"""ONNX export and the torch-free runtime against the PyTorch pipeline and sentence-transformers on the same texts."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import onnxruntime as ort
import pytest
import torch
from conftest import build_wordpiece_tokenizer, tiny_bert_config

TEXTS = ["apple", "the train went over there very quickly today with many cars", "piano " * 40, "a pear and a plum", "x"]


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory):
    from transformers import BertForSequenceClassification

    torch.manual_seed(3)
    tokenizer = build_wordpiece_tokenizer()
    model = BertForSequenceClassification(tiny_bert_config(tokenizer, layers=2))
    model.config.id2label = {0: "fruit", 1: "vehicle", 2: "instrument"}
    model.config.label2id = {name: index for index, name in model.config.id2label.items()}
    directory = tmp_path_factory.mktemp("classifier")
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def _sentence_dir(tmp_path_factory, name: str, *, pooling: str, normalize: bool, prefix: str):
    from transformers import BertModel

    from polydistill.tasks.embeddings import save_sentence_transformer

    torch.manual_seed(4)
    tokenizer = build_wordpiece_tokenizer()
    directory = tmp_path_factory.mktemp(name)
    save_sentence_transformer(BertModel(tiny_bert_config(tokenizer, layers=2)), tokenizer, directory, prefix=prefix, max_seq_length=16)
    if pooling != "mean" or not normalize:
        (directory / "1_Pooling" / "config.json").write_text(
            json.dumps(
                {"word_embedding_dimension": 32, "pooling_mode_cls_token": pooling == "cls", "pooling_mode_mean_tokens": pooling == "mean"}
            )
        )
        modules = json.loads((directory / "modules.json").read_text())
        (directory / "modules.json").write_text(json.dumps([m for m in modules if normalize or not m["type"].endswith("Normalize")]))
    return directory


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    return _sentence_dir(tmp_path_factory, "encoder", pooling="mean", normalize=True, prefix="query: ")


def test_exported_logits_equal_pytorch_on_every_batch_shape(classifier_dir):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from polydistill.compress.onnx_export import export_onnx

    result = export_onnx(classifier_dir, task="classification", check_texts=TEXTS, max_length=32)
    assert result.max_abs_diff is not None and result.max_abs_diff <= 1e-4
    model = AutoModelForSequenceClassification.from_pretrained(classifier_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(classifier_dir)
    session = ort.InferenceSession(result.path, providers=["CPUExecutionProvider"])
    for batch in (TEXTS[:1], TEXTS[:2], TEXTS, TEXTS[::-1][:3]):  # batch and sequence axes both vary
        inputs = tokenizer(batch, padding=True, truncation=True, max_length=32, return_tensors="pt")
        with torch.no_grad():
            expected = model(**inputs).logits.numpy()
        got = session.run(["logits"], {name: inputs[name].numpy() for name in result.input_names})[0]
        np.testing.assert_allclose(got, expected, atol=1e-4)


def test_runtime_classify_equals_the_transformers_pipeline(classifier_dir):
    from transformers import pipeline

    from polydistill import runtime
    from polydistill.compress.onnx_export import export_onnx

    export_onnx(classifier_dir, task="classification", check_texts=TEXTS, max_length=64)
    served = runtime.load(classifier_dir)
    reference = pipeline("text-classification", model=str(classifier_dir), device="cpu")
    for expected, got in zip(reference(TEXTS), served.classify(TEXTS), strict=True):
        assert got["label"] == expected["label"] and got["score"] == pytest.approx(expected["score"], abs=1e-5)
    every = served.classify(TEXTS, top_k=None)
    for expected, got in zip(reference(TEXTS, top_k=None), every, strict=True):
        assert [g["label"] for g in got] == [e["label"] for e in expected]
        assert [g["score"] for g in got] == pytest.approx([e["score"] for e in expected], abs=1e-5)
    assert served.classify(TEXTS, top_k=2)[0] == every[0][:2]


def test_exported_and_served_encoder_equals_sentence_transformers(encoder_dir):
    from sentence_transformers import SentenceTransformer

    from polydistill import runtime
    from polydistill.compress.onnx_export import export_onnx

    result = export_onnx(encoder_dir, task="embeddings", check_texts=TEXTS)
    assert result.output_names == ["last_hidden_state", "sentence_embedding"] and result.min_cosine >= 0.9999
    expected = SentenceTransformer(str(encoder_dir), device="cpu").encode(TEXTS)  # default prompt "query: ", max_seq_length 16
    got = runtime.load(encoder_dir).encode(TEXTS)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    without_prompt = SentenceTransformer(str(encoder_dir), device="cpu").encode(TEXTS, prompt="")
    np.testing.assert_allclose(runtime.load(encoder_dir).encode(TEXTS, prompt=""), without_prompt, atol=1e-5)


def test_cls_pooling_without_normalize_is_exported_as_its_pipeline_says(tmp_path_factory):
    from sentence_transformers import SentenceTransformer

    from polydistill import runtime
    from polydistill.compress.onnx_export import export_onnx

    directory = _sentence_dir(tmp_path_factory, "cls-encoder", pooling="cls", normalize=False, prefix="")
    export_onnx(directory, task="embeddings", check_texts=TEXTS)
    expected = SentenceTransformer(str(directory), device="cpu").encode(TEXTS)
    assert not np.allclose(np.linalg.norm(expected, axis=1), 1.0)  # really not normalised
    np.testing.assert_allclose(runtime.load(directory).encode(TEXTS), expected, atol=1e-4)


def test_a_failed_export_check_says_by_how_much_and_leaves_no_file(classifier_dir, tmp_path, monkeypatch):
    from polydistill.compress import onnx_export

    monkeypatch.setattr(onnx_export, "MAX_LOGIT_DIFFERENCE", -1.0)  # no export can meet it
    with pytest.raises(onnx_export.ExportError, match=r"differ from PyTorch's by \d"):
        onnx_export.export_onnx(classifier_dir, task="classification", check_texts=TEXTS, out_dir=tmp_path / "onnx")
    assert list((tmp_path / "onnx").iterdir()) == []


def test_the_runtime_imports_no_torch(classifier_dir):
    from polydistill.compress.onnx_export import export_onnx

    export_onnx(classifier_dir, task="classification", check_texts=TEXTS)
    script = textwrap.dedent(
        f"""
        import sys

        class Refuse:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {{"torch", "transformers", "sentence_transformers"}}:
                    raise ImportError("the runtime imported " + name)

        sys.meta_path.insert(0, Refuse())
        from polydistill import runtime
        print(runtime.load({str(classifier_dir)!r}).classify(["apple"])[0]["label"])
        """
    )
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert completed.stdout.strip() in {"fruit", "vehicle", "instrument"}


def test_runtime_refuses_a_directory_without_an_export(tmp_path):
    from polydistill import runtime
    from polydistill.errors import ConfigError

    (tmp_path / "tokenizer.json").write_text("{}")
    with pytest.raises(ConfigError, match="no ONNX file"):
        runtime.load(tmp_path)


def test_an_xlm_roberta_classifier_exports_through_the_lean_encoder(tmp_path):
    """RoBERTa-style positions (counted from the padding index over real tokens) and a head on the sequence."""
    from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification

    from polydistill import runtime
    from polydistill.compress.onnx_export import export_onnx

    torch.manual_seed(6)
    tokenizer = build_wordpiece_tokenizer()
    config = XLMRobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=80,
        pad_token_id=tokenizer.pad_token_id,
        type_vocab_size=1,
        num_labels=3,
    )
    model = XLMRobertaForSequenceClassification(config).eval()
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    result = export_onnx(tmp_path, task="classification", check_texts=TEXTS, max_length=32)  # checked against transformers
    assert result.max_abs_diff <= 1e-4
    inputs = tokenizer(TEXTS, padding=True, truncation=True, max_length=32, return_tensors="pt")
    with torch.no_grad():
        expected = model(**inputs).logits.numpy()
    np.testing.assert_allclose(runtime.load(tmp_path).logits(TEXTS), expected, atol=1e-4)


def test_runtime_names_a_corrupt_tokenizer_file_and_refuses_texts_that_are_not_strings(classifier_dir, tmp_path):
    import shutil

    from polydistill import runtime
    from polydistill.compress.onnx_export import export_onnx
    from polydistill.errors import ConfigError

    export_onnx(classifier_dir, task="classification", check_texts=TEXTS, max_length=64)
    classifier = runtime.load(classifier_dir)
    for wrong, given in ((None, "NoneType"), (7, "int"), ({"text": "a"}, "dict")):
        with pytest.raises(TypeError, match=f"texts must be a string or a list of strings, not {given}"):
            classifier.classify(wrong)
    with pytest.raises(TypeError, match="item 1 is int"):
        classifier.classify(["apple", 3])

    broken = tmp_path / "broken"
    shutil.copytree(classifier_dir, broken)
    (broken / "tokenizer.json").write_text('{"version": 1, ')
    with pytest.raises(ConfigError, match=rf"{broken / 'tokenizer.json'}: not a tokenizer file"):
        runtime.load(broken)
