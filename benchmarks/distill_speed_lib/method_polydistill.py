"""Methods (a), (a') and (b): polydistill with the teacher-output cache built or reused, or the online teacher."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from distill_speed_lib.measure import method_record, peak_rss_mib
from distill_speed_lib.settings import (
    CACHE_DIRS,
    FRESH_CACHE,
    Settings,
    read_prepared,
    recipe_dict,
    task_dir,
    validated,
)


def complete_caches(root: Path) -> dict[str, Path]:
    """Finished teacher caches under ``root`` (those with their manifest), by fingerprint."""
    from polydistill.training.cache import MANIFEST_FILE

    if not root.is_dir():
        return {}
    return {d.name: d for d in root.iterdir() if d.is_dir() and (d / MANIFEST_FILE).is_file()}


def child_polydistill(settings: Settings, task: str, method: str) -> dict[str, Any]:
    """One polydistill run through ``polydistill.training.run.run``, timed from the inside: the
    teacher-cache step (build or reuse) and ``Trainer.train``, patched in this process only."""
    from polydistill.training import run as run_module
    from polydistill.training.trainer import DistillationTrainer

    prepared = read_prepared(settings, task)
    directory = task_dir(settings, task)
    raw = recipe_dict(task, settings)
    raw["teacher"]["model"] = prepared["teacher_dir"]
    raw["teacher"].pop("finetune", None)
    raw["student"] = {"model": prepared["student_init"]}  # used as it is: no layer selection, no trim
    raw["data"].pop("eval")  # every method is evaluated the same way afterwards, not inside run()
    raw["teacher"]["cache"] = method != "polydistill-online"
    cache_root = None
    if method in CACHE_DIRS:
        cache_root = directory / CACHE_DIRS[method]
        if method in FRESH_CACHE and cache_root.exists():
            shutil.rmtree(cache_root)
        raw["teacher"]["cache_dir"] = str(cache_root)
    if method == "polydistill-cache-mse":
        raw["objectives"] = {"embedding_mse": {"weight": 1.0}}
    output_dir = directory / method / "run"
    if output_dir.exists():
        shutil.rmtree(output_dir)
    raw["output_dir"] = str(output_dir)
    config = validated(raw, task)

    timings: dict[str, Any] = {"teacher_pass": 0.0}
    build = run_module.cached_teacher
    train = DistillationTrainer.train

    def timed_build(*args, **kwargs):
        before = complete_caches(cache_root)
        start = time.perf_counter()
        try:
            return build(*args, **kwargs)
        finally:
            timings["teacher_pass"] = time.perf_counter() - start
            after = complete_caches(cache_root)
            timings["cache_reused"] = bool(after) and set(after) <= set(before)

    def timed_train(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return train(self, *args, **kwargs)
        finally:
            timings["optimisation"] = time.perf_counter() - start
            timings["train_rows"] = len(self.train_dataset)

    run_module.cached_teacher = timed_build
    DistillationTrainer.train = timed_train
    start = time.perf_counter()
    result = run_module.run(config, output_dir=output_dir)
    end_to_end = time.perf_counter() - start
    peak = peak_rss_mib()

    metrics = result.train_metrics
    record = method_record(
        task,
        method,
        settings,
        teacher_pass=timings["teacher_pass"],
        optimisation=timings["optimisation"],
        end_to_end=end_to_end,
        examples_seen=round(metrics["train_samples_per_second"] * metrics["train_runtime"]),
        train_rows=timings["train_rows"],
        peak=peak,
        student_dir=result.student_dir,
        objectives=[name for name, _ in config.objectives.enabled()],
        sampling=config.training.get("train_sampling_strategy", "random"),
    )
    if cache_root is not None:
        caches = complete_caches(cache_root)
        (cache_dir,) = caches.values()
        manifest = json.loads((cache_dir / "complete.json").read_text())
        size = sum(entry["bytes"] for entry in manifest["files"].values()) + (cache_dir / "complete.json").stat().st_size
        record["cache"] = {
            "directory": str(cache_dir),
            "reused": timings.get("cache_reused", False),
            "bytes": size,
            "cached_examples": manifest["examples"],
            "fields": manifest["fields"],
            "bytes_per_1000_training_examples": size / timings["train_rows"] * 1000,
            "bytes_per_1000_cached_examples": size / manifest["examples"] * 1000,
        }
    return record
