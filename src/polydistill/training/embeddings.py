"""The embeddings task: parallel data in, a sentence-transformers student out.

A sentence and its translations should land on the teacher's vector for the source sentence
(Reimers & Gurevych, 2020). The distillation itself is the same trainer as for classification;
what differs is here: reading parallel pairs, loading encoders instead of classifiers, saving
the student as a sentence-transformers directory (mean pooling, L2 normalisation, the input
prefix as its default prompt), and evaluating by translation retrieval.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from polydistill.config import DataSourceConfig, RunConfig
from polydistill.errors import ConfigError


def load_pairs(source: DataSourceConfig, config: RunConfig, *, tokenizer):
    """Parallel data in canonical columns: ``text`` (the source, read by the teacher),
    ``translation`` (read by the student too), ``lang`` (of the translation)."""
    from polydistill.data import catalogs
    from polydistill.data.readers import read_examples

    where = f"{config.source_file or 'config'}: data source '{source.path}'"
    if source.path.startswith("catalogs:"):
        name = source.path.removeprefix("catalogs:")
        if name not in catalogs.CATALOG_ORIGINS:
            raise ConfigError(f"{where}: the embeddings task reads translation pairs: catalogs:django, catalogs:sphinx or catalogs:all")
        splits = catalogs.catalog_pairs_splits(name, languages=source.languages)
        if source.split not in splits:
            raise ConfigError(f"{where}: split: expected one of {', '.join(splits)}, got {source.split!r}")
        return catalogs.to_parallel_columns(splits[source.split]).select_columns(["text", "translation", "lang"])
    if source.translation_column is None:
        raise ConfigError(f"{where}: translation_column: the embeddings task needs the column holding the translation")
    dataset = read_examples(
        config.resolve_path(source.path),
        text_column=source.text_column,
        translation_column=source.translation_column,
        lang_column=source.lang_column,
        tokenizer=tokenizer,
        max_length=config.data.max_length,
        overlong=source.overlong,
    )
    if source.languages and "lang" in dataset.column_names:
        from polydistill.data.languages import normalize_language

        wanted = {normalize_language(code) for code in source.languages}
        dataset = dataset.filter(lambda row: row["lang"] in wanted)
    return dataset


def load_encoder(model_dir: Path, *, eager_attention: bool = False, trust_remote_code: bool = False):
    """The transformer of a sentence-embedding model (a sentence-transformers directory or any encoder)."""
    from transformers import AutoModel

    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    if eager_attention:
        kwargs["attn_implementation"] = "eager"
    return AutoModel.from_pretrained(model_dir, **kwargs)


def save_sentence_transformer(model, tokenizer, directory: Path, *, prefix: str, max_seq_length: int) -> None:
    """A directory that ``SentenceTransformer(directory)`` loads: Transformer -> mean Pooling -> Normalize,
    with the training prefix as the default prompt, so ``encode`` embeds as the student was trained."""
    from polydistill.models.offline import write_sentence_transformers_files
    from polydistill.training.run import save_model_dir

    save_model_dir(model, tokenizer, directory)
    write_sentence_transformers_files(
        directory,
        hidden_size=model.config.hidden_size,
        max_seq_length=max_seq_length,
        prompts={"default": prefix} if prefix else {},
    )
    if prefix:
        import json

        settings_path = directory / "config_sentence_transformers.json"
        settings = json.loads(settings_path.read_text())
        settings["default_prompt_name"] = "default"
        settings_path.write_text(json.dumps(settings, indent=2) + "\n")


def encoder_function(model, tokenizer, *, prefix: str, max_length: int, batch_size: int = 64):
    """texts -> L2-normalised mean-pooled embeddings (n, d), as the saved directory computes them."""
    from polydistill.training.trainer import mean_pool

    device = next(model.parameters()).device

    def encode(texts: list[str]) -> np.ndarray:
        model.eval()
        chunks = []
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                batch = [prefix + t for t in texts[start : start + batch_size]]
                inputs = tokenizer(batch, padding=True, truncation=True, max_length=max_length, return_tensors="pt").to(device)
                pooled = mean_pool(model(**inputs).last_hidden_state, inputs["attention_mask"])
                chunks.append(torch.nn.functional.normalize(pooled, dim=-1).float().cpu().numpy())
        return np.concatenate(chunks) if chunks else np.zeros((0, model.config.hidden_size), dtype=np.float32)

    return encode


def evaluate_embeddings_run(config: RunConfig, output_dir: Path, *, student, tokenizer, teacher, teacher_tokenizer, evaluation, teacher_dir: Path, student_dir: Path) -> dict[str, Any]:
    """Translation retrieval per language, similarity-structure retention, size and speed; metrics.json and report."""
    from polydistill.evaluation.efficiency import measure_teacher_and_student, settings_dict, settings_for
    from polydistill.evaluation.evaluate import METRICS_FILENAME, build_metrics_document, write_metrics
    from polydistill.evaluation.report import write_report
    from polydistill.evaluation.retrieval import evaluate_embeddings

    max_length = config.data.max_length
    pairs = evaluation.rename_columns({"text": "en"}).rename_columns({"translation": "text"})
    quality = evaluate_embeddings(
        encoder_function(student, tokenizer, prefix=config.student_prefix, max_length=max_length),
        pairs,
        teacher_encode=encoder_function(teacher, teacher_tokenizer, prefix=config.teacher.prefix, max_length=max_length),
    )
    efficiency = settings_for(config.evaluation.efficiency, max_length=max_length)
    teacher_efficiency = student_efficiency = None
    if efficiency is not None:
        texts = [str(t) for t in pairs.select_columns(["text"])[:]["text"]]
        teacher_efficiency, student_efficiency = measure_teacher_and_student(
            efficiency, student=student, tokenizer=tokenizer, student_texts=texts, student_dir=student_dir,
            teacher=teacher, teacher_tokenizer=teacher_tokenizer, teacher_dir=teacher_dir, max_length=max_length,
        )
    from polydistill.training.run import run_summary

    document = build_metrics_document(
        "embeddings",
        quality,
        teacher_efficiency=teacher_efficiency,
        student_efficiency=student_efficiency,
        config=run_summary(config),
        meta={"max_length": max_length, "efficiency_settings": None if efficiency is None else settings_dict(efficiency)},
    )
    write_metrics(output_dir / METRICS_FILENAME, document)
    write_report(output_dir)
    return document
