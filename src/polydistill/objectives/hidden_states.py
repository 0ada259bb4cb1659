"""Hidden-state matching between mapped teacher and student layers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from polydistill.objectives.base import Objective, Outputs, token_mask, zero_like
from polydistill.objectives.registry import ObjectiveConfig, ObjectiveSpec, register


class HiddenStatesConfig(ObjectiveConfig):
    loss: Literal["mse", "cosine"] = "mse"
    layer_map: dict[int, int] | None = Field(
        default=None,
        description="student hidden-state index -> teacher hidden-state index (0 = embedding output); "
        "built from the kept layers or uniformly when omitted",
    )


class HiddenStates(Objective):
    """MSE or cosine distance between mapped hidden states, averaged over mapped layers.

    ``layer_map`` maps a student hidden-state index to a teacher one (0 is the embedding output,
    i is the output of layer i). When the widths differ, a learned linear projection per mapped
    layer lifts the student's states into the teacher's width (TinyBERT's W_h). The projections
    belong to the loss, are trained with the student and saved beside it, never inside it.
    """

    requires = frozenset({"hidden_states"})

    def __init__(self, layer_map: dict[int, int], student_width: int, teacher_width: int, loss: str = "mse"):
        super().__init__()
        if loss not in ("mse", "cosine"):
            raise ValueError(f"loss must be 'mse' or 'cosine', got {loss!r}")
        self.layer_map = dict(sorted(layer_map.items()))
        self.loss = loss
        self.projections = nn.ModuleDict(
            {str(s): nn.Linear(student_width, teacher_width) for s in self.layer_map} if student_width != teacher_width else {}
        )

    def forward(self, student: Outputs, teacher: Outputs, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        # present because this objective requires them (the trainer asks the models, the cache stores them)
        assert student.hidden_states is not None and teacher.hidden_states is not None
        mask = token_mask(student, teacher, batch)
        length = mask.shape[1]
        if not mask.any():
            return {"hidden_states": zero_like(student.hidden_states[-1])}
        per_layer = []
        for student_index, teacher_index in self.layer_map.items():
            s = student.hidden_states[student_index][:, :length].float()
            t = teacher.hidden_states[teacher_index][:, :length].float()
            if str(student_index) in self.projections:
                s = self.projections[str(student_index)](s)
            s, t = s[mask], t[mask]  # (tokens, width)
            if self.loss == "mse":
                per_layer.append(F.mse_loss(s, t))
            else:
                per_layer.append((1 - F.cosine_similarity(s, t, dim=-1)).mean())
        return {"hidden_states": torch.stack(per_layer).mean()}

    def teacher_fields(self, teacher_layers: int) -> list[str]:
        return [f"hidden_states:{index % (teacher_layers + 1)}" for index in self.layer_map.values()]


def _check_layers(section: HiddenStatesConfig, teacher_layers: int, student_layers: int) -> Iterator[tuple[str, str]]:
    for student_index, teacher_index in (section.layer_map or {}).items():
        if not 0 <= teacher_index <= teacher_layers:
            yield (
                "layer_map",
                f"teacher hidden state {teacher_index} does not exist (0..{teacher_layers}, 0 = embeddings)",
            )
        if not 0 <= student_index <= student_layers:
            yield (
                "layer_map",
                f"student hidden state {student_index} does not exist (0..{student_layers}, 0 = embeddings)",
            )


register(
    ObjectiveSpec(
        "hidden_states",
        HiddenStatesConfig,
        frozenset({"classification", "embeddings"}),
        build=lambda section, *, teacher_config, student_config, layer_maps: HiddenStates(
            section.layer_map or layer_maps.hidden_states,
            student_width=student_config.hidden_size,
            teacher_width=teacher_config.hidden_size,
            loss=section.loss,
        ),
        check_layers=_check_layers,
        needs_layer_map=lambda section: not section.layer_map,
    )
)
