"""What a run writes so that its result can be traced and reproduced.

``config.yaml`` is the resolved config (``polydistill run OUT/config.yaml`` reruns it) and
``run.json`` names the package versions and the teacher that taught the student by the sha256 of
its weights: the fine-tuned teacher when ``teacher.finetune`` made one, with the base it was
fine-tuned from beside it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from polydistill.atomic import atomic_write_text
from polydistill.config import RunConfig
from polydistill.data.sources import is_builtin
from polydistill.errors import ConfigError
from polydistill.output_dir import RUN_RECORD

#: package versions written beside every run, so a result can be reproduced
RECORDED_PACKAGES = (
    "polydistill",
    "torch",
    "transformers",
    "tokenizers",
    "safetensors",
    "accelerate",
    "datasets",
    "sentence-transformers",
)


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in RECORDED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def fingerprint_weights(model_dir: Path) -> str:
    """sha256 over the weight files of a model directory (names and bytes), in name order.

    Only the files' bytes are read: a ``.bin`` pickle is hashed, never unpickled.

    Remembered per file state (name, size, mtime) in this process: a run needs the teacher's
    fingerprint for run.json and again for the teacher-output cache key.
    """
    model_dir = Path(model_dir).resolve()
    files = sorted(p for p in model_dir.rglob("*") if p.suffix in {".safetensors", ".bin"} and p.is_file())
    if not files:
        raise ConfigError(f"model directory {model_dir} has no weight files to fingerprint")
    state = tuple((p.relative_to(model_dir).as_posix(), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    return _hash_files(model_dir, state)


@functools.lru_cache(maxsize=16)
def _hash_files(model_dir: Path, state: tuple[tuple[str, int, int], ...]) -> str:
    digest = hashlib.sha256()
    for name, _, _ in state:
        digest.update(name.encode())
        with (model_dir / name).open("rb") as handle:
            while chunk := handle.read(1 << 22):
                digest.update(chunk)
    return digest.hexdigest()


def write_run_record(config: RunConfig, output_dir: Path, *, teacher_dir: Path, base_teacher_dir: Path) -> None:
    """The resolved config, versions, and the teacher that teaches the student.

    ``teacher_dir`` is the teacher as used; ``base_teacher_dir`` the model the config names. They
    differ when ``teacher.finetune`` fine-tuned the base first: then both are recorded. What an
    earlier attempt of the same run recorded (its status, its resumptions) is kept.
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(output_dir / "config.yaml", yaml.safe_dump(resolved_config(config, output_dir), sort_keys=False))
    teacher: dict[str, Any] = {"model": config.teacher.model, "directory": str(teacher_dir), "sha256": fingerprint_weights(teacher_dir)}
    if Path(teacher_dir).resolve() != Path(base_teacher_dir).resolve():
        teacher["fine_tuned_from"] = {"directory": str(base_teacher_dir), "sha256": fingerprint_weights(base_teacher_dir)}
    update_run_record(
        output_dir,
        versions=package_versions(),
        teacher=teacher,
        config_file=str(config.source_file) if config.source_file else None,
    )


#: run.json's ``status``: running -> trained (student saved) -> finished (evaluated, reported); or failed; or pruned (a search trial stopped early)
RUN_STATUSES = ("running", "trained", "finished", "failed", "pruned")


def read_run_record(output_dir: Path) -> dict[str, Any]:
    """``run.json`` of a run directory ({} when there is none or it does not parse)."""
    try:
        record = json.loads((output_dir / RUN_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def update_run_record(output_dir: Path, **fields: Any) -> dict[str, Any]:
    """Set ``fields`` in ``run.json`` (written atomically), keeping the rest."""
    if "status" in fields and fields["status"] not in RUN_STATUSES:
        raise ValueError(f"unknown run status {fields['status']!r}")
    record = read_run_record(output_dir) | fields
    atomic_write_text(output_dir / RUN_RECORD, json.dumps(record, indent=2) + "\n")
    return record


def resolved_config(config: RunConfig, output_dir: Path) -> dict[str, Any]:
    """The config with input paths made absolute, so the saved copy runs from anywhere."""
    data = config.model_dump(mode="json", exclude_none=True)
    data["output_dir"] = str(output_dir)

    def absolute(sources: dict[str, Any] | list[dict[str, Any]] | None) -> None:
        for section in sources if isinstance(sources, list) else [sources] if sources else []:
            if not is_builtin(section["path"]):
                section["path"] = str(config.resolve_path(section["path"]))

    data["teacher"]["model"] = config.resolve_model(config.teacher.model)  # a directory beside the config: absolute
    if config.student.model:
        data["student"]["model"] = config.resolve_model(config.student.model)
    if config.student.trim_vocabulary:
        for key in ("corpus", "heldout"):
            data["student"]["trim_vocabulary"][key] = [config.resolve_corpus(spec) for spec in getattr(config.student.trim_vocabulary, key)]
    absolute(data["data"]["train"])
    absolute(data["data"].get("eval"))
    if data["teacher"].get("finetune"):
        absolute(data["teacher"]["finetune"]["data"])
    return data


def describe_student(config: RunConfig) -> str:
    """One line a report can use as the student's name, e.g. "layers [0, 6, 11] of X, vocabulary of 13 languages"."""
    student = config.student
    parts = []
    keep = student.keep_layers
    if keep is not None:
        parts.append(f"layers {keep}" if isinstance(keep, list) else f"{keep} layers")
    parts[-1:] = [f"{parts[-1]} of {student.model or config.teacher.model}"] if parts else [student.model or config.teacher.model]
    if student.is_narrower:
        parts.append(f"hidden {student.hidden_size}, heads {student.num_attention_heads}, FFN {student.intermediate_size}")
    if student.trim_vocabulary:
        parts.append(f"vocabulary trimmed to {len(student.trim_vocabulary.languages)} languages")
    return ", ".join(parts)


def training_data_description(config: RunConfig) -> str:
    """The training sources as a reader names them: their paths, with each one's share when weighted."""
    shares = config.data.source_shares
    sources = [source for _, source in config.data.train_sources]
    if shares is None:
        return ", ".join(source.path for source in sources)
    return ", ".join(f"{source.path} ({share:.0%})" for source, share in zip(sources, shares, strict=True))


def run_summary(config: RunConfig) -> dict[str, Any]:
    """What metrics.json and the report say about the run's configuration."""
    return {
        "teacher": config.teacher.model,
        "student": describe_student(config),
        "student_config": config.student.model_dump(mode="json", exclude_none=True),
        "data": training_data_description(config),
        "objectives": {name: section.model_dump() for name, section in config.objectives.enabled()},
    }
