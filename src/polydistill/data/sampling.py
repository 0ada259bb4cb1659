"""Language-balanced sampling (exponential smoothing, Conneau & Lample 2019).

Multilingual corpora are skewed: in Django's catalogs the largest language has 40 times the
pairs of the smallest. Drawing rows uniformly lets the big languages dominate a run; drawing
languages uniformly repeats the small ones until they are memorised. The usual middle way
draws language ``i`` with probability

    q_i = n_i ** alpha / sum_j n_j ** alpha

(``alpha`` = 1: the natural distribution, rows drawn uniformly; ``alpha`` = 0: every language
equally often; XLM used 0.5, XLM-R 0.3), then an example of that language.

Several training sources with weights (``data.train`` as a list) add a level above: a source
is drawn by its share, then a language of that source by the smoothed probabilities among its
languages, then an example. So labelled English data at a share of 0.3 stays 30% of the
examples however many unlabelled translations sit beside it.
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

    With ``sources`` (each row's source index) and ``source_shares`` (each source's share, summing
    to 1), a source is drawn first by its share and the smoothing runs among its own languages.
    Within a pool (a language, or a language of a source), examples are drawn without replacement
    in a shuffled order; when a pool runs out it is reshuffled and drawn again (small languages
    repeat, large ones are partly seen). The order depends only on ``seed`` and the epoch
    (:meth:`set_epoch`), so a run is reproducible and each epoch differs. ``num_samples``
    defaults to the dataset length.
    """

    def __init__(
        self,
        langs: Sequence[str],
        alpha: float,
        num_samples: int | None = None,
        seed: int = 0,
        *,
        sources: Sequence[int] | None = None,
        source_shares: Sequence[float] | None = None,
    ) -> None:
        if len(langs) == 0:
            raise ValueError("cannot sample from an empty dataset")
        if (sources is None) != (source_shares is None):
            raise ValueError("give sources and source_shares together")
        shares = [1.0] if source_shares is None else [float(share) for share in source_shares]
        if any(not math.isfinite(share) or share < 0 for share in shares) or not math.isclose(sum(shares), 1.0):
            raise ValueError(f"source shares must be >= 0 and sum to 1, got {shares}")
        row_sources = [0] * len(langs) if sources is None else [int(source) for source in sources]
        if len(row_sources) != len(langs):
            raise ValueError(f"{len(row_sources)} source indices for {len(langs)} rows")
        if any(not 0 <= source < len(shares) for source in row_sources):
            raise ValueError(f"source indices must lie in 0..{len(shares) - 1}")
        indices_by_pool: dict[tuple[int, str], list[int]] = defaultdict(list)
        for index, (source, lang) in enumerate(zip(row_sources, langs, strict=True)):
            indices_by_pool[(source, lang)].append(index)
        self.pools = sorted(indices_by_pool)
        self._indices = [np.asarray(indices_by_pool[pool], dtype=np.int64) for pool in self.pools]
        self.pool_probabilities: dict[tuple[int, str], float] = {}
        for source, share in enumerate(shares):
            counts = {lang: len(indices_by_pool[(s, lang)]) for s, lang in self.pools if s == source}
            if not counts:
                if share > 0:
                    raise ValueError(f"source {source} has a share of {share} but no rows")
                continue
            for lang, probability in language_sampling_probabilities(counts, alpha).items():
                self.pool_probabilities[(source, lang)] = share * probability
        #: each language's probability, summed over the sources
        self.probabilities: dict[str, float] = defaultdict(float)
        for (_, lang), probability in self.pool_probabilities.items():
            self.probabilities[lang] += probability
        self.probabilities = dict(self.probabilities)
        self.languages = sorted(self.probabilities)
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
        weights = np.array([self.pool_probabilities[pool] for pool in self.pools], dtype=np.float64)
        choices = rng.choice(len(self.pools), size=self.num_samples, p=weights / weights.sum())
        orders = [rng.permutation(pool) for pool in self._indices]
        positions = [0] * len(self.pools)
        for pool in choices:
            if positions[pool] == len(orders[pool]):
                orders[pool] = rng.permutation(self._indices[pool])
                positions[pool] = 0
            yield int(orders[pool][positions[pool]])
            positions[pool] += 1


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
