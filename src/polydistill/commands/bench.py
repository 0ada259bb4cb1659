"""``polydistill bench PATH [PATH ...]``: time model directories and ONNX files side by side, in one run.

    polydistill bench runs/demo/teacher runs/demo/student runs/demo/student/onnx/model_qint8_avx512_vnni.onnx

A directory is timed in PyTorch, an ``.onnx`` file in onnxruntime through :mod:`polydistill.runtime`
(the torch-free serving path, tokenisation included), each the same way as a run's report times
its models: latency at batch 1 (p50/p95), throughput at ``--batch-size``, size on disk and the peak
memory a fresh process adds. The first PATH is the baseline of the speed-up column. Machines are
noisy: compare numbers from one invocation, with the thread count it states.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="time model directories and ONNX files side by side",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="model directory (PyTorch) or .onnx file (onnxruntime)")
    parser.add_argument(
        "--data", default="catalogs:django", metavar="SOURCE", help="texts to time on (default: catalogs:django, test split)"
    )
    parser.add_argument("--text-column", default=None, help="column of a data file holding the text (default: text)")
    parser.add_argument("--threads", type=int, default=None, help="threads for every model (default: torch's default)")
    parser.add_argument("--batch-size", type=int, default=32, help="batch size of the throughput measurement")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--quick", action="store_true", help="fewer repeats (noisier)")
    parser.add_argument("--json", metavar="FILE", help="also write the records as JSON")
    parser.set_defaults(func=run_bench)


def run_bench(args: argparse.Namespace) -> int:
    import json

    from rich.table import Table

    from polydistill.atomic import atomic_write_text
    from polydistill.console import console
    from polydistill.errors import ConfigError
    from polydistill.evaluation.efficiency import EfficiencySettings, measure_efficiency, settings_dict
    from polydistill.evaluation.report.summary import format_efficiency
    from polydistill.evaluation.runtime_efficiency import measure_runtime_efficiency
    from polydistill.models.checks import refuse_lfs_pointer

    if args.batch_size < 1 or args.max_length < 2 or (args.threads is not None and args.threads < 1):
        raise ConfigError("--batch-size and --threads must be >= 1, --max-length >= 2")
    paths = [Path(path) for path in args.paths]
    for path in paths:
        if not path.exists():
            raise ConfigError(f"{path}: no such model directory or ONNX file")
        if path.is_file() and path.suffix != ".onnx":
            raise ConfigError(f"{path}: expected a model directory or an .onnx file")
        if path.is_file():
            refuse_lfs_pointer(path)
    if args.json and (Path(args.json).is_dir() or not Path(args.json).parent.is_dir()):
        raise ConfigError(f"--json {args.json}: expected a file path in an existing directory")
    texts = _texts(args)
    threads = args.threads or _torch_threads()
    settings = EfficiencySettings.quick(threads=threads, batch_size=args.batch_size, max_length=args.max_length)
    if not args.quick:
        settings = EfficiencySettings(threads=threads, batch_size=args.batch_size, max_length=args.max_length)
    records: list[tuple[Path, dict[str, Any]]] = []
    for path in paths:
        console.print(f"[bold]Timing[/] {path}")
        if path.suffix == ".onnx":
            record = measure_runtime_efficiency(_model_dir_of(path), path, texts, settings)
        else:
            model, tokenizer = _load_torch(path)
            record = measure_efficiency(model, tokenizer, texts, model_dir=path, **settings_dict(settings))
            record["runtime"] = "pytorch"
        records.append((path, record))

    table = Table(title=f"batch 1 latency and batch {args.batch_size} throughput, {threads} threads, tokenisation included")
    for column in ("model", "runtime", "size on disk", "peak memory", "p50", "p95", "texts/s", "speed-up (p50)"):
        table.add_column(column, justify="left" if column in ("model", "runtime") else "right")
    baseline = records[0][1]["latency_ms_p50"]
    for path, record in records:
        table.add_row(
            str(path),
            record.get("runtime", "pytorch"),
            format_efficiency("disk_bytes", record["disk_bytes"]),
            format_efficiency("peak_memory_bytes", record["peak_memory_bytes"]),
            format_efficiency("latency_ms_p50", record["latency_ms_p50"]),
            format_efficiency("latency_ms_p95", record["latency_ms_p95"]),
            format_efficiency("throughput_per_s", record["throughput_per_s"]),
            f"{baseline / record['latency_ms_p50']:.1f}x",
        )
    console.print(table)
    if args.json:
        atomic_write_text(Path(args.json), json.dumps({str(path): record for path, record in records}, indent=2))
    return 0


def _texts(args: argparse.Namespace) -> list[str]:
    from datasets import DatasetDict

    from polydistill.data.sources import is_builtin, load_source
    from polydistill.errors import DataError

    loaded = (
        load_source(args.data)
        if is_builtin(args.data)
        else load_source(args.data, text_column=args.text_column or "text", label_column=None)
    )
    if isinstance(loaded, DatasetDict):
        loaded = loaded["test"] if "test" in loaded else next(iter(loaded.values()))
    column = "translation" if "translation" in loaded.column_names else "text"
    texts = [str(text) for text in loaded[column] if str(text).strip()]
    if not texts:
        raise DataError(f"{args.data}: no texts to time on")
    return texts


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def _model_dir_of(onnx_file: Path) -> Path:
    """The model directory an ONNX file belongs to (sentence-transformers keep it in ``onnx/``)."""
    return onnx_file.parent.parent if onnx_file.parent.name == "onnx" else onnx_file.parent


def _load_torch(directory: Path):
    from polydistill.models.checks import check_model_dir, read_json_object
    from polydistill.models.loading import load_classifier, load_encoder, load_tokenizer

    check_model_dir(directory, reference=str(directory))
    architectures = read_json_object(directory / "config.json", reference=str(directory)).get("architectures") or []
    classifier = any(name.endswith("ForSequenceClassification") for name in architectures) and not (directory / "modules.json").is_file()
    model = load_classifier(directory)[0] if classifier else load_encoder(directory)
    return model.eval(), load_tokenizer(directory)
