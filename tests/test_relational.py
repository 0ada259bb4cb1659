"""Relational knowledge distillation against a naive computation: plain Python loops over the
pairs and triples of a small batch (Park et al., 2019, distance-wise and angle-wise terms)."""

from __future__ import annotations

import itertools
import math
from types import SimpleNamespace

import pytest
import torch

from polydistill.config import check_against_teacher, validate_config
from polydistill.objectives import LayerMaps, ObjectiveSet, Outputs, build_objectives, needs_layer_map
from polydistill.objectives.relational import Relational


def huber(x: float) -> float:
    return 0.5 * x * x if abs(x) < 1 else abs(x) - 0.5


def distance(a: list[float], b: list[float]) -> float:
    return math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b, strict=True)))


def naive_distance_term(student: list[list[float]], teacher: list[list[float]]) -> float:
    def normalised(points):
        pairs = [(i, j) for i in range(len(points)) for j in range(len(points)) if i != j]
        d = {(i, j): distance(points[i], points[j]) for i, j in pairs}
        positive = [v for v in d.values() if v > 0]
        mean = sum(positive) / len(positive)
        return {pair: v / mean for pair, v in d.items()}

    s, t = normalised(student), normalised(teacher)
    return sum(huber(s[pair] - t[pair]) for pair in s) / len(s)


def naive_angle_term(student: list[list[float]], teacher: list[list[float]]) -> float:
    def cosine(points, i, j, k):
        u = [a - b for a, b in zip(points[i], points[j], strict=True)]
        v = [a - b for a, b in zip(points[k], points[j], strict=True)]
        dot = sum(a * b for a, b in zip(u, v, strict=True))
        return dot / (math.sqrt(sum(a * a for a in u)) * math.sqrt(sum(b * b for b in v)))

    triples = list(itertools.permutations(range(len(teacher)), 3))  # (i, j, k) pairwise different
    return sum(huber(cosine(student, i, j, k) - cosine(teacher, i, j, k)) for i, j, k in triples) / len(triples)


def seeded(seed: int, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def outputs(embeddings: torch.Tensor, translations: torch.Tensor | None = None) -> Outputs:
    return Outputs(embeddings=embeddings, translation_embeddings=translations)


def terms(student: Outputs, teacher: Outputs, **weights) -> dict[str, torch.Tensor]:
    return Relational(**weights)(student, teacher, {})


def teacher_with_an_outlier() -> torch.Tensor:
    teacher = seeded(1, 5, 4)
    teacher[4] *= 6  # far from the rest: some normalised distances differ from the student's by more than 1
    return teacher


def test_matches_naive_pairs_and_triples_across_widths():
    student, teacher = seeded(0, 5, 3), teacher_with_an_outlier()
    got = terms(outputs(student), outputs(teacher), distance_weight=1.0, angle_weight=1.0)
    assert set(got) == {"relational_distance", "relational_angle"}
    assert got["relational_distance"].item() == pytest.approx(naive_distance_term(student.tolist(), teacher.tolist()), rel=1e-5)
    assert got["relational_angle"].item() == pytest.approx(naive_angle_term(student.tolist(), teacher.tolist()), rel=1e-5)


def test_both_student_views_learn_the_teachers_relations_among_sources():
    sources, translations, teacher = seeded(2, 4, 3), seeded(3, 4, 3), seeded(4, 4, 6)
    got = terms(outputs(sources, translations), outputs(teacher))
    s, tr, t = sources.tolist(), translations.tolist(), teacher.tolist()
    expected_distance = (naive_distance_term(s, t) + naive_distance_term(tr, t)) / 2
    expected_angle = (naive_angle_term(s, t) + naive_angle_term(tr, t)) / 2
    assert got["relational_distance"].item() == pytest.approx(1.0 * expected_distance, rel=1e-5)
    assert got["relational_angle"].item() == pytest.approx(2.0 * expected_angle, rel=1e-5)  # default weights 1 and 2


def test_weights_scale_their_term_and_a_zero_weight_drops_it():
    student, teacher = seeded(5, 4, 3), seeded(6, 4, 3)
    unit = terms(outputs(student), outputs(teacher), distance_weight=1.0, angle_weight=1.0)
    scaled = terms(outputs(student), outputs(teacher), distance_weight=25.0, angle_weight=50.0)
    torch.testing.assert_close(scaled["relational_distance"], 25 * unit["relational_distance"])
    torch.testing.assert_close(scaled["relational_angle"], 50 * unit["relational_angle"])
    assert set(terms(outputs(student), outputs(teacher), distance_weight=0.0)) == {"relational_angle"}
    assert set(terms(outputs(student), outputs(teacher), angle_weight=0.0)) == {"relational_distance"}
    with pytest.raises(ValueError):
        Relational(distance_weight=0.0, angle_weight=0.0)


def test_zero_when_the_student_reproduces_the_teacher():
    teacher = seeded(7, 6, 4)
    for student in (outputs(teacher.clone()), outputs(teacher.clone(), teacher.clone())):
        for value in terms(student, outputs(teacher)).values():
            assert value.item() == 0.0


def test_invariant_to_scaling_and_translating_the_student():
    student, teacher = seeded(8, 6, 3), teacher_with_an_outlier().repeat(2, 1)[:6]
    base = terms(outputs(student), outputs(teacher))
    moved = terms(outputs(3.7 * student + torch.tensor([5.0, -2.0, 0.5])), outputs(teacher))
    for name, value in base.items():
        assert value.item() > 0
        torch.testing.assert_close(moved[name], value, rtol=1e-5, atol=1e-7)


def test_gradient_reaches_the_student_only():
    student = seeded(9, 5, 3).requires_grad_()
    teacher = seeded(10, 5, 4).requires_grad_()
    loss, _ = ObjectiveSet({"relational": Relational()}, {"relational": 1.0})(outputs(student), outputs(teacher), {})
    loss.backward()
    assert torch.isfinite(student.grad).all() and student.grad.abs().sum() > 0
    assert teacher.grad is None


def test_identical_rows_give_finite_gradients():
    student = seeded(11, 5, 3)
    student[3] = student[1]  # the same input twice in a batch
    student.requires_grad_()
    teacher = seeded(12, 5, 4)
    total = sum(terms(outputs(student), outputs(teacher)).values())
    total.backward()
    assert torch.isfinite(total) and torch.isfinite(student.grad).all()


@pytest.mark.parametrize("size", [1, 2])
def test_batches_too_small_for_a_relation_give_a_connected_zero(size):
    student = seeded(13, size, 3).requires_grad_()
    got = terms(outputs(student), outputs(seeded(14, size, 4)))
    assert got["relational_angle"].item() == 0.0 and got["relational_angle"].grad_fn is not None
    # one pair has a normalised distance of 1 in both models: nothing to learn either
    assert got["relational_distance"].item() == 0.0 and got["relational_distance"].grad_fn is not None
    sum(got.values()).backward()
    assert torch.equal(student.grad, torch.zeros_like(student))


def test_batch_sizes_must_agree():
    with pytest.raises(ValueError, match="differ in size"):
        terms(outputs(seeded(15, 3, 2)), outputs(seeded(16, 4, 2)))


@pytest.mark.parametrize("task", ["classification", "embeddings"])
def test_a_run_config_with_relational_validates_and_builds_for_both_tasks(task, tmp_path):
    (tmp_path / "train.jsonl").write_text('{"text": "a", "label": "x"}\n')
    raw = {
        "task": task,
        "teacher": {"model": "some/teacher"},
        "data": {"train": {"path": str(tmp_path / "train.jsonl")}},
        "objectives": {"relational": {"weight": 1}},
    }
    config = validate_config(raw)
    assert [name for name, _ in config.objectives.enabled()] == ["relational"]
    section = config.objectives.relational
    assert (section.weight, section.distance_weight, section.angle_weight) == (1.0, 1.0, 2.0)
    check_against_teacher(config, teacher_layers=4, student_layers=2)
    assert not needs_layer_map(config.objectives) and not config.objectives.needs_attention_weights
    built = build_objectives(
        config.objectives,
        teacher_config=SimpleNamespace(hidden_size=8, num_hidden_layers=4),
        student_config=SimpleNamespace(hidden_size=4, num_hidden_layers=2),
        layer_maps=LayerMaps({}, {}),
    )
    (objective,) = built.objectives.values()
    assert isinstance(objective, Relational) and built.weights == {"relational": 1.0}
    assert (objective.distance_weight, objective.angle_weight) == (1.0, 2.0)
    assert objective.teacher_fields(4) == ["embeddings"]
