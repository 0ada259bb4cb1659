"""Sentence embeddings from token states: the one mean pooling that the trainer, the teacher
cache, evaluation and the offline-model checks share, so a student is trained, cached and
evaluated on the same vector that its saved sentence-transformers directory computes."""

from __future__ import annotations

import numpy as np
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


def encoder_function(model, tokenizer, *, prefix: str, max_length: int, batch_size: int = 64):
    """texts -> L2-normalised mean-pooled embeddings (n, d), as the saved directory computes them."""
    device = next(model.parameters()).device

    def encode(texts: list[str]) -> np.ndarray:
        model.eval()
        chunks = []
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                batch = [prefix + t for t in texts[start : start + batch_size]]
                inputs = tokenizer(batch, padding=True, truncation=True, max_length=max_length, return_tensors="pt").to(device)
                pooled = mean_pool(model(**inputs).last_hidden_state, inputs["attention_mask"])
                chunks.append(torch.nn.functional.normalize(pooled, dim=-1).float().cpu().numpy())
        return np.concatenate(chunks) if chunks else np.zeros((0, model.config.hidden_size), dtype=np.float32)

    return encode
