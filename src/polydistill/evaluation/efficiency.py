"""Size and speed of one model, measured the same way for a teacher and its student.

What each key means (``measure_efficiency`` returns all of them):

- ``parameters``: distinct parameters (tied weights once); buffers such as ``position_ids`` are
  not parameters and are not counted.
- ``embedding_parameters``: the input word-embedding matrix only (vocabulary x hidden), the
  part a vocabulary trim shrinks. Position and token-type embeddings count with the rest.
- ``disk_bytes``: the weight files in ``model_dir`` (``*.safetensors``; else ``*.onnx``; else
  ``*.bin`` other than ``training_args.bin``), searched recursively so sentence-transformers
  modules count. Config and tokenizer files are not weights and are left out. Without a
  directory, the model is serialised to a temporary directory (safetensors) and measured there.
- ``peak_memory_bytes``: on CPU, the resident memory that a *fresh* Python process adds when it
  loads the tokenizer and model and runs one batch of ``batch_size`` texts (Linux ``VmHWM``,
  reset after the imports through ``/proc/self/clear_refs``). A fresh process is used because
  inside a long-lived process the allocator keeps freed memory (the teacher's activations
  would hide the student's) and ``tracemalloc`` does not see torch's allocations; the same probe
  runs for teacher and student, so the two numbers compare. Library set-up (imports, torch's
  thread pool) happens before the baseline; what lazy set-up remains (about 10 MB with
  transformers 5 on CPU) is the same for both models. On CUDA the model's own parameter
  and buffer bytes plus the rise of ``torch.cuda.max_memory_allocated`` over one batch. Where
  the probe cannot run (a model that cannot be saved and reloaded), an in-process estimate is
  used: parameter and buffer bytes plus the rise of the sampled RSS during one batch.
  ``peak_memory_method`` says which one produced the number.
- ``latency_ms_p50`` / ``latency_ms_p95``: one text at a time (batch size 1, no padding),
  tokenisation included since a user pays for it, after ``warmup`` untimed calls, over
  ``repeats`` timed calls cycling through texts drawn (seeded) from the evaluated data.
- ``throughput_per_s``: texts per second in batches of ``batch_size`` (padded to the longest in
  the batch), tokenisation included, over ``throughput_batches`` timed batches after one warm-up.
- ``threads``: the torch intra-op threads used for all of the above (set for the measurement,
  restored afterwards).

Everything runs under ``torch.inference_mode`` on the model's device. Importing this module is
cheap (torch is imported inside the functions), because it also runs as the memory probe:
``python -m polydistill.evaluation.efficiency --probe SPEC.json``.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

EFFICIENCY_KEYS: tuple[str, ...] = (
    "parameters",
    "embedding_parameters",
    "disk_bytes",
    "peak_memory_bytes",
    "latency_ms_p50",
    "latency_ms_p95",
    "throughput_per_s",
)
"""The keys every efficiency record has, in the order tables show them."""

PeakMemoryMethod = Literal["subprocess", "in_process", "skip"]

_WEIGHT_SUFFIX_PREFERENCE: tuple[str, ...] = (".safetensors", ".onnx", ".bin")
_NOT_WEIGHTS = {"training_args.bin", "optimizer.bin", "scheduler.bin"}
_PROBE_TIMEOUT_S = 900


@dataclass(frozen=True)
class EfficiencySettings:
    """How long to measure. The defaults take a few seconds on a small model on CPU."""

    warmup: int = 5
    repeats: int = 50
    batch_size: int = 32
    throughput_batches: int = 5
    max_length: int = 128
    threads: int | None = None
    peak_memory: PeakMemoryMethod = "subprocess"
    seed: int = 0

    @classmethod
    def quick(cls, **overrides: Any) -> EfficiencySettings:
        """Short settings for tests and demos: noisier numbers, a second or two per model."""
        return replace(cls(warmup=2, repeats=10, throughput_batches=2), **overrides)


def count_parameters(model: Any) -> tuple[int, int | None]:
    """Return (all distinct parameters, input word-embedding parameters or None if unknown)."""
    total = sum(parameter.numel() for parameter in model.parameters())
    embeddings = None
    get_embeddings = getattr(model, "get_input_embeddings", None)
    if callable(get_embeddings):
        with contextlib.suppress(NotImplementedError, AttributeError):
            module = get_embeddings()
            if module is not None and getattr(module, "weight", None) is not None:
                embeddings = int(module.weight.numel())
    return int(total), embeddings


def weight_files(model_dir: Path) -> list[Path]:
    """The files holding a saved model's weights (see the module docstring for the rule)."""
    for suffix in _WEIGHT_SUFFIX_PREFERENCE:
        found = sorted(
            path
            for path in Path(model_dir).rglob(f"*{suffix}")
            if path.is_file() and path.name not in _NOT_WEIGHTS and "checkpoint-" not in str(path.relative_to(model_dir))
        )
        if found:
            return found
    return []


def save_model_for_measurement(model: Any, tokenizer: Any, directory: Path) -> bool:
    """Save ``model`` (and tokenizer) into ``directory``; True if a fresh process can reload it."""
    directory.mkdir(parents=True, exist_ok=True)
    if hasattr(model, "save_pretrained"):
        model.save_pretrained(directory)
        if tokenizer is not None and hasattr(tokenizer, "save_pretrained"):
            tokenizer.save_pretrained(directory)
        return True
    if hasattr(model, "save") and hasattr(model, "encode"):  # sentence-transformers
        model.save(str(directory))
        return True
    from safetensors.torch import save_model

    save_model(model, str(directory / "model.safetensors"))
    return False


def measure_efficiency(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    model_dir: str | Path | None = None,
    batch_size: int = 32,
    warmup: int = 5,
    repeats: int = 50,
    throughput_batches: int = 5,
    max_length: int = 128,
    threads: int | None = None,
    peak_memory: PeakMemoryMethod = "subprocess",
    quick: bool = False,
    seed: int = 0,
    run_batch: Callable[[list[str]], Any] | None = None,
) -> dict[str, Any]:
    """Measure size, memory, latency and throughput of ``model`` on ``texts``.

    ``texts`` should come from the evaluated data; the same list (and seed) must be given for a
    teacher and its student. ``quick`` replaces warm-up, repeats and batches by the short
    :meth:`EfficiencySettings.quick` values. ``run_batch`` replaces the default
    "tokenise, then ``model(**inputs)``" step for models with another calling convention.
    ``model_dir`` must hold the same weights as ``model`` when given.
    """
    import torch

    settings = EfficiencySettings(warmup, repeats, batch_size, throughput_batches, max_length, threads, peak_memory, seed)
    if quick:
        settings = EfficiencySettings.quick(
            batch_size=batch_size, max_length=max_length, threads=threads, peak_memory=peak_memory, seed=seed
        )
    shuffled = timing_texts(texts, settings.seed, "measure_efficiency")
    if hasattr(model, "eval"):
        model.eval()  # dropout off: time the model as it is used
    device = _model_device(model)
    forward = run_batch or _default_forward(model, tokenizer, settings.max_length, device)
    parameters, embedding_parameters = count_parameters(model)
    memory_batch = _take_cycled(shuffled, 0, settings.batch_size)

    with contextlib.ExitStack() as stack:
        saved_dir = Path(model_dir) if model_dir is not None else None
        reloadable = saved_dir is not None
        if saved_dir is None or not weight_files(saved_dir):
            saved_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="polydistill-eff-")))
            reloadable = save_model_for_measurement(model, tokenizer, saved_dir)
        disk_bytes = sum(path.stat().st_size for path in weight_files(saved_dir))

        with _torch_threads(settings.threads) as used_threads, torch.inference_mode():
            latencies_ms, mean_tokens = time_latency(forward, shuffled, settings, device, tokenizer)
            throughput = time_throughput(forward, shuffled, settings, device)
            memory_bytes, memory_method = _peak_memory(model, forward, memory_batch, saved_dir, reloadable, settings, used_threads, device)

    return {
        "parameters": parameters,
        "embedding_parameters": embedding_parameters,
        "disk_bytes": int(disk_bytes),
        "peak_memory_bytes": memory_bytes,
        **timing_fields(latencies_ms, throughput, settings),
        "threads": used_threads,
        "device": str(device),
        "dtype": _model_dtype(model),
        "mean_tokens_per_text": mean_tokens,
        "timing_includes_tokenization": True if run_batch is None else None,
        "peak_memory_method": memory_method,
    }


# --- timing ------------------------------------------------------------------------------


def timing_texts(texts: Sequence[str], seed: int, caller: str) -> list[str]:
    """The non-empty texts in a seeded order: the same order for every model measured with one seed."""
    pool = [text for text in texts if isinstance(text, str) and text.strip()]
    if not pool:
        raise ValueError(f"{caller} needs at least one non-empty text from the evaluated data")
    return [pool[i] for i in np.random.default_rng(seed).permutation(len(pool))]


def timing_fields(latencies_ms: Sequence[float], throughput: float, settings: EfficiencySettings) -> dict[str, Any]:
    """The latency and throughput part of an efficiency record, with the settings they were taken at."""
    return {
        "latency_ms_p50": float(np.percentile(latencies_ms, 50)),
        "latency_ms_p95": float(np.percentile(latencies_ms, 95)),
        "throughput_per_s": throughput,
        "latency_batch_size": 1,
        "throughput_batch_size": settings.batch_size,
        "warmup": settings.warmup,
        "repeats": settings.repeats,
        "throughput_batches": settings.throughput_batches,
        "max_length": settings.max_length,
    }


def _default_forward(model: Any, tokenizer: Any, max_length: int, device: Any) -> Callable[[list[str]], Any]:
    if tokenizer is None:
        raise ValueError("measure_efficiency needs a tokenizer unless run_batch is given")

    def forward(batch: list[str]) -> Any:
        inputs = tokenizer(batch, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        inputs = {name: tensor.to(device) for name, tensor in inputs.items()}
        return model(**inputs)

    return forward


def time_latency(
    forward: Callable[[list[str]], Any], texts: list[str], settings: EfficiencySettings, device: Any, tokenizer: Any
) -> tuple[list[float], float | None]:
    latency_texts = texts[: max(1, settings.repeats)]
    for index in range(settings.warmup):
        forward([latency_texts[index % len(latency_texts)]])
    _synchronize(device)
    latencies: list[float] = []
    for index in range(max(1, settings.repeats)):
        text = latency_texts[index % len(latency_texts)]
        start = time.perf_counter()
        forward([text])
        _synchronize(device)
        latencies.append((time.perf_counter() - start) * 1000.0)
    mean_tokens = None
    if tokenizer is not None:
        lengths = [len(ids) for ids in tokenizer(latency_texts, truncation=True, max_length=settings.max_length)["input_ids"]]
        mean_tokens = float(np.mean(lengths))
    return latencies, mean_tokens


def time_throughput(forward: Callable[[list[str]], Any], texts: list[str], settings: EfficiencySettings, device: Any) -> float:
    forward(_take_cycled(texts, 0, settings.batch_size))  # warm-up at the timed shape
    _synchronize(device)
    items = 0
    start = time.perf_counter()
    for batch_index in range(max(1, settings.throughput_batches)):
        batch = _take_cycled(texts, batch_index * settings.batch_size, settings.batch_size)
        forward(batch)
        items += len(batch)
    _synchronize(device)
    return items / (time.perf_counter() - start)


def _take_cycled(texts: list[str], start: int, count: int) -> list[str]:
    return [texts[(start + offset) % len(texts)] for offset in range(count)]


@contextlib.contextmanager
def _torch_threads(threads: int | None) -> Iterator[int]:
    import torch

    previous = torch.get_num_threads()
    if threads is not None and threads != previous:
        torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)


def _model_device(model: Any) -> Any:
    import torch

    with contextlib.suppress(StopIteration, AttributeError, TypeError):
        return next(model.parameters()).device
    return torch.device("cpu")


def _model_dtype(model: Any) -> str | None:
    with contextlib.suppress(StopIteration, AttributeError, TypeError):
        return str(next(model.parameters()).dtype).replace("torch.", "")
    return None


def _synchronize(device: Any) -> None:
    if getattr(device, "type", "cpu") == "cuda":
        import torch

        torch.cuda.synchronize(device)


# --- peak memory -------------------------------------------------------------------------


def _peak_memory(
    model: Any,
    forward: Callable[[list[str]], Any],
    batch: list[str],
    saved_dir: Path,
    reloadable: bool,
    settings: EfficiencySettings,
    threads: int,
    device: Any,
) -> tuple[int | None, str]:
    if settings.peak_memory == "skip":
        return None, "skipped"
    if getattr(device, "type", "cpu") == "cuda":
        return _cuda_peak_memory(model, forward, batch, device), "cuda_max_memory_allocated"
    if settings.peak_memory == "subprocess" and reloadable and can_reset_peak_rss():
        try:
            return _subprocess_peak_memory(model, saved_dir, batch, settings, threads), "fresh_process_vmhwm"
        except (RuntimeError, subprocess.TimeoutExpired, OSError, ValueError) as error:
            warnings.warn(
                f"peak memory probe in a fresh process failed ({error}); using the in-process estimate",
                RuntimeWarning,
                stacklevel=3,
            )
    return _in_process_peak_memory(model, forward, batch), "in_process_rss_sampling"


def _tensor_bytes(model: Any) -> int:
    total = sum(p.numel() * p.element_size() for p in model.parameters())
    with contextlib.suppress(AttributeError, TypeError):
        total += sum(b.numel() * b.element_size() for b in model.buffers())
    return int(total)


def _cuda_peak_memory(model: Any, forward: Callable[[list[str]], Any], batch: list[str], device: Any) -> int:
    import torch

    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    forward(batch)
    torch.cuda.synchronize(device)
    return _tensor_bytes(model) + int(torch.cuda.max_memory_allocated(device) - before)


def _in_process_peak_memory(model: Any, forward: Callable[[list[str]], Any], batch: list[str]) -> int:
    import psutil

    process = psutil.Process()
    baseline = process.memory_info().rss
    peak = baseline
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, process.memory_info().rss)
            time.sleep(0.0005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        forward(batch)
    finally:
        stop.set()
        sampler.join()
    peak = max(peak, process.memory_info().rss)
    return _tensor_bytes(model) + int(peak - baseline)


def can_reset_peak_rss() -> bool:
    return sys.platform.startswith("linux") and os.access("/proc/self/clear_refs", os.W_OK)


def _subprocess_peak_memory(model: Any, saved_dir: Path, batch: list[str], settings: EfficiencySettings, threads: int) -> int:
    model_class = type(model)
    spec = {
        "model_dir": str(saved_dir),
        "model_class": f"{model_class.__module__}:{model_class.__qualname__}",
        "texts": batch,
        "max_length": settings.max_length,
        "threads": threads,
    }
    return int(run_probe("polydistill.evaluation.efficiency", spec, "PEAK_BYTES="))


def run_probe(module: str, spec: dict[str, Any], marker: str, *, timeout: float = _PROBE_TIMEOUT_S) -> str:
    """Run ``python -m module --probe SPEC.json`` in a fresh process; the value it printed after ``marker``."""
    with tempfile.TemporaryDirectory(prefix="polydistill-probe-") as probe_dir:
        spec_path = Path(probe_dir) / "spec.json"
        spec_path.write_text(json.dumps(spec), encoding="utf-8")
        env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
        # The probe imports polydistill the way this process did, installed or not.
        package_root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
        completed = subprocess.run(
            [sys.executable, "-m", module, "--probe", str(spec_path)], capture_output=True, text=True, timeout=timeout, env=env, check=False
        )
    if completed.returncode != 0:
        raise RuntimeError(f"probe exited with {completed.returncode}: {completed.stderr.strip()[-2000:]}")
    for line in reversed(completed.stdout.splitlines()):
        if line.startswith(marker):
            return line[len(marker) :]
    raise RuntimeError(f"probe printed no result: {completed.stdout[-500:]}")


def read_status_kib(field: str) -> int:
    status = Path("/proc/self/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", status, flags=re.MULTILINE)
    if match is None:
        raise RuntimeError(f"/proc/self/status has no {field}")
    return int(match.group(1)) * 1024


def _warm_up_torch_runtime() -> None:
    """Start torch's thread pool and kernels on a toy tensor, so the probe's baseline has them."""
    import torch

    with torch.inference_mode():
        x = torch.randn(2, 4, 8, 16)
        scores = torch.nn.functional.scaled_dot_product_attention(x, x, x)
        torch.nn.functional.layer_norm(torch.nn.functional.gelu(torch.nn.Linear(16, 16)(scores)), (16,)).softmax(-1)


def _probe_main(spec_path: str) -> int:
    """Entry of the fresh process: load tokenizer and model, run one batch, print peak bytes."""
    import torch

    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    torch.set_num_threads(int(spec["threads"]))
    module_name, _, qualname = spec["model_class"].partition(":")
    model_class: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        model_class = getattr(model_class, part)
    uses_pretrained_api = hasattr(model_class, "from_pretrained")
    if uses_pretrained_api:
        # Imported and set up before the baseline: library overhead, not the model's cost.
        import safetensors.torch  # noqa: F401
        from transformers import AutoConfig, AutoTokenizer

        AutoConfig.from_pretrained(spec["model_dir"], local_files_only=True)
    _warm_up_torch_runtime()

    baseline = read_status_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    with torch.inference_mode():
        if uses_pretrained_api:
            tokenizer = AutoTokenizer.from_pretrained(spec["model_dir"], local_files_only=True)
            model = model_class.from_pretrained(spec["model_dir"], local_files_only=True)
            model.eval()
            inputs = tokenizer(spec["texts"], padding=True, truncation=True, max_length=spec["max_length"], return_tensors="pt")
            model(**inputs)
        else:  # sentence-transformers and other classes constructed from a directory
            model = model_class(spec["model_dir"])
            model.encode(spec["texts"], batch_size=len(spec["texts"]))
    peak = read_status_kib("VmHWM")
    print(f"PEAK_BYTES={max(0, peak - baseline)}")
    return 0


def settings_dict(settings: EfficiencySettings) -> dict[str, Any]:
    """The settings as plain data, for the metrics file."""
    return asdict(settings)


def settings_for(mode: str, *, max_length: int) -> EfficiencySettings | None:
    """A run config's ``evaluation.efficiency`` ("full", "quick" or "off") as settings."""
    if mode == "off":
        return None
    return EfficiencySettings(max_length=max_length) if mode == "full" else EfficiencySettings.quick(max_length=max_length)


def measure_teacher_and_student(
    settings: EfficiencySettings,
    *,
    student: Any,
    tokenizer: Any,
    student_texts: list[str],
    student_dir: str | Path | None,
    teacher: Any = None,
    teacher_tokenizer: Any = None,
    teacher_texts: list[str] | None = None,
    teacher_dir: str | Path | None = None,
    max_length: int,
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """Both models measured the same way, one after the other in this process (teacher first).

    Timed inputs are truncated like the evaluated ones (``max_length``). Returns
    (teacher's record or None, student's record).
    """
    options = settings_dict(settings) | {"max_length": max_length}
    teacher_record = None
    if teacher is not None:
        teacher_record = measure_efficiency(
            teacher, teacher_tokenizer or tokenizer, teacher_texts or student_texts, model_dir=teacher_dir, **options
        )
    return teacher_record, measure_efficiency(student, tokenizer, student_texts, model_dir=student_dir, **options)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--probe":
        sys.exit(_probe_main(sys.argv[2]))
    print("usage: python -m polydistill.evaluation.efficiency --probe SPEC.json", file=sys.stderr)
    sys.exit(2)


def median_latency_ms(model: Any, tokenizer: Any, texts: Sequence[str], settings: EfficiencySettings) -> float:
    """Median batch-1 latency of ``model`` over ``texts`` in ms (warm-up first, ``settings.threads`` threads):
    what a search trial that minimises latency compares, without the memory probe of :func:`measure_efficiency`."""
    import torch

    device = _model_device(model)
    forward = _default_forward(model, tokenizer, settings.max_length, device)
    with _torch_threads(settings.threads), torch.inference_mode():
        latencies, _ = time_latency(forward, timing_texts(texts, settings.seed, "median_latency_ms"), settings, device, None)
    return float(np.median(latencies))
