"""Sentence-embedding objectives: make a multilingual student embed a translation where the
teacher embeds its source (Reimers & Gurevych, 2020), and keep the teacher's neighbourhoods.

Every objective reads pooled sentence embeddings from :class:`Outputs`: the teacher's
``embeddings`` of the source texts (B, D_t), the student's ``embeddings`` of the same sources and
its ``translation_embeddings`` of their translations (B, D_s). A student without
``translation_embeddings`` (monolingual data) is matched on its source embeddings alone.

Two kinds of term:

- *points* (:class:`EmbeddingMSE`, :class:`EmbeddingCosine`): each student vector should be the
  teacher's vector of the source. Source and translation are separate rows, as in
  sentence-transformers' ``MSELoss`` with two input columns: the loss is a mean over the 2B rows.
- *structure* (:class:`SimilarityDistillation`): the student's in-batch similarities between
  translations and sources should be distributed like the teacher's similarities between the
  sources, so neighbours stay neighbours, not only points stay put.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from polydistill.objectives.base import Objective, Outputs, zero_like
from polydistill.objectives.registry import ObjectiveConfig, ObjectiveSpec, register


class SimilarityConfig(ObjectiveConfig):
    temperature: float = Field(default=0.05, gt=0)


def _teacher_embeddings(teacher: Outputs) -> torch.Tensor:
    if teacher.embeddings is None:
        raise ValueError("embedding objectives need the teacher's pooled sentence embeddings (Outputs.embeddings)")
    return teacher.embeddings.detach().float()


def _student_views(student: Outputs) -> list[torch.Tensor]:
    """The student's vectors of the sources, then of the translations when it has them."""
    if student.embeddings is None:
        raise ValueError("embedding objectives need the student's pooled sentence embeddings (Outputs.embeddings)")
    views = [student.embeddings.float()]
    if student.translation_embeddings is not None:
        if student.translation_embeddings.shape != student.embeddings.shape:
            raise ValueError(
                f"translation embeddings {tuple(student.translation_embeddings.shape)} and source embeddings "
                f"{tuple(student.embeddings.shape)} of the student differ in shape"
            )
        views.append(student.translation_embeddings.float())
    return views


class _PointMatching(Objective):
    """Student rows (sources, then translations) paired with the teacher's source vector of each row.

    When the student is narrower or wider than the teacher, a learned linear projection lifts
    its vectors into the teacher's width; like every projection it belongs to the loss and is
    saved beside the student, never inside it (the student's own space is then a linear image of
    the teacher's, which retrieval with the student alone does not mind).
    """

    requires = frozenset({"embeddings"})

    def __init__(self, student_width: int | None = None, teacher_width: int | None = None):
        super().__init__()
        self.projection = (
            nn.Linear(student_width, teacher_width)
            if student_width is not None and teacher_width is not None and student_width != teacher_width
            else None
        )

    def paired_rows(self, student: Outputs, teacher: Outputs) -> tuple[torch.Tensor, torch.Tensor]:
        target = _teacher_embeddings(teacher)
        views = _student_views(student)
        rows = torch.cat(views)  # (V * B, D_s): sources first, then translations
        if self.projection is not None:
            rows = self.projection(rows)
        if rows.shape[-1] != target.shape[-1] or views[0].shape[0] != target.shape[0]:
            raise ValueError(
                f"student embeddings {tuple(views[0].shape)} do not match teacher embeddings {tuple(target.shape)}; "
                "give student_width and teacher_width to learn a projection between different widths"
            )
        return rows, target.repeat(len(views), 1)


class EmbeddingMSE(_PointMatching):
    """Mean squared error between the student's vectors of source and translation and the teacher's
    vector of the source (Reimers & Gurevych, 2020).

    The mean runs over all 2B rows and all dimensions, which is ``(MSE(src) + MSE(trans)) / 2``:
    the value sentence-transformers' ``MSELoss`` gives with source and translation as two input
    columns, so weights and learning rates carry over from their recipes.
    """

    def forward(self, student: Outputs, teacher: Outputs, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        rows, target = self.paired_rows(student, teacher)
        return {"embedding_mse": F.mse_loss(rows, target)}


class EmbeddingCosine(_PointMatching):
    """Mean of ``1 - cos(student row, teacher source vector)`` over the same 2B rows as
    :class:`EmbeddingMSE`. Blind to vector length, which cosine retrieval ignores too."""

    def forward(self, student: Outputs, teacher: Outputs, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        rows, target = self.paired_rows(student, teacher)
        return {"embedding_cosine": (1 - F.cosine_similarity(rows, target, dim=-1)).mean()}


class SimilarityDistillation(Objective):
    """In-batch contrastive term with the teacher's similarities as soft targets.

    Student logits ``cos(s_trans_i, s_src_j) / temperature`` over the batch (B x B); targets
    ``softmax_j(cos(t_src_i, t_src_j) / temperature)``; the term is KL(targets || student) per row,
    averaged over rows. Both directions count equally, translation -> sources and source ->
    translations (the teacher matrix is symmetric, so each uses the same targets): retrieval is
    evaluated both ways. Without translations the student's source-source similarities are used.

    Unlike a hard in-batch contrastive loss (``MultipleNegativesRankingLoss``), a near-duplicate
    or a repeated source in the batch is not pushed away: the teacher gives it its share of the
    target mass. The term is exactly the teacher's when the student's similarity matrix equals the
    teacher's, so it is zero, with zero gradient, whenever the student reproduces the teacher up
    to a rotation; it compares similarities, not coordinates, so it needs no projection between
    widths. No ``T^2`` factor: at the small temperatures used here (sharp, not softened,
    distributions) Hinton's large-temperature argument does not apply; tune the weight instead.
    """

    requires = frozenset({"embeddings"})

    def __init__(self, temperature: float = 0.05):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature = temperature

    def forward(self, student: Outputs, teacher: Outputs, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        teacher_vectors = F.normalize(_teacher_embeddings(teacher), dim=-1)
        views = [F.normalize(view, dim=-1) for view in _student_views(student)]
        if views[0].shape[0] != teacher_vectors.shape[0]:
            raise ValueError(f"student batch {views[0].shape[0]} and teacher batch {teacher_vectors.shape[0]} differ in size")
        if views[0].shape[0] < 2:  # one row has no neighbours to keep
            return {"embedding_similarity": zero_like(views[0])}
        targets = F.log_softmax(teacher_vectors @ teacher_vectors.T / self.temperature, dim=-1)
        sources = views[0]
        directions = [(views[1], sources), (sources, views[1])] if len(views) == 2 else [(sources, sources)]
        divergences = []
        for queries, candidates in directions:
            log_probs = F.log_softmax(queries @ candidates.T / self.temperature, dim=-1)
            divergences.append(F.kl_div(log_probs, targets, log_target=True, reduction="batchmean"))
        return {"embedding_similarity": torch.stack(divergences).mean()}


EMBEDDINGS = frozenset({"embeddings"})


def _build_points(kind: type[_PointMatching]):
    def build(section, *, teacher_config, student_config, **_) -> _PointMatching:
        return kind(student_width=student_config.hidden_size, teacher_width=teacher_config.hidden_size)

    return build


register(ObjectiveSpec("embedding_mse", ObjectiveConfig, EMBEDDINGS, build=_build_points(EmbeddingMSE)))
register(ObjectiveSpec("embedding_cosine", ObjectiveConfig, EMBEDDINGS, build=_build_points(EmbeddingCosine)))
register(
    ObjectiveSpec(
        "embedding_similarity",
        SimilarityConfig,
        EMBEDDINGS,
        build=lambda section, **_: SimilarityDistillation(temperature=section.temperature),
    )
)
