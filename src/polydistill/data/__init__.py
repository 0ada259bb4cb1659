"""Data for distillation: users' files, built-in translation catalogs, language-balanced sampling.

- :mod:`~polydistill.data.sources`: every source by name (a path or a built-in
  ``catalogs:<name>``) for runs, fine-tuning, trimming corpora and ``data stats``;
- :mod:`~polydistill.data.readers`: ``read_examples`` (JSONL/CSV/TSV/Parquet/saved datasets,
  validated);
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
    "truncate_to_tokens": "readers",
    "SUPPORTED_FORMATS": "readers",
    "load_source": "sources",
    "read_labelled": "sources",
    "read_pairs": "sources",
    "corpus_texts_by_language": "sources",
    "BUILTIN_SOURCES": "sources",
    "catalog_pairs": "catalogs",
    "catalog_pairs_splits": "catalogs",
    "catalog_classification": "catalogs",
    "component_sizes": "catalogs",
    "split_by_source": "catalogs",
    "strip_placeholders": "catalogs",
    "source_id_for": "catalogs",
    "language_sampling_probabilities": "sampling",
    "LanguageBalancedSampler": "sampling",
    "normalize_language": "languages",
    "is_known_language": "languages",
    "language_name": "languages",
    "normalize_languages": "languages",
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
    return sorted(set(_EXPORTS) | {"catalogs", "columns", "languages", "readers", "sampling", "sources"})
