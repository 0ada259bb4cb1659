"""Sentence-embedding objectives against hand computations, their invariants, and a tiny
end-to-end check that they teach a student to embed translations where the teacher embeds sources."""

from __future__ import annotations

import math

import pytest
import torch

from polydistill.objectives import ObjectiveSet, Outputs
from polydistill.objectives.embeddings import EmbeddingCosine, EmbeddingMSE, SimilarityDistillation

TEACHER = [[1.0, 0.0], [0.6, 0.8], [0.0, 2.0]]
STUDENT_SOURCE = [[0.5, 0.5], [1.0, 1.0], [-1.0, 1.0]]
STUDENT_TRANSLATION = [[1.0, -1.0], [0.0, 1.0], [0.3, 0.4]]


def student_outputs(source, translation=None) -> Outputs:
    return Outputs(
        embeddings=torch.tensor(source, requires_grad=True),
        translation_embeddings=None if translation is None else torch.tensor(translation, requires_grad=True),
    )


def teacher_outputs(values=TEACHER) -> Outputs:
    return Outputs(embeddings=torch.tensor(values))


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def softmax(row: list[float]) -> list[float]:
    exps = [math.exp(v - max(row)) for v in row]
    return [e / sum(exps) for e in exps]


def hand_kl(p: list[float], q: list[float]) -> float:
    return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q, strict=True) if pi > 0)


def test_mse_is_the_mean_over_source_and_translation_rows():
    # sources: (0.25+0.25) + (0.16+0.04) + (1+1) = 2.7; translations: (0+1) + (0.36+0.04) + (0.09+2.56) = 4.05
    expected = (2.7 + 4.05) / (6 * 2)
    terms = EmbeddingMSE()(student_outputs(STUDENT_SOURCE, STUDENT_TRANSLATION), teacher_outputs(), {})
    assert terms["embedding_mse"].item() == pytest.approx(expected, rel=1e-6)


def test_mse_without_translations_matches_sources_only():
    terms = EmbeddingMSE()(student_outputs(STUDENT_SOURCE), teacher_outputs(), {})
    assert terms["embedding_mse"].item() == pytest.approx(2.7 / 6, rel=1e-6)


def test_cosine_is_the_mean_distance_over_both_rows():
    distances = [1 - cosine(s, t) for s, t in zip(STUDENT_SOURCE + STUDENT_TRANSLATION, TEACHER + TEACHER, strict=True)]
    # by hand: sources 1 - 1/sqrt2, 1 - 1.4/sqrt2, 1 - 1/sqrt2; translations 1 - 1/sqrt2, 0.2, 0.2
    assert distances[1] == pytest.approx(1 - 1.4 / math.sqrt(2))
    assert distances[4] == pytest.approx(0.2) and distances[5] == pytest.approx(0.2)
    terms = EmbeddingCosine()(student_outputs(STUDENT_SOURCE, STUDENT_TRANSLATION), teacher_outputs(), {})
    assert terms["embedding_cosine"].item() == pytest.approx(sum(distances) / 6, rel=1e-6)


def test_point_objectives_zero_when_student_equals_teacher():
    student = student_outputs(TEACHER, TEACHER)
    assert EmbeddingMSE()(student, teacher_outputs(), {})["embedding_mse"].item() == 0.0
    assert EmbeddingCosine()(student, teacher_outputs(), {})["embedding_cosine"].item() == pytest.approx(0.0, abs=1e-7)


def test_point_objectives_learn_a_projection_between_widths():
    mse = EmbeddingMSE(student_width=3, teacher_width=2)
    with torch.no_grad():
        mse.projection.weight.copy_(torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))
        mse.projection.bias.zero_()
    wide = [row + [5.0] for row in TEACHER]  # the projection drops the third coordinate
    assert mse(student_outputs(wide, wide), teacher_outputs(), {})["embedding_mse"].item() == 0.0
    assert sum(p.numel() for p in mse.parameters()) == 3 * 2 + 2
    with pytest.raises(ValueError, match="student_width and teacher_width"):
        EmbeddingMSE()(student_outputs(wide), teacher_outputs(), {})


def hand_similarity_term(source, translation, teacher, temperature) -> float:
    n = len(teacher)
    total = 0.0
    for queries, candidates in ((translation, source), (source, translation)):
        for i in range(n):
            target = softmax([cosine(teacher[i], teacher[j]) / temperature for j in range(n)])
            student = softmax([cosine(queries[i], candidates[j]) / temperature for j in range(n)])
            total += hand_kl(target, student)
    return total / (2 * n)


@pytest.mark.parametrize("temperature", [0.05, 0.5, 1.0])
def test_similarity_distillation_matches_hand_computed_kl(temperature):
    expected = hand_similarity_term(STUDENT_SOURCE, STUDENT_TRANSLATION, TEACHER, temperature)
    terms = SimilarityDistillation(temperature)(student_outputs(STUDENT_SOURCE, STUDENT_TRANSLATION), teacher_outputs(), {})
    assert terms["embedding_similarity"].item() == pytest.approx(expected, rel=1e-5)


def test_similarity_distillation_by_hand_at_temperature_one():
    # Teacher cosines: [[1, .6, 0], [.6, 1, .8], [0, .8, 1]]. Student translation->source cosines,
    # all by hand: t0=(1,-1) vs s0,s1 (both along (1,1)) 0, vs s2=(-1,1) -1; t1=(0,1): 1/sqrt2, 1/sqrt2, 1/sqrt2;
    # t2=(.3,.4): .7/(.5 sqrt2) each for s0, s1 and .1/(.5 sqrt2) for s2.
    r = 1 / math.sqrt(2)
    trans_to_source = [[0.0, 0.0, -1.0], [r, r, r], [1.4 * r, 1.4 * r, 0.2 * r]]
    teacher = [[1.0, 0.6, 0.0], [0.6, 1.0, 0.8], [0.0, 0.8, 1.0]]
    source_to_trans = [list(column) for column in zip(*trans_to_source, strict=True)]
    expected = sum(hand_kl(softmax(teacher[i]), softmax(matrix[i])) for matrix in (trans_to_source, source_to_trans) for i in range(3)) / 6
    terms = SimilarityDistillation(1.0)(student_outputs(STUDENT_SOURCE, STUDENT_TRANSLATION), teacher_outputs(), {})
    assert terms["embedding_similarity"].item() == pytest.approx(expected, rel=1e-5)


def test_similarity_distillation_is_zero_with_zero_gradient_when_student_reproduces_teacher():
    student = student_outputs(TEACHER, TEACHER)
    value = SimilarityDistillation(0.05)(student, teacher_outputs(), {})["embedding_similarity"]
    value.backward()
    assert value.item() == pytest.approx(0.0, abs=1e-7)
    assert student.embeddings.grad.abs().max().item() < 1e-6
    assert student.translation_embeddings.grad.abs().max().item() < 1e-6


def test_similarity_distillation_ignores_rotation_scale_and_width():
    # A student in another width that holds the teacher's vectors up to an isometry and scale
    # keeps every cosine, so the term is zero; the point objectives could not even compare them.
    torch.manual_seed(0)
    teacher = torch.randn(5, 4)
    isometry, _ = torch.linalg.qr(torch.randn(6, 4))  # (6, 4) with orthonormal columns
    rotated = 3.0 * teacher @ isometry.T
    student = Outputs(embeddings=rotated.clone().requires_grad_(), translation_embeddings=rotated.clone().requires_grad_())
    value = SimilarityDistillation(0.1)(student, Outputs(embeddings=teacher), {})["embedding_similarity"]
    value.backward()
    assert value.item() == pytest.approx(0.0, abs=1e-6)
    assert student.embeddings.grad.abs().max().item() < 1e-5


def test_similarity_distillation_lets_repeated_sources_share_target_mass():
    # Rows 0 and 1 are the same English source (two languages in one batch): a student that puts
    # both translations exactly on it is not penalised for the "other" row, unlike hard in-batch labels.
    teacher = [[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]
    value = SimilarityDistillation(0.05)(student_outputs(teacher, teacher), teacher_outputs(teacher), {})
    assert value["embedding_similarity"].item() == pytest.approx(0.0, abs=1e-7)


def test_similarity_distillation_without_translations_compares_source_similarities():
    expected = (
        sum(
            hand_kl(
                softmax([cosine(TEACHER[i], TEACHER[j]) / 0.5 for j in range(3)]),
                softmax([cosine(STUDENT_SOURCE[i], STUDENT_SOURCE[j]) / 0.5 for j in range(3)]),
            )
            for i in range(3)
        )
        / 3
    )
    value = SimilarityDistillation(0.5)(student_outputs(STUDENT_SOURCE), teacher_outputs(), {})
    assert value["embedding_similarity"].item() == pytest.approx(expected, rel=1e-5)


def test_similarity_distillation_of_one_row_is_a_connected_zero():
    student = student_outputs(STUDENT_SOURCE[:1], STUDENT_TRANSLATION[:1])
    value = SimilarityDistillation()(student, teacher_outputs(TEACHER[:1]), {})["embedding_similarity"]
    value.backward()
    assert value.item() == 0.0 and student.embeddings.grad is not None


def test_missing_embeddings_are_named():
    with pytest.raises(ValueError, match="student's pooled sentence embeddings"):
        EmbeddingMSE()(Outputs(), teacher_outputs(), {})
    with pytest.raises(ValueError, match="teacher's pooled sentence embeddings"):
        SimilarityDistillation()(student_outputs(STUDENT_SOURCE), Outputs(), {})


def test_objective_set_logs_each_embedding_term_by_name():
    objectives = ObjectiveSet({"mse": EmbeddingMSE(), "similarity": SimilarityDistillation(1.0)}, {"mse": 2.0, "similarity": 0.5})
    total, terms = objectives(student_outputs(STUDENT_SOURCE, STUDENT_TRANSLATION), teacher_outputs(), {})
    assert set(terms) == {"embedding_mse", "embedding_similarity"}
    assert total.item() == pytest.approx(2.0 * terms["embedding_mse"].item() + 0.5 * terms["embedding_similarity"].item())
    assert objectives.requires == frozenset({"embeddings"})


# --- a tiny end-to-end learning check ------------------------------------------------------

WORDS = 40  # source word ids 0..39; translation word w + WORDS means the same as source word w
WIDTH = 16
SENTENCE_LENGTH = 4


def random_sentences(count: int, generator: torch.Generator) -> torch.Tensor:
    """(count, SENTENCE_LENGTH) source word ids, distinct words within a sentence."""
    return torch.rand(count, WORDS, generator=generator).argsort(dim=1)[:, :SENTENCE_LENGTH]


def translation_top1(student: torch.nn.EmbeddingBag, sources: torch.Tensor) -> float:
    """Share of held-out translations whose nearest student source vector (cosine) is their own source."""
    with torch.no_grad():
        source_vectors = torch.nn.functional.normalize(student(sources), dim=-1)
        translation_vectors = torch.nn.functional.normalize(student(sources + WORDS), dim=-1)
        nearest = (translation_vectors @ source_vectors.T).argmax(dim=-1)
    return (nearest == torch.arange(len(sources))).float().mean().item()


def train_tiny_student(objectives: ObjectiveSet, teacher_words: torch.Tensor, generator: torch.Generator, steps: int = 200):
    """A plain torch loop: the student sees (source, translation) batches, the teacher only sources.

    One thread: these tensors are tiny, and on a busy machine thread hand-offs cost 10x the maths.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        student = torch.nn.EmbeddingBag(2 * WORDS, WIDTH, mode="mean")
        held_out = random_sentences(100, generator)
        before = translation_top1(student, held_out)
        optimizer = torch.optim.Adam(student.parameters(), lr=0.05)
        for _ in range(steps):
            sources = random_sentences(32, generator)
            teacher = Outputs(embeddings=teacher_words[sources].mean(dim=1))
            outputs = Outputs(embeddings=student(sources), translation_embeddings=student(sources + WORDS))
            loss, _ = objectives(outputs, teacher, {})
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    finally:
        torch.set_num_threads(threads)
    return student, held_out, before


@pytest.mark.parametrize(
    "objectives",
    [
        ObjectiveSet({"mse": EmbeddingMSE(), "similarity": SimilarityDistillation(0.1)}, {"mse": 1.0, "similarity": 0.1}),
        ObjectiveSet({"similarity": SimilarityDistillation(0.1)}, {"similarity": 1.0}),
    ],
    ids=["mse+similarity", "similarity-alone"],
)
def test_objectives_teach_translations_to_find_their_sources(objectives):
    # Teacher: mean of fixed random word vectors of the source words (it cannot read translations).
    # Student: a bag of embeddings over source and translation ids, initially unrelated.
    generator = torch.Generator().manual_seed(0)
    teacher_words = torch.randn(WORDS, WIDTH, generator=generator)
    student, held_out, before = train_tiny_student(objectives, teacher_words, generator)
    after = translation_top1(student, held_out)
    assert before <= 0.2, f"an untrained student should retrieve near chance, got {before:.2f}"
    assert after >= 0.9, f"translations did not find their sources: top-1 {before:.2f} -> {after:.2f}"
    if "mse" in objectives.objectives:  # the points themselves, not only the neighbourhoods
        with torch.no_grad():
            landed = torch.nn.functional.cosine_similarity(student(held_out + WORDS), teacher_words[held_out].mean(dim=1))
        assert landed.min().item() >= 0.95
