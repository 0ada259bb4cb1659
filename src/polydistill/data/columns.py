"""Two small ``datasets`` helpers that the readers, the catalogs and the sources share."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import datasets

__all__ = ["column_values", "dataset_from_columns", "dataset_label_names", "language_column"]


def dataset_from_columns(columns: dict[str, list], features: datasets.Features) -> datasets.Dataset:
    """An in-memory Dataset from plain columns whose values already match ``features``.

    ``Dataset.from_dict`` encodes row by row (seconds for the catalogs); Arrow does it at once.
    """
    import datasets
    import pyarrow as pa

    table = pa.Table.from_pydict(columns, schema=features.arrow_schema)
    return datasets.Dataset(table, info=datasets.DatasetInfo(features=features))


def column_values(dataset: datasets.Dataset, name: str) -> list:
    """All values of one column as a list (one batched read; ``dataset[name]`` reads row by row)."""
    return dataset.select_columns([name])[:][name]


def language_column(dataset: Any) -> list[str]:
    """The ``lang`` column as strings, or ``und`` (undetermined) for every row of data without one."""
    return [str(code) for code in dataset["lang"]] if "lang" in dataset.column_names else ["und"] * len(dataset)


def dataset_label_names(dataset: Any, label_column: str = "label") -> list[str] | None:
    """Names of the dataset's ClassLabel column, or None for plain integer labels (or no labels)."""
    feature = dataset.features.get(label_column)
    names = getattr(feature, "names", None)
    return list(names) if names else None
