"""How much of each way of batching is padding (random batches against length-grouped ones)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from distill_speed_lib.settings import (
    Settings,
    peer_training_arguments,
    read_prepared,
    recipe_dict,
    validated,
)


def padded_share(lengths: np.ndarray, batches: list[np.ndarray]) -> float:
    """Padding tokens over real tokens when every batch is padded to its longest row."""
    padded = sum(len(batch) * int(lengths[batch].max()) for batch in batches)
    return padded / int(lengths.sum()) - 1


def child_padding(settings: Settings, task: str) -> dict[str, Any]:
    """How much padding each way of batching the training data costs, on the features polydistill
    trains on: random batches (the peers), length-grouped batches (polydistill's recipe), and the
    teacher-cache build's batches (distinct teacher inputs in data order) against length-sorted ones.
    Explains speed differences without another timed run."""
    import torch
    from transformers import AutoTokenizer
    from transformers.trainer_pt_utils import LengthGroupedSampler

    from polydistill.models.loading import load_tokenizer
    from polydistill.training.features import tokenize_for_distillation
    from polydistill.training.teacher_cache import distinct_teacher_inputs

    prepared = read_prepared(settings, task)
    config = validated(recipe_dict(task, settings), task)
    teacher_tokenizer = load_tokenizer(Path(prepared["teacher_dir"]))
    student_tokenizer = AutoTokenizer.from_pretrained(prepared["student_init"])
    if task == "classification":
        from polydistill.data.sources import TEACHER_TEXT, read_labelled

        data = read_labelled(config.data.train, config, tokenizer=teacher_tokenizer, label_names=None)
        teacher_column = TEACHER_TEXT
    else:
        from polydistill.data.sources import read_pairs

        data = read_pairs(config.data.train, config, tokenizer=teacher_tokenizer)
        teacher_column = None
    features = tokenize_for_distillation(
        data,
        student_tokenizer,
        teacher_tokenizer=teacher_tokenizer,
        max_length=config.data.max_length,
        teacher_text_column=teacher_column,
        prefix=config.student_prefix,
        teacher_prefix=config.teacher.prefix,
    )
    student = np.array([len(ids) for ids in features["input_ids"]])
    teacher = np.array([len(ids) for ids in features["teacher_input_ids"]]) if "teacher_input_ids" in features.column_names else student
    batch = int(config.training["per_device_train_batch_size"])
    generator = torch.Generator().manual_seed(config.seed)
    random_order = torch.randperm(len(student), generator=generator).numpy()
    grouped_order = np.array(list(LengthGroupedSampler(batch, lengths=student.tolist(), generator=generator)))

    def batches(order: np.ndarray, size: int) -> list[np.ndarray]:
        return [order[i : i + size] for i in range(0, len(order), size)]

    unique_rows, _ = distinct_teacher_inputs(features)
    cached = teacher[unique_rows]
    cache_batch = int(peer_training_arguments(config)["per_device_eval_batch_size"])
    result = {
        "batch_size": batch,
        "student_tokens_mean": float(student.mean()),
        "teacher_tokens_mean": float(teacher.mean()),
        "random_batches": {
            "student": padded_share(student, batches(random_order, batch)),
            "teacher": padded_share(teacher, batches(random_order, batch)),
        },
        "length_grouped_batches": {
            "student": padded_share(student, batches(grouped_order, batch)),
            "teacher": padded_share(teacher, batches(grouped_order, batch)),
        },
        "cache_build": {
            "distinct_inputs": len(unique_rows),
            "batch_size": cache_batch,
            "data_order": padded_share(cached, batches(np.arange(len(cached)), cache_batch)),
            "length_sorted": padded_share(cached, batches(np.argsort(cached, kind="stable"), cache_batch)),
        },
    }
    if "translation_input_ids" in features.column_names:
        translation = np.array([len(ids) for ids in features["translation_input_ids"]])
        result["random_batches"]["translation"] = padded_share(translation, batches(random_order, batch))
        result["length_grouped_batches"]["translation"] = padded_share(translation, batches(grouped_order, batch))
    return result
