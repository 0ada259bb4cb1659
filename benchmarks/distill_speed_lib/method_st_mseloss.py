"""Method (c) for embeddings: sentence-transformers' multilingual distillation recipe (MSELoss)."""

from __future__ import annotations

import shutil
import time
from typing import Any

from distill_speed_lib.measure import method_record, peak_rss_mib
from distill_speed_lib.settings import (
    Settings,
    peer_training_arguments,
    read_prepared,
    recipe_dict,
    task_dir,
    validated,
)


def child_st_mseloss(settings: Settings, task: str) -> dict[str, Any]:
    """The peer for embeddings: sentence-transformers' multilingual distillation recipe
    (``examples/sentence_transformer/training/multilingual/make_multilingual.py``): the teacher
    embeds every English source once (``teacher.encode``, inside the timed region), and the student
    learns both columns, English and translation, with ``MSELoss`` in ``SentenceTransformerTrainer``."""
    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.sentence_transformer.losses import MSELoss
    from transformers import set_seed

    from polydistill.data.sources import read_pairs

    prepared = read_prepared(settings, task)
    config = validated(recipe_dict(task, settings), task)
    prefix = config.student_prefix
    output_dir = task_dir(settings, task) / "st-mseloss" / "run"
    if output_dir.exists():
        shutil.rmtree(output_dir)

    start = time.perf_counter()
    teacher = SentenceTransformer(prepared["teacher_dir"], device="cpu")
    teacher.max_seq_length = config.data.max_length
    student = SentenceTransformer(prepared["student_init"], device="cpu")
    student.max_seq_length = config.data.max_length
    pairs = read_pairs(config.data.train, config, tokenizer=teacher.tokenizer)
    dataset = Dataset.from_dict({"english": list(pairs["text"]), "non_english": list(pairs["translation"])})

    def teacher_labels(batch):
        return {"label": teacher.encode(batch["english"], prompt=config.teacher.prefix or None, batch_size=64, show_progress_bar=False)}

    label_start = time.perf_counter()
    dataset = dataset.map(teacher_labels, batched=True, batch_size=30000)
    teacher_pass = time.perf_counter() - label_start
    set_seed(config.seed)
    arguments = SentenceTransformerTrainingArguments(
        output_dir=str(output_dir / "checkpoints"), prompts=prefix or None, **peer_training_arguments(config)
    )
    trainer = SentenceTransformerTrainer(model=student, args=arguments, train_dataset=dataset, loss=MSELoss(student))
    train_start = time.perf_counter()
    output = trainer.train()
    optimisation = time.perf_counter() - train_start
    saved = output_dir / "student"
    student.save(str(saved))
    end_to_end = time.perf_counter() - start
    peak = peak_rss_mib()
    metrics = output.metrics
    return method_record(
        task,
        "st-mseloss",
        settings,
        teacher_pass=teacher_pass,
        optimisation=optimisation,
        end_to_end=end_to_end,
        examples_seen=round(metrics["train_samples_per_second"] * metrics["train_runtime"]),
        train_rows=len(dataset),
        peak=peak,
        student_dir=saved,
        objectives=["MSELoss (normalised vectors)"],
        sampling="random",
    )
