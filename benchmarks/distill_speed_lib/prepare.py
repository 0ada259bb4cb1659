"""The first child of each task: the teacher and the student initialisation every method starts from."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from distill_speed_lib.settings import Settings, recipe_dict, task_dir, validated


def child_prepare(settings: Settings, task: str) -> dict[str, Any]:
    """The teacher (fine-tuned once for classification) and the student initialisation every
    method starts from: the recipe's layers and trimmed vocabulary, saved with save_pretrained."""
    from polydistill.data.sources import corpus_texts_by_language
    from polydistill.models.loading import load_classifier, load_encoder, load_tokenizer, save_model_dir
    from polydistill.models.student import build_student
    from polydistill.models.trim import trim_vocabulary
    from polydistill.models.zoo import resolve_model_path

    config = validated(recipe_dict(task, settings), task)
    directory = task_dir(settings, task)
    base_dir = resolve_model_path(config.teacher.model)
    if task == "classification":
        if settings.classification_teacher:
            teacher_dir = Path(settings.classification_teacher).resolve()
        else:
            from polydistill.training.finetune import finetune_teacher

            teacher_dir = finetune_teacher(config, base_dir, directory / "teacher", label_names=None)
        base, fresh_head = load_classifier(teacher_dir)
        if fresh_head:
            raise SystemExit(f"{teacher_dir} has no trained classification head")
    else:
        teacher_dir = base_dir
        base = load_encoder(teacher_dir)
    tokenizer = load_tokenizer(teacher_dir)
    student = config.student
    built = build_student(base, keep_layers=student.keep_layers)
    trim = student.trim_vocabulary
    trimmed = trim_vocabulary(
        built.model,
        tokenizer,
        corpus_texts_by_language(trim.corpus, trim.languages),
        min_count=trim.min_count,
        max_vocab=trim.max_vocab,
        keep_characters=trim.keep_characters,
        keep_texts=[config.student_prefix] if config.student_prefix else (),
    )
    init_dir = directory / "student-init"
    if init_dir.exists():
        shutil.rmtree(init_dir)
    if task == "embeddings":
        from polydistill.tasks.embeddings import save_sentence_transformer

        save_sentence_transformer(
            trimmed.model, trimmed.tokenizer, init_dir, prefix=config.student_prefix, max_seq_length=config.data.max_length
        )
    else:
        save_model_dir(trimmed.model, trimmed.tokenizer, init_dir)
    prepared = {
        "key": settings.prepare_key(task),
        "teacher_dir": str(teacher_dir),
        "student_init": str(init_dir),
        "student_parameters": sum(p.numel() for p in trimmed.model.parameters()),
        "student_vocabulary": len(trimmed.tokenizer),
    }
    (directory / "prepare.json").write_text(json.dumps(prepared, indent=2))
    return prepared
