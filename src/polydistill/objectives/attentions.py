"""Attention-map objectives: TinyBERT attention matching and MiniLM-v2 self-attention relations."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from polydistill.objectives.base import Objective, Outputs, token_mask, zero_like
from polydistill.objectives.registry import ObjectiveConfig, ObjectiveSpec, register

BOTH_TASKS = frozenset({"classification", "embeddings"})
Relation = Literal["query", "key", "value"]
_RELATIONS: tuple[Relation, ...] = ("query", "key", "value")


class AttentionsConfig(ObjectiveConfig):
    layer_map: dict[int, int] | None = Field(default=None, description="student layer -> teacher layer (0-based); built when omitted")


class AttentionRelationsConfig(ObjectiveConfig):
    teacher_layer: int = Field(default=-1, description="0-based; negative counts from the end")
    student_layer: int = -1
    relation_heads: int = Field(default=12, ge=1)
    relations: list[Relation] = Field(default_factory=lambda: list(_RELATIONS), min_length=1)


class Attentions(Objective):
    """TinyBERT-style MSE between the attention distributions of mapped layers.

    ``layer_map`` maps a student layer to a teacher layer (0-based). Each squared difference is
    averaged over heads, real query positions and real key positions. With different head counts
    the head-averaged maps are compared (per-head matching needs equal counts). Needs
    ``attn_implementation="eager"``: SDPA returns no attention weights.
    """

    requires = frozenset({"attentions"})

    def __init__(self, layer_map: dict[int, int]):
        super().__init__()
        self.layer_map = dict(sorted(layer_map.items()))

    def forward(self, student: Outputs, teacher: Outputs, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        # present because this objective requires them (the trainer asks the models, the cache stores them)
        assert student.attentions is not None and teacher.attentions is not None
        mask = token_mask(student, teacher, batch)  # (B, T)
        length = mask.shape[1]
        if not mask.any():
            return {"attentions": zero_like(student.attentions[-1])}
        pair_mask = (mask[:, :, None] & mask[:, None, :]).float()  # (B, T, T)
        per_layer = []
        for student_layer, teacher_layer in self.layer_map.items():
            s = student.attentions[student_layer][..., :length, :length].float()
            t = teacher.attentions[teacher_layer][..., :length, :length].float()
            if s.shape[1] != t.shape[1]:
                s, t = s.mean(dim=1, keepdim=True), t.mean(dim=1, keepdim=True)
            squared = (s - t).pow(2) * pair_mask[:, None]
            per_layer.append(squared.sum() / (pair_mask.sum() * s.shape[1]))
        return {"attentions": torch.stack(per_layer).mean()}

    def teacher_fields(self, teacher_layers: int) -> list[str]:
        return [f"attentions:{layer % teacher_layers}" for layer in self.layer_map.values()]


class AttentionRelations(Objective):
    """MiniLM-v2 self-attention relation distillation (Wang et al., 2021).

    For one teacher layer and one student layer, the queries (keys, values) are split into
    ``relation_heads`` heads, whatever each model's own head count, and turned into relation
    distributions softmax(X X^T / sqrt(d_r)). The term is KL(teacher || student) per query row,
    averaged over heads and real positions, one term per relation: ``attention_relations_query``,
    ``..._key``, ``..._value``. Because only the number of relation heads must divide both widths,
    this works across different widths and head counts.
    """

    requires = frozenset({"qkv"})

    def __init__(self, teacher_layer: int, student_layer: int, relation_heads: int, relations=("query", "key", "value")):
        super().__init__()
        self.teacher_layer = teacher_layer
        self.student_layer = student_layer
        self.relation_heads = relation_heads
        self.relations = tuple(relations)

    def relation_log_probs(self, states: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        batch, length, width = states.shape
        if width % self.relation_heads:
            raise ValueError(f"width {width} is not divisible by relation_heads={self.relation_heads}")
        head_width = width // self.relation_heads
        heads = states.float().view(batch, length, self.relation_heads, head_width).transpose(1, 2)
        scores = heads @ heads.transpose(-1, -2) / math.sqrt(head_width)  # (B, R, T, T)
        scores = scores.masked_fill(~key_mask[:, None, None, :], torch.finfo(scores.dtype).min)
        return F.log_softmax(scores, dim=-1)

    def teacher_fields(self, teacher_layers: int) -> list[str]:
        return [f"qkv:{self.teacher_layer % teacher_layers}:{role}" for role in self.relations]

    def forward(self, student: Outputs, teacher: Outputs, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        mask = token_mask(student, teacher, batch)
        length = mask.shape[1]
        student_qkv = student.qkv[self.student_layer]
        teacher_qkv = teacher.qkv[self.teacher_layer]
        terms = {}
        for relation in self.relations:
            name = f"attention_relations_{relation}"
            if not mask.any():
                terms[name] = zero_like(student_qkv[relation])
                continue
            s = self.relation_log_probs(student_qkv[relation][:, :length], mask)
            t = self.relation_log_probs(teacher_qkv[relation][:, :length], mask)
            kl_rows = F.kl_div(s, t, log_target=True, reduction="none").sum(dim=-1)  # (B, R, T)
            rows = mask[:, None, :].expand_as(kl_rows)
            terms[name] = kl_rows[rows].mean()
        return terms


def _check_attention_layers(section: AttentionsConfig, teacher_layers: int, student_layers: int) -> Iterator[tuple[str, str]]:
    for student_index, teacher_index in (section.layer_map or {}).items():
        if not 0 <= teacher_index < teacher_layers:
            yield "layer_map", f"teacher layer {teacher_index} does not exist (0..{teacher_layers - 1})"
        if not 0 <= student_index < student_layers:
            yield "layer_map", f"student layer {student_index} does not exist (0..{student_layers - 1})"


def _check_relation_layers(section: AttentionRelationsConfig, teacher_layers: int, student_layers: int) -> Iterator[tuple[str, str]]:
    if not -teacher_layers <= section.teacher_layer < teacher_layers:
        yield "teacher_layer", f"the teacher has {teacher_layers} layers"
    if not -student_layers <= section.student_layer < student_layers:
        yield "student_layer", f"the student has {student_layers} layers"


register(
    ObjectiveSpec(
        "attentions",
        AttentionsConfig,
        BOTH_TASKS,
        build=lambda section, *, layer_maps, **_: Attentions(section.layer_map or layer_maps.attentions),
        check_layers=_check_attention_layers,
        needs_attention_weights=True,
        needs_layer_map=lambda section: not section.layer_map,
    )
)
register(
    ObjectiveSpec(
        "attention_relations",
        AttentionRelationsConfig,
        BOTH_TASKS,
        build=lambda section, *, teacher_config, student_config, **_: AttentionRelations(
            teacher_layer=section.teacher_layer % teacher_config.num_hidden_layers,
            student_layer=section.student_layer % student_config.num_hidden_layers,
            relation_heads=section.relation_heads,
            relations=section.relations,
        ),
        check_layers=_check_relation_layers,
    )
)
