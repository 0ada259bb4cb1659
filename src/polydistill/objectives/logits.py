"""Objectives on the classifier's logits."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field

from polydistill.objectives.base import Objective, Outputs, zero_like
from polydistill.objectives.registry import ObjectiveConfig, ObjectiveSpec, register


class SoftTargetsConfig(ObjectiveConfig):
    temperature: float = Field(default=2.0, gt=0)


class SoftTargets(Objective):
    """KL(teacher || student) of temperature-softened distributions, times T^2 (Hinton et al., 2015).

    The T^2 factor keeps the gradient scale independent of the temperature, so the weight of this
    term can be set once and the temperature tuned separately.
    """

    def __init__(self, temperature: float = 2.0):
        super().__init__()
        self.temperature = temperature

    def forward(self, student: Outputs, teacher: Outputs, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        assert student.logits is not None and teacher.logits is not None  # classification models and caches have logits
        t = self.temperature
        student_log_probs = F.log_softmax(student.logits.float() / t, dim=-1)
        teacher_log_probs = F.log_softmax(teacher.logits.float() / t, dim=-1)
        kl = F.kl_div(student_log_probs, teacher_log_probs, log_target=True, reduction="batchmean")
        return {"soft_targets": kl * t * t}


class HardTargets(Objective):
    """Cross-entropy against the teacher's argmax (pseudo-labels)."""

    def forward(self, student: Outputs, teacher: Outputs, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        assert student.logits is not None and teacher.logits is not None  # classification models and caches have logits
        return {"hard_targets": F.cross_entropy(student.logits.float(), teacher.logits.argmax(dim=-1))}


class Labels(Objective):
    """Cross-entropy against gold labels; rows labelled -100 (unlabelled) are ignored."""

    def forward(self, student: Outputs, teacher: Outputs, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        assert student.logits is not None  # a classification student has logits
        labels = batch.get("labels")
        if labels is None or not (labels != -100).any():
            return {"labels": zero_like(student.logits)}
        return {"labels": F.cross_entropy(student.logits.float(), labels, ignore_index=-100)}


CLASSIFICATION = frozenset({"classification"})
register(ObjectiveSpec("soft_targets", SoftTargetsConfig, CLASSIFICATION, build=lambda section, **_: SoftTargets(section.temperature)))
register(ObjectiveSpec("hard_targets", ObjectiveConfig, CLASSIFICATION, build=lambda section, **_: HardTargets()))
register(ObjectiveSpec("labels", ObjectiveConfig, CLASSIFICATION, build=lambda section, **_: Labels()))
