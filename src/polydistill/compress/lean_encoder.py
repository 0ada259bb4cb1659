"""The BERT-family encoder forward in the form onnxruntime's transformer optimizer fuses.

transformers 5 builds attention masks and attention in a way onnxruntime's optimizer does not
recognise (no Attention, EmbedLayerNormalization or SkipLayerNormalization fusion), so an export
of a small student runs as hundreds of tiny nodes, and at batch 1 it pays for each of them. This
module computes the same function with the same weights in the classic layout (an additive
``(1 - mask) * -10000`` mask, scores divided by ``sqrt(head_size)``, heads split by ``view`` and
``permute``), which fuses into one Attention op per layer and one embedding op; int8 then
quantizes those fused ops. Every export is checked against the transformers model itself
(:mod:`polydistill.compress.onnx_export`), so a difference would fail the export, not ship.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

#: families whose encoder layers are ``attention.self.{query,key,value}``, ``attention.output``, ``intermediate``, ``output``
LEAN_MODEL_TYPES = frozenset({"bert", "roberta", "xlm-roberta"})
#: position ids count from the padding index, over real tokens only (RoBERTa's scheme)
_PADDING_OFFSET_POSITIONS = frozenset({"roberta", "xlm-roberta"})


def supports_lean_export(model: Any) -> bool:
    config = model.config
    return (
        config.model_type in LEAN_MODEL_TYPES
        and not getattr(config, "is_decoder", False)
        and getattr(config, "position_embedding_type", "absolute") == "absolute"
    )


class LeanEncoder(nn.Module):
    """``model.base_model``'s token states (``last_hidden_state``) from ``input_ids`` and ``attention_mask``."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        base = model.base_model
        self.embeddings = base.embeddings
        self.layers = base.encoder.layer
        self.heads = model.config.num_attention_heads
        self.head_size = model.config.hidden_size // self.heads
        self.padding_offset = model.config.model_type in _PADDING_OFFSET_POSITIONS
        self.padding_idx = int(model.config.pad_token_id or 0)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        embeddings = self.embeddings
        if self.padding_offset:
            real = input_ids.ne(self.padding_idx).long()
            position_ids = torch.cumsum(real, dim=1) * real + self.padding_idx
        else:
            position_ids = embeddings.position_ids[:, : input_ids.size(1)]
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        states = embeddings.word_embeddings(input_ids) + embeddings.token_type_embeddings(token_type_ids)
        states = embeddings.LayerNorm(states + embeddings.position_embeddings(position_ids))
        additive_mask = (1.0 - attention_mask.unsqueeze(1).unsqueeze(2).to(states.dtype)) * -10000.0
        for layer in self.layers:
            states = self._layer(layer, states, additive_mask)
        return states

    def _layer(self, layer: Any, states: torch.Tensor, additive_mask: torch.Tensor) -> torch.Tensor:
        attention = layer.attention.self
        query, key, value = (self._split(projection(states)) for projection in (attention.query, attention.key, attention.value))
        scores = torch.matmul(query, key.transpose(-1, -2)) / math.sqrt(self.head_size) + additive_mask
        context = torch.matmul(nn.functional.softmax(scores, dim=-1), value).permute(0, 2, 1, 3).contiguous()
        context = context.view(context.size()[:-2] + (self.heads * self.head_size,))
        states = layer.attention.output.LayerNorm(layer.attention.output.dense(context) + states)
        hidden = layer.intermediate.intermediate_act_fn(layer.intermediate.dense(states))
        return layer.output.LayerNorm(layer.output.dense(hidden) + states)

    def _split(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor.view(tensor.size()[:-1] + (self.heads, self.head_size)).permute(0, 2, 1, 3)


def classifier_head(model: Any, states: torch.Tensor) -> torch.Tensor:
    """The logits a sequence classifier computes from its encoder's token states."""
    if model.config.model_type == "bert":
        pooled = model.bert.pooler(states) if model.bert.pooler is not None else states[:, 0]
        return model.classifier(pooled)
    return model.classifier(states)  # RoBERTa / XLM-R heads take the sequence and read its first token
