"""How much each attention head, FFN neuron and hidden channel is used on the served languages.

Width pruning keeps what matters and slices the rest away; what matters is measured as in
Minitron (Muralidharan et al. 2024, "Compact Language Models via Pruning and Knowledge
Distillation"): from activations alone, with forward hooks and no gradients, so a calibration
pass costs one inference over a few hundred texts per language.

- a head's importance is the L2 norm of its slice of the attention context (the input of
  ``attention.output.dense``), averaged over tokens;
- a neuron's is ``|activation|`` of the intermediate output (after the activation function);
- a hidden (residual-stream) channel's is ``|LayerNorm output|`` summed over the embedding
  LayerNorm and both LayerNorms of every layer, since one channel set is shared by all of them.

Inside a head, a narrower head keeps its most important dimensions: for query/key (one index
set for both, as a score ``q . k`` needs matching dims) the mean of ``|q_d k_d|`` over the token
pairs attention actually forms (real tokens of one sequence), which is the size of dim ``d``'s
term in the attention logits; for values the mean ``|context_d|``, the dim's contribution to the
head's output. The pair mean factorises exactly: ``sum_ij |q_id||k_jd| = (sum_i |q_id|)(sum_j |k_jd|)``.

Every score is the mean over the real (attention-masked) tokens of one language, then the mean
over languages with each language weighing the same, so that the language with the most
calibration text does not decide alone what a multilingual model keeps.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from polydistill.errors import ConfigError, DataError

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

#: model types sharing BERT's module layout (embeddings.LayerNorm, encoder.layer[i].attention.self.query, ...)
SUPPORTED_MODEL_TYPES: tuple[str, ...] = ("bert", "roberta", "xlm-roberta")

__all__ = ["SUPPORTED_MODEL_TYPES", "Importance", "check_supported", "compute_importance", "encoder_layers"]


@dataclass
class Importance:
    """Activation importance of a model's prunable units, balanced over languages (CPU float32)."""

    #: [layers, heads]: mean L2 norm of each head's attention context
    heads: torch.Tensor
    #: [layers, intermediate_size]: mean |activation| of each FFN neuron
    ffn: torch.Tensor
    #: [hidden_size]: mean |LayerNorm output|, summed over the embedding LayerNorm and every layer's two
    hidden: torch.Tensor
    #: [layers, heads, head_dim]: mean |q_d * k_d| over attended token pairs, per query/key dim of each head
    qk_dims: torch.Tensor
    #: [layers, heads, head_dim]: mean |context_d| per value dim of each head
    v_dims: torch.Tensor
    #: the languages averaged, each with the same weight
    languages: tuple[str, ...]
    #: texts used per language (after ``max_texts_per_language``)
    texts: dict[str, int]
    #: real (non-padding) tokens seen per language
    tokens: dict[str, int]


def check_supported(config: Any) -> None:
    """Raise ConfigError unless the model has BERT's layout and no cross-attention."""
    model_type = getattr(config, "model_type", None)
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ConfigError(
            f"width pruning supports model types {', '.join(SUPPORTED_MODEL_TYPES)}; this model is {model_type!r}"
            " (its attention and feed-forward modules are laid out differently)"
        )
    if getattr(config, "add_cross_attention", False) or getattr(config, "is_decoder", False):
        raise ConfigError(f"width pruning supports encoders only; this {model_type} model is a decoder or has cross-attention")


def encoder_layers(model: PreTrainedModel) -> list[Any]:
    """The transformer layers of a supported model (``base_model.encoder.layer``)."""
    check_supported(model.config)
    base: Any = model.base_model
    return list(base.encoder.layer)


def compute_importance(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts_by_language: Mapping[str, Sequence[str]],
    *,
    max_length: int = 128,
    batch_size: int = 32,
    max_texts_per_language: int = 256,
    prefix: str = "",
    progress: bool = False,
) -> Importance:
    """Importance of heads, neurons and hidden channels on ``texts_by_language`` (see the module docstring).

    At most ``max_texts_per_language`` texts of each language are used, spread evenly over its
    list (a corpus sorted by source or length is still sampled throughout); ``prefix`` is put
    before every text (e.g. E5's ``"query: "``), as the model sees it when served.
    """
    check_supported(model.config)
    if batch_size < 1 or max_length < 2 or max_texts_per_language < 1:
        raise ConfigError(
            f"batch_size and max_texts_per_language must be >= 1 and max_length >= 2; got {batch_size}, {max_texts_per_language}, {max_length}"
        )
    selected = _select_texts(texts_by_language, max_texts_per_language)
    layers = encoder_layers(model)
    config = model.config
    heads, hidden = config.num_attention_heads, config.hidden_size
    head_dim = hidden // heads
    device = next(model.parameters()).device

    per_language: dict[str, dict[str, torch.Tensor]] = {}
    tokens: dict[str, int] = {}
    total_batches = sum(-(-len(texts) // batch_size) for texts in selected.values())
    bar = _progress_bar(total_batches, progress)
    was_training = model.training
    chunk_sizes = [layer.chunk_size_feed_forward for layer in layers]
    model.eval()
    try:
        # chunked feed-forward would call the intermediate hook once per chunk of positions
        for layer in layers:
            layer.chunk_size_feed_forward = 0
        with torch.inference_mode():
            for language, texts in selected.items():
                sums = _Sums(len(layers), heads, head_dim, config.intermediate_size, hidden)
                recorder = _Recorder(model, layers, sums, head_dim)
                try:
                    # similar lengths together: less padding, same result (padding is masked out)
                    ordered = sorted(texts, key=len)
                    for start in range(0, len(ordered), batch_size):
                        batch = [prefix + text for text in ordered[start : start + batch_size]]
                        inputs = tokenizer(batch, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
                        inputs = {k: v.to(device) for k, v in inputs.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
                        recorder.mask = inputs["attention_mask"].to(torch.float32)
                        model.base_model(**inputs)
                        bar.update(1)
                finally:
                    recorder.remove()
                if sums.tokens == 0:
                    raise DataError(f"language {language!r}: its texts produced no token")
                per_language[language] = sums.means()
                tokens[language] = sums.tokens
    finally:
        for layer, size in zip(layers, chunk_sizes, strict=True):
            layer.chunk_size_feed_forward = size
        model.train(was_training)
        bar.close()

    def balanced(name: str) -> torch.Tensor:
        return torch.stack([means[name] for means in per_language.values()]).mean(dim=0).to(torch.float32)

    return Importance(
        heads=balanced("heads"),
        ffn=balanced("ffn"),
        hidden=balanced("hidden"),
        qk_dims=balanced("qk_dims"),
        v_dims=balanced("v_dims"),
        languages=tuple(per_language),
        texts={language: len(texts) for language, texts in selected.items()},
        tokens=tokens,
    )


def _select_texts(texts_by_language: Mapping[str, Sequence[str]], limit: int) -> dict[str, list[str]]:
    if not texts_by_language:
        raise DataError("importance needs text in at least one language; none was given")
    selected = {}
    for language, texts in texts_by_language.items():
        texts = [text for text in texts if isinstance(text, str) and text.strip()]
        if not texts:
            raise DataError(f"language {language!r} has no non-empty text to measure importance on")
        if len(texts) > limit:
            texts = [texts[(i * len(texts)) // limit] for i in range(limit)]
        selected[language] = texts
    return selected


class _Sums:
    """Running sums over one language's real tokens (float64 on the CPU)."""

    def __init__(self, layers: int, heads: int, head_dim: int, intermediate: int, hidden: int) -> None:
        zeros = lambda *shape: torch.zeros(*shape, dtype=torch.float64)  # noqa: E731
        self.heads = zeros(layers, heads)
        self.v_dims = zeros(layers, heads * head_dim)
        self.qk_pairs = zeros(layers, heads * head_dim)
        self.ffn = zeros(layers, intermediate)
        self.hidden = zeros(hidden)
        self.tokens = 0
        self.pairs = 0
        self.head_shape = (layers, heads, head_dim)

    def means(self) -> dict[str, torch.Tensor]:
        return {
            "heads": self.heads / self.tokens,
            "ffn": self.ffn / self.tokens,
            "hidden": self.hidden / self.tokens,
            "qk_dims": (self.qk_pairs / self.pairs).view(self.head_shape),
            "v_dims": (self.v_dims / self.tokens).view(self.head_shape),
        }


class _Recorder:
    """Forward hooks adding one batch's masked activation sums into a :class:`_Sums`.

    ``mask`` ([batch, seq], 1 for real tokens) is set before each forward pass. Query and key
    outputs of a layer are held until both are seen, since their pair term needs both.
    """

    def __init__(self, model: PreTrainedModel, layers: list[Any], sums: _Sums, head_dim: int) -> None:
        self.mask = torch.zeros(0)
        self.sums = sums
        self.head_dim = head_dim
        self._query: dict[int, torch.Tensor] = {}
        base: Any = model.base_model
        self._handles = [base.embeddings.LayerNorm.register_forward_hook(self._embedding_hook)]
        for index, layer in enumerate(layers):
            attention = layer.attention
            hooks: list[tuple[torch.nn.Module, Callable[..., None]]] = [
                (attention.self.query, self._query_hook(index)),
                (attention.self.key, self._key_hook(index)),
                (layer.intermediate, self._ffn_hook(index)),
                (attention.output.LayerNorm, self._hidden_hook),
                (layer.output.LayerNorm, self._hidden_hook),
            ]
            self._handles += [module.register_forward_hook(hook) for module, hook in hooks]
            self._handles.append(attention.output.dense.register_forward_pre_hook(self._context_hook(index)))

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()

    def _masked_sum(self, values: torch.Tensor) -> torch.Tensor:
        """Sum over the real tokens of every sequence: [batch, seq, n] -> [n]."""
        return torch.einsum("bs,bsn->n", self.mask, values.float()).double().cpu()

    def _per_sequence_sum(self, values: torch.Tensor) -> torch.Tensor:
        """[batch, seq, n] -> [batch, n], over real tokens only."""
        return torch.einsum("bs,bsn->bn", self.mask, values.float())

    def _embedding_hook(self, module, inputs, output) -> None:
        """The first hook of every forward pass: counts its real tokens and attended pairs."""
        lengths = self.mask.sum(dim=1)
        self.sums.tokens += int(lengths.sum().item())
        self.sums.pairs += int((lengths**2).sum().item())
        self._hidden_hook(module, inputs, output)

    def _hidden_hook(self, module, inputs, output) -> None:
        self.sums.hidden += self._masked_sum(output.abs())

    def _query_hook(self, index: int):
        def hook(module, inputs, output) -> None:
            self._query[index] = self._per_sequence_sum(output.abs())

        return hook

    def _key_hook(self, index: int):
        def hook(module, inputs, output) -> None:
            keys = self._per_sequence_sum(output.abs())
            self.sums.qk_pairs[index] += (self._query.pop(index) * keys).sum(dim=0).double().cpu()

        return hook

    def _ffn_hook(self, index: int):
        def hook(module, inputs, output) -> None:
            self.sums.ffn[index] += self._masked_sum(output.abs())

        return hook

    def _context_hook(self, index: int):
        def hook(module, inputs) -> None:
            context = inputs[0]
            self.sums.v_dims[index] += self._masked_sum(context.abs())
            per_head = context.unflatten(-1, (-1, self.head_dim)).float().norm(dim=-1)
            self.sums.heads[index] += self._masked_sum(per_head)

        return hook


def _progress_bar(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="Importance", unit="batch", disable=not enabled, leave=False)
