"""The results: one JSON document, markdown tables and the terminal tables."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from dataclasses import asdict
from pathlib import Path
from typing import Any

from distill_speed_lib.settings import LABELS, PEERS, Settings, read_prepared, task_dir
from distill_speed_lib.statistics import compare, point_quality


def machine_description() -> dict[str, Any]:
    import torch

    description = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "nproc": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        description["cpu"] = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name")), None)
    except (OSError, subprocess.CalledProcessError):
        description["cpu"] = platform.processor() or None
    from importlib import metadata

    for package in ("transformers", "sentence-transformers", "polydistill"):
        try:
            description[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return description


def print_tables(results: dict[str, Any], console) -> None:
    from rich.table import Table

    for task, entry in results["tasks"].items():
        records, comparisons = entry["methods"], entry["comparisons"]
        peer = PEERS[task]
        table = Table(
            title=f"{task}: {entry['examples_per_epoch']} examples x {results['settings']['epochs']} epochs"
            + (" (quick: a few steps)" if results["settings"]["quick"] else "")
        )
        for column in (
            "method",
            "train s",
            "teacher s",
            "examples/s",
            "x peer",
            "end-to-end s",
            "peak RSS MiB",
            "x peer mem",
            entry["metric_short"],
            "diff vs peer [95% CI]",
            "cache",
        ):
            table.add_column(column, justify="left" if column == "method" else "right")
        for method, record in records.items():
            if method == "teacher":
                continue
            comparison = comparisons.get(method)
            cache = record.get("cache")
            table.add_row(
                record["label"],
                f"{record['train_seconds']:.1f}",
                f"{record['teacher_pass_seconds']:.1f}",
                f"{record['examples_per_second']:.1f}",
                f"{comparison['throughput_ratio']:.2f}" if comparison else "1.00",
                f"{record['end_to_end_seconds']:.1f}",
                f"{record['peak_rss_mib']:.0f}",
                f"{comparison['peak_memory_ratio']:.2f}" if comparison else "1.00",
                f"{record['quality']['value']:.3f}",
                (
                    f"{comparison['quality_difference']:+.3f} [{comparison['quality_difference_ci95'][0]:+.3f}, "
                    f"{comparison['quality_difference_ci95'][1]:+.3f}]"
                )
                if comparison
                else "(peer)",
                (f"{cache['bytes'] / 1e6:.2f} MB{' reused' if cache['reused'] else ''}") if cache else "",
            )
        teacher = records.get("teacher")
        if teacher:
            table.caption = f"teacher {entry['metric_short']}: {teacher['quality']['value']:.3f}; peer: {LABELS[peer]}"
        console.print(table)
        if entry.get("padding"):
            console.print("  " + padding_summary(entry["padding"]))
        for record in records.values():
            if record.get("cache") and not record["cache"]["reused"]:
                cache = record["cache"]
                console.print(
                    f"  cache of {record['label']}: {cache['bytes']:,} bytes for {cache['cached_examples']} distinct teacher inputs "
                    f"({record['train_rows']} training examples): {cache['bytes_per_1000_training_examples'] / 1e3:.1f} kB per 1,000 "
                    f"training examples, {cache['bytes_per_1000_cached_examples'] / 1e3:.1f} kB per 1,000 cached inputs"
                )


def padding_summary(padding: dict[str, Any] | None) -> str:
    if not padding:
        return ""
    random, grouped, cache = padding["random_batches"], padding["length_grouped_batches"], padding["cache_build"]

    def sides(entry: dict[str, float]) -> str:
        return ", ".join(f"{side} {share:.0%}" for side, share in entry.items())

    return (
        f"Padding tokens per real token, batches of {padding['batch_size']}: random order (the peers) {sides(random)}; "
        f"length-grouped (polydistill's recipe) {sides(grouped)}. Teacher-cache build, {cache['distinct_inputs']} distinct "
        f"inputs in batches of {cache['batch_size']}: {cache['data_order']:.0%} in data order (as built), "
        f"{cache['length_sorted']:.0%} if sorted by length."
    )


def markdown_tables(results: dict[str, Any]) -> str:
    """The same tables in Markdown, for benchmarks/README.md."""
    lines = []
    for task, entry in results["tasks"].items():
        records, comparisons = entry["methods"], entry["comparisons"]
        metric = entry["metric_short"]
        lines += [
            f"**{task}**: {entry['examples_per_epoch']} training examples x {results['settings']['epochs']:g} epochs; "
            f"quality: {entry['metric']}; peer: {LABELS[entry['peer']]}",
            "",
            f"| method | train s (teacher pass) | examples/s | x peer | end-to-end s | peak RSS MiB (x peer) | {metric} | "
            "diff vs peer [95% CI] | teacher cache |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for method, record in records.items():
            if method == "teacher":
                continue
            comparison = comparisons.get(method)
            cache = record.get("cache")
            lines.append(
                f"| {record['label']} | {record['train_seconds']:.1f} ({record['teacher_pass_seconds']:.1f}) | "
                f"{record['examples_per_second']:.1f} | {comparison['throughput_ratio'] if comparison else 1:.2f} | "
                f"{record['end_to_end_seconds']:.1f} | {record['peak_rss_mib']:.0f} "
                f"({comparison['peak_memory_ratio'] if comparison else 1:.2f}) | {record['quality']['value']:.3f} | "
                + (
                    f"{comparison['quality_difference']:+.3f} [{comparison['quality_difference_ci95'][0]:+.3f}, "
                    f"{comparison['quality_difference_ci95'][1]:+.3f}] |"
                    if comparison
                    else "(peer) |"
                )
                + (f" {cache['bytes'] / 1e6:.2f} MB{', reused' if cache['reused'] else ''} |" if cache else " |")
            )
        if "teacher" in records:
            lines += ["", f"Teacher {metric} on the same evaluation: {records['teacher']['quality']['value']:.3f}."]
        if entry.get("padding"):
            lines += ["", padding_summary(entry["padding"])]
        lines.append("")
    return "\n".join(lines)


def aggregate(settings: Settings, console) -> dict[str, Any]:
    results: dict[str, Any] = {"settings": asdict(settings), "machine": machine_description(), "tasks": {}}
    for task in settings.tasks:
        records = {}
        for method in [*settings.methods[task], "teacher"]:
            path = task_dir(settings, task) / method / "result.json"
            if path.is_file():
                records[method] = json.loads(path.read_text())
        for record in records.values():  # the bootstrap's metric must be the evaluation's
            point = point_quality(task, record["quality"]["examples"])
            if abs(point - record["quality"]["value"]) > 1e-9:
                raise SystemExit(
                    f"{task} {record['method']}: bootstrap metric {point} differs from the evaluation's {record['quality']['value']}"
                )
        padding_path = task_dir(settings, task) / "padding" / "result.json"
        padding = json.loads(padding_path.read_text()) if padding_path.is_file() else None
        comparisons = compare(task, records) if PEERS[task] in records else {}
        slim = {method: {k: v for k, v in record.items()} for method, record in records.items()}
        for record in slim.values():
            record["quality"] = {k: v for k, v in record["quality"].items() if k != "examples"}
        first = next(r for m, r in records.items() if m != "teacher")
        results["tasks"][task] = {
            "methods": slim,
            "comparisons": comparisons,
            "peer": PEERS[task],
            "metric": first["quality"]["metric"],
            "metric_short": "macro-F1" if task == "classification" else "top-1",
            "examples_per_epoch": first["train_rows"],
            "prepared": read_prepared(settings, task),
            "padding": padding,
        }
    (Path(settings.out) / "results.json").write_text(json.dumps(results, indent=2))
    (Path(settings.out) / "results.md").write_text(markdown_tables(results))
    print_tables(results, console)
    console.print(f"results: {Path(settings.out) / 'results.json'}")
    return results
