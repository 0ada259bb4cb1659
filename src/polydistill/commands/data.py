"""``polydistill data``: look at what a run will train on.

``polydistill data stats SOURCE [--tokenizer MODEL] [--json]`` prints, per language, how many
pairs or examples there are, how long they are (in tokens of a model's tokenizer, or in
whitespace-separated words without one) and how the labels are distributed. ``SOURCE`` is a
built-in source (``polydistill data sources`` lists them) or a file / saved dataset.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from polydistill.errors import ConfigError

__all__ = ["dataset_stats", "register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "data",
        help="inspect training data: per-language counts, lengths, labels",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    stats = actions.add_parser(
        "stats",
        help="per-language counts, lengths and label distribution of a data source",
        description="Per-language counts, lengths and label distribution of a data source.",
    )
    stats.add_argument(
        "source",
        metavar="SOURCE",
        help="a built-in catalog (catalogs:django, catalogs:sphinx, catalogs:all = both, catalogs:allauth, catalogs:cms, "
        "catalogs:jupyterlab, catalogs:extra = those three, catalogs:django-components), or a JSONL/CSV/TSV/Parquet/.txt file or saved dataset",
    )
    stats.add_argument(
        "--tokenizer",
        metavar="MODEL",
        help="count lengths in this model's tokens (offline:<name>, a local model directory or a hub id); default: words",
    )
    stats.add_argument("--json", action="store_true", help="print the statistics as JSON")
    catalogs = stats.add_argument_group("built-in catalogs")
    catalogs.add_argument("--languages", help="comma-separated language codes to keep (default: all)")
    catalogs.add_argument("--min-pairs", type=int, default=0, help="drop languages with fewer pairs")
    files = stats.add_argument_group("files")
    files.add_argument("--text-column", default="text")
    files.add_argument("--label-column")
    files.add_argument("--lang-column")
    files.add_argument("--translation-column")
    files.add_argument("--format", choices=("jsonl", "csv", "tsv", "parquet", "datasets"))
    stats.set_defaults(func=_run_stats)

    sources = actions.add_parser("sources", help="list the built-in data sources")
    sources.set_defaults(func=_run_sources)


def _run_sources(args: argparse.Namespace) -> int:
    from polydistill.data.sources import BUILTIN_SOURCES

    for name, description in BUILTIN_SOURCES.items():
        print(f"{name:30} {description}")
    return 0


def _load_tokenizer(ref: str) -> Any:
    from transformers import AutoTokenizer

    path = Path(ref).expanduser()
    if path.is_dir() and ((path / "tokenizer.json").is_file() or (path / "tokenizer_config.json").is_file()):
        return AutoTokenizer.from_pretrained(str(path))
    from polydistill.models.zoo import resolve_model_path

    return AutoTokenizer.from_pretrained(str(resolve_model_path(ref)))


def _run_stats(args: argparse.Namespace) -> int:
    from polydistill.data.sources import is_builtin, load_source

    if is_builtin(args.source):
        kwargs: dict[str, Any] = {"min_pairs": args.min_pairs}
        if args.languages:
            kwargs["languages"] = [code for code in args.languages.split(",") if code.strip()]
    else:
        if args.languages or args.min_pairs:
            raise ConfigError("--languages and --min-pairs apply to the built-in catalogs only")
        kwargs = {
            "text_column": args.text_column,
            "label_column": args.label_column,
            "lang_column": args.lang_column,
            "translation_column": args.translation_column,
            "format": args.format,
        }
    tokenizer = _load_tokenizer(args.tokenizer) if args.tokenizer else None
    data = load_source(args.source, **kwargs)
    stats = dataset_stats(data, tokenizer=tokenizer)
    stats = {"source": args.source, "tokenizer": args.tokenizer, **stats}
    if args.json:
        print(json.dumps(stats, ensure_ascii=False, indent=2))
    else:
        _print_tables(stats)
    return 0


# ---------------------------------------------------------------------------------------------
# The statistics.


def _lengths(texts: list[str], tokenizer: Any) -> list[int]:
    if tokenizer is None:
        return [len(text.split()) for text in texts]
    lengths: list[int] = []
    for start in range(0, len(texts), 2048):
        encoded = tokenizer(texts[start : start + 2048], add_special_tokens=True, verbose=False)
        lengths.extend(len(ids) for ids in encoded["input_ids"])
    return lengths


def _summary(lengths: list[int]) -> dict[str, float]:
    return {
        "mean": round(statistics.fmean(lengths), 2),
        "median": float(statistics.median(lengths)),
        "max": max(lengths),
    }


def dataset_stats(data: Any, *, tokenizer: Any = None) -> dict[str, Any]:
    """Per-language counts, lengths and labels of a Dataset or DatasetDict (all splits together).

    A dataset is *pairs* when it has a ``translation`` column (the parallel layout of every
    source); lengths are then of the translation, and ``source_length`` of the source side
    (``text``). Lengths count a tokenizer's tokens as the
    model gets them (special tokens included) or, without a tokenizer, whitespace-separated
    words. Rows without a language are counted under ``und``.
    """
    import datasets

    from polydistill.data.columns import column_values
    from polydistill.data.languages import UNDETERMINED, language_name

    if isinstance(data, datasets.DatasetDict):
        splits = {name: len(split) for name, split in data.items()}
        parts = [split for split in data.values() if len(split)]
        dataset = datasets.concatenate_datasets(parts) if parts else next(iter(data.values()))
    else:
        splits = None
        dataset = data
    columns = dataset.column_names
    is_pairs = "translation" in columns
    target_column = "translation" if is_pairs else "text"
    source_column = "text" if is_pairs else None
    count_key = "pairs" if is_pairs else "examples"

    langs = column_values(dataset, "lang") if "lang" in columns else [UNDETERMINED] * len(dataset)
    target_lengths = _lengths(column_values(dataset, target_column), tokenizer)
    source_lengths = _lengths(column_values(dataset, source_column), tokenizer) if source_column else None
    label_names = None
    labels = None
    if "label" in columns:
        feature = dataset.features["label"]
        label_names = feature.names if isinstance(feature, datasets.ClassLabel) else None
        labels = [label_names[value] if label_names else str(value) for value in column_values(dataset, "label")]
    sources = column_values(dataset, "source_id") if "source_id" in columns else None

    rows_by_language: dict[str, list[int]] = defaultdict(list)
    for index, lang in enumerate(langs):
        rows_by_language[lang].append(index)
    ordered = sorted(rows_by_language, key=lambda lang: (-len(rows_by_language[lang]), lang))

    per_language: dict[str, dict[str, Any]] = {}
    for lang in ordered:
        rows = rows_by_language[lang]
        entry: dict[str, Any] = {"name": language_name(lang), count_key: len(rows)}
        if sources is not None:
            entry["sources"] = len({sources[row] for row in rows})
        entry["length"] = _summary([target_lengths[row] for row in rows])
        if source_lengths is not None:
            entry["source_length"] = _summary([source_lengths[row] for row in rows])
        if labels is not None:
            entry["labels"] = dict(sorted(Counter(labels[row] for row in rows).items()))
        per_language[lang] = entry

    result: dict[str, Any] = {
        "kind": count_key,
        "length_unit": "tokens" if tokenizer is not None else "words",
        "total": len(dataset),
        "languages": per_language,
    }
    if sources is not None:
        result["sources"] = len(set(sources))
    if splits is not None:
        result["splits"] = splits
    if labels is not None:
        counts = Counter(labels)
        names = label_names or sorted(counts)
        result["labels"] = {name: counts.get(name, 0) for name in names}
    return result


def _print_tables(stats: dict[str, Any]) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    console = Console()
    count_key = stats["kind"]
    unit = stats["length_unit"]
    languages = stats["languages"]
    has_source_length = any("source_length" in entry for entry in languages.values())
    has_labels = "labels" in stats

    table = Table(
        title=f"{stats['source']}: {len(languages)} languages, {stats['total']:,} {count_key}",
        caption=f"lengths in {unit}",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    table.add_column("lang", no_wrap=True)
    table.add_column("language", no_wrap=True, overflow="ellipsis", max_width=18)
    table.add_column(count_key, justify="right", no_wrap=True)
    if any("sources" in entry for entry in languages.values()):
        table.add_column("sources", justify="right", no_wrap=True)
    table.add_column("mean", justify="right", no_wrap=True)
    table.add_column("median", justify="right", no_wrap=True)
    table.add_column("max", justify="right", no_wrap=True)
    if has_source_length:
        table.add_column("src mean", justify="right", no_wrap=True)
    if has_labels:
        table.add_column("labels", justify="right", no_wrap=True)
    for lang, entry in languages.items():
        cells = [lang, entry["name"], f"{entry[count_key]:,}"]
        if "sources" in entry:
            cells.append(f"{entry['sources']:,}")
        length = entry["length"]
        cells += [f"{length['mean']:.1f}", f"{length['median']:g}", str(length["max"])]
        if has_source_length:
            cells.append(f"{entry['source_length']['mean']:.1f}")
        if has_labels:
            cells.append(str(len(entry.get("labels", {}))))
        table.add_row(*cells)
    console.print(table)

    if has_labels:
        labels = stats["labels"]
        total = sum(labels.values()) or 1
        label_table = Table(title="labels (all languages)", box=box.SIMPLE_HEAD, pad_edge=False)
        label_table.add_column("label")
        label_table.add_column(count_key, justify="right", no_wrap=True)
        label_table.add_column("share", justify="right", no_wrap=True)
        for name, count in labels.items():
            label_table.add_row(name, f"{count:,}", f"{count / total:.1%}")
        console.print(label_table)
    summary = [f"{len(languages)} languages", f"{stats['total']:,} {count_key}"]
    if "sources" in stats:
        summary.append(f"{stats['sources']:,} distinct sources")
    if "splits" in stats:
        summary.append("splits " + ", ".join(f"{name} {count:,}" for name, count in stats["splits"].items()))
    summary.append(f"lengths in {unit}" + (f" of {stats['tokenizer']}" if stats.get("tokenizer") else ""))
    console.print("; ".join(summary))
