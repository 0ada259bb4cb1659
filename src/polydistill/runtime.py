"""Serve an exported model with onnxruntime and tokenizers alone: no torch, no transformers.

A deployment that only classifies or embeds text should not carry PyTorch (hundreds of MB, seconds
of import). This module reads the model directory that polydistill saved (the Hugging Face or
sentence-transformers files beside ``onnx/model.onnx``) and reproduces what the PyTorch
ecosystem returns for it:

- :class:`Classifier` returns what ``transformers.pipeline("text-classification", model=dir)``
  returns (label names, softmax scores, or sigmoid ones for multi-label models);
- :class:`Encoder` returns what ``SentenceTransformer(dir).encode`` returns (the default prompt,
  the pipeline's pooling and normalisation, its ``max_seq_length`` truncation).

Token ids are computed by ``tokenizers`` from ``tokenizer.json`` and padded here exactly as the
transformers tokenizer pads (its pad token, its padding side). Texts are truncated to the
directory's limit (sentence_bert_config's ``max_seq_length``, else tokenizer_config's
``model_max_length`` capped by the model's positions), lowered to the length the export was
checked at when it recorded one (``polydistill_runtime.json`` beside the graph), so a served model
truncates where its PyTorch evaluation did. Texts are sorted by length before batching, so a batch
pads little, and the results come back in the caller's order.

It imports numpy, tokenizers, onnxruntime (when a model is loaded), :mod:`polydistill.errors` and
:mod:`polydistill.models.checks` (standard library only) only; ``tests/test_runtime.py`` checks that
in a process where importing torch fails.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tokenizers import Encoding, Tokenizer, normalizers

from polydistill.errors import ConfigError

if TYPE_CHECKING:
    import onnxruntime

ONNX_DIR = "onnx"
ONNX_FILE = "model.onnx"
#: written beside the graph by the export: the length (tokens) it was checked at, among others
RUNTIME_CONFIG = "polydistill_runtime.json"
#: the graph inputs this runtime can feed, in the order the exporter writes them
FEEDABLE_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
#: model types whose position ids start after the padding index (RoBERTa's ``padding_idx + 1``), so
#: ``max_position_embeddings`` counts positions no token can use
_OFFSET_POSITION_TYPES = frozenset({"roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "data2vec-text", "mpnet", "xmod"})
#: sentence-transformers' built-in prompt names (empty unless the model saves them)
_DEFAULT_PROMPTS = {"query": "", "document": ""}


def load(
    model_dir: str | Path,
    *,
    file: str | Path = ONNX_FILE,
    threads: int | None = None,
    providers: Sequence[str] | None = None,
) -> Classifier | Encoder:
    """The exported model of ``model_dir``: an :class:`Encoder` for a sentence-transformers
    directory (it has ``modules.json``), else a :class:`Classifier` (``config.json`` with labels).

    ``file``: the graph's name in ``model_dir/onnx/`` (or in ``model_dir`` itself), or a path to
    it. ``threads``: onnxruntime's intra-op threads (its default when None). ``providers``:
    onnxruntime execution providers, CPU when None.
    """
    directory = Path(model_dir)
    if not directory.is_dir():
        raise ConfigError(f"{directory} is not a directory; expected a model directory polydistill saved and exported")
    onnx_path = find_onnx_file(directory, file)
    if (directory / "modules.json").is_file():
        return Encoder.from_directory(directory, onnx_path, threads=threads, providers=providers)
    config = read_json(directory / "config.json")
    if not config.get("id2label"):
        raise ConfigError(
            f"{directory} has neither modules.json (a sentence-transformers encoder) nor labels in config.json "
            "(id2label, a classifier); expected one of the two"
        )
    return Classifier.from_directory(directory, onnx_path, threads=threads, providers=providers)


def find_onnx_file(model_dir: Path, file: str | Path = ONNX_FILE) -> Path:
    """``file`` itself when it is absolute, else ``model_dir/onnx/file``, ``model_dir/file`` or ``file`` from here."""
    file = Path(file)
    candidates = [file] if file.is_absolute() else [model_dir / ONNX_DIR / file, model_dir / file, file]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise ConfigError(
        f"no ONNX file at {' or '.join(str(c) for c in candidates)}; export the model first "
        "(polydistill.compress.onnx_export.export_onnx) or pass file= the path of its .onnx file"
    )


def inference_session(
    path: str | Path, *, threads: int | None = None, providers: Sequence[str] | None = None
) -> onnxruntime.InferenceSession:
    """An onnxruntime session with every graph optimisation on; onnxruntime is imported only here,
    so this module imports without the ``compress`` extra."""
    try:
        import onnxruntime as ort
    except ImportError as error:
        raise ConfigError(f"serving an ONNX model needs onnxruntime ({error}); install it: pip install onnxruntime") from None
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads is not None:
        if threads < 1:
            raise ConfigError(f"threads must be at least 1, got {threads}")
        options.intra_op_num_threads = threads
    return open_onnx_session(Path(path), options, list(providers or ["CPUExecutionProvider"]))


def open_onnx_session(path: Path, options: onnxruntime.SessionOptions, providers: list[str]) -> onnxruntime.InferenceSession:
    """The session of the graph in ``path``, or an error naming the file when it is a Git LFS
    pointer or does not load (a truncated or corrupt file: onnxruntime's own errors say little)."""
    import onnxruntime as ort
    from onnxruntime.capi import onnxruntime_pybind11_state as ort_errors

    from polydistill.errors import ModelFileError
    from polydistill.models.checks import refuse_lfs_pointer

    refuse_lfs_pointer(path)
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except (ort_errors.Fail, ort_errors.InvalidProtobuf, ort_errors.InvalidGraph, ort_errors.NoSuchFile) as error:
        raise ModelFileError(
            f"{path} cannot be loaded as an ONNX model ({type(error).__name__}: {error}); "
            "it is truncated or corrupt (an interrupted copy?) or its external data file is missing: export or copy it again"
        ) from None


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object file, or ``{}`` when the file is absent (parsed as the model checks parse it:
    an LFS pointer or a syntax error is named with its line and column)."""
    from polydistill.models.checks import read_json as parse_json

    if not path.is_file():
        return {}
    content = parse_json(path)
    if not isinstance(content, dict):
        raise ConfigError(f"{path} holds {type(content).__name__}; expected a JSON object")
    return content


# --- tokenisation --------------------------------------------------------------------------


def text_batch(texts: str | Sequence[str]) -> list[str]:
    """One string or a sequence of strings, as a list; anything else is a TypeError saying what was given."""
    if isinstance(texts, str):
        return [texts]
    if not isinstance(texts, Sequence | Iterable) or isinstance(texts, bytes | Mapping):
        raise TypeError(f"texts must be a string or a list of strings, not {type(texts).__name__}")
    batch = list(texts)
    not_text = [i for i, text in enumerate(batch) if not isinstance(text, str)]
    if not_text:
        raise TypeError(f"texts must be strings; item {not_text[0]} is {type(batch[not_text[0]]).__name__}")
    return batch


class TextTokenizer:
    """``tokenizer.json`` set up as the transformers tokenizer of the directory runs it: truncation
    to ``max_length`` on its truncation side, padding with its pad token on its padding side."""

    def __init__(self, directory: Path, *, max_length: int | None, lowercase: bool = False) -> None:
        path = directory / "tokenizer.json"
        if not path.is_file():
            raise ConfigError(
                f"{directory} has no tokenizer.json; the runtime needs the fast tokenizer's file (save the tokenizer with transformers)"
            )
        try:
            self._tokenizer = Tokenizer.from_file(str(path))
        except Exception as error:  # the tokenizers library raises a bare Exception for a file it cannot parse
            raise ConfigError(f"{path}: not a tokenizer file the tokenizers library reads ({error})") from None
        settings = read_json(directory / "tokenizer_config.json")
        self.max_length = max_length
        self.padding_side = settings.get("padding_side") or "right"
        saved_padding = self._tokenizer.padding
        self._tokenizer.no_padding()  # padded here, per length-sorted batch
        if max_length is not None:
            self._tokenizer.enable_truncation(max_length, direction=settings.get("truncation_side") or "right")
        else:
            self._tokenizer.no_truncation()
        if lowercase:  # sentence-transformers' do_lower_case: a Lowercase normalizer in front
            current = self._tokenizer.normalizer
            self._tokenizer.normalizer = normalizers.Sequence([normalizers.Lowercase()] + ([current] if current is not None else []))
        self.pad_id = self._pad_id(directory, settings, saved_padding)

    def _pad_id(self, directory: Path, settings: Mapping[str, Any], saved_padding: Mapping[str, Any] | None) -> int | None:
        pad = settings.get("pad_token") or read_json(directory / "special_tokens_map.json").get("pad_token")
        if isinstance(pad, Mapping):
            pad = pad.get("content")
        if isinstance(pad, str):
            pad_id = self._tokenizer.token_to_id(pad)
            if pad_id is None:
                raise ConfigError(f"{directory}: the pad token {pad!r} is not in tokenizer.json's vocabulary")
            return pad_id
        return saved_padding.get("pad_id") if saved_padding else None

    def encode(self, texts: Sequence[str]) -> list[Encoding]:
        """One truncated, unpadded encoding per text (with the model's special tokens)."""
        not_text = [i for i, text in enumerate(texts) if not isinstance(text, str)]
        if not_text:
            raise TypeError(f"texts must be strings; item {not_text[0]} is {type(texts[not_text[0]]).__name__}")
        return self._tokenizer.encode_batch(list(texts))

    def pad(self, encodings: Sequence[Encoding], names: Sequence[str]) -> dict[str, np.ndarray]:
        """The int64 arrays ``names`` of the encodings, padded to the longest."""
        length = max((len(e.ids) for e in encodings), default=0)
        if self.pad_id is None and any(len(e.ids) != length for e in encodings):
            raise ConfigError(
                "the tokenizer has no pad token (tokenizer_config.json pad_token), so texts of different lengths cannot share a batch"
            )
        fill = {"input_ids": self.pad_id or 0, "attention_mask": 0, "token_type_ids": 0}
        feed = {name: np.full((len(encodings), length), fill[name], dtype=np.int64) for name in names}
        for row, encoding in enumerate(encodings):
            values = {"input_ids": encoding.ids, "attention_mask": encoding.attention_mask, "token_type_ids": encoding.type_ids}
            span = slice(0, len(encoding.ids)) if self.padding_side == "right" else slice(length - len(encoding.ids), length)
            for name in names:
                feed[name][row, span] = values[name]
        return feed


def checked_max_length(onnx_path: Path, limit: int | None) -> int | None:
    """``limit`` lowered to the length the export recorded beside the graph (the length it was
    checked at, and the one PyTorch evaluation truncated to), when it recorded one."""
    recorded = read_json(onnx_path.parent / RUNTIME_CONFIG).get("max_length")
    if isinstance(recorded, int) and recorded > 0:
        return recorded if limit is None else min(recorded, limit)
    return limit


def tokenizer_max_length(directory: Path, config: Mapping[str, Any]) -> int | None:
    """``model_max_length`` of tokenizer_config.json capped by the positions the model has, as
    sentence-transformers caps it (less RoBERTa's offset, which it does not subtract)."""
    limits = []
    saved = read_json(directory / "tokenizer_config.json").get("model_max_length")
    if isinstance(saved, int | float) and saved > 0:
        limits.append(int(saved))
    positions = config.get("max_position_embeddings")
    if isinstance(positions, int) and positions > 0:
        offset = (config.get("pad_token_id") or 0) + 1 if config.get("model_type") in _OFFSET_POSITION_TYPES else 0
        limits.append(positions - offset)
    return min(limits) if limits else None


# --- models --------------------------------------------------------------------------------


class OnnxTextModel:
    """A graph and its tokenizer: batching by length, feeding, running one output."""

    def __init__(self, model_dir: Path, onnx_path: Path, session: onnxruntime.InferenceSession, tokenizer: TextTokenizer, output_name: str):
        self.model_dir = model_dir
        self.onnx_path = onnx_path
        self.session = session
        self.tokenizer = tokenizer
        self.input_names = [node.name for node in session.get_inputs()]
        unknown = [name for name in self.input_names if name not in FEEDABLE_INPUTS]
        if unknown or "input_ids" not in self.input_names:
            raise ConfigError(
                f"{onnx_path} takes the inputs {self.input_names}; the runtime feeds input_ids and any of {list(FEEDABLE_INPUTS[1:])}"
            )
        outputs = {node.name: node for node in session.get_outputs()}
        if output_name not in outputs:
            raise ConfigError(
                f"{onnx_path} has the outputs {list(outputs)}, not {output_name!r}; export it with polydistill.compress.onnx_export"
            )
        self.output_name = output_name
        width = outputs[output_name].shape[-1]
        self.output_width = width if isinstance(width, int) else None

    @property
    def max_length(self) -> int | None:
        """The length (in tokens, special tokens included) texts are truncated to."""
        return self.tokenizer.max_length

    def _feed(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        return self.tokenizer.pad(self.tokenizer.encode(texts), self.input_names)

    def run(self, feed: Mapping[str, np.ndarray]) -> np.ndarray:
        """The graph's output for one feed (as :meth:`input_feed` makes it)."""
        return self.session.run([self.output_name], dict(feed))[0]

    def _run_texts(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        encodings = self.tokenizer.encode(texts)
        if not encodings:
            return np.zeros((0, self.output_width or 0), dtype=np.float32)
        order = np.argsort([-len(e.ids) for e in encodings], kind="stable")  # longest first, as sentence-transformers
        chunks = [
            self.run(self.tokenizer.pad([encodings[i] for i in order[start : start + batch_size]], self.input_names))
            for start in range(0, len(order), batch_size)
        ]
        ordered = np.concatenate(chunks)
        result = np.empty_like(ordered)
        result[order] = ordered
        return result


class Classifier(OnnxTextModel):
    """A sequence classifier, scored as ``pipeline("text-classification")`` scores it."""

    def __init__(self, *args: Any, label_names: list[str], function: str) -> None:
        super().__init__(*args)
        self.label_names = label_names
        #: "softmax", "sigmoid" or "none": the pipeline's default function for the model's config
        self.function = function

    @classmethod
    def from_directory(
        cls, model_dir: Path, onnx_path: Path, *, threads: int | None = None, providers: Sequence[str] | None = None
    ) -> Classifier:
        config = read_json(model_dir / "config.json")
        try:
            id2label = {int(index): str(name) for index, name in config["id2label"].items()}
        except (KeyError, AttributeError, ValueError):
            raise ConfigError(f"{model_dir / 'config.json'}: id2label must map class indices to label names") from None
        if sorted(id2label) != list(range(len(id2label))):
            raise ConfigError(f"{model_dir / 'config.json'}: id2label's indices are {sorted(id2label)}; expected 0..{len(id2label) - 1}")
        tokenizer = TextTokenizer(model_dir, max_length=checked_max_length(onnx_path, tokenizer_max_length(model_dir, config)))
        session = inference_session(onnx_path, threads=threads, providers=providers)
        labels = [id2label[i] for i in range(len(id2label))]
        return cls(model_dir, onnx_path, session, tokenizer, "logits", label_names=labels, function=_score_function(config, len(labels)))

    def input_feed(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """The graph's inputs for ``texts`` in their order, padded to the longest: one row per text."""
        return self._feed(texts)

    def logits(self, texts: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
        """Logits (n, labels), columns in ``label_names`` order."""
        return self._run_texts(texts, batch_size)

    def scores(self, texts: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
        """Scores (n, labels): the pipeline's softmax, sigmoid or identity of the logits."""
        logits = self.logits(texts, batch_size=batch_size)
        if self.function == "softmax":
            shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
            return shifted / shifted.sum(axis=-1, keepdims=True)
        if self.function == "sigmoid":
            return 1.0 / (1.0 + np.exp(-logits))
        return logits

    def classify(self, texts: str | Sequence[str], *, top_k: int | None = 1, batch_size: int = 32) -> list[Any]:
        """What ``pipeline("text-classification", model=dir)`` returns.

        ``top_k=1``: one ``{"label", "score"}`` per text, as the pipeline called without top_k.
        ``top_k=k`` (> 1) or ``None``: per text a list of the k (or all) labels, best first, as the
        pipeline called with that top_k. A single string gives the pipeline's result for it.
        """
        if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
            raise ValueError(f"top_k must be a positive integer or None, got {top_k!r}")
        single = isinstance(texts, str)
        batch = text_batch(texts)
        results: list[Any] = []
        for row in self.scores(batch, batch_size=batch_size):
            if top_k == 1:
                best = int(row.argmax())
                results.append({"label": self.label_names[best], "score": float(row[best])})
            else:
                # stable, so tied labels keep the config's order, as the pipeline's sort keeps them
                order = sorted(range(len(row)), key=lambda index: float(row[index]), reverse=True)
                ranked = [{"label": self.label_names[index], "score": float(row[index])} for index in order]
                results.append(ranked if top_k is None else ranked[:top_k])
        return results[0] if single and top_k != 1 else results


def _score_function(config: Mapping[str, Any], num_labels: int) -> str:
    """The text-classification pipeline's default: none for regression, sigmoid for multi-label
    or one label, softmax otherwise."""
    problem = config.get("problem_type")
    if problem == "regression":
        return "none"
    if problem == "multi_label_classification" or num_labels == 1:
        return "sigmoid"
    return "softmax"


class Encoder(OnnxTextModel):
    """A sentence encoder, embedding as ``SentenceTransformer(dir).encode`` embeds."""

    def __init__(self, *args: Any, prompts: dict[str, str], default_prompt_name: str | None) -> None:
        super().__init__(*args)
        self.prompts = prompts
        self.default_prompt_name = default_prompt_name

    @classmethod
    def from_directory(
        cls, model_dir: Path, onnx_path: Path, *, threads: int | None = None, providers: Sequence[str] | None = None
    ) -> Encoder:
        transformer_dir = model_dir / _transformer_path(model_dir)
        module_settings = read_json(transformer_dir / "sentence_bert_config.json")
        max_length = module_settings.get("max_seq_length")
        if not isinstance(max_length, int):
            max_length = tokenizer_max_length(transformer_dir, read_json(transformer_dir / "config.json"))
        lowercase = bool(module_settings.get("do_lower_case"))
        tokenizer = TextTokenizer(transformer_dir, max_length=checked_max_length(onnx_path, max_length), lowercase=lowercase)
        settings = read_json(model_dir / "config_sentence_transformers.json")
        prompts = _DEFAULT_PROMPTS | {name: text for name, text in (settings.get("prompts") or {}).items() if isinstance(text, str)}
        default_prompt_name = settings.get("default_prompt_name") or None
        if default_prompt_name is not None and default_prompt_name not in prompts:
            raise ConfigError(
                f"{model_dir / 'config_sentence_transformers.json'}: default_prompt_name {default_prompt_name!r} is not one of its prompts {sorted(prompts)}"
            )
        session = inference_session(onnx_path, threads=threads, providers=providers)
        return cls(model_dir, onnx_path, session, tokenizer, "sentence_embedding", prompts=prompts, default_prompt_name=default_prompt_name)

    def resolve_prompt(self, *, prompt_name: str | None = None, prompt: str | None = None) -> str:
        """The text put before every input: ``prompt``, else the named prompt, else the default one."""
        if prompt is not None:
            return prompt
        if prompt_name is not None:
            if prompt_name not in self.prompts:
                raise ConfigError(f"prompt name {prompt_name!r} is not one of this model's prompts {sorted(self.prompts)}")
            return self.prompts[prompt_name]
        if self.default_prompt_name is not None:
            return self.prompts[self.default_prompt_name]
        return ""

    def input_feed(self, texts: Sequence[str], *, prompt_name: str | None = None, prompt: str | None = None) -> dict[str, np.ndarray]:
        """The graph's inputs for ``texts`` (prompted as :meth:`encode` prompts them), padded to the longest."""
        prefix = self.resolve_prompt(prompt_name=prompt_name, prompt=prompt)
        return self._feed([prefix + text for text in texts])

    def encode(
        self,
        texts: str | Sequence[str],
        *,
        batch_size: int = 32,
        prompt_name: str | None = None,
        prompt: str | None = None,
        normalize_embeddings: bool = False,
    ) -> np.ndarray:
        """Embeddings (n, d) float32, or (d,) for one string; ``normalize_embeddings`` L2-normalises
        them on top of what the pipeline does (as sentence-transformers' argument)."""
        prefix = self.resolve_prompt(prompt_name=prompt_name, prompt=prompt)
        batch = text_batch(texts)
        embeddings = self._run_texts([prefix + text for text in batch], batch_size)
        if normalize_embeddings and len(embeddings):
            embeddings = embeddings / np.maximum(np.linalg.norm(embeddings, axis=-1, keepdims=True), 1e-12)
        return embeddings[0] if isinstance(texts, str) else embeddings


def _transformer_path(model_dir: Path) -> str:
    """The folder of the Transformer module in modules.json ('' = the directory itself)."""
    path = model_dir / "modules.json"
    try:
        modules = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ConfigError(f"{path} cannot be read as JSON ({error})") from None
    for module in modules if isinstance(modules, list) else []:
        if isinstance(module, dict) and str(module.get("type", "")).endswith("Transformer"):
            return str(module.get("path", ""))
    raise ConfigError(f"{path} names no Transformer module; expected a sentence-transformers text encoder")
