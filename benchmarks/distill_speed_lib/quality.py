"""Every student evaluated the same way, from the directory it saved; the teacher as reference."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from distill_speed_lib.settings import (
    LABELS,
    Settings,
    read_prepared,
    recipe_dict,
    validated,
)


def evaluation_data(settings: Settings, task: str):
    """The recipe's held-out split, loaded as polydistill's own evaluation loads it."""
    from polydistill.data.sources import read_labelled, read_pairs
    from polydistill.models.loading import classifier_label_names, load_tokenizer

    config = validated(recipe_dict(task, settings), task)
    prepared = read_prepared(settings, task)
    tokenizer = load_tokenizer(Path(prepared["teacher_dir"]))
    if task == "classification":
        from transformers import AutoConfig

        names = classifier_label_names(AutoConfig.from_pretrained(prepared["teacher_dir"]))
        return config, read_labelled(config.data.eval, config, tokenizer=tokenizer, label_names=names)
    return config, read_pairs(config.data.eval, config, tokenizer=tokenizer)


def classification_quality(model_dir: str, settings: Settings) -> dict[str, Any]:
    """Macro-F1 per language (evaluate_classification), and the per-example predictions for the bootstrap."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from polydistill.evaluation.evaluate import (
        dataset_label_names,
        evaluate_classification,
        label_alignment,
        predict_logits,
    )

    config, dataset = evaluation_data(settings, "classification")
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    kwargs = {"batch_size": config.evaluation.batch_size, "max_length": config.data.max_length}
    report = evaluate_classification(model, tokenizer, dataset, **kwargs)
    texts = [str(text) for text in dataset["text"]]
    names = dataset_label_names(dataset)
    predictions = label_alignment(names, model)[predict_logits(model, tokenizer, texts, **kwargs).argmax(-1)]
    per_language = {code: entry["student"]["macro_f1"] for code, entry in report["languages"].items()}
    return {
        "metric": "macro-F1, mean over languages",
        "value": report["overall"]["language_mean"]["student"]["macro_f1"],
        "per_language": per_language,
        "accuracy_language_mean": report["overall"]["language_mean"]["student"]["accuracy"],
        "examples": {
            "gold": [int(g) for g in dataset["label"]],
            "pred": [int(p) for p in predictions],
            "lang": [str(code) for code in dataset["lang"]],
            "classes": len(names),
        },
    }


def embeddings_quality(model_dir: str, settings: Settings, *, prefix: str) -> dict[str, Any]:
    """Top-1 translation retrieval per language and direction (evaluate_embeddings), and per query
    whether it was a hit, for the bootstrap."""
    from transformers import AutoModel, AutoTokenizer

    from polydistill.evaluation.retrieval import (
        evaluate_embeddings,
        retrieval_ranks,
        retrieval_sets,
    )
    from polydistill.models.pooling import encoder_function

    config, pairs = evaluation_data(settings, "embeddings")
    model = AutoModel.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    encode = encoder_function(model, tokenizer, prefix=prefix, max_length=config.data.max_length, batch_size=config.evaluation.batch_size)
    report = evaluate_embeddings(encode, pairs)
    sets = retrieval_sets(pairs)
    texts = sorted({text for english, translations in sets.values() for text in (*english, *translations)})
    vectors = np.asarray(encode(texts), dtype=np.float64)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    row = {text: index for index, text in enumerate(texts)}
    hits = {}
    for lang, (english, translations) in sets.items():
        similarity = vectors[[row[t] for t in english]] @ vectors[[row[t] for t in translations]].T
        hits[lang] = {
            "en_to_x": (retrieval_ranks(similarity) == 1).astype(int).tolist(),
            "x_to_en": (retrieval_ranks(similarity.T) == 1).astype(int).tolist(),
        }
    mean = report["overall"]["language_mean"]["student"]
    return {
        "metric": "top-1 translation retrieval, mean over languages and both directions",
        "value": (mean["top1_en_to_x"] + mean["top1_x_to_en"]) / 2,
        "per_language": {
            code: (entry["student"]["top1_en_to_x"] + entry["student"]["top1_x_to_en"]) / 2 for code, entry in report["languages"].items()
        },
        "top1_en_to_x_language_mean": mean["top1_en_to_x"],
        "top1_x_to_en_language_mean": mean["top1_x_to_en"],
        "examples": {"hits": hits},
    }


def quality_of(task: str, model_dir: str, settings: Settings) -> dict[str, Any]:
    if task == "classification":
        return classification_quality(model_dir, settings)
    config = validated(recipe_dict(task, settings), task)
    return embeddings_quality(model_dir, settings, prefix=config.student_prefix)


def child_teacher(settings: Settings, task: str) -> dict[str, Any]:
    """The teacher on the same evaluation (reading each language itself), for reference."""
    prepared = read_prepared(settings, task)
    if task == "classification":
        quality = classification_quality(prepared["teacher_dir"], settings)
    else:
        config = validated(recipe_dict(task, settings), task)
        quality = embeddings_quality(prepared["teacher_dir"], settings, prefix=config.teacher.prefix)
    return {"task": task, "method": "teacher", "label": LABELS["teacher"], "quality": quality}
