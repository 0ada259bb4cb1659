"""Language-balanced sampling (exponential smoothing, Conneau & Lample 2019).

Multilingual corpora are skewed: in Django's catalogs the largest language has 40 times the
pairs of the smallest. Drawing rows uniformly lets the big languages dominate a run; drawing
languages uniformly repeats the small ones until they are memorised. The usual middle way
draws language ``i`` with probability

    q_i = n_i ** alpha / sum_j n_j ** alpha

(``alpha`` = 1: the natural distribution, rows drawn uniformly; ``alpha`` = 0: every language
equally often; XLM used 0.5, XLM-R 0.3), then an example of that language.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
from torch.utils.data import Sampler

__all__ = ["LanguageBalancedSampler", "language_sampling_probabilities"]


def language_sampling_probabilities(counts: Mapping[str, int], alpha: float) -> dict[str, float]:
    """``q_i = n_i^alpha / sum_j n_j^alpha`` for every language with at least one example.

    Languages with no example get probability 0 (``0 ** 0`` would otherwise give them 1).
    """
    if not math.isfinite(alpha) or alpha < 0:
        raise ValueError(f"alpha must be a finite number >= 0 (1 = natural, 0 = uniform), not {alpha}")
    for lang, count in counts.items():
        if count < 0:
            raise ValueError(f"language {lang!r} has a negative count {count}")
    present = {lang: count for lang, count in counts.items() if count > 0}
    if not present:
        raise ValueError("no language has any example to sample")
    # in log space, so that large counts with a large alpha do not overflow
    logs = {lang: alpha * math.log(count) for lang, count in present.items()}
    top = max(logs.values())
    weights = {lang: math.exp(value - top) for lang, value in logs.items()}
    total = sum(weights.values())
    return {lang: weights.get(lang, 0.0) / total for lang in counts}


class LanguageBalancedSampler(Sampler[int]):
    """Yields dataset indices: a language by the smoothed probabilities, then one of its examples.

    Within a language, examples are drawn without replacement in a shuffled order; when a
    language runs out it is reshuffled and drawn again (small languages repeat, large ones are
    partly seen). The order depends only on ``seed`` and the epoch (:meth:`set_epoch`), so a run
    is reproducible and each epoch differs. ``num_samples`` defaults to the dataset length.
    """

    def __init__(
        self,
        langs: Sequence[str],
        alpha: float,
        num_samples: int | None = None,
        seed: int = 0,
    ) -> None:
        if len(langs) == 0:
            raise ValueError("cannot sample from an empty dataset")
        indices_by_language: dict[str, list[int]] = defaultdict(list)
        for index, lang in enumerate(langs):
            indices_by_language[lang].append(index)
        self.languages = sorted(indices_by_language)
        self._indices = [np.asarray(indices_by_language[lang], dtype=np.int64) for lang in self.languages]
        counts = {lang: len(indices_by_language[lang]) for lang in self.languages}
        self.probabilities = language_sampling_probabilities(counts, alpha)
        self.alpha = alpha
        self.num_samples = len(langs) if num_samples is None else int(num_samples)
        if self.num_samples < 0:
            raise ValueError(f"num_samples must be >= 0, not {num_samples}")
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order :meth:`__iter__` yields (as DistributedSampler does)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        rng = np.random.default_rng([self.seed, self.epoch])
        weights = np.array([self.probabilities[lang] for lang in self.languages], dtype=np.float64)
        choices = rng.choice(len(self.languages), size=self.num_samples, p=weights / weights.sum())
        orders = [rng.permutation(pool) for pool in self._indices]
        positions = [0] * len(self.languages)
        for language in choices:
            if positions[language] == len(orders[language]):
                orders[language] = rng.permutation(self._indices[language])
                positions[language] = 0
            yield int(orders[language][positions[language]])
            positions[language] += 1


def texts_by_language(texts: Sequence[str], languages: Sequence[str], per_language: int) -> dict[str, list[str]]:
    """Up to ``per_language`` distinct texts of each language, in data order: the same share of
    every language, for work that must not favour the language with most data (ranking channels
    for pruning, calibrating int8 scales)."""
    chosen: dict[str, dict[str, None]] = {}
    for text, code in zip(texts, languages, strict=True):
        bucket = chosen.setdefault(str(code), {})
        if len(bucket) < per_language:
            bucket.setdefault(str(text))
    return {code: list(bucket) for code, bucket in chosen.items()}
