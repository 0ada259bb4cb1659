"""The compression ladder on the demo's recipe, and what each choice buys.

    python benchmarks/compress_ladder.py --out runs/compress-ladder [--languages en,de,ja,ar,sw,hi] [--epochs N]

Three parts, one after the other in this process (never run it beside another benchmark: two torch
processes on 2 cores slow each other down several-fold):

1. **The ladder.** ``polydistill run`` of the demo's classification recipe with its ``compress``
   section: teacher (PyTorch fp32), teacher exported and quantized the plain way (onnxruntime,
   dynamic per-channel int8, no graph fusion), distilled student, pruned and re-distilled student
   (half the heads, hidden channels and FFN neurons), student ONNX fp32, student int8. Every stage is
   timed in the runtime it ships in (tokenisation included, batch 1 and batch 32, the same threads)
   and scored per language on the held-out split.
2. **Every int8 recipe** on the shipped fp32 ONNX: size, batch-1 latency, and per language the drop
   of macro-F1 and the agreement with the fp32 student, so the choice the pipeline makes is visible.
3. **Pruned vs random initialisation at the same width.** A student with the pruned student's widths
   and layers, initialised randomly (``student.init: random``), trained on the same data for as many
   epochs as the pruned student saw in total (distillation + re-distillation), evaluated the same way.

Writes ``OUT/ladder/`` (the run: metrics.json, report.html with the ladder), ``OUT/random-init/``,
``OUT/results.json`` and ``OUT/results.md`` (the tables).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "configs" / "demo-classification.yaml"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--languages", default=None, help="comma-separated; default: the recipe's 13")
    parser.add_argument("--epochs", type=float, default=None, help="student epochs (default: the recipe's)")
    parser.add_argument("--skip-random", action="store_true", help="skip part 3")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    import torch

    raw = yaml.safe_load(RECIPE.read_text())
    if args.languages:
        languages = args.languages.split(",")
        raw["data"]["train"]["languages"] = raw["data"]["eval"]["languages"] = languages
        raw["student"]["trim_vocabulary"]["languages"] = languages
    if args.epochs:
        raw["training"]["num_train_epochs"] = args.epochs
    results: dict[str, Any] = {"threads": torch.get_num_threads(), "torch": torch.__version__, "recipe": str(RECIPE.relative_to(REPO))}

    started = time.perf_counter()
    ladder_dir, config = _run(raw, args.out / "ladder", accept=True)
    results["ladder_seconds"] = round(time.perf_counter() - started, 1)
    metrics = json.loads((ladder_dir / "metrics.json").read_text())
    results["ladder"] = _ladder_rows(metrics["compression"])
    results["recipes"] = _recipes(config, ladder_dir, metrics["compression"])
    if not args.skip_random:
        results["random_init"] = _random_init(raw, args.out / "random-init", metrics)
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    (args.out / "results.md").write_text(_markdown(results))
    print(_markdown(results))
    return 0


def _run(raw: dict[str, Any], out: Path, *, accept: bool):
    from polydistill.config import validate_config
    from polydistill.training.run import run

    raw = json.loads(json.dumps(raw))
    if accept and raw.get("compress", {}).get("quantize") is not None:
        raw["compress"]["quantize"]["accept_drop"] = True  # measure every stage even when a language fails
    raw["output_dir"] = str(out)
    config = validate_config(raw, source_file=RECIPE)
    run(config, output_dir=out)
    return out, config


def _ladder_rows(ladder: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for stage in ladder["stages"]:
        efficiency = stage["efficiency"] or {}
        rows.append(
            {
                "stage": stage["label"],
                "parameters": efficiency.get("parameters"),
                "disk_mb": round(efficiency.get("disk_bytes", 0) / 1e6, 1),
                "peak_memory_mb": None if efficiency.get("peak_memory_bytes") is None else round(efficiency["peak_memory_bytes"] / 1e6, 1),
                "serving_process_peak_mb": None
                if efficiency.get("serving_process_peak_bytes") is None
                else round(efficiency["serving_process_peak_bytes"] / 1e6, 1),
                "p50_ms": round(efficiency.get("latency_ms_p50", float("nan")), 2),
                "p95_ms": round(efficiency.get("latency_ms_p95", float("nan")), 2),
                "per_s_at_32": round(efficiency.get("throughput_per_s", float("nan")), 1),
                "macro_f1": stage["quality"]["overall"],
                "languages": stage["quality"]["languages"],
                "agreement": stage.get("agreement"),
            }
        )
    return rows


def _recipes(config, run_dir: Path, ladder: dict[str, Any]) -> list[dict[str, Any]]:
    """Every int8 recipe on the shipped fp32 ONNX, scored and timed like the ladder's int8 stage."""
    from polydistill import runtime
    from polydistill.compress.quantize import candidate_recipes, quantize_int8
    from polydistill.evaluation.efficiency import EfficiencySettings
    from polydistill.evaluation.runtime_efficiency import measure_runtime_efficiency
    from polydistill.models.loading import load_tokenizer
    from polydistill.tasks import get_task

    stages = {stage["name"]: stage for stage in ladder["stages"]}
    onnx_path = run_dir / stages["student-onnx"]["path"]
    model_dir = onnx_path.parent.parent
    task = get_task(config.task)
    from transformers import AutoConfig

    data = task.read_data(config, tokenizer=load_tokenizer(model_dir), teacher_config=AutoConfig.from_pretrained(run_dir / "teacher"))
    probe = task.quality_probe(config, data.evaluation, data.label_names)
    reference = probe.outputs(probe.runtime_predict(runtime.load(model_dir, file=onnx_path)), "student")
    settings = EfficiencySettings(threads=ladder["settings"]["threads"], max_length=config.data.max_length, peak_memory="skip")
    rows = []
    with tempfile.TemporaryDirectory(dir=onnx_path.parent) as scratch:
        for index, recipe in enumerate(candidate_recipes()):
            kwargs = dict(recipe["kwargs"])
            if kwargs.get("mode") == "static":
                from polydistill.compress.quantize import calibration_feeds

                served = runtime.load(model_dir, file=onnx_path)
                kwargs["calibration"] = calibration_feeds(probe.balanced_texts(64), served.input_feed)
            candidate = Path(scratch) / f"{index}.onnx"
            started = time.perf_counter()
            result = quantize_int8(onnx_path, candidate, **kwargs)
            seconds = time.perf_counter() - started
            outputs = probe.outputs(probe.runtime_predict(runtime.load(model_dir, file=candidate)), "student")
            check = probe.compare(reference, outputs, max_drop=0.01, min_agreement=0.99)
            efficiency = measure_runtime_efficiency(model_dir, candidate, probe.texts_for("student"), settings)
            rows.append(
                {
                    "recipe": recipe["name"],
                    "why": recipe["why"],
                    "disk_mb": round(result.bytes / 1e6, 2),
                    "p50_ms": round(efficiency["latency_ms_p50"], 3),
                    "quantize_s": round(seconds, 1),
                    "passes": not check.failed,
                    "failed": check.failed_reasons(),
                    "min_agreement": min(entry["agreement"] for entry in check.languages.values()),
                    "max_drop": max(entry["drop"] or 0.0 for entry in check.languages.values()),
                }
            )
            print(rows[-1], file=sys.stderr)
    return rows


def _random_init(raw: dict[str, Any], out: Path, metrics: dict[str, Any]) -> dict[str, Any]:
    from transformers import AutoConfig

    stages = {stage["name"]: stage for stage in metrics["compression"]["stages"]}
    run_dir = out.parent / "ladder"
    pruned = AutoConfig.from_pretrained(run_dir / stages["pruned"]["path"])
    raw = json.loads(json.dumps(raw))
    prune_training = raw.pop("compress", {}).get("prune", {}).get("training", {})
    raw["student"].update(
        hidden_size=pruned.hidden_size,
        num_attention_heads=pruned.num_attention_heads,
        intermediate_size=pruned.intermediate_size,
        init="random",
    )
    # as many epochs as the pruned student saw: the distillation and the re-distillation
    epochs = raw["training"]["num_train_epochs"]
    raw["training"]["num_train_epochs"] = epochs + prune_training.get("num_train_epochs", epochs)
    # the fine-tuned teacher of the ladder run, not a second fine-tuning
    raw["teacher"] = {"model": str(run_dir / "teacher")}
    _run(raw, out, accept=False)
    random_metrics = json.loads((out / "metrics.json").read_text())
    primary = metrics["primary_metric"]
    return {
        "widths": {"hidden": pruned.hidden_size, "heads": pruned.num_attention_heads, "ffn": pruned.intermediate_size},
        "epochs": raw["training"]["num_train_epochs"],
        "random_init": {
            "overall": random_metrics["overall"]["student"][primary],
            "languages": {code: entry["student"][primary] for code, entry in random_metrics["languages"].items()},
        },
        "pruned": stages["pruned"]["quality"],
        "unpruned": stages["student"]["quality"],
    }


def _markdown(results: dict[str, Any]) -> str:
    lines = [f"threads: {results['threads']}, torch {results['torch']}, recipe {results['recipe']}", ""]
    lines += [
        "| stage | disk MB | peak MB | p50 ms | p95 ms | texts/s @32 | macro-F1 | worst language |",
        "|---|---|---|---|---|---|---|---|",
    ]
    teacher_p50 = results["ladder"][0]["p50_ms"]
    for row in results["ladder"]:
        worst = min(row["languages"].items(), key=lambda item: item[1])
        peak = row["serving_process_peak_mb"] or row["peak_memory_mb"]
        lines.append(
            f"| {row['stage']} | {row['disk_mb']} | {peak} | {row['p50_ms']} ({teacher_p50 / row['p50_ms']:.1f}x) | {row['p95_ms']} | "
            f"{row['per_s_at_32']} | {row['macro_f1']:.3f} | {worst[0]} {worst[1]:.3f} |"
        )
    lines += ["", "| int8 recipe | MB | p50 ms | lowest agreement | largest drop | passes |", "|---|---|---|---|---|---|"]
    for row in results["recipes"]:
        lines.append(
            f"| {row['recipe']} | {row['disk_mb']} | {row['p50_ms']} | {row['min_agreement']:.3f} | {row['max_drop']:.3f} | {row['passes']} |"
        )
    if "random_init" in results:
        comparison = results["random_init"]
        lines += [
            "",
            f"same widths {comparison['widths']}: macro-F1 per language",
            "",
            "| language | unpruned | pruned + re-distilled | random init |",
            "|---|---|---|---|",
        ]
        for code in sorted(comparison["pruned"]["languages"]):
            lines.append(
                f"| {code} | {comparison['unpruned']['languages'][code]:.3f} | {comparison['pruned']['languages'][code]:.3f} | "
                f"{comparison['random_init']['languages'].get(code, float('nan')):.3f} |"
            )
        lines.append(
            f"| overall | {comparison['unpruned']['overall']:.3f} | {comparison['pruned']['overall']:.3f} | {comparison['random_init']['overall']:.3f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
