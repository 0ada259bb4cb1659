"""Quality per bootstrap draw and the paired bootstrap of each method against the peer."""

from __future__ import annotations

from typing import Any

import numpy as np

from distill_speed_lib.settings import BOOTSTRAP_SAMPLES, PEERS


def macro_f1(gold: np.ndarray, pred: np.ndarray, classes: int) -> float:
    """sklearn's macro F1 (zero_division=0) over the classes present in gold or predictions."""
    true_positive = np.bincount(gold[gold == pred], minlength=classes)
    counts = np.bincount(gold, minlength=classes) + np.bincount(pred, minlength=classes)
    present = counts > 0
    return float(np.mean(2 * true_positive[present] / counts[present]))


def quality_samples(task: str, examples: dict[str, Any], draws: list[dict[str, np.ndarray]]) -> np.ndarray:
    """The quality metric on each bootstrap draw (per language, indices into that language's rows)."""
    values = np.empty(len(draws))
    if task == "classification":
        gold, pred = np.asarray(examples["gold"]), np.asarray(examples["pred"])
        lang = np.asarray(examples["lang"])
        rows = {code: np.flatnonzero(lang == code) for code in sorted(set(lang.tolist()))}
        for i, draw in enumerate(draws):
            values[i] = np.mean([macro_f1(gold[rows[c][draw[c]]], pred[rows[c][draw[c]]], examples["classes"]) for c in rows])
        return values
    hits = examples["hits"]
    for i, draw in enumerate(draws):
        values[i] = np.mean(
            [(np.mean(np.asarray(h["en_to_x"])[draw[c]]) + np.mean(np.asarray(h["x_to_en"])[draw[c]])) / 2 for c, h in hits.items()]
        )
    return values


def bootstrap_draws(task: str, examples: dict[str, Any], samples: int, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """Resample the test examples within each language (the same draws for every method: paired)."""
    rng = np.random.default_rng(seed)
    if task == "classification":
        lang = np.asarray(examples["lang"])
        sizes = {code: int((lang == code).sum()) for code in sorted(set(lang.tolist()))}
    else:
        sizes = {code: len(h["en_to_x"]) for code, h in examples["hits"].items()}
    return [{code: rng.integers(0, n, n) for code, n in sizes.items()} for _ in range(samples)]


def point_quality(task: str, examples: dict[str, Any]) -> float:
    if task == "classification":
        lang = np.asarray(examples["lang"])
        identity = [{code: np.arange(int((lang == code).sum())) for code in sorted(set(lang.tolist()))}]
    else:
        identity = [{code: np.arange(len(h["en_to_x"])) for code, h in examples["hits"].items()}]
    return float(quality_samples(task, examples, identity)[0])


def compare(task: str, records: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Ratios of every polydistill method to the task's peer, and the bootstrap CI of the quality gap."""
    peer = records[PEERS[task]]
    draws = bootstrap_draws(task, peer["quality"]["examples"], BOOTSTRAP_SAMPLES)
    peer_samples = quality_samples(task, peer["quality"]["examples"], draws)
    comparisons = {}
    for method, record in records.items():
        if method == PEERS[task] or method == "teacher":
            continue
        samples = quality_samples(task, record["quality"]["examples"], draws)
        difference = samples - peer_samples
        low, high = (float(x) for x in np.percentile(difference, [2.5, 97.5]))
        gap = record["quality"]["value"] - peer["quality"]["value"]
        comparisons[method] = {
            "throughput_ratio": record["examples_per_second"] / peer["examples_per_second"],
            "train_wall_ratio": record["train_seconds"] / peer["train_seconds"],
            "end_to_end_ratio": record["end_to_end_seconds"] / peer["end_to_end_seconds"],
            "peak_memory_ratio": record["peak_rss_mib"] / peer["peak_rss_mib"],
            "quality_difference": gap,
            "quality_difference_ci95": [low, high],
            "quality_verdict": "equal within noise" if low <= 0 <= high else ("better" if low > 0 else "worse"),
        }
    return comparisons
