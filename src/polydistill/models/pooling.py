"""Sentence embeddings from token states: the one mean pooling that the trainer, the teacher
cache, evaluation and the offline-model checks share, so a student is trained, cached and
evaluated on the same vector that its saved sentence-transformers directory computes."""

from __future__ import annotations

import torch


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of the token states over the attention mask: sentence-transformers' mean Pooling."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)


def needs_hidden_states_to_pool(model: torch.nn.Module) -> bool:
    """Whether pooling this model's output needs ``output_hidden_states``: a model with a task
    head (``...ForSequenceClassification``) returns logits, not its ``last_hidden_state``."""
    return getattr(model, "base_model", model) is not model


def last_hidden_state(output) -> torch.Tensor | None:
    """The final token states of a model's output, a base model's or a head model's (asked with ``output_hidden_states``)."""
    last = getattr(output, "last_hidden_state", None)
    if last is None and getattr(output, "hidden_states", None):
        last = output.hidden_states[-1]
    return last
