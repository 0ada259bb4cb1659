"""Width pruning (Minitron): slice a BERT-family encoder down to its most important units.

The pruned model is a standard model of the same class with smaller ``num_attention_heads``,
``intermediate_size`` and ``hidden_size`` in its config, so ``save_pretrained`` and
``AutoModel*.from_pretrained`` load it with no custom code. Pruning is uniform across layers:
every layer keeps the same number of heads and neurons (which ones may differ per layer), and
one set of hidden channels is kept everywhere, since every layer reads and writes the same
residual stream.

These families compute the head size as ``hidden_size / num_attention_heads``, so the new
widths must satisfy ``hidden = heads * head_dim`` with ``head_dim`` no larger than before
(:func:`resolve_widths`). A narrower head keeps its most important query/key dims (one set for
both) and value dims (:mod:`polydistill.compress.importance`); its query weights and bias are
scaled by ``sqrt(head_dim_new / head_dim_old)`` so that, under transformers' ``head_dim ** -0.5``
scaling, the logits from the kept dims are what they were.

Slicing a LayerNorm changes what it normalises (mean and variance over the kept channels only),
so hidden pruning changes every output a little; heads and neurons alone are cut exactly (the
pruned model equals the original with those units zeroed). Minitron recovers the loss by
distillation from the unpruned teacher, which is what the pruned model is for.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from polydistill.compress.importance import Importance, check_supported, compute_importance
from polydistill.errors import ConfigError

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = ["PruneResult", "Widths", "kept_indices", "prune", "prune_model", "resolve_widths"]


@dataclass
class Widths:
    """The pruned model's widths, and what was adjusted to reach them."""

    num_attention_heads: int
    intermediate_size: int
    hidden_size: int
    #: adjustments made to the widths asked for (hidden shrunk with the heads, rounded to a multiple of heads...)
    notes: list[str] = field(default_factory=list)

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def describe(self) -> str:
        """One line for a console or a report: ``6 heads x 64 = hidden 384, FFN 1536``."""
        return f"{self.num_attention_heads} heads x {self.head_dim} = hidden {self.hidden_size}, FFN {self.intermediate_size}"


@dataclass
class PruneResult:
    model: PreTrainedModel
    widths: Widths
    importance: Importance
    #: the original indices kept (see :func:`kept_indices`), JSON-serialisable
    kept: dict[str, Any]


def resolve_widths(
    config: Any,
    *,
    heads: float | int | None = None,
    ffn: float | int | None = None,
    hidden: float | int | None = None,
) -> Widths:
    """The pruned widths: a float in (0, 1) is the FRACTION REMOVED, an int the new absolute size.

    - ``heads`` only: the head size stays, so ``hidden`` shrinks to ``heads * head_dim`` (noted);
    - ``hidden`` only: every head stays and the head size shrinks to ``hidden / heads``;
    - both: ``hidden / heads`` is the new head size, which may not exceed the original;
    - ``hidden`` is rounded down to a multiple of the heads kept (noted).
    """
    check_supported(config)
    old_heads, old_ffn, old_hidden = config.num_attention_heads, config.intermediate_size, config.hidden_size
    old_head_dim = old_hidden // old_heads
    notes: list[str] = []
    new_heads = _new_size("heads", heads, old_heads, "num_attention_heads")
    new_ffn = _new_size("ffn", ffn, old_ffn, "intermediate_size")
    if hidden is None:
        new_hidden = new_heads * old_head_dim
        if new_heads != old_heads:
            notes.append(
                f"hidden_size shrinks with the heads to {new_heads} x {old_head_dim} = {new_hidden}, since the head size is"
                " hidden_size / num_attention_heads; pass hidden= to keep more channels with a smaller head size instead"
            )
        return Widths(new_heads, new_ffn, new_hidden, notes)

    asked = _new_size("hidden", hidden, old_hidden, "hidden_size")
    new_hidden = (asked // new_heads) * new_heads
    if new_hidden == 0:
        raise ConfigError(f"hidden: {asked} channels cannot be shared by {new_heads} heads; keep at least {new_heads} (one per head)")
    if new_hidden // new_heads > old_head_dim:
        raise ConfigError(
            f"hidden: {new_hidden} channels over {new_heads} heads needs a head size of {new_hidden // new_heads}, larger than"
            f" the original {old_head_dim}; keep at most {new_heads * old_head_dim} channels with {new_heads} heads,"
            f" or at least {math.ceil(new_hidden / old_head_dim)} heads for {new_hidden} channels"
        )
    if new_hidden != asked:
        notes.append(f"hidden_size rounded down from {asked} to {new_hidden}, a multiple of the {new_heads} heads kept")
    if new_hidden // new_heads != old_head_dim:
        notes.append(f"head size shrinks from {old_head_dim} to {new_hidden // new_heads} (hidden_size {new_hidden} / {new_heads} heads)")
    return Widths(new_heads, new_ffn, new_hidden, notes)


def _new_size(name: str, value: float | int | None, original: int, attribute: str) -> int:
    if value is None:
        return original
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{name}: expected a fraction to remove in (0, 1) or a new {attribute} (an int), not {value!r}")
    if isinstance(value, float):
        if not 0.0 < value < 1.0:
            raise ConfigError(
                f"{name}: a float is the fraction of {attribute} ({original}) to remove and must be in (0, 1), not {value};"
                f" give an int for an absolute size"
            )
        kept = math.floor(original * (1.0 - value) + 0.5)
        if kept >= original:
            raise ConfigError(
                f"{name}: removing {value:g} of {original} rounds to removing none; remove at least {1 / original:.3g} (one unit)"
            )
        if kept < 1:
            raise ConfigError(f"{name}: removing {value:g} of {original} leaves none; remove at most {(original - 1) / original:.3g}")
        return kept
    if not 1 <= value <= original:
        raise ConfigError(f"{name}: the new {attribute} must be between 1 and the original {original}, not {value}")
    return value


def kept_indices(importance: Importance, widths: Widths) -> dict[str, Any]:
    """The original indices kept, each list ascending, ties broken towards the lower index.

    ``hidden``: channels; ``heads`` / ``ffn``: per layer; ``qk_dims`` / ``v_dims``: per layer,
    per kept head, the dims kept inside that head (0 .. head_dim - 1).
    """
    layers, _ = importance.heads.shape
    head_dim = widths.head_dim
    heads = [_top(importance.heads[i], widths.num_attention_heads) for i in range(layers)]
    return {
        "hidden": _top(importance.hidden, widths.hidden_size),
        "heads": heads,
        "ffn": [_top(importance.ffn[i], widths.intermediate_size) for i in range(layers)],
        "qk_dims": [[_top(importance.qk_dims[i, h], head_dim) for h in heads[i]] for i in range(layers)],
        "v_dims": [[_top(importance.v_dims[i, h], head_dim) for h in heads[i]] for i in range(layers)],
    }


def _top(scores: torch.Tensor, count: int) -> list[int]:
    order = torch.argsort(scores, descending=True, stable=True)
    return sorted(order[:count].tolist())


def prune_model(model: PreTrainedModel, importance: Importance, widths: Widths) -> PreTrainedModel:
    """A new model of ``model``'s class with the most important units of ``model`` (which is left untouched)."""
    check_supported(model.config)
    config = model.config
    _check_shapes(config, importance, widths)
    kept = kept_indices(importance, widths)
    old_head_dim = config.hidden_size // config.num_attention_heads
    device = next(model.parameters()).device

    def head_rows(layer: int, dims_key: str) -> torch.Tensor:
        rows = [h * old_head_dim + d for h, dims in zip(kept["heads"][layer], kept[dims_key][layer], strict=True) for d in dims]
        return torch.tensor(rows, dtype=torch.long, device=device)

    indices: dict[str, Any] = {
        "hidden": torch.tensor(kept["hidden"], dtype=torch.long, device=device),
        "qk": [head_rows(i, "qk_dims") for i in range(config.num_hidden_layers)],
        "v": [head_rows(i, "v_dims") for i in range(config.num_hidden_layers)],
        "ffn": [torch.tensor(rows, dtype=torch.long, device=device) for rows in kept["ffn"]],
    }
    query_scale = math.sqrt(widths.head_dim / old_head_dim)

    state = {}
    base = "" if model.base_model is model else model.base_model_prefix + "."
    for key, tensor in model.state_dict().items():
        in_base = key.startswith(base)
        axes, layer = _axes(key[len(base) :] if in_base else key, in_base, type(model).__name__)
        sliced = tensor.detach()
        for axis, kind in enumerate(axes):
            if kind is not None:
                index = indices[kind] if kind == "hidden" else indices[kind][layer]
                sliced = sliced.index_select(axis, index)
        if in_base and _QUERY.match(key[len(base) :]) and query_scale != 1.0:
            sliced = sliced * query_scale
        state[key] = sliced.clone()

    new_config = copy.deepcopy(config)
    new_config.num_attention_heads = widths.num_attention_heads
    new_config.intermediate_size = widths.intermediate_size
    new_config.hidden_size = widths.hidden_size
    pruned = type(model)._from_config(new_config, dtype=model.dtype, attn_implementation=config._attn_implementation)
    pruned.to(device)
    pruned.load_state_dict(state, strict=True)
    pruned.train(model.training)
    return pruned


def prune(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts_by_language: Mapping[str, Sequence[str]],
    *,
    heads: float | int | None = None,
    ffn: float | int | None = None,
    hidden: float | int | None = None,
    **importance_kwargs: Any,
) -> PruneResult:
    """Widths resolved (first, so a bad request fails before the calibration pass), importance measured, model sliced."""
    widths = resolve_widths(model.config, heads=heads, ffn=ffn, hidden=hidden)
    importance = compute_importance(model, tokenizer, texts_by_language, **importance_kwargs)
    pruned = prune_model(model, importance, widths)
    return PruneResult(model=pruned, widths=widths, importance=importance, kept=kept_indices(importance, widths))


def _check_shapes(config: Any, importance: Importance, widths: Widths) -> None:
    layers, heads, hidden, ffn = config.num_hidden_layers, config.num_attention_heads, config.hidden_size, config.intermediate_size
    head_dim = hidden // heads
    expected = {
        "heads": (layers, heads),
        "ffn": (layers, ffn),
        "hidden": (hidden,),
        "qk_dims": (layers, heads, head_dim),
        "v_dims": (layers, heads, head_dim),
    }
    for name, shape in expected.items():
        if tuple(getattr(importance, name).shape) != shape:
            raise ConfigError(
                f"importance.{name} has shape {tuple(getattr(importance, name).shape)}, but this model needs {shape}:"
                " the importance was measured on another model"
            )
    problems = []
    if not 1 <= widths.num_attention_heads <= heads:
        problems.append(f"num_attention_heads {widths.num_attention_heads} not in 1..{heads}")
    if not 1 <= widths.intermediate_size <= ffn:
        problems.append(f"intermediate_size {widths.intermediate_size} not in 1..{ffn}")
    if not 1 <= widths.hidden_size <= hidden:
        problems.append(f"hidden_size {widths.hidden_size} not in 1..{hidden}")
    elif widths.hidden_size % widths.num_attention_heads or widths.head_dim > head_dim:
        problems.append(f"hidden_size {widths.hidden_size} is not num_attention_heads x a head size of at most {head_dim}")
    if problems:
        raise ConfigError(f"widths {widths} do not fit this model: {'; '.join(problems)} (resolve_widths gives ones that do)")


# ---------------------------------------------------------------- which axis of each weight is sliced how

#: per state-dict key (relative to the base model): the index set sliced on each axis, None = kept whole.
#: "qk"/"v"/"ffn" are per layer (the key's layer number), "hidden" is shared.
_LAYER = r"encoder\.layer\.(\d+)\."
_BASE_RULES: list[tuple[re.Pattern[str], tuple[str | None, ...]]] = [
    (re.compile(p), axes)
    for p, axes in [
        (r"embeddings\.(word|position|token_type)_embeddings\.weight", (None, "hidden")),
        (r"embeddings\.LayerNorm\.(weight|bias)", ("hidden",)),
        (_LAYER + r"attention\.self\.(query|key)\.weight", ("qk", "hidden")),
        (_LAYER + r"attention\.self\.(query|key)\.bias", ("qk",)),
        (_LAYER + r"attention\.self\.value\.weight", ("v", "hidden")),
        (_LAYER + r"attention\.self\.value\.bias", ("v",)),
        (_LAYER + r"attention\.output\.dense\.weight", ("hidden", "v")),
        (_LAYER + r"attention\.output\.dense\.bias", ("hidden",)),
        (_LAYER + r"(attention\.output|output)\.LayerNorm\.(weight|bias)", ("hidden",)),
        (_LAYER + r"intermediate\.dense\.weight", ("ffn", "hidden")),
        (_LAYER + r"intermediate\.dense\.bias", ("ffn",)),
        (_LAYER + r"output\.dense\.weight", ("hidden", "ffn")),
        (_LAYER + r"output\.dense\.bias", ("hidden",)),
        (r"pooler\.dense\.weight", ("hidden", "hidden")),
        (r"pooler\.dense\.bias", ("hidden",)),
    ]
]
#: heads on top of the base model: BERT's and XLM-R's classification, token classification, QA and MLM heads
_HEAD_RULES: list[tuple[re.Pattern[str], tuple[str | None, ...]]] = [
    (re.compile(p), axes)
    for p, axes in [
        (r"(classifier|classifier\.out_proj|qa_outputs|cls\.seq_relationship)\.weight", (None, "hidden")),
        (r"(classifier|classifier\.out_proj|qa_outputs|cls\.seq_relationship)\.bias", ()),
        (r"(classifier\.dense|cls\.predictions\.transform\.dense|lm_head\.dense)\.weight", ("hidden", "hidden")),
        (r"(classifier\.dense|cls\.predictions\.transform\.dense|lm_head\.dense)\.bias", ("hidden",)),
        (r"(cls\.predictions\.transform\.LayerNorm|lm_head\.layer_norm)\.(weight|bias)", ("hidden",)),
        (r"(cls\.predictions|lm_head)\.decoder\.weight", (None, "hidden")),
        (r"(cls\.predictions|lm_head)(\.decoder)?\.bias", ()),
    ]
]
_QUERY = re.compile(_LAYER + r"attention\.self\.query\.(weight|bias)")


def _axes(key: str, in_base: bool, class_name: str) -> tuple[tuple[str | None, ...], int]:
    for pattern, axes in _BASE_RULES if in_base else _HEAD_RULES:
        match = pattern.fullmatch(key)
        if match:
            layer = int(match.group(1)) if pattern.pattern.startswith(_LAYER) else -1
            return axes, layer
    raise ConfigError(
        f"width pruning does not know how to slice {class_name}'s parameter {key!r}; it supports the base model,"
        " sequence/token classification, question answering and masked-LM heads of BERT, RoBERTa and XLM-R"
    )
