"""Language-balanced sampling: the smoothed probabilities and a reproducible sampler."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from polydistill.data.sampling import LanguageBalancedSampler, language_sampling_probabilities

COUNTS = {"en": 900, "de": 90, "sw": 9, "fy": 1}


def test_probabilities_follow_the_formula() -> None:
    # q_i = n_i^a / sum_j n_j^a, written out for alpha = 0.5: sqrt(900)=30, sqrt(90), 3, 1
    total = 30 + math.sqrt(90) + 3 + 1
    expected = {"en": 30 / total, "de": math.sqrt(90) / total, "sw": 3 / total, "fy": 1 / total}
    probabilities = language_sampling_probabilities(COUNTS, 0.5)
    assert probabilities == pytest.approx(expected, rel=1e-12)


def test_alpha_one_is_natural_and_zero_is_uniform() -> None:
    assert language_sampling_probabilities(COUNTS, 1.0) == pytest.approx({k: v / 1000 for k, v in COUNTS.items()})
    assert language_sampling_probabilities(COUNTS, 0.0) == pytest.approx({k: 0.25 for k in COUNTS})


def test_smaller_alpha_gives_small_languages_more() -> None:
    shares = [language_sampling_probabilities(COUNTS, alpha)["fy"] for alpha in (1.0, 0.7, 0.3, 0.0)]
    assert shares == sorted(shares)


def test_empty_languages_get_nothing_and_bad_alpha_is_refused() -> None:
    probabilities = language_sampling_probabilities({"de": 4, "fr": 0}, 0.0)
    assert probabilities == {"de": 1.0, "fr": 0.0}
    with pytest.raises(ValueError):
        language_sampling_probabilities(COUNTS, -0.5)
    with pytest.raises(ValueError):
        language_sampling_probabilities({"de": 0}, 0.5)


def test_huge_counts_do_not_overflow() -> None:
    probabilities = language_sampling_probabilities({"a": 10**300, "b": 10**299}, 3.0)
    assert probabilities["a"] == pytest.approx(1000 / 1001)


def make_langs() -> list[str]:
    langs = [lang for lang, count in COUNTS.items() for _ in range(count)]
    # interleave, so that indices of one language are not one block
    return [langs[(index * 7919) % len(langs)] for index in range(len(langs))]


def test_fixed_seed_gives_the_same_order_twice() -> None:
    langs = make_langs()
    first = list(LanguageBalancedSampler(langs, alpha=0.3, seed=11))
    second = list(LanguageBalancedSampler(langs, alpha=0.3, seed=11))
    assert first == second
    assert first != list(LanguageBalancedSampler(langs, alpha=0.3, seed=12))


def test_epochs_differ_and_are_reproducible() -> None:
    sampler = LanguageBalancedSampler(make_langs(), alpha=0.3, seed=0)
    sampler.set_epoch(1)
    epoch_one = list(sampler)
    sampler.set_epoch(2)
    assert list(sampler) != epoch_one
    sampler.set_epoch(1)
    assert list(sampler) == epoch_one


def test_language_frequencies_match_the_probabilities() -> None:
    langs = make_langs()
    sampler = LanguageBalancedSampler(langs, alpha=0.5, num_samples=40_000, seed=3)
    indices = list(sampler)
    assert len(indices) == len(sampler) == 40_000
    observed = Counter(langs[index] for index in indices)
    expected = language_sampling_probabilities(Counter(langs), 0.5)
    for lang, probability in expected.items():
        standard_error = math.sqrt(probability * (1 - probability) / 40_000)
        assert abs(observed[lang] / 40_000 - probability) < 5 * standard_error


def test_within_a_language_no_repeat_until_exhausted() -> None:
    langs = make_langs()
    indices = list(LanguageBalancedSampler(langs, alpha=0.0, num_samples=4_000, seed=5))
    by_language: dict[str, list[int]] = {}
    for index in indices:
        by_language.setdefault(langs[index], []).append(index)
    for lang, drawn in by_language.items():
        pool = COUNTS[lang]
        for start in range(0, len(drawn) - pool + 1, pool):  # each full pass covers the pool once
            assert len(set(drawn[start : start + pool])) == pool
        assert len(set(drawn[:pool])) == min(pool, len(drawn))


def test_defaults_to_dataset_length() -> None:
    assert len(LanguageBalancedSampler(["de", "fr", "fr"], alpha=1.0)) == 3
