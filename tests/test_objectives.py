"""Each objective against a value worked out by hand (plain Python math on small tensors)."""

from __future__ import annotations

import math

import pytest
import torch

from polydistill.objectives import (
    AttentionRelations,
    Attentions,
    HardTargets,
    HiddenStates,
    Labels,
    LayerMaps,
    ObjectiveSet,
    Outputs,
    SoftTargets,
)


def softmax(row: list[float]) -> list[float]:
    exps = [math.exp(v - max(row)) for v in row]
    return [e / sum(exps) for e in exps]


def hand_kl(p: list[float], q: list[float]) -> float:
    return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q, strict=True) if pi > 0)


STUDENT_LOGITS = [[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]]
TEACHER_LOGITS = [[2.0, 0.0, 1.0], [1.0, 1.0, 0.0]]


def logits_outputs(values) -> Outputs:
    return Outputs(logits=torch.tensor(values, requires_grad=True))


@pytest.mark.parametrize("temperature", [1.0, 2.0, 4.0])
def test_soft_targets_match_hand_computed_kl_times_t_squared(temperature):
    expected = (
        sum(
            hand_kl(softmax([v / temperature for v in t]), softmax([v / temperature for v in s]))
            for s, t in zip(STUDENT_LOGITS, TEACHER_LOGITS, strict=True)
        )
        / len(STUDENT_LOGITS)
        * temperature**2
    )
    terms = SoftTargets(temperature)(logits_outputs(STUDENT_LOGITS), logits_outputs(TEACHER_LOGITS), {})
    assert terms["soft_targets"].item() == pytest.approx(expected, rel=1e-5)


def test_soft_targets_zero_when_student_equals_teacher():
    terms = SoftTargets(3.0)(logits_outputs(TEACHER_LOGITS), logits_outputs(TEACHER_LOGITS), {})
    assert terms["soft_targets"].item() == pytest.approx(0.0, abs=1e-7)


def test_soft_targets_gradient_scale_is_independent_of_temperature_for_large_t():
    # Hinton et al.: with the T^2 factor the gradient tends to (z_s - z_t) / N (zero-mean logits) as T grows.
    student = torch.tensor([[0.3, -0.1, -0.2]], requires_grad=True)
    teacher = torch.tensor([[-0.2, 0.4, -0.2]])
    SoftTargets(100.0)(Outputs(logits=student), Outputs(logits=teacher), {})["soft_targets"].backward()
    expected = (student.detach() - teacher) / 3
    assert torch.allclose(student.grad, expected, atol=1e-3)


def test_hard_targets_use_teacher_argmax():
    # teacher argmax: class 0 for row 0, class 0 for row 1 (first of the tie)
    expected = -(math.log(softmax(STUDENT_LOGITS[0])[0]) + math.log(softmax(STUDENT_LOGITS[1])[0])) / 2
    terms = HardTargets()(logits_outputs(STUDENT_LOGITS), logits_outputs(TEACHER_LOGITS), {})
    assert terms["hard_targets"].item() == pytest.approx(expected, rel=1e-6)


def test_labels_ignore_unlabelled_rows():
    batch = {"labels": torch.tensor([2, -100])}
    terms = Labels()(logits_outputs(STUDENT_LOGITS), Outputs(), batch)
    assert terms["labels"].item() == pytest.approx(-math.log(softmax(STUDENT_LOGITS[0])[2]), rel=1e-6)
    none = Labels()(logits_outputs(STUDENT_LOGITS), Outputs(), {"labels": torch.tensor([-100, -100])})
    assert none["labels"].item() == 0.0


# ----------------------------------------------------------------------------- hidden states

MASK = torch.tensor([[1, 1, 0], [1, 1, 1]])


def hidden_outputs(states: list[torch.Tensor], mask=MASK) -> Outputs:
    return Outputs(hidden_states=tuple(states), attention_mask=mask)


def test_hidden_states_mse_counts_only_real_tokens():
    torch.manual_seed(0)
    s = [torch.randn(2, 3, 4) for _ in range(2)]
    t = [torch.randn(2, 3, 4) for _ in range(3)]
    objective = HiddenStates({0: 0, 1: 2}, student_width=4, teacher_width=4, loss="mse")
    value = objective(hidden_outputs(s), hidden_outputs(t), {})["hidden_states"].item()
    positions = [(b, i) for b in range(2) for i in range(3) if MASK[b, i]]
    per_layer = []
    for si, ti in [(0, 0), (1, 2)]:
        squares = [(s[si][b, i, d] - t[ti][b, i, d]).item() ** 2 for b, i in positions for d in range(4)]
        per_layer.append(sum(squares) / len(squares))
    assert value == pytest.approx(sum(per_layer) / 2, rel=1e-5)


def test_hidden_states_cosine_and_zero_when_equal():
    torch.manual_seed(1)
    states = [torch.randn(2, 3, 4) for _ in range(2)]
    objective = HiddenStates({1: 1}, student_width=4, teacher_width=4, loss="cosine")
    assert objective(hidden_outputs(states), hidden_outputs(states), {})["hidden_states"].item() == pytest.approx(0, abs=1e-6)
    other = [-x for x in states]  # opposite vectors: cosine distance 2 everywhere
    assert objective(hidden_outputs(states), hidden_outputs(other), {})["hidden_states"].item() == pytest.approx(2.0, rel=1e-6)


def test_hidden_states_projection_path_lifts_student_width():
    objective = HiddenStates({1: 1}, student_width=2, teacher_width=3)
    projection = objective.projections["1"]
    with torch.no_grad():
        projection.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
        projection.bias.zero_()
    student = torch.tensor([[[1.0, 2.0]]])
    teacher = torch.tensor([[[1.0, 2.0, 5.0]]])  # projected student is [1, 2, 3]: error only in the last dim
    mask = torch.tensor([[1]])
    outputs = lambda x: Outputs(hidden_states=(x, x), attention_mask=mask)  # noqa: E731
    value = objective(outputs(student), outputs(teacher), {})["hidden_states"]
    assert value.item() == pytest.approx((5.0 - 3.0) ** 2 / 3)
    value.backward()
    assert projection.weight.grad is not None and projection.weight.grad.abs().sum() > 0


def test_hidden_states_skip_examples_whose_tokens_do_not_align():
    torch.manual_seed(2)
    s = [torch.randn(2, 3, 4)]
    t = [torch.randn(2, 3, 4)]
    t[0][0] = s[0][0]  # example 0 identical, example 1 different but not aligned
    objective = HiddenStates({0: 0}, student_width=4, teacher_width=4)
    batch = {"token_aligned": torch.tensor([True, False])}
    assert objective(hidden_outputs(s), hidden_outputs(t), batch)["hidden_states"].item() == pytest.approx(0, abs=1e-7)


# ----------------------------------------------------------------------------- attentions


def test_attentions_mse_over_heads_and_real_positions():
    torch.manual_seed(3)
    mask = torch.tensor([[1, 1, 0]])
    s = torch.softmax(torch.randn(1, 2, 3, 3), dim=-1)
    t = torch.softmax(torch.randn(1, 2, 3, 3), dim=-1)
    objective = Attentions({0: 0})
    value = objective(Outputs(attentions=(s,), attention_mask=mask), Outputs(attentions=(t,), attention_mask=mask), {})
    squares = [(s[0, h, i, j] - t[0, h, i, j]).item() ** 2 for h in range(2) for i in range(2) for j in range(2)]
    assert value["attentions"].item() == pytest.approx(sum(squares) / len(squares), rel=1e-5)


def test_attentions_with_different_head_counts_compare_head_means():
    torch.manual_seed(4)
    mask = torch.tensor([[1, 1]])
    s = torch.softmax(torch.randn(1, 1, 2, 2), dim=-1)
    t = torch.softmax(torch.randn(1, 4, 2, 2), dim=-1)
    value = Attentions({0: 0})(Outputs(attentions=(s,), attention_mask=mask), Outputs(attentions=(t,), attention_mask=mask), {})
    t_mean = t.mean(dim=1)
    squares = [(s[0, 0, i, j] - t_mean[0, i, j]).item() ** 2 for i in range(2) for j in range(2)]
    assert value["attentions"].item() == pytest.approx(sum(squares) / 4, rel=1e-5)


# ----------------------------------------------------------------------------- attention relations


def hand_relation(x: torch.Tensor, heads: int, length: int) -> list[list[list[float]]]:
    """softmax(X_h X_h^T / sqrt(d)) per relation head, over the first ``length`` positions."""
    width = x.shape[-1] // heads
    out = []
    for h in range(heads):
        rows = []
        for i in range(length):
            scores = [
                sum(x[i, h * width + d].item() * x[j, h * width + d].item() for d in range(width)) / math.sqrt(width) for j in range(length)
            ]
            rows.append(softmax(scores))
        out.append(rows)
    return out


def test_attention_relations_across_widths_and_head_counts_match_hand_computation():
    torch.manual_seed(5)
    mask = torch.tensor([[1, 1, 1, 0]])
    # teacher width 8 (say 4 attention heads), student width 4 (say 1 head); 2 relation heads for both
    teacher_qkv = {role: torch.randn(1, 4, 8) for role in ("query", "key", "value")}
    student_qkv = {role: torch.randn(1, 4, 4) for role in ("query", "key", "value")}
    objective = AttentionRelations(teacher_layer=3, student_layer=0, relation_heads=2)
    terms = objective(
        Outputs(qkv={0: student_qkv}, attention_mask=mask),
        Outputs(qkv={3: teacher_qkv}, attention_mask=mask),
        {},
    )
    assert set(terms) == {"attention_relations_query", "attention_relations_key", "attention_relations_value"}
    for role in ("query", "key", "value"):
        t_rel = hand_relation(teacher_qkv[role][0], heads=2, length=3)
        s_rel = hand_relation(student_qkv[role][0], heads=2, length=3)
        kls = [hand_kl(t_rel[h][i], s_rel[h][i]) for h in range(2) for i in range(3)]
        assert terms[f"attention_relations_{role}"].item() == pytest.approx(sum(kls) / len(kls), rel=1e-4)


def test_attention_relations_zero_when_student_reproduces_teacher():
    torch.manual_seed(6)
    mask = torch.tensor([[1, 1, 1]])
    qkv = {role: torch.randn(1, 3, 6) for role in ("query", "key", "value")}
    objective = AttentionRelations(teacher_layer=0, student_layer=0, relation_heads=3)
    terms = objective(Outputs(qkv={0: qkv}, attention_mask=mask), Outputs(qkv={0: qkv}, attention_mask=mask), {})
    assert all(v.item() == pytest.approx(0, abs=1e-6) for v in terms.values())


def test_objective_set_weights_and_sums_named_terms():
    objectives = ObjectiveSet({"soft_targets": SoftTargets(1.0), "hard_targets": HardTargets()}, {"soft_targets": 2.0, "hard_targets": 0.5})
    total, terms = objectives(logits_outputs(STUDENT_LOGITS), logits_outputs(TEACHER_LOGITS), {})
    assert set(terms) == {"soft_targets", "hard_targets"}
    assert total.item() == pytest.approx(2.0 * terms["soft_targets"].item() + 0.5 * terms["hard_targets"].item())


def test_layer_maps():
    kept = LayerMaps.from_kept_layers([0, 4, 8, 11])
    assert kept.hidden_states == {0: 0, 1: 1, 2: 5, 3: 9, 4: 12}
    assert kept.attentions == {0: 0, 1: 4, 2: 8, 3: 11}
    uniform = LayerMaps.uniform(4, 12)
    assert uniform.attentions == {0: 2, 1: 5, 2: 8, 3: 11}
    assert uniform.hidden_states == {0: 0, 1: 3, 2: 6, 3: 9, 4: 12}
    with pytest.raises(ValueError, match="layer map"):
        LayerMaps.uniform(6, 3)
