"""int8 variants beyond the pipeline's recipes, on a shipped fp32 graph, scored per language.

    python benchmarks/int8_variants.py runs/compress-ladder/ladder

RUN_DIR is a run with a ``compress`` section (``benchmarks/compress_ladder.py`` writes one): its
pruned student's ``onnx/model.onnx`` is quantized with attention left fp32, with ``reduce_range``,
and without graph fusion first, each compared with the fp32 graph on the run's evaluation data
(agreement over all texts, the lowest language, the languages failing 1 point / 99%). As a scale
for those agreements, Gaussian noise of a few sizes is added to the fp32 logits.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    from transformers import AutoConfig

    from polydistill import runtime
    from polydistill.compress.quantize import quantize_int8
    from polydistill.config import load_config
    from polydistill.models.loading import load_tokenizer
    from polydistill.tasks import get_task

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    args = parser.parse_args(argv)
    config = load_config(args.run_dir / "config.yaml")
    task = get_task(config.task)
    model_dir = args.run_dir / "pruned"
    teacher_dir = args.run_dir / "teacher" if (args.run_dir / "teacher").is_dir() else model_dir
    data = task.read_data(config, tokenizer=load_tokenizer(model_dir), teacher_config=AutoConfig.from_pretrained(teacher_dir))
    probe = task.quality_probe(config, data.evaluation, data.label_names)
    reference = probe.outputs(probe.runtime_predict(runtime.load(model_dir)), "student")
    for noise in (1e-3, 1e-2, 3e-2):
        noisy = reference + np.random.default_rng(0).normal(0, noise, reference.shape).astype(np.float32)
        print(f"fp32 + noise {noise}: agreement {float((noisy.argmax(1) == reference.argmax(1)).mean()):.4f}")
    variants = {
        "attention fp32": {"exclude_op_types": ("Attention",), "quantize_embeddings": False},
        "reduce_range": {"reduce_range": True, "quantize_embeddings": False},
        "no fusion first": {"optimize": False, "quantize_embeddings": False},
    }
    with tempfile.TemporaryDirectory() as scratch:
        for name, kwargs in variants.items():
            path = Path(scratch) / "candidate.onnx"
            result = quantize_int8(model_dir / "onnx" / "model.onnx", path, **kwargs)
            outputs = probe.outputs(probe.runtime_predict(runtime.load(model_dir, file=path)), "student")
            check = probe.compare(reference, outputs, max_drop=0.01, min_agreement=0.99)
            lowest = min(entry["agreement"] for entry in check.languages.values())
            pooled = float((outputs.argmax(1) == reference.argmax(1)).mean())
            print(f"{name}: {result.bytes / 1e6:.2f} MB, agreement {pooled:.4f}, lowest language {lowest:.3f}, failing {check.failed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
