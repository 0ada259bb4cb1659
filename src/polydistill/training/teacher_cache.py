"""A run's use of the teacher-output cache: which rows the teacher reads, which outputs are kept.

When the teacher reads the English source of each translation, one source stands for a row in
every language: the teacher runs once per distinct input, and every row points at its input's
cached outputs through ``example_index``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from polydistill.config import RunConfig
from polydistill.data.columns import column_values
from polydistill.tasks.base import Task
from polydistill.training.cache import TeacherCache, cache_fields, cache_fingerprint, default_cache_root
from polydistill.training.features import DistillationCollator
from polydistill.training.provenance import fingerprint_weights


def distinct_teacher_inputs(features) -> tuple[list[int], list[int]]:
    """Rows with distinct teacher inputs (shortest first), and for every row the position of its input among them."""
    column = "teacher_input_ids" if "teacher_input_ids" in features.column_names else "input_ids"
    first_row: dict[tuple[int, ...], int] = {}
    keys = [tuple(ids) for ids in column_values(features, column)]
    for row, key in enumerate(keys):
        first_row.setdefault(key, row)
    # in order of length, so the teacher's batches carry little padding while the cache is built
    ordered = sorted(first_row, key=len)
    position = {key: index for index, key in enumerate(ordered)}
    return [first_row[key] for key in ordered], [position[key] for key in keys]


def cached_teacher(
    config: RunConfig, task: Task, teacher, teacher_tokenizer, tokenizer, train_features, objectives, arguments
) -> tuple[TeacherCache, Any]:
    """The teacher's outputs over the distinct training inputs (built, or reused from an earlier run
    with the same teacher weights, tokenizer, inputs and fields), and the training features with
    each row's ``example_index`` into them."""
    unique_rows, example_index = distinct_teacher_inputs(train_features)
    distinct = train_features.select(unique_rows)
    fields = cache_fields(
        objectives,
        teacher_layers=teacher.config.num_hidden_layers,
        logits="logits" in task.cached_outputs,
        embeddings="embeddings" in task.cached_outputs,
    )
    fingerprint = cache_fingerprint(
        teacher_sha256=fingerprint_weights(Path(teacher.name_or_path)),
        tokenizer=teacher_tokenizer,
        features=distinct,
        max_length=config.data.max_length,
        fields=fields,
    )
    root = Path(config.teacher.cache_dir).expanduser() if config.teacher.cache_dir else default_cache_root()
    with arguments.main_process_first(desc="teacher cache"):
        cache = TeacherCache.load_or_build(
            root,
            fingerprint=fingerprint,
            teacher=teacher,
            features=distinct,
            collator=DistillationCollator(tokenizer, teacher_tokenizer),
            fields=fields,
            batch_size=arguments.per_device_eval_batch_size,
            device=arguments.device,
        )
    return cache, train_features.add_column("example_index", example_index)
