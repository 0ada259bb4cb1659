"""Distillation objectives: small modules that return named loss terms.

:func:`build_objectives` turns the ``objectives`` section of a run config into modules, filling
in layer maps and projection widths from the two models.
"""

from __future__ import annotations

import torch
from torch import nn

from polydistill.objectives.attentions import AttentionRelations, Attentions
from polydistill.objectives.base import Objective, Outputs
from polydistill.objectives.embeddings import EmbeddingCosine, EmbeddingMSE, SimilarityDistillation
from polydistill.objectives.hidden_states import HiddenStates
from polydistill.objectives.layer_maps import LayerMaps
from polydistill.objectives.logits import HardTargets, Labels, SoftTargets

__all__ = [
    "AttentionRelations",
    "Attentions",
    "EmbeddingCosine",
    "EmbeddingMSE",
    "HardTargets",
    "HiddenStates",
    "Labels",
    "LayerMaps",
    "Objective",
    "Outputs",
    "SimilarityDistillation",
    "SoftTargets",
    "ObjectiveSet",
    "build_objectives",
]


class ObjectiveSet(nn.Module):
    """The objectives of a run and their weights: one module, so that a DDP wrapper around it
    averages the gradients of every projection across processes."""

    def __init__(self, objectives: dict[str, Objective], weights: dict[str, float]):
        super().__init__()
        self.objectives = nn.ModuleDict(objectives)
        self.weights = dict(weights)

    @property
    def requires(self) -> frozenset[str]:
        return frozenset().union(*(objective.requires for objective in self.objectives.values()))

    def forward(self, student: Outputs, teacher: Outputs, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The weighted sum of all terms, and every term by name (unweighted)."""
        total, terms = None, {}
        for name, objective in self.objectives.items():
            for term, value in objective(student, teacher, batch).items():
                terms[term] = value
                total = self.weights[name] * value if total is None else total + self.weights[name] * value
        return total, terms


def build_objectives(config, *, teacher_config, student_config, layer_maps: LayerMaps) -> ObjectiveSet:
    """The ``objectives`` section of a run config as modules, with layer maps and widths filled in."""
    modules: dict[str, Objective] = {}
    weights: dict[str, float] = {}
    for name, section in config.enabled():
        if section.weight == 0:
            continue
        weights[name] = section.weight
        if name == "soft_targets":
            modules[name] = SoftTargets(section.temperature)
        elif name == "hard_targets":
            modules[name] = HardTargets()
        elif name == "labels":
            modules[name] = Labels()
        elif name == "hidden_states":
            modules[name] = HiddenStates(
                section.layer_map or layer_maps.hidden_states,
                student_width=student_config.hidden_size,
                teacher_width=teacher_config.hidden_size,
                loss=section.loss,
            )
        elif name == "attentions":
            modules[name] = Attentions(section.layer_map or layer_maps.attentions)
        elif name == "attention_relations":
            modules[name] = AttentionRelations(
                teacher_layer=section.teacher_layer % teacher_config.num_hidden_layers,
                student_layer=section.student_layer % student_config.num_hidden_layers,
                relation_heads=section.relation_heads,
                relations=section.relations,
            )
        elif name in ("embedding_mse", "embedding_cosine"):
            kind = EmbeddingMSE if name == "embedding_mse" else EmbeddingCosine
            modules[name] = kind(student_width=student_config.hidden_size, teacher_width=teacher_config.hidden_size)
        elif name == "embedding_similarity":
            modules[name] = SimilarityDistillation(temperature=section.temperature)
    return ObjectiveSet(modules, weights)
