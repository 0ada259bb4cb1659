"""Data for distillation: users' files, built-in translation catalogs, language-balanced sampling.

- :mod:`~polydistill.data.readers`: ``read_examples`` (JSONL/CSV/TSV/Parquet/saved datasets,
  validated) and ``load_source`` (a path or a built-in ``catalogs:<name>``);
- :mod:`~polydistill.data.catalogs`: Django and Sphinx gettext catalogs as parallel pairs and as
  a cross-lingual classification task; ``split_by_source``;
- :mod:`~polydistill.data.sampling`: ``LanguageBalancedSampler`` and the smoothed probabilities;
- :mod:`~polydistill.data.languages`: BCP 47 normalisation of language codes.

Names are imported on first use, so ``import polydistill.data`` stays cheap (no torch, no datasets).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "read_examples": "readers",
    "load_source": "readers",
    "truncate_to_tokens": "readers",
    "BUILTIN_SOURCES": "readers",
    "SUPPORTED_FORMATS": "readers",
    "catalog_pairs": "catalogs",
    "catalog_pairs_splits": "catalogs",
    "catalog_classification": "catalogs",
    "component_sizes": "catalogs",
    "split_by_source": "catalogs",
    "strip_placeholders": "catalogs",
    "source_id_for": "catalogs",
    "to_parallel_columns": "catalogs",
    "language_sampling_probabilities": "sampling",
    "LanguageBalancedSampler": "sampling",
    "normalize_language": "languages",
    "is_known_language": "languages",
    "language_name": "languages",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(_EXPORTS) | {"catalogs", "languages", "readers", "sampling"})
