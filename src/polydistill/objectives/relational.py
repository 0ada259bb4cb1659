"""Relational knowledge distillation (Park et al., CVPR 2019): the student keeps the shape of the
teacher's batch, not its coordinates.

Both terms read pooled embeddings (:class:`Outputs` ``embeddings``, (B, D)) and compare relations
within the batch, so the two widths may differ and no projection is learnt:

- *distance-wise*: the pairwise Euclidean distances, each model's divided by the mean of its
  non-zero distances (so the student's scale is free), compared with smooth L1 (Huber, delta 1);
- *angle-wise*: for every triple, the cosine of the angle at e_j between e_i - e_j and e_k - e_j
  (free of scale and translation by construction), compared with smooth L1.

Choices where the paper leaves room:

- The means run over the distinct pairs (i != j) and distinct triples (i, j, k pairwise
  different) the paper sums over. The authors' code averages over the full B x B and B x B x B
  tensors, diagonals included, which scales the terms by (B - 1) / B and (B - 1)(B - 2) / B^2;
  weights taken from it carry over up to that factor.
- For sentence-embedding distillation the student embeds both the source and its translation
  (see :mod:`polydistill.objectives.embeddings`); each of the two views should reproduce the
  teacher's relations among the sources, and the term is the mean over the views, as the point
  objectives average over source and translation rows.
- A pair of identical embeddings has no direction: its unit vector is taken as zero, with no
  gradient, instead of dividing by a vanishing length.
- The terms come out already multiplied by ``distance_weight`` and ``angle_weight`` (the
  paper's loss is their sum; the objective's ``weight`` scales both), and a term whose weight is
  0 is not computed (the angle term costs B^3).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator

from polydistill.objectives.base import Objective, Outputs, zero_like
from polydistill.objectives.embeddings import _student_views, _teacher_embeddings
from polydistill.objectives.registry import ObjectiveConfig, ObjectiveSpec, register

#: squared lengths are clamped to this before a square root, so no gradient is infinite
_EPS = 1e-12


class RelationalConfig(ObjectiveConfig):
    distance_weight: float = Field(default=1.0, ge=0, description="weight of the distance-wise term")
    angle_weight: float = Field(default=2.0, ge=0, description="weight of the angle-wise term (the paper's ratio is 1:2, 25 and 50)")

    @model_validator(mode="after")
    def _some_term(self) -> RelationalConfig:
        if self.distance_weight == 0 and self.angle_weight == 0:
            raise ValueError("expected distance_weight or angle_weight above 0")
        return self


def _differences(embeddings: torch.Tensor) -> torch.Tensor:
    """(B, D) -> (B, B, D): ``[j, i] = e_i - e_j``."""
    return embeddings[None, :, :] - embeddings[:, None, :]


def _lengths(vectors: torch.Tensor) -> torch.Tensor:
    """Euclidean lengths over the last axis; exactly 0 (with zero gradient) for zero vectors."""
    squared = vectors.pow(2).sum(-1)
    return torch.where(squared > 0, squared.clamp_min(_EPS).sqrt(), 0.0)


def normalised_distances(embeddings: torch.Tensor) -> torch.Tensor:
    """(B, B) pairwise distances divided by the mean of the non-zero ones (all zero stays zero)."""
    distances = _lengths(_differences(embeddings))
    mean = distances.sum() / (distances > 0).sum().clamp_min(1)
    return distances / mean.clamp_min(_EPS)


def angles(embeddings: torch.Tensor) -> torch.Tensor:
    """(B, B, B): ``[j, i, k]`` = cos of the angle at e_j between e_i - e_j and e_k - e_j."""
    differences = _differences(embeddings)
    lengths = _lengths(differences)[..., None]
    units = torch.where(lengths > 0, differences / lengths.clamp_min(_EPS), 0.0)
    return units @ units.transpose(1, 2)


class Relational(Objective):
    """Distance-wise and angle-wise relational distillation on pooled embeddings (RKD-DA)."""

    requires = frozenset({"embeddings"})

    def __init__(self, distance_weight: float = 1.0, angle_weight: float = 2.0):
        super().__init__()
        if distance_weight < 0 or angle_weight < 0 or distance_weight == angle_weight == 0:
            raise ValueError(f"expected non-negative weights, one above 0, got {distance_weight} and {angle_weight}")
        self.distance_weight = distance_weight
        self.angle_weight = angle_weight

    def forward(self, student: Outputs, teacher: Outputs, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        target = _teacher_embeddings(teacher)
        views = _student_views(student)
        size = target.shape[0]
        if views[0].shape[0] != size:
            raise ValueError(f"student batch {views[0].shape[0]} and teacher batch {size} differ in size")
        eye = torch.eye(size, dtype=torch.bool, device=target.device)
        terms = {}
        if self.distance_weight > 0:
            if size < 2:  # no pair
                terms["relational_distance"] = zero_like(views[0])
            else:
                pairs = ~eye
                goal = normalised_distances(target)[pairs]
                losses = [F.smooth_l1_loss(normalised_distances(view)[pairs], goal) for view in views]
                terms["relational_distance"] = self.distance_weight * torch.stack(losses).mean()
        if self.angle_weight > 0:
            if size < 3:  # no triple
                terms["relational_angle"] = zero_like(views[0])
            else:
                triples = ~(eye[:, :, None] | eye[:, None, :] | eye[None, :, :])
                goal = angles(target)[triples]
                losses = [F.smooth_l1_loss(angles(view)[triples], goal) for view in views]
                terms["relational_angle"] = self.angle_weight * torch.stack(losses).mean()
        return terms


register(
    ObjectiveSpec(
        "relational",
        RelationalConfig,
        frozenset({"classification", "embeddings"}),
        build=lambda section, **_: Relational(distance_weight=section.distance_weight, angle_weight=section.angle_weight),
    )
)
