"""Distillation objectives: small modules that return named loss terms.

Each objective's module registers it (:mod:`polydistill.objectives.registry`): a new objective is
one new file here. :func:`build_objectives` turns the ``objectives`` section of a run config into
modules, filling in layer maps and projection widths from the two models.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from polydistill.objectives.attentions import AttentionRelations, Attentions
from polydistill.objectives.base import Objective, Outputs
from polydistill.objectives.embeddings import EmbeddingCosine, EmbeddingMSE, SimilarityDistillation
from polydistill.objectives.hidden_states import HiddenStates
from polydistill.objectives.layer_maps import LayerMaps
from polydistill.objectives.logits import HardTargets, Labels, SoftTargets
from polydistill.objectives.registry import ObjectiveConfig, ObjectiveSpec, register, registered

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
    "ObjectiveConfig",
    "ObjectiveSpec",
    "Outputs",
    "SimilarityDistillation",
    "SoftTargets",
    "ObjectiveSet",
    "build_objectives",
    "needs_layer_map",
    "register",
    "registered",
]


class ObjectiveSet(nn.Module):
    """The objectives of a run and their weights: one module, so that a DDP wrapper around it
    averages the gradients of every projection across processes."""

    objectives: Mapping[str, Objective]

    def __init__(self, objectives: dict[str, Objective], weights: dict[str, float]):
        super().__init__()
        self.objectives = nn.ModuleDict(objectives)  # type: ignore[assignment]  # torch's ModuleDict is not generic
        self.weights = dict(weights)

    @property
    def requires(self) -> frozenset[str]:
        return frozenset[str]().union(*(objective.requires for objective in self.objectives.values()))

    def forward(self, student: Outputs, teacher: Outputs, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The weighted sum of all terms, and every term by name (unweighted)."""
        total: torch.Tensor | None = None
        terms: dict[str, torch.Tensor] = {}
        for name, objective in self.objectives.items():
            for term, value in objective(student, teacher, batch).items():
                terms[term] = value
                total = self.weights[name] * value if total is None else total + self.weights[name] * value
        assert total is not None, "an ObjectiveSet has at least one objective"
        return total, terms


def build_objectives(config, *, teacher_config, student_config, layer_maps: LayerMaps) -> ObjectiveSet:
    """The ``objectives`` section of a run config as modules, with layer maps and widths filled in."""
    specs = registered()
    modules: dict[str, Objective] = {}
    weights: dict[str, float] = {}
    for name, section in config.enabled():
        if section.weight == 0:
            continue
        weights[name] = section.weight
        modules[name] = specs[name].build(section, teacher_config=teacher_config, student_config=student_config, layer_maps=layer_maps)
    return ObjectiveSet(modules, weights)


def needs_layer_map(config) -> bool:
    """Whether some objective of the ``objectives`` section reads the layer map the run builds
    (it gave no ``layer_map`` of its own), so a student that cannot have one must be refused."""
    specs = registered()
    return any((needs := specs[name].needs_layer_map) is not None and needs(section) for name, section in config.enabled())
