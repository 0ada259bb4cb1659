"""Layer selection copies exactly the chosen teacher layers; narrower students start fresh."""

from __future__ import annotations

import pytest
import torch
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    DistilBertConfig,
    DistilBertForSequenceClassification,
    XLMRobertaConfig,
    XLMRobertaForSequenceClassification,
)

from polydistill.models.student import build_student, spread_layers


def tiny(family: str, layers: int = 6):
    torch.manual_seed(0)
    if family == "bert":
        return BertForSequenceClassification(
            BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=layers, num_attention_heads=2, intermediate_size=32, num_labels=3)
        ), "bert.encoder.layer"
    if family == "xlm-roberta":
        return XLMRobertaForSequenceClassification(
            XLMRobertaConfig(
                vocab_size=50,
                hidden_size=16,
                num_hidden_layers=layers,
                num_attention_heads=2,
                intermediate_size=32,
                num_labels=3,
                max_position_embeddings=40,
            )
        ), "roberta.encoder.layer"
    return DistilBertForSequenceClassification(
        DistilBertConfig(vocab_size=50, dim=16, n_layers=layers, n_heads=2, hidden_dim=32, num_labels=3)
    ), "distilbert.transformer.layer"


@pytest.mark.parametrize("family", ["bert", "xlm-roberta", "distilbert"])
def test_kept_layers_are_exact_copies(family):
    teacher, prefix = tiny(family)
    student = build_student(teacher, keep_layers=[0, 3, 5])
    assert student.kept_layers == [0, 3, 5]
    assert student.model.config.num_hidden_layers == 3
    teacher_state, student_state = teacher.state_dict(), student.model.state_dict()
    for student_index, teacher_index in enumerate([0, 3, 5]):
        layer_keys = [k for k in student_state if k.startswith(f"{prefix}.{student_index}.")]
        assert layer_keys
        for key in layer_keys:
            source = key.replace(f"{prefix}.{student_index}.", f"{prefix}.{teacher_index}.", 1)
            assert torch.equal(student_state[key], teacher_state[source]), key
    for key in student_state:
        if ".layer." not in key:  # embeddings, pooler, classifier
            assert torch.equal(student_state[key], teacher_state[key]), key
    # a copy, not shared storage: training the student leaves the teacher untouched
    assert all(student_state[k].data_ptr() != teacher_state[k].data_ptr() for k in student_state if ".layer." not in k)


def test_same_function_with_all_layers_kept():
    teacher, _ = tiny("bert", layers=2)
    student = build_student(teacher).model.eval()
    ids = torch.tensor([[1, 5, 7, 2]])
    assert torch.allclose(student(input_ids=ids).logits, teacher.eval()(input_ids=ids).logits)


def test_keep_layers_count_is_spread_evenly():
    assert spread_layers(4, 12) == [0, 4, 7, 11]
    assert spread_layers(6, 12) == [0, 2, 4, 7, 9, 11]
    assert spread_layers(1, 12) == [0]
    assert spread_layers(12, 12) == list(range(12))
    teacher, _ = tiny("bert", layers=6)
    assert build_student(teacher, keep_layers=3).kept_layers == [0, 2, 5]


def test_narrower_student_is_fresh_and_smaller():
    teacher, _ = tiny("distilbert", layers=4)
    student = build_student(teacher, keep_layers=2, hidden_size=8, intermediate_size=16, num_attention_heads=2)
    assert student.kept_layers is None
    config = student.model.config
    assert (config.hidden_size, config.num_hidden_layers, config.hidden_dim, config.num_attention_heads) == (8, 2, 16, 2)
    assert student.model(input_ids=torch.tensor([[1, 2, 3]])).logits.shape == (1, 3)


def test_missing_layer_is_refused():
    teacher, _ = tiny("bert", layers=4)
    with pytest.raises(ValueError, match="layer 4 does not exist"):
        build_student(teacher, keep_layers=[0, 4])
