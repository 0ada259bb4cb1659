"""The cross-lingual alignment objective, against hand computations: zero when the student is
the teacher, the cosine and squared distances of known vectors, pooling over each side's own
tokens, and gradients that reach the projection between widths."""

from __future__ import annotations

import pytest
import torch

from polydistill.config import validate_config
from polydistill.errors import ConfigError
from polydistill.objectives.alignment import CrossLingualAlignment
from polydistill.objectives.base import Outputs


def test_zero_when_the_student_equals_the_teacher() -> None:
    torch.manual_seed(0)
    vectors = torch.randn(4, 8)
    states = (torch.randn(4, 5, 8), torch.randn(4, 5, 8))
    mask = torch.tensor([[1, 1, 1, 0, 0]] * 4)
    for loss in ("cosine", "mse"):
        objective = CrossLingualAlignment(8, 8, loss=loss, layer_map={1: 1})
        same = Outputs(embeddings=vectors, hidden_states=states, attention_mask=mask)
        value = objective(same, same, {})["cross_lingual_alignment"]
        assert value.item() == pytest.approx(0.0, abs=1e-6)
        assert len(objective.projections) == 0  # equal widths: nothing to learn between them


def test_distances_of_known_vectors() -> None:
    student = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    teacher = torch.tensor([[0.0, 2.0], [2.0, 2.0]])
    cosine = CrossLingualAlignment(2, 2, loss="cosine")(Outputs(embeddings=student), Outputs(embeddings=teacher), {})
    # row 0: orthogonal, 1 - 0; row 1: parallel, 1 - 1
    assert cosine["cross_lingual_alignment"].item() == pytest.approx(0.5)
    mse = CrossLingualAlignment(2, 2, loss="mse")(Outputs(embeddings=student), Outputs(embeddings=teacher), {})
    # squared differences 1, 4, 1, 1 over four entries
    assert mse["cross_lingual_alignment"].item() == pytest.approx(7 / 4)


def test_the_translation_is_aligned_to_the_source_and_layers_pool_over_their_own_tokens() -> None:
    # embeddings task: the student's translation vector is compared, not its source vector
    teacher = Outputs(embeddings=torch.tensor([[1.0, 0.0]]))
    student = Outputs(embeddings=torch.tensor([[1.0, 0.0]]), translation_embeddings=torch.tensor([[0.0, 1.0]]))
    assert CrossLingualAlignment(2, 2)(student, teacher, {})["cross_lingual_alignment"].item() == pytest.approx(1.0)

    # a student that reads 2 tokens (a translation) and a teacher that reads 3 (the source)
    student_layer = torch.tensor([[[1.0, 0.0], [1.0, 0.0], [9.0, 9.0]]])  # padding last, masked
    teacher_layer = torch.tensor([[[0.0, 1.0], [0.0, 3.0], [0.0, 2.0]]])
    final = torch.tensor([[1.0, 1.0]])
    student = Outputs(embeddings=final, hidden_states=(student_layer, student_layer), attention_mask=torch.tensor([[1, 1, 0]]))
    teacher = Outputs(embeddings=final, hidden_states=(teacher_layer, teacher_layer), attention_mask=torch.tensor([[1, 1, 1]]))
    value = CrossLingualAlignment(2, 2, loss="mse", layer_map={1: 1})(student, teacher, {})["cross_lingual_alignment"]
    # final layer: equal (0); layer 1: mean (1, 0) vs mean (0, 2): squared differences 1 and 4, mean 2.5; over the two: 1.25
    assert value.item() == pytest.approx(1.25)


def test_gradients_reach_the_projection_between_widths() -> None:
    torch.manual_seed(1)
    objective = CrossLingualAlignment(4, 6)
    student_vectors = torch.randn(3, 4, requires_grad=True)
    value = objective(Outputs(embeddings=student_vectors), Outputs(embeddings=torch.randn(3, 6)), {})["cross_lingual_alignment"]
    value.backward()
    projection = objective.projections["final"]
    assert projection.weight.grad is not None and projection.weight.grad.abs().sum() > 0
    assert student_vectors.grad is not None and student_vectors.grad.abs().sum() > 0
    # and the value is the hand-computed one through that projection
    targets = torch.randn(3, 6)
    value = objective(Outputs(embeddings=student_vectors), Outputs(embeddings=targets), {})["cross_lingual_alignment"]
    with torch.no_grad():
        lifted = student_vectors @ projection.weight.T + projection.bias
        expected = sum(1 - float(lifted[i] @ targets[i]) / float(lifted[i].norm() * targets[i].norm()) for i in range(3)) / 3
    assert value.item() == pytest.approx(expected, rel=1e-5)


def test_config_section_and_its_checks(tmp_path) -> None:
    raw = {"teacher": {"model": "t"}, "data": {"train": {"path": "catalogs:django-components", "split": "train"}}}
    config = validate_config(raw | {"objectives": {"soft_targets": {}, "cross_lingual_alignment": {"weight": 0.5}}})
    assert config.objectives.cross_lingual_alignment.loss == "cosine"
    with pytest.raises(ConfigError, match="set hidden_states: true"):
        validate_config(raw | {"objectives": {"cross_lingual_alignment": {"layer_map": {1: 2}}}})


def test_a_classifier_student_reading_translations_is_aligned_to_the_teacher_reading_sources(tiny_teacher_dir, tmp_path) -> None:
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, TrainingArguments

    from polydistill.models.pooling import mean_pool
    from polydistill.models.student import build_student
    from polydistill.objectives import ObjectiveSet
    from polydistill.training.features import DistillationCollator, tokenize_for_distillation
    from polydistill.training.trainer import DistillationTrainer

    teacher = AutoModelForSequenceClassification.from_pretrained(tiny_teacher_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_teacher_dir)
    student = build_student(teacher, keep_layers=1, hidden_size=16, num_attention_heads=2, intermediate_size=32).model
    objective = CrossLingualAlignment(16, teacher.config.hidden_size)
    trainer = DistillationTrainer(
        model=student,
        args=TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True, remove_unused_columns=False),
        teacher=teacher,
        objectives=ObjectiveSet({"cross_lingual_alignment": objective}, {"cross_lingual_alignment": 1.0}),
        data_collator=DistillationCollator(tokenizer),
    )
    rows = Dataset.from_dict({"text": ["the apple now", "many drum here"], "teacher_text": ["we saw a big red bus today", "the harp"]})
    features = tokenize_for_distillation(rows, tokenizer, teacher_text_column="teacher_text")
    batch = DistillationCollator(tokenizer)([features[i] for i in range(2)])
    student.eval()
    loss = trainer.compute_loss(student, batch)
    loss.backward()
    assert objective.projections["final"].weight.grad.abs().sum() > 0

    def pooled(model, prefix):  # independently: each model's mean final state over its own text's tokens
        inputs = {k: batch[prefix + k] for k in ("input_ids", "attention_mask", "token_type_ids") if prefix + k in batch}
        return mean_pool(model(**inputs, output_hidden_states=True).hidden_states[-1], inputs["attention_mask"])

    with torch.no_grad():
        lifted = objective.projections["final"](pooled(student, ""))
        expected = (1 - torch.nn.functional.cosine_similarity(lifted, pooled(teacher, "teacher_"), dim=-1)).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
