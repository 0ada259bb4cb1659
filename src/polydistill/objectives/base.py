"""What every objective sees: the student's and the teacher's outputs for one batch.

The interface between models and losses is what transformers already returns (logits,
hidden_states, attentions), plus the query/key/value projections of chosen layers recorded by
forward hooks (:mod:`polydistill.objectives.capture`) for self-attention-relation objectives.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Protocol

import torch
from torch import nn


class Layers(Protocol):
    """Per-layer tensors indexed by layer, negative indices from the end: the tuple a model
    returns, or the teacher cache's :class:`~polydistill.training.cache.CachedLayers`."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int, /) -> torch.Tensor: ...


@dataclass
class Outputs:
    """One model's outputs for a batch. ``qkv[layer]["query" | "key" | "value"]`` is (B, T, width).

    ``embeddings`` (B, D) is the pooled sentence embedding of the source text; for sentence-
    embedding distillation the student also has ``translation_embeddings`` (B, D), its pooled
    embedding of row i's translation (the teacher only ever embeds the source).
    """

    logits: torch.Tensor | None = None
    hidden_states: Layers | None = None
    attentions: Layers | None = None
    qkv: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict)
    attention_mask: torch.Tensor | None = None
    embeddings: torch.Tensor | None = None
    translation_embeddings: torch.Tensor | None = None


class Objective(nn.Module):
    """A distillation loss. ``forward`` returns named terms; the trainer weights and sums them.

    ``requires`` says which extra outputs the models must produce for this objective, so the
    trainer asks for hidden states or attentions only when some objective needs them.
    """

    requires: ClassVar[frozenset[str]] = frozenset()

    def forward(self, student: Outputs, teacher: Outputs, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def teacher_fields(self, teacher_layers: int) -> list[str]:
        """The teacher-cache fields this objective reads (names as in :mod:`polydistill.training.cache`),
        beyond the logits, which the task decides: ``embeddings`` when it requires them. An
        objective that reads layers overrides this to name them, resolving negative indices
        against ``teacher_layers`` the way the online teacher's outputs would be indexed."""
        if not self.requires <= {"embeddings"}:
            raise ValueError(f"{type(self).__name__} needs {sorted(self.requires)}, which the teacher cache does not know how to store")
        return ["embeddings"] if self.requires else []


def token_mask(student: Outputs, teacher: Outputs, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Positions (B, T) where student and teacher see the same tokens.

    When the student has its own tokenizer (a trimmed vocabulary) or the teacher reads another
    text, an example whose two tokenisations differ in length cannot be matched token by token;
    ``batch["token_aligned"]`` (B,) marks the ones that can.
    """
    # both sides always carry their attention mask: the trainer and the teacher cache fill it
    assert student.attention_mask is not None and teacher.attention_mask is not None
    mask = student.attention_mask.bool()
    length = min(mask.shape[1], teacher.attention_mask.shape[1])
    mask = mask[:, :length] & teacher.attention_mask[:, :length].bool()
    aligned = batch.get("token_aligned")
    if aligned is not None:
        mask = mask & aligned.bool()[:, None]
    return mask


def zero_like(reference: torch.Tensor) -> torch.Tensor:
    """A zero that keeps the graph connected (so DDP sees every parameter used)."""
    return reference.sum() * 0.0
