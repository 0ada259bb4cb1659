"""int8 quantization of tiny exported BERT classifiers: closeness to fp32, file sizes, the embedding
table, static calibration, balanced calibration batches, recipes and the nodes they keep fp32.

Every model here is exported by the test itself (eager attention, so onnxruntime's BERT fusion
applies), with random weights: what is checked is the quantizer's behaviour, not a model's quality.
"""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")

from polydistill.compress.quantize import (  # noqa: E402
    calibration_feeds,
    candidate_recipes,
    last_layer_and_head_nodes,
    prepared_graph,
    quantize_int8,
)
from polydistill.errors import ConfigError, DataError  # noqa: E402

INPUTS = ["input_ids", "attention_mask", "token_type_ids"]
VOCAB, HIDDEN, LAYERS, HEADS, FFN = 5000, 64, 2, 4, 128
#: Relative bound on |int8 - fp32| logits, as a share of the largest fp32 logit. Each int8 rounding
#: is off by at most half a step: 1/254 of a channel's largest weight, 1/255 of an activation's range
#: (about 0.2-0.4 % each). The tiny model chains about ten quantized products (2 layers x 4, pooler,
#: classifier) whose errors add up roughly linearly, so a few percent is expected (1.5 % measured);
#: 10 % leaves room for other CPUs' kernels and still fails a quantizer that breaks a tensor.
RELATIVE_BOUND = 0.10


def export_classifier(path: Path, *, vocab: int = VOCAB, seed: int = 0, labels: int = 3, attention: str = "eager") -> Path:
    """A random tiny BertForSequenceClassification as ONNX (opset 17, dynamic batch and sequence)."""
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=vocab,
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        intermediate_size=FFN,
        num_labels=labels,
        max_position_embeddings=64,
    )
    config._attn_implementation = attention  # "eager": the SDPA mask pattern defeats onnxruntime's attention fusion
    model = BertForSequenceClassification(config).eval()
    export_module(_Logits(model), path)
    return path


class _Logits(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).logits


def export_module(module, path: Path) -> None:
    ids = torch.randint(5, 100, (2, 12))
    axes = {0: "batch", 1: "sequence"}
    torch.onnx.export(
        module,
        (ids, torch.ones_like(ids), torch.zeros_like(ids)),
        str(path),
        dynamo=False,
        opset_version=17,
        input_names=INPUTS,
        output_names=["out"],
        dynamic_axes={"input_ids": axes, "attention_mask": axes, "token_type_ids": axes, "out": {0: "batch"}},
    )


def run(path: Path, feed: dict[str, np.ndarray]) -> np.ndarray:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(None, feed)[0]


def random_feed(rows: int = 12, length: int = 20, *, vocab: int = VOCAB, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, vocab, (rows, length)).astype(np.int64)
    mask = np.ones_like(ids)
    mask[rows // 2 :, length - 6 :] = 0  # padded rows too
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}


def op_counts(path: Path) -> collections.Counter:
    return collections.Counter(node.op_type for node in onnx.load(str(path)).graph.node)


def initializer_types(path: Path) -> dict[tuple[int, ...], list[int]]:
    """Data types of the initializers of each shape."""
    types: dict[tuple[int, ...], list[int]] = collections.defaultdict(list)
    for tensor in onnx.load(str(path)).graph.initializer:
        types[tuple(tensor.dims)].append(tensor.data_type)
    return types


@pytest.fixture(scope="module")
def fp32_model(tmp_path_factory) -> Path:
    return export_classifier(tmp_path_factory.mktemp("fp32") / "model.onnx")


def weight_users(graph, weight: str) -> list:
    """Nodes reading the initializer ``...<weight>`` (dynamic mode renames a Gemm's weight
    ``<weight>_Transposed`` when it rewrites the Gemm into a MatMul)."""
    return [node for node in graph.node if any(name.endswith((weight, f"{weight}_Transposed")) for name in node.input)]


def weight_inputs(node, weight: str) -> list[str]:
    return [name for name in node.input if name.endswith((weight, f"{weight}_Transposed"))]


def cpu_has_vnni() -> bool:
    """Whether this x86 CPU has 8-bit dot-product instructions (AVX-512 VNNI or AVX-VNNI); True elsewhere."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return True
    return "vnni" in flags or " avx2 " not in flags


def relative_error(candidate: np.ndarray, reference: np.ndarray) -> float:
    return float(np.abs(candidate - reference).max() / np.abs(reference).max())


# --- dynamic -------------------------------------------------------------------------------


def test_dynamic_int8_is_close_to_fp32_and_a_third_of_its_size(fp32_model, tmp_path):
    result = quantize_int8(fp32_model, tmp_path / "int8.onnx", num_heads=HEADS, hidden_size=HIDDEN)

    feed = random_feed()
    reference = run(fp32_model, feed)
    quantized = run(result.path, feed)
    assert quantized.shape == reference.shape
    assert relative_error(quantized, reference) <= RELATIVE_BOUND
    # 4 bytes per weight become 1 (plus scales and the few fp32 LayerNorm/bias vectors)
    assert result.bytes == result.path.stat().st_size
    assert result.bytes < fp32_model.stat().st_size / 3
    # the graph was fused and the fused ops quantized
    ops = op_counts(result.path)
    assert ops["QAttention"] == LAYERS and ops["QEmbedLayerNormalization"] == 1
    assert result.settings["fused"]["Attention"] == LAYERS
    assert result.mode == "dynamic" and result.settings["per_channel"] is True


def test_quantizing_the_embedding_table_saves_three_bytes_per_entry(fp32_model, tmp_path):
    with_table = quantize_int8(fp32_model, tmp_path / "all.onnx", quantize_embeddings=True)
    without = quantize_int8(fp32_model, tmp_path / "emb-fp32.onnx", quantize_embeddings=False)

    table = VOCAB * HIDDEN  # the word embeddings: 4 bytes each in fp32, 1 in int8
    saved = without.bytes - with_table.bytes
    assert 0.95 * 3 * table <= saved <= 1.05 * 3 * table + 3 * 64 * HIDDEN  # (+ the position table)
    assert initializer_types(with_table.path)[(VOCAB, HIDDEN)] == [onnx.TensorProto.UINT8]
    assert initializer_types(without.path)[(VOCAB, HIDDEN)] == [onnx.TensorProto.FLOAT]
    feed = random_feed(seed=3)
    assert relative_error(run(without.path, feed), run(fp32_model, feed)) <= RELATIVE_BOUND


def test_an_unfused_graph_is_quantized_too(fp32_model, tmp_path):
    result = quantize_int8(fp32_model, tmp_path / "plain.onnx", optimize=False)

    assert "Attention" not in result.settings["fused"]
    ops = op_counts(result.path)
    assert ops["MatMulInteger"] >= 6 * LAYERS  # q, k, v, output, two feed-forward products per layer
    assert initializer_types(result.path)[(VOCAB, HIDDEN)] == [onnx.TensorProto.UINT8]  # the Gather's table
    feed = random_feed(seed=4)
    assert relative_error(run(result.path, feed), run(fp32_model, feed)) <= RELATIVE_BOUND


def test_an_sdpa_export_is_quantized_without_attention_fusion(tmp_path):
    exported = export_classifier(tmp_path / "sdpa.onnx", attention="sdpa")
    result = quantize_int8(exported, tmp_path / "int8.onnx")

    assert "Attention" not in result.settings["fused"]  # the SDPA mask pattern is not recognised
    assert op_counts(result.path)["MatMulInteger"] >= 6 * LAYERS
    feed = random_feed(seed=7)
    assert relative_error(run(result.path, feed), run(exported, feed)) <= RELATIVE_BOUND


def test_the_file_is_replaced_atomically_and_a_failure_leaves_the_old_one(fp32_model, tmp_path):
    destination = tmp_path / "int8.onnx"
    destination.write_bytes(b"old")
    quantize_int8(fp32_model, destination)
    assert destination.stat().st_size > 3
    assert sorted(path.name for path in tmp_path.iterdir()) == ["int8.onnx"]

    before = destination.read_bytes()
    with pytest.raises(DataError, match="calibration feeds are empty"):
        quantize_int8(fp32_model, destination, mode="static", calibration=[])
    assert destination.read_bytes() == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["int8.onnx"]


def test_bad_settings_are_refused(fp32_model, tmp_path):
    with pytest.raises(ConfigError, match="no ONNX model"):
        quantize_int8(tmp_path / "missing.onnx", tmp_path / "x.onnx")
    with pytest.raises(ConfigError, match="mode"):
        quantize_int8(fp32_model, tmp_path / "x.onnx", mode="int4")
    with pytest.raises(ConfigError, match="needs calibration"):
        quantize_int8(fp32_model, tmp_path / "x.onnx", mode="static")
    with pytest.raises(ConfigError, match="only used by mode='static'"):
        quantize_int8(fp32_model, tmp_path / "x.onnx", calibration=[random_feed()])
    with pytest.raises(ConfigError, match="not in the graph"):
        quantize_int8(fp32_model, tmp_path / "x.onnx", exclude_nodes=["/no/such/node"])


# --- static --------------------------------------------------------------------------------


def encode_numbers(texts: list[str]) -> dict[str, np.ndarray]:
    """A stand-in tokenizer: each text is a run of token ids."""
    rows = [[int(token) for token in text.split()] for text in texts]
    length = max(len(row) for row in rows)
    ids = np.zeros((len(rows), length), dtype=np.int64)
    mask = np.zeros_like(ids)
    for index, row in enumerate(rows):
        ids[index, : len(row)] = row
        mask[index, : len(row)] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}


def language_texts(rng: np.random.Generator, low: int, high: int, count: int) -> list[str]:
    return [" ".join(str(token) for token in rng.integers(low, high, rng.integers(8, 20))) for _ in range(count)]


def test_static_qdq_with_balanced_calibration_is_close_to_fp32(fp32_model, tmp_path):
    rng = np.random.default_rng(0)
    texts = {"de": language_texts(rng, 5, 1600, 10), "fr": language_texts(rng, 1600, 3300, 10), "sw": language_texts(rng, 3300, 5000, 10)}
    feeds = calibration_feeds(texts, encode_numbers, per_language=8, batch_size=6)
    result = quantize_int8(fp32_model, tmp_path / "static.onnx", mode="static", calibration=feeds, calibration_method="percentile")

    assert result.settings["calibration_feeds"] == 4  # 3 languages x 8 texts in batches of 6
    assert result.settings["format"] == "QDQ"
    ops = op_counts(result.path)
    assert ops["QuantizeLinear"] > 0 and ops["DequantizeLinear"] > 0
    feed = random_feed(seed=5)
    assert relative_error(run(result.path, feed), run(fp32_model, feed)) <= RELATIVE_BOUND
    assert result.bytes < fp32_model.stat().st_size  # the MatMul weights are int8; the table stays fp32


def test_calibration_feeds_take_the_same_number_of_texts_from_each_language_interleaved():
    texts = {
        "de": [f"1{i} 1{i}" for i in range(10)],
        "fr": [f"2{i} 2{i}" for i in range(6)],
        "sw": [f"3{i} 3{i}" for i in range(8)],
    }
    seen: list[list[str]] = []

    def encode(batch: list[str]) -> dict[str, np.ndarray]:
        seen.append(batch)
        return encode_numbers(batch)

    feeds = list(calibration_feeds(texts, encode, per_language=5, batch_size=4))
    flat = [text for batch in seen for text in batch]
    assert len(flat) == 15  # 5 from each
    assert [len(batch) for batch in seen] == [4, 4, 4, 3]
    assert [text[0] for text in flat] == ["1", "2", "3"] * 5  # one of each language in turn
    for code, prefix in (("de", "1"), ("fr", "2"), ("sw", "3")):
        chosen = [text for text in flat if text[0] == prefix]
        assert len(set(chosen)) == 5 and set(chosen) <= set(texts[code])
    assert all(feed["input_ids"].dtype == np.int64 for feed in feeds)

    # more than the smallest language has: every language gives as many as that one
    seen.clear()
    list(calibration_feeds(texts, encode, per_language=8, batch_size=100))
    assert len(seen[0]) == 18


def test_calibration_feeds_refuse_empty_languages_and_wrong_batches():
    with pytest.raises(DataError, match="no calibration texts"):
        list(calibration_feeds({"de": ["1 2"], "sw": []}, encode_numbers))
    with pytest.raises(DataError, match="texts_by_language is empty"):
        list(calibration_feeds({}, encode_numbers))
    with pytest.raises(DataError, match="one row per text"):
        list(calibration_feeds({"de": ["1 2", "3 4"]}, lambda batch: {"input_ids": np.zeros((1, 2))}))


# --- recipes and the nodes they keep fp32 ----------------------------------------------------


def test_recipes_run_from_smallest_to_most_fp32(fp32_model, tmp_path):
    rng = np.random.default_rng(1)
    texts = {"de": language_texts(rng, 5, 2500, 4), "sw": language_texts(rng, 2500, 5000, 4)}
    recipes = candidate_recipes(calibration=calibration_feeds(texts, encode_numbers, per_language=4), num_heads=HEADS, hidden_size=HIDDEN)

    assert [recipe["name"] for recipe in recipes][0] == "dynamic-per-channel-all"
    assert all(recipe["why"] and "\n" not in recipe["why"] for recipe in recipes)
    sizes = {}
    feed = random_feed(seed=6)
    reference = run(fp32_model, feed)
    for recipe in recipes:
        # without VNNI, onnxruntime's u8s8 products can saturate: 7-bit weights, as quantize_int8 documents
        kwargs = recipe["kwargs"] | ({} if cpu_has_vnni() else {"reduce_range": True})
        result = quantize_int8(fp32_model, tmp_path / f"{recipe['name']}.onnx", **kwargs)
        sizes[recipe["name"]] = result.bytes
        assert relative_error(run(result.path, feed), reference) <= RELATIVE_BOUND, recipe["name"]
    assert sizes["dynamic-per-channel-all"] == min(sizes.values())
    assert sizes["dynamic-last-layer-and-head-fp32"] == max(sizes.values())


def test_keeping_the_last_layer_and_head_fp32_leaves_exactly_those_nodes_fp32(fp32_model, tmp_path):
    result = quantize_int8(fp32_model, tmp_path / "last.onnx", quantize_embeddings=False, keep_last_layer_fp32=True)
    graph = onnx.load(str(result.path)).graph
    floats = {tensor.name for tensor in graph.initializer if tensor.data_type == onnx.TensorProto.FLOAT}
    last = f"layer.{LAYERS - 1}"

    # the last layer's attention is a float Attention, the first layer's a QAttention
    attentions = {node.op_type: node for node in graph.node if node.op_type in ("Attention", "QAttention")}
    assert last in attentions["Attention"].output[0] and "layer.0" in attentions["QAttention"].output[0]
    # the last layer's three dense products stay float MatMuls with float weights; layer 0's are integer
    products = [node for node in graph.node if node.op_type in ("MatMul", "MatMulInteger") and "/encoder/layer." in node.name]
    for node in products:
        if last in node.name:
            assert node.op_type == "MatMul" and node.input[1] in floats, node.name
        else:
            assert node.op_type == "MatMulInteger", node.name
    assert sum(last in node.name for node in products) == 3
    # the pooler and the classifier keep their fp32 weights
    for weight in ("classifier.weight", "pooler.dense.weight"):
        users = weight_users(graph, weight)
        assert users and all(node.op_type in ("Gemm", "MatMul") for node in users), weight
        assert all(name in floats for node in users for name in weight_inputs(node, weight))
    assert result.settings["exclude_nodes"]  # the names it found are reported


def test_excluding_the_gemm_op_type_keeps_the_head_fp32_in_dynamic_mode(fp32_model, tmp_path):
    # dynamic quantization rewrites Gemm into MatMul before quantizing; the exclusion must survive that
    result = quantize_int8(fp32_model, tmp_path / "no-gemm.onnx", exclude_op_types=["Gemm"])
    graph = onnx.load(str(result.path)).graph
    floats = {tensor.name for tensor in graph.initializer if tensor.data_type == onnx.TensorProto.FLOAT}
    users = weight_users(graph, "classifier.weight")
    assert users and all(node.op_type in ("Gemm", "MatMul") for node in users)
    assert all(name in floats for node in users for name in weight_inputs(node, "classifier.weight"))
    assert op_counts(result.path)["QAttention"] == LAYERS  # the rest is still quantized


def test_last_layer_nodes_are_found_in_fused_and_unfused_graphs(fp32_model):
    fused = last_layer_and_head_nodes(prepared_graph(fp32_model, num_heads=HEADS, hidden_size=HIDDEN))
    plain = last_layer_and_head_nodes(prepared_graph(fp32_model, optimize=False))
    last = f"layer.{LAYERS - 1}"

    # unfused: q, k, v, output and two feed-forward products of the last layer, then pooler and classifier
    assert len(plain) == 6 + 2
    assert sum(last in name for name in plain) == 6 and not any("layer.0" in name for name in plain)
    assert any("classifier" in name for name in plain) and any("pooler" in name for name in plain)
    # fused: one Attention (named Attention_1, found by the tensors it writes) and three products
    assert len(fused) == 1 + 3 + 2
    assert f"Attention_{LAYERS - 1}" in fused and "Attention_0" not in fused
