"""ONNX export of a saved student, checked against PyTorch before it counts.

A classifier exports its ``logits``; a sentence-transformers directory exports
``last_hidden_state`` (token embeddings, what sentence-transformers' own ONNX backend reads from
``onnx/model.onnx``) and ``sentence_embedding`` (pooled as its Pooling module says, normalised when
the pipeline has a Normalize module), so :mod:`polydistill.runtime` needs no torch to pool. Inputs
are int64 ``input_ids``, ``attention_mask`` (and ``token_type_ids`` where the tokenizer makes
them), every axis of batch and sequence dynamic. BERT-family encoders are exported through
:mod:`polydistill.compress.lean_encoder`, the same function in the form onnxruntime fuses (one
Attention op per layer); other families in transformers' eager form.

After export the graph is run by onnxruntime on the check texts, batched and padded as users call
it, and compared with PyTorch: logits may differ by at most 1e-4, sentence embeddings must have
cosine >= 0.9999, or the export fails with the measured value and no file is left behind.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from polydistill.compress.lean_encoder import LeanEncoder, classifier_head, supports_lean_export
from polydistill.errors import ConfigError
from polydistill.models.loading import weights_kwargs
from polydistill.runtime import read_json, tokenizer_max_length

#: what an export must match PyTorch by
MAX_LOGIT_DIFFERENCE = 1e-4
MIN_EMBEDDING_COSINE = 0.9999
#: written beside the graph: what the runtime needs that the standard files do not say
RUNTIME_CONFIG = "polydistill_runtime.json"


class ExportError(ConfigError):
    """The exported graph does not compute what the PyTorch model computes."""


@dataclass
class ExportResult:
    path: str
    task: str
    input_names: list[str]
    output_names: list[str]
    n_checked: int
    max_abs_diff: float | None = None
    min_cosine: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def export_onnx(
    model_dir: str | Path,
    *,
    task: str,
    check_texts: Sequence[str],
    out_dir: str | Path | None = None,
    opset: int = 17,
    max_length: int = 128,
    batch_size: int = 16,
) -> ExportResult:
    """Export ``model_dir`` (a classifier or a sentence-transformers directory) to ``out_dir/model.onnx``."""
    from transformers import AutoTokenizer

    model_dir = Path(model_dir)
    out = Path(out_dir) if out_dir is not None else model_dir / "onnx"
    texts = [str(text) for text in check_texts if str(text).strip()]
    if not texts:
        raise ConfigError("export_onnx needs at least one non-empty check text")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    # never past what the model can take: a long check text would otherwise overrun its positions
    limit = tokenizer_max_length(model_dir, read_json(model_dir / "config.json"))
    max_length = min(max_length, limit) if limit is not None else max_length
    if task == "classification":
        module: torch.nn.Module = _Logits(model_dir)
        outputs, prefix = ["logits"], ""
    elif task == "embeddings":
        module = _Vectors(model_dir)
        outputs, prefix = ["last_hidden_state", "sentence_embedding"], _default_prompt(model_dir)
        max_length = min(max_length, module.max_seq_length or max_length)
    else:
        raise ConfigError(f"export_onnx: unknown task '{task}'; expected classification or embeddings")
    module.eval()
    inputs: list[str] = [name for name in ("input_ids", "attention_mask", "token_type_ids") if name in tokenizer.model_input_names]
    sample = tokenizer([prefix + text for text in texts[:2]], padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    axes = {name: {0: "batch", 1: "sequence"} for name in inputs} | {"logits": {0: "batch"}, "sentence_embedding": {0: "batch"}}
    axes["last_hidden_state"] = {0: "batch", 1: "sequence"}

    out.mkdir(parents=True, exist_ok=True)
    final = out / "model.onnx"
    handle, temporary = tempfile.mkstemp(prefix=".model-", suffix=".onnx", dir=out)
    os.close(handle)
    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notices
            torch.onnx.export(
                _Positional(module, inputs).eval(),  # export restores this mode afterwards: eval, or dropout runs in the check
                tuple(sample[name] for name in inputs),
                temporary,
                dynamo=False,
                input_names=inputs,
                output_names=outputs,
                dynamic_axes={name: axes[name] for name in [*inputs, *outputs]},
                opset_version=opset,
            )
        result = _check(module, tokenizer, Path(temporary), task, inputs, outputs, texts, prefix, max_length, batch_size)
        os.replace(temporary, final)
    finally:
        Path(temporary).unlink(missing_ok=True)
    (out / RUNTIME_CONFIG).write_text(
        json.dumps({"task": task, "max_length": max_length, "inputs": inputs, "outputs": outputs}, indent=2) + "\n", encoding="utf-8"
    )
    result.path = str(final)
    return result


class _Logits(torch.nn.Module):
    """A sequence classifier returning its logits: ``forward`` in the lean export form where the
    family has one, ``reference`` as transformers computes them (what the export is checked against)."""

    def __init__(self, model_dir: Path) -> None:
        from transformers import AutoModelForSequenceClassification

        super().__init__()
        self.model = AutoModelForSequenceClassification.from_pretrained(model_dir, attn_implementation="eager", **weights_kwargs())
        self.lean = LeanEncoder(self.model) if supports_lean_export(self.model) else None

    def forward(self, **inputs: Any) -> Any:
        if self.lean is None:
            return self.reference(**inputs)
        return (classifier_head(self.model, self.lean(**inputs)),)

    def reference(self, **inputs: Any) -> Any:
        return (self.model(**inputs).logits,)


class _Vectors(torch.nn.Module):
    """A sentence-transformers pipeline returning its token embeddings and its sentence embedding
    (``forward``: the encoder in the lean export form where it has one; ``reference``: the pipeline)."""

    def __init__(self, model_dir: Path) -> None:
        from sentence_transformers import SentenceTransformer

        super().__init__()
        self.pipeline = SentenceTransformer(str(model_dir), device="cpu", model_kwargs={"attn_implementation": "eager"})
        self.max_seq_length = self.pipeline.max_seq_length
        encoder = getattr(self.pipeline[0], "auto_model", None)
        self.lean = LeanEncoder(encoder) if encoder is not None and supports_lean_export(encoder) else None

    def forward(self, **inputs: Any) -> Any:
        if self.lean is None:
            return self.reference(**inputs)
        features = dict(inputs, token_embeddings=self.lean(**inputs))
        for module in list(self.pipeline)[1:]:  # pooling, normalisation, dense layers: as the pipeline has them
            features = module(features)
        return features["token_embeddings"], features["sentence_embedding"]

    def reference(self, **inputs: Any) -> Any:
        features = self.pipeline(dict(inputs))
        return features["token_embeddings"], features["sentence_embedding"]


class _Positional(torch.nn.Module):
    """Positional tensors in ``names`` order (how ``torch.onnx.export`` passes them) to keyword inputs."""

    def __init__(self, module: torch.nn.Module, names: list[str]) -> None:
        super().__init__()
        self.inner, self.names = module, names

    def forward(self, *tensors: Any) -> Any:
        return self.inner(**dict(zip(self.names, tensors, strict=True)))


def _default_prompt(model_dir: Path) -> str:
    settings_file = model_dir / "config_sentence_transformers.json"
    if not settings_file.is_file():
        return ""
    settings = json.loads(settings_file.read_text(encoding="utf-8"))
    name = settings.get("default_prompt_name")
    return str((settings.get("prompts") or {}).get(name, "")) if name else ""


def _check(module, tokenizer, graph: Path, task, inputs, outputs, texts, prefix, max_length, batch_size) -> ExportResult:
    import onnxruntime as ort

    session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    worst_difference, worst_cosine = 0.0, 1.0
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(
            [prefix + text for text in texts[start : start + batch_size]],
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        )
        with torch.no_grad():
            expected = module.reference(**{name: batch[name] for name in inputs})[-1].float().numpy()
        got = session.run([outputs[-1]], {name: batch[name].numpy().astype(np.int64) for name in inputs})[0]
        if task == "classification":
            worst_difference = max(worst_difference, float(np.abs(got - expected).max()))
        else:
            norms = np.linalg.norm(got, axis=1) * np.linalg.norm(expected, axis=1)
            worst_cosine = min(worst_cosine, float(((got * expected).sum(axis=1) / np.maximum(norms, 1e-12)).min()))
    if task == "classification":
        if not worst_difference <= MAX_LOGIT_DIFFERENCE:
            raise ExportError(
                f"the ONNX export's logits differ from PyTorch's by {worst_difference:.2e} (allowed {MAX_LOGIT_DIFFERENCE:.0e})"
            )
        return ExportResult("", task, inputs, outputs, len(texts), max_abs_diff=worst_difference)
    if not worst_cosine >= MIN_EMBEDDING_COSINE:
        raise ExportError(
            f"the ONNX export's sentence embeddings reach only cosine {worst_cosine:.6f} with PyTorch's (needed {MIN_EMBEDDING_COSINE})"
        )
    return ExportResult("", task, inputs, outputs, len(texts), min_cosine=worst_cosine)
