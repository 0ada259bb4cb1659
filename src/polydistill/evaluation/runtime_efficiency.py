"""Size and speed of an exported model as it ships: onnxruntime and tokenizers, no torch.

Measured like :func:`polydistill.evaluation.efficiency.measure_efficiency` measures a PyTorch
model (the same texts, seed, warm-up, repeats, batch sizes and threads), so a ladder of stages
compares like for like: latency at batch 1 and throughput at batch ``batch_size`` include
tokenisation, since a service pays for it. ``disk_bytes`` is the ONNX file (and external data).
Peak memory comes from a fresh process that imports only :mod:`polydistill.runtime` (so the
number is what a serving process adds for the model: ``peak_memory_bytes``, over the baseline
of the imported runtime) and its whole peak resident size (``serving_process_peak_bytes``).

Importing this module is cheap and torch-free: it also runs as the memory probe,
``python -m polydistill.evaluation.runtime_efficiency --probe SPEC.json``.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from polydistill.evaluation.efficiency import (
    EfficiencySettings,
    can_reset_peak_rss,
    read_status_kib,
    run_probe,
    time_latency,
    time_throughput,
    timing_fields,
    timing_texts,
)


def measure_runtime_efficiency(
    model_dir: str | Path,
    onnx_file: str | Path,
    texts: Sequence[str],
    settings: EfficiencySettings,
    *,
    parameters: int | None = None,
    embedding_parameters: int | None = None,
) -> dict[str, Any]:
    """The efficiency record of ``onnx_file`` served from ``model_dir`` by :mod:`polydistill.runtime`.

    ``parameters``: the count of the model it was exported from (an ONNX graph stores them
    quantized or fused, so counting its initializers would not compare).
    """
    from polydistill import runtime

    shuffled = timing_texts(texts, settings.seed, "measure_runtime_efficiency")
    onnx_path = Path(onnx_file)
    threads = settings.threads or _default_threads()
    forward = _forward(runtime.load(model_dir, file=onnx_path, threads=threads))
    latencies_ms, _ = time_latency(forward, shuffled, settings, None, None)
    throughput = time_throughput(forward, shuffled, settings, None)
    memory = _peak_memory(model_dir, onnx_path, shuffled[: settings.batch_size], threads) if settings.peak_memory != "skip" else None
    return {
        "parameters": parameters,
        "embedding_parameters": embedding_parameters,
        "disk_bytes": onnx_bytes(onnx_path),
        "peak_memory_bytes": None if memory is None else memory["added"],
        "serving_process_peak_bytes": None if memory is None else memory["total"],
        **timing_fields(latencies_ms, throughput, settings),
        "threads": threads,
        "device": "cpu",
        "runtime": "onnxruntime",
        "timing_includes_tokenization": True,
        "peak_memory_method": None if memory is None else "fresh_process_vmhwm",
    }


def onnx_bytes(onnx_path: Path) -> int:
    """The graph file plus external-data files beside it that share its stem."""
    extra = [p for p in onnx_path.parent.glob(f"{onnx_path.name}.*") if p.is_file()] + [
        p for p in onnx_path.parent.glob(f"{onnx_path.stem}.onnx_data") if p.is_file()
    ]
    return onnx_path.stat().st_size + sum(p.stat().st_size for p in set(extra))


def _default_threads() -> int:
    try:  # torch's default (physical cores) where torch is there, so both runtimes use the same count
        import torch

        return torch.get_num_threads()
    except ImportError:
        return os.cpu_count() or 1


def _forward(model: Any) -> Any:
    return model.logits if hasattr(model, "logits") else model.encode


def _peak_memory(model_dir: str | Path, onnx_path: Path, batch: list[str], threads: int) -> dict[str, int] | None:
    if not can_reset_peak_rss():
        return None
    spec = {"model_dir": str(model_dir), "file": str(onnx_path), "texts": batch, "threads": threads}
    added, total = run_probe("polydistill.evaluation.runtime_efficiency", spec, "PEAK=").split(",")
    return {"added": int(added), "total": int(total)}


def _probe_main(spec_path: str) -> int:
    """A serving process: import the runtime, then load the model and run one batch."""
    import onnxruntime  # noqa: F401  (imported before the baseline: library, not model)
    import tokenizers  # noqa: F401

    from polydistill import runtime

    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    baseline = read_status_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    model = runtime.load(spec["model_dir"], file=spec["file"], threads=int(spec["threads"]))
    _forward(model)(spec["texts"])
    peak = read_status_kib("VmHWM")
    if "torch" in sys.modules:
        print("the serving probe imported torch", file=sys.stderr)
        return 3
    print(f"PEAK={max(0, peak - baseline)},{peak}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--probe":
        sys.exit(_probe_main(sys.argv[2]))
    print("usage: python -m polydistill.evaluation.runtime_efficiency --probe SPEC.json", file=sys.stderr)
    sys.exit(2)
