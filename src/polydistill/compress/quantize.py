"""int8 quantization of an exported encoder with onnxruntime, and the recipes to try in order.

Why more than one call to ``quantize_dynamic``: int8 can collapse a multilingual encoder in *one*
language while the average looks fine (optimum #151, onnxruntime #9599). The usual suspects are
the embedding matrix (onnxruntime quantizes it per tensor, to uint8, so the rows of rare tokens,
often one script's, lose the most) and rounding error that accumulates up to the last layer and
the classifier, where it decides the argmax. :func:`candidate_recipes` lists settings from the
smallest file to the most fp32 left, and the caller keeps the first that passes the per-language
check of :mod:`polydistill.compress.language_check`.

How a model is quantized (:func:`quantize_int8`):

- **Fusion first** (``optimize=True``): ``onnxruntime.transformers.optimizer.optimize_model``
  (``model_type="bert"``, ``opt_level=1``: onnxruntime's basic, hardware-independent rewrites,
  then the Python fusions) turns the exported graph into ``EmbedLayerNormalization``,
  ``Attention``, ``SkipLayerNormalization`` and ``BiasGelu``, so dynamic quantization writes the
  fused int8 kernels (``QEmbedLayerNormalization`` for the embedding table, ``QAttention`` for the
  q/k/v weights). Measured on a 3-layer BERT (hidden 384, vocab 25,000, one thread) the fused and
  unfused int8 files are the same size and equally fast (onnxruntime fuses the fp32 parts itself
  when it loads a model), so fusion is a choice of kernels, not a requirement. The head count and
  hidden size are read from the graph when not given (:func:`attention_shape`): transformers 5
  exports q/k/v reshapes as ``(batch, sequence, -1, head_size)``, which onnxruntime's own
  detection misses. Fusion also needs eager attention at export: the SDPA mask pattern
  (``IsNaN``/``Where``) is not recognised, and such a graph is quantized unfused (still correct;
  the embedding ``Gather`` is quantized instead). The fused op counts are in ``settings["fused"]``.
- **Dynamic** (default): weights int8 (per output channel with ``per_channel``), activations
  quantized per call from their own range (uint8, the only kind dynamic mode has), no
  calibration. ``MatMulConstBOnly``: only matrix products with a weight are quantized, the
  attention score products stay fp32.
- **Static**: QDQ format, activations uint8 with ranges fixed by a calibration set (MinMax or
  Percentile), weights int8. QDQ has no quantized ``Attention``/``EmbedLayerNormalization``, so
  static mode fuses everything but those two, leaving their weights reachable as plain
  ``MatMul``/``Gather``. Calibrate on texts balanced across languages
  (:func:`calibration_feeds`): ranges seen on one language clip another's activations.
- The result is written atomically (a temporary file beside ``out_path``, then a rename), so a
  crash never leaves a half-written model that looks finished.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import re
import tempfile
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from polydistill.errors import ConfigError, DataError

MODES = ("dynamic", "static")
CALIBRATION_METHODS = ("minmax", "percentile")
#: ops whose float weights quantization turns into int8 (weights of Gemm/MatMul/Attention, embedding tables)
WEIGHT_OP_TYPES = ("MatMul", "Gemm", "Attention")
EMBEDDING_OP_TYPES = ("Gather", "EmbedLayerNormalization")
#: the fused ops :func:`quantize_int8` reports (a graph without Attention was not fused)
FUSED_OP_TYPES = ("EmbedLayerNormalization", "Attention", "SkipLayerNormalization", "BiasGelu", "FastGelu", "Gelu")
DEFAULT_OPT_LEVEL = 1
_LAYER_INDEX = re.compile(r"(?:^|[/._:])layers?[/._](\d+)(?=$|[/._:])")

Feed = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class QuantizationResult:
    """The quantized file, its size and every setting that made it (for metrics.json)."""

    path: Path
    mode: str
    bytes: int
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "mode": self.mode, "bytes": self.bytes, "settings": dict(self.settings)}


# --- quantizing one model ------------------------------------------------------------------


def quantize_int8(
    onnx_path: Path | str,
    out_path: Path | str,
    *,
    mode: str = "dynamic",
    per_channel: bool = True,
    quantize_embeddings: bool = True,
    exclude_nodes: Sequence[str] = (),
    exclude_op_types: Sequence[str] = (),
    calibration: Iterable[Feed] | None = None,
    calibration_method: str = "minmax",
    optimize: bool = True,
    num_heads: int = 0,
    hidden_size: int = 0,
    opt_level: int = DEFAULT_OPT_LEVEL,
    reduce_range: bool = False,
    keep_last_layer_fp32: bool = False,
) -> QuantizationResult:
    """Quantize the fp32 ONNX model at ``onnx_path`` to int8 and write it to ``out_path``.

    ``exclude_nodes`` are node names of the graph that is quantized (after fusion; see
    :func:`prepared_graph`), kept fp32; a name not in that graph is an error, so a stale list never
    silently quantizes everything. ``exclude_op_types`` keeps whole op types fp32 (``"Gemm"``
    included, although dynamic mode rewrites Gemm into MatMul first). ``quantize_embeddings=False``
    keeps the embedding tables fp32. ``calibration`` (static mode only, required there): input
    feeds, dicts of input name -> int64 array, e.g. from :func:`calibration_feeds`; inputs the
    model does not take are dropped. ``num_heads``/``hidden_size`` help the fusion (0: detected).
    ``reduce_range`` quantizes weights to 7 bits (for CPUs without VNNI, where 8-bit products can
    saturate). ``keep_last_layer_fp32`` also keeps the last encoder layer and the head after it
    fp32, their node names read from the graph being quantized (:func:`last_layer_and_head_nodes`).
    """
    source = Path(onnx_path)
    destination = Path(out_path)
    if not source.is_file():
        raise ConfigError(f"no ONNX model at {source}: export the model first (expected a .onnx file)")
    if mode not in MODES:
        raise ConfigError(f"quantization mode '{mode}' is unknown: expected one of {', '.join(MODES)}")
    if calibration_method not in CALIBRATION_METHODS:
        raise ConfigError(f"calibration_method '{calibration_method}' is unknown: expected one of {', '.join(CALIBRATION_METHODS)}")
    if mode == "static" and calibration is None:
        raise ConfigError(
            "static quantization needs calibration feeds (calibration=calibration_feeds(...)); use mode='dynamic' without them"
        )
    if mode == "dynamic" and calibration is not None:
        raise ConfigError("calibration feeds are only used by mode='static'; dynamic quantization measures activations at run time")
    if isinstance(exclude_nodes, str) or isinstance(exclude_op_types, str):
        raise ConfigError("exclude_nodes and exclude_op_types take a list of names, not one string")
    destination.parent.mkdir(parents=True, exist_ok=True)

    import onnx
    import onnxruntime

    with tempfile.TemporaryDirectory(dir=destination.parent, prefix=f".{destination.name}.work-") as work:
        model = prepared_graph(source, mode=mode, optimize=optimize, num_heads=num_heads, hidden_size=hidden_size, opt_level=opt_level)
        fused = {op: count for op, count in Counter(node.op_type for node in model.graph.node).items() if op in FUSED_OP_TYPES}
        node_types = {node.name: node.op_type for node in model.graph.node}
        unknown = [name for name in exclude_nodes if name not in node_types]
        if unknown:
            sample = ", ".join(sorted(name for name, op in node_types.items() if op in (*WEIGHT_OP_TYPES, *EMBEDDING_OP_TYPES))[:8])
            raise ConfigError(
                f"exclude_nodes names {unknown[:5]} that are not in the graph being quantized "
                f"(names after fusion, e.g. {sample}); take them from prepared_graph() or candidate_recipes()"
            )
        kept_fp32 = list(exclude_nodes)
        if keep_last_layer_fp32:
            last = last_layer_and_head_nodes(model)
            if not last:
                raise ConfigError(
                    f"keep_last_layer_fp32: the graph of {source} names no encoder layers (no 'layer.N' in its node or tensor names) "
                    "and has no fused Attention; list the nodes to keep fp32 in exclude_nodes instead"
                )
            kept_fp32 += [name for name in last if name not in kept_fp32]
        op_types = _op_types_to_quantize(mode, quantize_embeddings, exclude_op_types)
        excluded = _expand_exclusions(model, mode, kept_fp32, exclude_op_types)
        prepared_path = Path(work) / "prepared.onnx"
        onnx.save_model(model, str(prepared_path))
        partial = destination.parent / f".{destination.name}.partial-{uuid.uuid4().hex}"
        feeds_used = 0
        try:
            with _quiet_quantizer():
                if mode == "dynamic":
                    _quantize_dynamic(prepared_path, partial, per_channel, reduce_range, op_types, excluded)
                else:
                    reader = _FeedReader(calibration or (), [value.name for value in model.graph.input])
                    _quantize_static(prepared_path, partial, reader, per_channel, reduce_range, op_types, excluded, calibration_method)
                    feeds_used = reader.count
            os.replace(partial, destination)
        finally:
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()

    settings: dict[str, Any] = {
        "mode": mode,
        "weight_type": "int8",
        "activation_type": "uint8",
        "per_channel": per_channel,
        "reduce_range": reduce_range,
        "quantize_embeddings": quantize_embeddings,
        "optimize": optimize,
        "opt_level": opt_level if optimize else None,
        "fused": fused,
        "op_types_to_quantize": op_types,
        "exclude_nodes": kept_fp32,
        "exclude_op_types": list(exclude_op_types),
        "keep_last_layer_fp32": keep_last_layer_fp32,
        "source_bytes": source.stat().st_size,
        "onnxruntime": onnxruntime.__version__,
    }
    if mode == "static":
        settings.update({"format": "QDQ", "calibration_method": calibration_method, "calibration_feeds": feeds_used})
    return QuantizationResult(path=destination, mode=mode, bytes=destination.stat().st_size, settings=settings)


def prepared_graph(
    onnx_path: Path | str,
    *,
    mode: str = "dynamic",
    optimize: bool = True,
    num_heads: int = 0,
    hidden_size: int = 0,
    opt_level: int = DEFAULT_OPT_LEVEL,
) -> Any:
    """The ``onnx.ModelProto`` that :func:`quantize_int8` quantizes with these settings: the
    export itself, or its fused form (static mode leaves Attention and EmbedLayerNormalization
    unfused, since QDQ cannot quantize them). Node names for ``exclude_nodes`` come from here."""
    import onnx

    if not optimize:
        return onnx.load(str(onnx_path))
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    if num_heads <= 0 or hidden_size <= 0:
        detected_heads, detected_hidden = attention_shape(onnx.load(str(onnx_path)))
        num_heads, hidden_size = num_heads if num_heads > 0 else detected_heads, hidden_size if hidden_size > 0 else detected_hidden
        if num_heads <= 0 or hidden_size <= 0 or hidden_size % num_heads:
            num_heads, hidden_size = 0, 0  # let the optimizer try; without them it fuses no attention
    options = FusionOptions("bert")
    if mode == "static":
        options.enable_attention = False
        options.enable_embed_layer_norm = False
    with _quiet_quantizer():
        optimized = optimize_model(
            str(onnx_path),
            model_type="bert",
            num_heads=num_heads,
            hidden_size=hidden_size,
            optimization_options=options,
            opt_level=opt_level,
            use_gpu=False,
        )
    return optimized.model


def attention_shape(model: Any) -> tuple[int, int]:
    """(num_heads, hidden_size) read from an exported BERT graph, (0, 0) when not found.

    onnxruntime's own detection looks for the head count in the shape the attention reshapes q/k/v
    to; transformers 5 exports ``(batch, sequence, -1, head_size)``, so it fails and no Attention is
    fused. Here the hidden size is the width of the word-embedding table (the largest float table
    a Gather reads) and the head count the hidden size over the ``head_size`` of those reshapes (or
    their explicit head count).
    """
    from onnx import numpy_helper

    constants: dict[str, np.ndarray] = {tensor.name: numpy_helper.to_array(tensor) for tensor in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    tables = [
        constants[node.input[0]].shape
        for node in model.graph.node
        if node.op_type == "Gather" and node.input[0] in constants and constants[node.input[0]].ndim == 2
    ]
    if not tables:
        return 0, 0
    hidden = int(max(tables)[1])
    producers = {output: node for node in model.graph.node for output in node.output}
    heads: Counter[int] = Counter()
    for node in model.graph.node:
        shape = producers.get(node.input[1]) if node.op_type == "Reshape" and len(node.input) > 1 else None
        if shape is None or shape.op_type != "Concat" or len(shape.input) != 4:
            continue
        third, fourth = (constants.get(name) for name in shape.input[2:])
        if fourth is None or fourth.size != 1 or int(fourth.reshape(-1)[0]) <= 0:
            continue
        if third is not None and third.size == 1 and int(third.reshape(-1)[0]) > 0:
            heads[int(third.reshape(-1)[0])] += 1
        elif hidden % int(fourth.reshape(-1)[0]) == 0:
            heads[hidden // int(fourth.reshape(-1)[0])] += 1
    return (heads.most_common(1)[0][0], hidden) if heads else (0, hidden)


def _op_types_to_quantize(mode: str, quantize_embeddings: bool, exclude_op_types: Sequence[str]) -> list[str]:
    types = ["MatMul", "Gemm"] + (["Attention"] if mode == "dynamic" else [])
    if quantize_embeddings:
        types += ["Gather", "EmbedLayerNormalization"] if mode == "dynamic" else ["Gather"]
    return [op for op in types if op not in set(exclude_op_types)]


def _expand_exclusions(model: Any, mode: str, exclude_nodes: Sequence[str], exclude_op_types: Sequence[str]) -> list[str]:
    """Node names to pass to onnxruntime. Dynamic mode first rewrites every Gemm ``g`` into a
    MatMul ``g_MatMul`` and an Add, so a Gemm kept fp32 (by name or op type) is named both ways."""
    names = list(exclude_nodes) + [node.name for node in model.graph.node if node.op_type in set(exclude_op_types)]
    if mode == "dynamic":
        gemms = {node.name for node in model.graph.node if node.op_type == "Gemm"}
        names += [f"{name}_MatMul" for name in names if name in gemms]
    return list(dict.fromkeys(names))


def _quantize_dynamic(source: Path, out: Path, per_channel: bool, reduce_range: bool, op_types: list[str], excluded: list[str]) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        source,
        out,
        op_types_to_quantize=op_types,
        per_channel=per_channel,
        reduce_range=reduce_range,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=excluded,
        # the fused contrib ops defeat onnx shape inference; their outputs are float
        extra_options={"MatMulConstBOnly": True, "DefaultTensorType": onnx.TensorProto.FLOAT},
    )


def _quantize_static(
    source: Path,
    out: Path,
    reader: Any,
    per_channel: bool,
    reduce_range: bool,
    op_types: list[str],
    excluded: list[str],
    calibration_method: str,
) -> None:
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    method = CalibrationMethod.MinMax if calibration_method == "minmax" else CalibrationMethod.Percentile
    quantize_static(
        source,
        out,
        reader,
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=op_types,
        per_channel=per_channel,
        reduce_range=reduce_range,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=excluded,
        calibrate_method=method,
        extra_options={
            "MatMulConstBOnly": True,
            # a bias whose input has no calibrated scale (the pooler's Gemm after a Gather) cannot be
            # quantized to int32; fp32 biases cost a few KiB
            "QuantizeBias": False,
            "DefaultTensorType": onnx.TensorProto.FLOAT,
        },
    )


class _FeedReader:
    """onnxruntime's CalibrationDataReader over the caller's feeds (checked, filtered to the
    model's inputs, counted)."""

    def __init__(self, feeds: Iterable[Feed], input_names: list[str]):
        self._feeds: Iterator[Feed] = iter(feeds)
        self._inputs = input_names
        self.count = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        feed = next(self._feeds, None)
        if feed is None:
            if self.count == 0:
                raise DataError("the calibration feeds are empty: static quantization needs at least one batch")
            return None
        missing = [name for name in self._inputs if name not in feed]
        if missing:
            raise DataError(f"calibration feed {self.count} lacks the model inputs {missing} (it has {sorted(feed)})")
        self.count += 1
        return {name: np.asarray(feed[name], dtype=np.int64) for name in self._inputs}

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        return iter(self.get_next, None)


@contextlib.contextmanager
def _quiet_quantizer() -> Iterator[None]:
    """Silence onnxruntime's "please pre-process" and fusion chatter (root-logger warnings)."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


# --- calibration -----------------------------------------------------------------------------


def calibration_feeds(
    texts_by_language: Mapping[str, Sequence[str]],
    encode_fn: Callable[[list[str]], Mapping[str, Any]],
    *,
    per_language: int = 32,
    batch_size: int = 8,
    seed: int = 0,
) -> Iterator[dict[str, np.ndarray]]:
    """Calibration batches with the same number of texts from every language, interleaved.

    Each language gives ``min(per_language, fewest texts any language has)`` texts (a seeded
    sample when it has more), so no language's activation ranges dominate; they are interleaved
    (one of each language in turn) so every batch mixes languages. ``encode_fn`` turns a list of
    texts into a feed (input name -> array with one row per text), so this module needs no
    tokenizer; values are returned as int64.
    """
    if per_language < 1 or batch_size < 1:
        raise ConfigError(f"per_language and batch_size must be at least 1, got {per_language} and {batch_size}")
    if not texts_by_language:
        raise DataError("no languages to calibrate on: texts_by_language is empty")
    empty = [code for code, texts in texts_by_language.items() if len(texts) == 0]
    if empty:
        raise DataError(f"the languages {empty} have no calibration texts; every language needs at least one")
    count = min(per_language, *(len(texts) for texts in texts_by_language.values()))
    rng = random.Random(seed)
    chosen = {
        code: list(texts)[:count] if len(texts) == count else rng.sample(list(texts), count) for code, texts in texts_by_language.items()
    }
    interleaved = [chosen[code][index] for index in range(count) for code in chosen]
    return _encoded_batches(interleaved, encode_fn, batch_size)


def _encoded_batches(
    texts: list[str], encode_fn: Callable[[list[str]], Mapping[str, Any]], batch_size: int
) -> Iterator[dict[str, np.ndarray]]:
    for start in range(0, len(texts), batch_size):
        batch = texts[start : start + batch_size]
        feed = {name: np.asarray(value, dtype=np.int64) for name, value in encode_fn(batch).items()}
        wrong = {name: value.shape for name, value in feed.items() if value.ndim < 1 or value.shape[0] != len(batch)}
        if wrong:
            raise DataError(f"encode_fn returned {wrong} for a batch of {len(batch)} texts: expected one row per text")
        yield feed


# --- recipes ---------------------------------------------------------------------------------


def candidate_recipes(*, calibration: Iterable[Feed] | None = None, **common: Any) -> list[dict[str, Any]]:
    """Recipes from the smallest and fastest to the most careful (static QDQ last: on CPU it is no
    faster than fp32): try them in order, keep the first that passes the per-language check (:mod:`polydistill.compress.language_check`).

    Each recipe is ``{"name", "why", "kwargs"}``, the kwargs for :func:`quantize_int8`;
    ``common`` (``num_heads``, ``hidden_size``, ``opt_level``...) is added to every recipe. The
    static recipe needs calibration feeds: pass ``calibration`` (materialised into a list here, so
    the recipes can be reused), or add ``kwargs["calibration"]`` before calling it. The last-layer
    recipe names no nodes itself: ``keep_last_layer_fp32`` finds them in the graph it quantizes.

    Measured on a 3-layer BERT (hidden 384, 12 heads, vocab 25,000, random weights, onnxruntime
    1.32, one thread, batch 1, 32 tokens): fp32 60.5 MB / 3.1 ms; all 15.2 MB / 1.3 ms; embeddings
    fp32 44.2 MB / 1.3 ms; static 44.2 MB / 3.4 ms (QDQ keeps attention unfused: no faster than
    fp32 on CPU, it is here for its different activation ranges); last layer and head fp32
    49.9 MB / 2.1 ms.
    """
    static: dict[str, Any] = {"mode": "static", "per_channel": True, "quantize_embeddings": False, "calibration_method": "minmax", **common}
    if calibration is not None:
        static["calibration"] = list(calibration)
    return [
        {
            "name": "dynamic-per-channel-all",
            "why": "smallest and fastest: every weight int8 per output channel, the embedding table too (per tensor, uint8)",
            "kwargs": {"mode": "dynamic", "per_channel": True, "quantize_embeddings": True, **common},
        },
        {
            "name": "dynamic-per-channel-embeddings-fp32",
            "why": "the per-tensor int8 embedding table is the usual reason one language collapses (its rare-token rows lose most); keep it fp32",
            "kwargs": {"mode": "dynamic", "per_channel": True, "quantize_embeddings": False, **common},
        },
        {
            "name": "dynamic-last-layer-and-head-fp32",
            "why": "rounding error accumulates up to the last layer and the classifier, which decide the output; keep them and the embeddings fp32",
            "kwargs": {"mode": "dynamic", "per_channel": True, "quantize_embeddings": False, "keep_last_layer_fp32": True, **common},
        },
        {
            "name": "static-qdq-balanced-calibration",
            "why": "activation ranges fixed from texts balanced across languages, not from each input's own extremes; embeddings fp32",
            "kwargs": static,
        },
    ]


def last_layer_and_head_nodes(model: Any) -> list[str]:
    """Names of the weight-bearing nodes of the last encoder layer and everything after it.

    A node's layer is the index in ``layer.N`` / ``layers.N`` of its name, else of its outputs
    (a fused ``Attention_3`` writes ``/bert/encoder/layer.3/...``). The head (pooler, classifier,
    projection) is every weight-bearing node reachable from the last layer's outputs that belongs
    to no layer. Without layer names, a fused graph falls back to its last ``Attention`` node and
    everything downstream of its input; otherwise the list is empty.
    """
    nodes = list(model.graph.node)
    initializers = {tensor.name for tensor in model.graph.initializer}

    def weight_bearing(node: Any) -> bool:
        if node.op_type in ("Attention", "EmbedLayerNormalization"):
            return True
        if node.op_type == "Gather":
            return node.input[0] in initializers  # a table lookup, not an index into activations
        return node.op_type in ("MatMul", "Gemm") and len(node.input) > 1 and node.input[1] in initializers

    layer_of: dict[int, int] = {}
    for position, node in enumerate(nodes):
        for text in (node.name, *node.output):
            match = _LAYER_INDEX.search(text)
            if match:
                layer_of[position] = int(match.group(1))
                break
    if layer_of:
        last = max(layer_of.values())
        start = [position for position, layer in layer_of.items() if layer == last]
        frontier = {name for position in start for name in nodes[position].output}
    else:
        attentions = [position for position, node in enumerate(nodes) if node.op_type == "Attention"]
        if not attentions:
            return []
        start = [attentions[-1]]
        frontier = {nodes[attentions[-1]].input[0]}
    chosen = set(start)
    # everything downstream of the frontier (nodes are in topological order in an ONNX graph)
    reached = set(frontier)
    for position, node in enumerate(nodes):
        if any(name in reached for name in node.input):
            reached.update(node.output)
            if position not in layer_of:
                chosen.add(position)
    return [nodes[position].name for position in sorted(chosen) if weight_bearing(nodes[position]) and nodes[position].name]
