"""Teach the teacher the task first: many users start from an encoder that has not learned it.

Fine-tuning is distillation with no teacher and only the ``labels`` objective, so it runs on the
same trainer, with the same checkpoints, mixed precision and multi-process support. The result
is saved under the run directory, and (with ``teacher.cache`` on, the default) also in
polydistill's cache under its :func:`finetune_key`, so another run that fine-tunes the same base
model on the same data with the same arguments (a rerun, the quick and the full demo, a search's
trials) copies it instead of training it again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from polydistill.atomic import atomic_directory
from polydistill.config import RunConfig
from polydistill.console import console
from polydistill.data.sources import is_builtin, read_labelled
from polydistill.models.loading import load_classifier, load_tokenizer, save_model_dir
from polydistill.objectives import Labels, ObjectiveSet
from polydistill.training.arguments import training_arguments
from polydistill.training.checkpoints import CHECKPOINTS_DIRNAME, remove_rolling_checkpoints
from polydistill.training.features import DistillationCollator, tokenize_for_distillation
from polydistill.training.guard import check_finite_weights
from polydistill.training.provenance import fingerprint_weights
from polydistill.training.trainer import DistillationTrainer

FINETUNE_RECORD = "finetune.json"
#: where a run keeps its fine-tuned teacher
FINETUNED_TEACHER_DIRNAME = "teacher"


def finetune_key(config: RunConfig, base_dir: Path) -> str:
    """Identifies a fine-tuning: the base model, the data and the training arguments."""
    finetune = config.teacher.finetune
    assert finetune is not None  # callers fine-tune only configs with a teacher.finetune section
    payload = {
        "base": fingerprint_weights(base_dir),
        "data": finetune.data.model_dump(mode="json"),
        "data_path": str(config.resolve_path(finetune.data.path)) if not is_builtin(finetune.data.path) else finetune.data.path,
        "training": finetune.training,
        "freeze_word_embeddings": finetune.freeze_word_embeddings,
        "max_length": config.data.max_length,
        "seed": config.seed,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def carry_over_finetuned_teacher(config: RunConfig, base_dir: Path, previous_run: Path, output_dir: Path) -> bool:
    """Copy the fine-tuned teacher of the run moved aside to ``previous_run`` when it is this config's
    (same base, data and training): ``--overwrite`` reruns the distillation, not the fine-tuning."""
    previous = previous_run / FINETUNED_TEACHER_DIRNAME
    record = previous / FINETUNE_RECORD
    try:
        same = json.loads(record.read_text()).get("key") == finetune_key(config, base_dir)
    except (OSError, ValueError, AttributeError):
        return False
    if same:
        shutil.copytree(previous, output_dir / FINETUNED_TEACHER_DIRNAME, ignore=shutil.ignore_patterns(CHECKPOINTS_DIRNAME))
    return same


def finetune_teacher(config: RunConfig, base_dir: Path, output_dir: Path, *, label_names: list[str] | None) -> Path:
    """Fine-tune ``base_dir`` on ``teacher.finetune.data`` and return the saved classifier's directory."""
    finetune = config.teacher.finetune
    assert finetune is not None  # callers fine-tune only configs with a teacher.finetune section
    key = finetune_key(config, base_dir)
    record = output_dir / FINETUNE_RECORD
    if record.is_file() and json.loads(record.read_text()).get("key") == key:
        console.print(f"[bold]Teacher[/] reusing the fine-tuned teacher in {output_dir}")
        return output_dir
    cached = finetuned_teachers_root() / key
    if config.teacher.cache and (cached / FINETUNE_RECORD).is_file():
        console.print(f"[bold]Teacher[/] reusing the fine-tuned teacher cached in {cached} (same base model, data and training)")
        # hard links where the filesystem allows: a search's every trial reuses the teacher without a copy of it
        shutil.copytree(cached, output_dir, dirs_exist_ok=True, copy_function=_link_or_copy)
        return output_dir

    console.print(f"[bold]Teacher[/] fine-tuning {config.teacher.model} on {finetune.data.path}")
    tokenizer = load_tokenizer(base_dir, config.teacher.trust_remote_code)
    data = read_labelled(finetune.data, config, tokenizer=tokenizer, label_names=label_names)
    names = label_names or list(data.features["label"].names)
    model, _ = load_classifier(base_dir, label_names=names, trust_remote_code=config.teacher.trust_remote_code)
    if finetune.freeze_word_embeddings:
        model.get_input_embeddings().requires_grad_(False)
    trainer = DistillationTrainer(
        model=model,
        args=training_arguments(config, output_dir / CHECKPOINTS_DIRNAME, finetune.training),
        teacher=None,
        objectives=ObjectiveSet({"labels": Labels()}, {"labels": 1.0}),
        train_dataset=tokenize_for_distillation(data, tokenizer, max_length=config.data.max_length),
        data_collator=DistillationCollator(tokenizer),
        processing_class=tokenizer,
    )
    trainer.train()  # under torchrun every rank trains its shard and DDP keeps the ranks' weights equal
    check_finite_weights(model, "the fine-tuned teacher")
    with trainer.args.main_process_first(desc="saving the fine-tuned teacher"):  # the other ranks wait, then read it
        if trainer.is_world_process_zero():
            save_model_dir(model, tokenizer, output_dir)
            record.write_text(json.dumps({"key": key, "base": str(base_dir)}, indent=2))
            remove_rolling_checkpoints(output_dir, finetune.training)
            if config.teacher.cache:
                _store_in_cache(output_dir, cached)
    return output_dir


def finetuned_teachers_root() -> Path:
    """``finetuned-teachers`` in polydistill's cache: one directory per :func:`finetune_key`."""
    from polydistill.models.offline import cache_root

    return cache_root() / "finetuned-teachers"


def _link_or_copy(source: str, destination: str) -> None:
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


def _store_in_cache(teacher_dir: Path, destination: Path) -> None:
    """A copy of the fine-tuned teacher under its key; a cache that cannot be written costs only the reuse."""
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
        with atomic_directory(destination) as staging:
            shutil.copytree(teacher_dir, staging, dirs_exist_ok=True, ignore=shutil.ignore_patterns(CHECKPOINTS_DIRNAME))
    except OSError as error:
        console.print(f"[yellow]Teacher[/] not cached for reuse ({error})")
