"""Cross-lingual alignment: the student's sentence representation of a translation should be the
teacher's representation of its source.

Matching logits on a translation teaches the student the teacher's decision there; matching
representations teaches it where the teacher puts the *meaning*, so every language the student
reads lands where the teacher's best language does (the idea of Reimers & Gurevych 2020 for
sentence embeddings, applied to any task whose teacher reads a source text). For a classifier
the student reads the translation and the teacher the source (``teacher_text_column``); rows
where both read the same text (the source language itself) anchor the student's space to the
teacher's. For the embeddings task the student's translation embeddings are the ones aligned
(with its source embeddings when the data has no translation).

Representations are mean-pooled over each side's own real tokens, so source and translation may
differ in length and tokenisation: nothing is compared token by token. With ``hidden_states``
on, the mapped intermediate layers are pooled and aligned too (sentence-level, unlike the
``hidden_states`` objective, which needs both sides to read the same tokens). When the widths
differ a learned linear projection per compared layer lifts the student's vectors into the
teacher's width; it belongs to the loss and is saved beside the student, never inside it.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

from polydistill.models.pooling import mean_pool
from polydistill.objectives.base import Objective, Outputs
from polydistill.objectives.hidden_states import _check_layers
from polydistill.objectives.registry import ObjectiveConfig, ObjectiveSpec, register

#: the key of the pooled final representation among the compared layers
FINAL = "final"


class CrossLingualAlignmentConfig(ObjectiveConfig):
    loss: Literal["mse", "cosine"] = Field(
        default="cosine", description="cosine: direction only (what a classifier head and retrieval read); mse: the vector itself"
    )
    hidden_states: bool = Field(default=False, description="also align the mapped intermediate layers, mean-pooled (sentence level)")
    layer_map: dict[int, int] | None = Field(
        default=None, description="with hidden_states: student hidden-state index -> teacher index (default: the run's layer map)"
    )

    @model_validator(mode="after")
    def _layer_map_needs_hidden_states(self) -> CrossLingualAlignmentConfig:
        if self.layer_map is not None and not self.hidden_states:
            raise ValueError("layer_map maps the intermediate layers that hidden_states: true aligns; set hidden_states: true")
        return self


class CrossLingualAlignment(Objective):
    """Distance between the student's pooled representation of what it reads and the teacher's of
    what the teacher reads (the source), averaged over the rows and over the compared layers."""

    requires = frozenset({"embeddings"})

    def __init__(
        self,
        student_width: int,
        teacher_width: int,
        *,
        loss: str = "cosine",
        layer_map: dict[int, int] | None = None,
    ):
        super().__init__()
        if loss not in ("mse", "cosine"):
            raise ValueError(f"loss must be 'mse' or 'cosine', got {loss!r}")
        self.loss = loss
        self.layer_map = dict(sorted((layer_map or {}).items()))
        if self.layer_map:  # this instance reads intermediate layers too
            self.requires = frozenset({"embeddings", "hidden_states"})  # type: ignore[misc]
        compared = [FINAL, *map(str, self.layer_map)]
        self.projections = nn.ModuleDict(
            {key: nn.Linear(student_width, teacher_width) for key in compared} if student_width != teacher_width else {}
        )

    def forward(self, student: Outputs, teacher: Outputs, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if teacher.embeddings is None or student.embeddings is None:
            raise ValueError("cross-lingual alignment needs pooled sentence representations of both models (Outputs.embeddings)")
        # the embeddings task's student embeds the translation separately; a classifier's student reads it as its text
        final = student.translation_embeddings if student.translation_embeddings is not None else student.embeddings
        pairs = [(FINAL, final, teacher.embeddings)]
        if self.layer_map:
            assert student.hidden_states is not None and teacher.hidden_states is not None  # required above
            assert student.attention_mask is not None and teacher.attention_mask is not None  # the trainer and cache fill them
            for student_index, teacher_index in self.layer_map.items():
                pairs.append(
                    (
                        str(student_index),
                        mean_pool(student.hidden_states[student_index], student.attention_mask),
                        mean_pool(teacher.hidden_states[teacher_index], teacher.attention_mask),
                    )
                )
        distances = [self._distance(key, s.float(), t.detach().float()) for key, s, t in pairs]
        return {"cross_lingual_alignment": torch.stack(distances).mean()}

    def _distance(self, key: str, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        if key in self.projections:
            student = self.projections[key](student)
        if student.shape != teacher.shape:
            raise ValueError(
                f"student representation {tuple(student.shape)} and teacher representation {tuple(teacher.shape)} differ; "
                "the projection between widths is built from the two models' hidden sizes"
            )
        if self.loss == "mse":
            return F.mse_loss(student, teacher)
        return (1 - F.cosine_similarity(student, teacher, dim=-1)).mean()

    def teacher_fields(self, teacher_layers: int) -> list[str]:
        return ["embeddings", *(f"hidden_states:{index % (teacher_layers + 1)}" for index in self.layer_map.values())]


def _build(section: CrossLingualAlignmentConfig, *, teacher_config, student_config, layer_maps) -> CrossLingualAlignment:
    layer_map = (section.layer_map or layer_maps.hidden_states) if section.hidden_states else None
    return CrossLingualAlignment(student_config.hidden_size, teacher_config.hidden_size, loss=section.loss, layer_map=layer_map)


register(
    ObjectiveSpec(
        "cross_lingual_alignment",
        CrossLingualAlignmentConfig,
        frozenset({"classification", "embeddings"}),
        build=_build,
        check_layers=_check_layers,
        needs_layer_map=lambda section: section.hidden_states and not section.layer_map,
    )
)
