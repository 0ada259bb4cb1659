"""Training speed of polydistill against the recipes a user would otherwise pick, at equal quality.

On one machine and in one run, on the same teacher, the same student initialisation, the same
data, batch size, learning rate and number of epochs:

(a)  polydistill with the teacher-output cache, built fresh inside the timed region;
(a') polydistill again, reusing the cache (what every later run or hyperparameter trial sees);
(b)  polydistill with the online teacher (``teacher.cache: false``);
(c)  the peer recipe: for classification a plain ``transformers.Trainer`` with a hand-written KD
     loss (the same soft- and hard-target terms and weights as the recipe); for embeddings
     sentence-transformers' multilingual distillation recipe (teacher embeddings precomputed with
     ``teacher.encode``, ``MSELoss``, ``SentenceTransformerTrainer``). polydistill's embeddings
     recipe adds an in-batch similarity term; for a like-for-like comparison (a) also runs with
     ``embedding_mse`` alone.

Each method runs in a fresh subprocess of this script (``--child``), so its peak memory
(``getrusage(RUSAGE_SELF).ru_maxrss``: load + train, read before evaluation) is its own. Every
student is then evaluated the same way from the directory it saved: per-language macro-F1 on the
recipe's test split (classification) or top-1 translation retrieval (embeddings), with a paired
bootstrap over the test examples for the quality difference to the peer.

    python benchmarks/distill_speed.py --task both --languages de,ja,ar --epochs 3 --out runs/distill-speed
    python benchmarks/distill_speed.py --quick          # a few steps, one language: checks the script

Results: a table on the terminal and ``OUT/results.json``; per method ``OUT/<task>/<method>/``
holds its log, ``result.json`` and the trained student.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

TASKS = ("classification", "embeddings")
#: the peer recipe of each task, the method every polydistill method is compared with
PEERS = {"classification": "trainer-kd", "embeddings": "st-mseloss"}
METHODS = {
    "classification": ("polydistill-cache", "polydistill-cache-reused", "polydistill-online", "trainer-kd"),
    "embeddings": (
        "polydistill-cache",
        "polydistill-cache-reused",
        "polydistill-online",
        "polydistill-cache-mse",
        "st-mseloss",
    ),
}
LABELS = {
    "polydistill-cache": "(a) polydistill, cache built",
    "polydistill-cache-reused": "(a') polydistill, cache reused",
    "polydistill-online": "(b) polydistill, online teacher",
    "polydistill-cache-mse": "(a) polydistill, cache built, MSE only",
    "trainer-kd": "(c) transformers.Trainer + KD loss",
    "st-mseloss": "(c) sentence-transformers MSELoss",
    "teacher": "teacher (reference)",
    "padding": "padding of each way of batching",
}
#: the cache directory of each cached method; a method whose cache must be built is given a fresh one
CACHE_DIRS = {"polydistill-cache": "cache-a", "polydistill-cache-reused": "cache-a", "polydistill-cache-mse": "cache-a-mse"}
FRESH_CACHE = {"polydistill-cache", "polydistill-cache-mse"}
QUICK_LANGUAGES = ["de"]
QUICK_STEPS = 6
BOOTSTRAP_SAMPLES = 2000


@dataclass
class Settings:
    """Everything that defines a benchmark run; children read it from ``OUT/settings.json``."""

    tasks: list[str]
    languages: list[str] | None
    epochs: float
    quick: bool
    out: str
    threads: int | None = None
    classification_teacher: str | None = None
    methods: dict[str, list[str]] = field(default_factory=dict)

    def save(self) -> None:
        Path(self.out).mkdir(parents=True, exist_ok=True)
        (Path(self.out) / "settings.json").write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, out: str) -> Settings:
        return cls(**json.loads((Path(out) / "settings.json").read_text()))

    def prepare_key(self, task: str) -> dict[str, Any]:
        """What the teacher and student initialisation of a task depend on."""
        return {"task": task, "languages": self.languages, "quick": self.quick, "teacher": self.classification_teacher}


# =========================================================================== configs


def recipe_dict(task: str, settings: Settings) -> dict[str, Any]:
    """The demo recipe with this benchmark's languages and epochs, efficiency measurement off."""
    from polydistill.commands.demo import demo_config_dict

    raw = demo_config_dict(task, languages=settings.languages, quick=False)
    raw["training"]["num_train_epochs"] = settings.epochs
    if settings.quick:
        raw["training"]["max_steps"] = QUICK_STEPS
        if "finetune" in raw["teacher"]:
            raw["teacher"]["finetune"]["training"]["max_steps"] = QUICK_STEPS
    raw["evaluation"] = {"efficiency": "off"}
    return raw


def validated(raw: dict[str, Any], task: str):
    from polydistill.commands.demo import recipe_path
    from polydistill.config import validate_config

    return validate_config(raw, source_file=Path(str(recipe_path(task))))


def peer_training_arguments(config) -> dict[str, Any]:
    """polydistill's TrainingArguments defaults and the recipe's training section, without the
    sampling strategy (group_by_length is polydistill's choice, not the peers')."""
    from polydistill.training.run import DEFAULT_TRAINING_ARGUMENTS

    arguments = DEFAULT_TRAINING_ARGUMENTS | {"seed": config.seed, "data_seed": config.seed} | dict(config.training)
    arguments.pop("train_sampling_strategy", None)
    return arguments


def task_dir(settings: Settings, task: str) -> Path:
    return Path(settings.out) / task


def read_prepared(settings: Settings, task: str) -> dict[str, Any]:
    return json.loads((task_dir(settings, task) / "prepare.json").read_text())


# =========================================================================== children: preparation


def child_prepare(settings: Settings, task: str) -> dict[str, Any]:
    """The teacher (fine-tuned once for classification) and the student initialisation every
    method starts from: the recipe's layers and trimmed vocabulary, saved with save_pretrained."""
    from polydistill.models.student import build_student
    from polydistill.models.trim import corpus_texts_by_language, trim_vocabulary
    from polydistill.models.zoo import resolve_model_path
    from polydistill.training.run import load_classifier, load_tokenizer, save_model_dir

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
        from polydistill.training.embeddings import load_encoder

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
        from polydistill.training.embeddings import save_sentence_transformer

        save_sentence_transformer(trimmed.model, trimmed.tokenizer, init_dir, prefix=config.student_prefix, max_seq_length=config.data.max_length)
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


# =========================================================================== children: methods


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB, macOS bytes)."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024


def complete_caches(root: Path) -> dict[str, Path]:
    """Finished teacher caches under ``root`` (those with their manifest), by fingerprint."""
    from polydistill.training.cache import MANIFEST_FILE

    if not root.is_dir():
        return {}
    return {d.name: d for d in root.iterdir() if d.is_dir() and (d / MANIFEST_FILE).is_file()}


def child_polydistill(settings: Settings, task: str, method: str) -> dict[str, Any]:
    """One polydistill run through ``polydistill.training.run.run``, timed from the inside: the
    teacher-cache step (build or reuse) and ``Trainer.train``, patched in this process only."""
    from polydistill.training import run as run_module
    from polydistill.training.trainer import DistillationTrainer

    prepared = read_prepared(settings, task)
    directory = task_dir(settings, task)
    raw = recipe_dict(task, settings)
    raw["teacher"]["model"] = prepared["teacher_dir"]
    raw["teacher"].pop("finetune", None)
    raw["student"] = {"model": prepared["student_init"]}  # used as it is: no layer selection, no trim
    raw["data"].pop("eval")  # every method is evaluated the same way afterwards, not inside run()
    raw["teacher"]["cache"] = method != "polydistill-online"
    cache_root = None
    if method in CACHE_DIRS:
        cache_root = directory / CACHE_DIRS[method]
        if method in FRESH_CACHE and cache_root.exists():
            shutil.rmtree(cache_root)
        raw["teacher"]["cache_dir"] = str(cache_root)
    if method == "polydistill-cache-mse":
        raw["objectives"] = {"embedding_mse": {"weight": 1.0}}
    output_dir = directory / method / "run"
    if output_dir.exists():
        shutil.rmtree(output_dir)
    raw["output_dir"] = str(output_dir)
    config = validated(raw, task)

    timings: dict[str, Any] = {"teacher_pass": 0.0}
    build = run_module.build_teacher_cache
    train = DistillationTrainer.train

    def timed_build(*args, **kwargs):
        before = complete_caches(cache_root)
        start = time.perf_counter()
        try:
            return build(*args, **kwargs)
        finally:
            timings["teacher_pass"] = time.perf_counter() - start
            after = complete_caches(cache_root)
            timings["cache_reused"] = bool(after) and set(after) <= set(before)

    def timed_train(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return train(self, *args, **kwargs)
        finally:
            timings["optimisation"] = time.perf_counter() - start
            timings["train_rows"] = len(self.train_dataset)

    run_module.build_teacher_cache = timed_build
    DistillationTrainer.train = timed_train
    start = time.perf_counter()
    result = run_module.run(config, output_dir=output_dir)
    end_to_end = time.perf_counter() - start
    peak = peak_rss_mib()

    metrics = result.train_metrics
    record = method_record(
        task, method, settings,
        teacher_pass=timings["teacher_pass"],
        optimisation=timings["optimisation"],
        end_to_end=end_to_end,
        examples_seen=round(metrics["train_samples_per_second"] * metrics["train_runtime"]),
        train_rows=timings["train_rows"],
        peak=peak,
        student_dir=result.student_dir,
        objectives=[name for name, _ in config.objectives.enabled()],
        sampling=config.training.get("train_sampling_strategy", "random"),
    )
    if cache_root is not None:
        caches = complete_caches(cache_root)
        (cache_dir,) = caches.values()
        manifest = json.loads((cache_dir / "complete.json").read_text())
        size = sum(entry["bytes"] for entry in manifest["files"].values()) + (cache_dir / "complete.json").stat().st_size
        record["cache"] = {
            "directory": str(cache_dir),
            "reused": timings.get("cache_reused", False),
            "bytes": size,
            "cached_examples": manifest["examples"],
            "fields": manifest["fields"],
            "bytes_per_1000_training_examples": size / timings["train_rows"] * 1000,
            "bytes_per_1000_cached_examples": size / manifest["examples"] * 1000,
        }
    return record


def method_record(
    task: str, method: str, settings: Settings, *, teacher_pass: float, optimisation: float, end_to_end: float,
    examples_seen: int, train_rows: int, peak: float, student_dir: Path, objectives: list[str], sampling: str,
) -> dict[str, Any]:
    """What every method reports. Training time counts the teacher's pass over the data when it
    is separate (a cache build, the peer's precomputed labels), so a cache is not free here."""
    import torch

    train_seconds = teacher_pass + optimisation
    return {
        "task": task,
        "method": method,
        "label": LABELS[method],
        "train_seconds": train_seconds,
        "teacher_pass_seconds": teacher_pass,
        "optimisation_seconds": optimisation,
        "end_to_end_seconds": end_to_end,
        "examples_seen": examples_seen,
        "train_rows": train_rows,
        "examples_per_second": examples_seen / train_seconds,
        "peak_rss_mib": peak,
        "student_dir": str(student_dir),
        "objectives": objectives,
        "sampling": sampling,
        "torch_threads": torch.get_num_threads(),
    }


def child_trainer_kd(settings: Settings, task: str) -> dict[str, Any]:
    """The peer for classification: a plain ``transformers.Trainer`` whose hand-written
    ``compute_loss`` runs the teacher every step (the way a KD loop is usually written)."""
    import torch
    import torch.nn.functional as F
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
        set_seed,
    )

    from polydistill.training.run import classifier_label_names, load_examples

    prepared = read_prepared(settings, task)
    config = validated(recipe_dict(task, settings), task)
    objectives = config.objectives
    temperature = objectives.soft_targets.temperature
    soft_weight = objectives.soft_targets.weight
    hard_weight = objectives.hard_targets.weight if objectives.hard_targets else 0.0
    max_length = config.data.max_length
    output_dir = task_dir(settings, task) / "trainer-kd" / "run"
    if output_dir.exists():
        shutil.rmtree(output_dir)

    class KDCollator:
        """Pads the student's inputs and the teacher's (another text, another tokenizer) apart."""

        def __init__(self, student_tokenizer, teacher_tokenizer):
            self.student = DataCollatorWithPadding(student_tokenizer)
            self.teacher = DataCollatorWithPadding(teacher_tokenizer)

        def __call__(self, rows):
            batch = self.student([{k: v for k, v in row.items() if not k.startswith("teacher_")} for row in rows])
            teacher = self.teacher([{k.removeprefix("teacher_"): v for k, v in row.items() if k.startswith("teacher_")} for row in rows])
            batch.update({f"teacher_{k}": v for k, v in teacher.items()})
            return batch

    class KDTrainer(Trainer):
        def __init__(self, *args, teacher, **kwargs):
            super().__init__(*args, **kwargs)
            self.teacher = teacher.to(self.args.device).eval()
            self.teacher.requires_grad_(False)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            teacher_inputs = {k.removeprefix("teacher_"): v for k, v in inputs.items() if k.startswith("teacher_")}
            student_inputs = {k: v for k, v in inputs.items() if not k.startswith("teacher_")}
            outputs = model(**student_inputs)
            with torch.no_grad():
                teacher_logits = self.teacher(**teacher_inputs).logits
            t = temperature
            kl = F.kl_div(
                F.log_softmax(outputs.logits / t, dim=-1), F.log_softmax(teacher_logits / t, dim=-1),
                log_target=True, reduction="batchmean",
            ) * t * t
            loss = soft_weight * kl + hard_weight * F.cross_entropy(outputs.logits, teacher_logits.argmax(dim=-1))
            return (loss, outputs) if return_outputs else loss

    start = time.perf_counter()
    teacher_dir, student_dir = prepared["teacher_dir"], prepared["student_init"]
    teacher_tokenizer = AutoTokenizer.from_pretrained(teacher_dir)
    student_tokenizer = AutoTokenizer.from_pretrained(student_dir)
    teacher = AutoModelForSequenceClassification.from_pretrained(teacher_dir)
    student = AutoModelForSequenceClassification.from_pretrained(student_dir)
    train = load_examples(config.data.train, config, tokenizer=teacher_tokenizer, label_names=classifier_label_names(teacher.config))
    teacher_column = config.data.train.teacher_text_column

    def tokenize(batch):
        features = dict(student_tokenizer(batch["text"], truncation=True, max_length=max_length))
        teacher_features = teacher_tokenizer(batch[teacher_column], truncation=True, max_length=max_length)
        features.update({f"teacher_{k}": v for k, v in teacher_features.items()})
        return features

    features = train.map(tokenize, batched=True, remove_columns=train.column_names)
    set_seed(config.seed)
    arguments = TrainingArguments(output_dir=str(output_dir / "checkpoints"), remove_unused_columns=False, **peer_training_arguments(config))
    trainer = KDTrainer(
        model=student,
        args=arguments,
        teacher=teacher,
        train_dataset=features,
        data_collator=KDCollator(student_tokenizer, teacher_tokenizer),
        processing_class=student_tokenizer,
    )
    train_start = time.perf_counter()
    output = trainer.train()
    optimisation = time.perf_counter() - train_start
    saved = output_dir / "student"
    student.save_pretrained(saved)
    student_tokenizer.save_pretrained(saved)
    end_to_end = time.perf_counter() - start
    peak = peak_rss_mib()
    metrics = output.metrics
    return method_record(
        task, "trainer-kd", settings,
        teacher_pass=0.0,
        optimisation=optimisation,
        end_to_end=end_to_end,
        examples_seen=round(metrics["train_samples_per_second"] * metrics["train_runtime"]),
        train_rows=len(features),
        peak=peak,
        student_dir=saved,
        objectives=["soft_targets (KL, T^2)", "hard_targets"] if hard_weight else ["soft_targets (KL, T^2)"],
        sampling="random",
    )


def child_st_mseloss(settings: Settings, task: str) -> dict[str, Any]:
    """The peer for embeddings: sentence-transformers' multilingual distillation recipe
    (``examples/sentence_transformer/training/multilingual/make_multilingual.py``): the teacher
    embeds every English source once (``teacher.encode``, inside the timed region), and the student
    learns both columns, English and translation, with ``MSELoss`` in ``SentenceTransformerTrainer``."""
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.losses import MSELoss
    from transformers import set_seed

    from polydistill.training.embeddings import load_pairs

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
    pairs = load_pairs(config.data.train, config, tokenizer=teacher.tokenizer)
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
        task, "st-mseloss", settings,
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


# =========================================================================== children: evaluation


def evaluation_data(settings: Settings, task: str):
    """The recipe's held-out split, loaded as polydistill's own evaluation loads it."""
    from polydistill.training.run import classifier_label_names, load_examples, load_tokenizer

    config = validated(recipe_dict(task, settings), task)
    prepared = read_prepared(settings, task)
    tokenizer = load_tokenizer(Path(prepared["teacher_dir"]))
    if task == "classification":
        from transformers import AutoConfig

        names = classifier_label_names(AutoConfig.from_pretrained(prepared["teacher_dir"]))
        return config, load_examples(config.data.eval, config, tokenizer=tokenizer, label_names=names)
    from polydistill.training.embeddings import load_pairs

    pairs = load_pairs(config.data.eval, config, tokenizer=tokenizer)
    return config, pairs.rename_columns({"text": "en"}).rename_columns({"translation": "text"})


def classification_quality(model_dir: str, settings: Settings) -> dict[str, Any]:
    """Macro-F1 per language (evaluate_classification), and the per-example predictions for the bootstrap."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from polydistill.evaluation.evaluate import dataset_label_names, evaluate_classification, label_alignment, predict_logits

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

    from polydistill.evaluation.retrieval import evaluate_embeddings, retrieval_ranks, retrieval_sets
    from polydistill.training.embeddings import encoder_function

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
            code: (entry["student"]["top1_en_to_x"] + entry["student"]["top1_x_to_en"]) / 2
            for code, entry in report["languages"].items()
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

    from polydistill.training.features import tokenize_for_distillation
    from polydistill.training.run import distinct_teacher_inputs, load_tokenizer

    prepared = read_prepared(settings, task)
    config = validated(recipe_dict(task, settings), task)
    teacher_tokenizer = load_tokenizer(Path(prepared["teacher_dir"]))
    student_tokenizer = AutoTokenizer.from_pretrained(prepared["student_init"])
    if task == "classification":
        from polydistill.training.run import TEACHER_TEXT, load_examples

        data = load_examples(config.data.train, config, tokenizer=teacher_tokenizer, label_names=None)
        teacher_column = TEACHER_TEXT
    else:
        from polydistill.training.embeddings import load_pairs

        data = load_pairs(config.data.train, config, tokenizer=teacher_tokenizer)
        teacher_column = None
    features = tokenize_for_distillation(
        data, student_tokenizer, teacher_tokenizer=teacher_tokenizer, max_length=config.data.max_length,
        teacher_text_column=teacher_column, prefix=config.student_prefix, teacher_prefix=config.teacher.prefix,
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
        "random_batches": {"student": padded_share(student, batches(random_order, batch)), "teacher": padded_share(teacher, batches(random_order, batch))},
        "length_grouped_batches": {"student": padded_share(student, batches(grouped_order, batch)), "teacher": padded_share(teacher, batches(grouped_order, batch))},
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


def run_child(settings: Settings, step: str, task: str, method: str | None) -> None:
    if settings.threads:
        import torch

        torch.set_num_threads(settings.threads)
    if step == "prepare":
        child_prepare(settings, task)
        return
    if method == "teacher":
        record = child_teacher(settings, task)
    elif method == "padding":
        record = child_padding(settings, task)
    else:
        if method.startswith("polydistill"):
            record = child_polydistill(settings, task, method)
        elif method == "trainer-kd":
            record = child_trainer_kd(settings, task)
        elif method == "st-mseloss":
            record = child_st_mseloss(settings, task)
        else:
            raise SystemExit(f"unknown method {method}")
        record["quality"] = quality_of(task, record["student_dir"], settings)
    target = task_dir(settings, task) / method / "result.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(record, indent=2))


# =========================================================================== parent: orchestration


def spawn(settings: Settings, step: str, task: str, method: str | None, console) -> float:
    """Run one step in a fresh process of this script; its output goes to a log file."""
    name = method or step
    log = task_dir(settings, task) / name / "log.txt"
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, str(Path(__file__).resolve()), "--child", step, "--task", task, "--out", settings.out]
    if method:
        command += ["--method", method]
    environment = os.environ | {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    start = time.perf_counter()
    with console.status(f"[bold]{task}[/]: {LABELS.get(name, name)} (log: {log})"), log.open("w") as handle:
        code = subprocess.call(command, stdout=handle, stderr=subprocess.STDOUT, env=environment)
    seconds = time.perf_counter() - start
    if code != 0:
        tail = log.read_text(errors="replace").splitlines()[-40:]
        console.print("\n".join(tail))
        raise SystemExit(f"{task} {name} failed with exit code {code}; log: {log}")
    console.print(f"[green]done[/] {task}: {LABELS.get(name, name)} in {seconds:.0f} s")
    return seconds


def prepared_matches(settings: Settings, task: str) -> bool:
    path = task_dir(settings, task) / "prepare.json"
    if not path.is_file():
        return False
    prepared = json.loads(path.read_text())
    return prepared.get("key") == settings.prepare_key(task) and Path(prepared["student_init"]).is_dir()


# --------------------------------------------------------------------------- statistics


def macro_f1(gold: np.ndarray, pred: np.ndarray, classes: int) -> float:
    """sklearn's macro F1 (zero_division=0) over the classes present in gold or predictions."""
    true_positive = np.bincount(gold[gold == pred], minlength=classes)
    counts = np.bincount(gold, minlength=classes) + np.bincount(pred, minlength=classes)
    present = counts > 0
    return float(np.mean(2 * true_positive[present] / counts[present]))


def quality_samples(task: str, examples: dict[str, Any], draws: list[dict[str, np.ndarray]]) -> np.ndarray:
    """The quality metric on each bootstrap draw (per language, indices into that language's rows)."""
    values = np.empty(len(draws))
    if task == "classification":
        gold, pred = np.asarray(examples["gold"]), np.asarray(examples["pred"])
        lang = np.asarray(examples["lang"])
        rows = {code: np.flatnonzero(lang == code) for code in sorted(set(lang.tolist()))}
        for i, draw in enumerate(draws):
            values[i] = np.mean([macro_f1(gold[rows[c][draw[c]]], pred[rows[c][draw[c]]], examples["classes"]) for c in rows])
        return values
    hits = examples["hits"]
    for i, draw in enumerate(draws):
        values[i] = np.mean(
            [(np.mean(np.asarray(h["en_to_x"])[draw[c]]) + np.mean(np.asarray(h["x_to_en"])[draw[c]])) / 2 for c, h in hits.items()]
        )
    return values


def bootstrap_draws(task: str, examples: dict[str, Any], samples: int, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """Resample the test examples within each language (the same draws for every method: paired)."""
    rng = np.random.default_rng(seed)
    if task == "classification":
        lang = np.asarray(examples["lang"])
        sizes = {code: int((lang == code).sum()) for code in sorted(set(lang.tolist()))}
    else:
        sizes = {code: len(h["en_to_x"]) for code, h in examples["hits"].items()}
    return [{code: rng.integers(0, n, n) for code, n in sizes.items()} for _ in range(samples)]


def point_quality(task: str, examples: dict[str, Any]) -> float:
    if task == "classification":
        lang = np.asarray(examples["lang"])
        identity = [{code: np.arange(int((lang == code).sum())) for code in sorted(set(lang.tolist()))}]
    else:
        identity = [{code: np.arange(len(h["en_to_x"])) for code, h in examples["hits"].items()}]
    return float(quality_samples(task, examples, identity)[0])


def compare(task: str, records: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Ratios of every polydistill method to the task's peer, and the bootstrap CI of the quality gap."""
    peer = records[PEERS[task]]
    draws = bootstrap_draws(task, peer["quality"]["examples"], BOOTSTRAP_SAMPLES)
    peer_samples = quality_samples(task, peer["quality"]["examples"], draws)
    comparisons = {}
    for method, record in records.items():
        if method == PEERS[task] or method == "teacher":
            continue
        samples = quality_samples(task, record["quality"]["examples"], draws)
        difference = samples - peer_samples
        low, high = (float(x) for x in np.percentile(difference, [2.5, 97.5]))
        gap = record["quality"]["value"] - peer["quality"]["value"]
        comparisons[method] = {
            "throughput_ratio": record["examples_per_second"] / peer["examples_per_second"],
            "train_wall_ratio": record["train_seconds"] / peer["train_seconds"],
            "end_to_end_ratio": record["end_to_end_seconds"] / peer["end_to_end_seconds"],
            "peak_memory_ratio": record["peak_rss_mib"] / peer["peak_rss_mib"],
            "quality_difference": gap,
            "quality_difference_ci95": [low, high],
            "quality_verdict": "equal within noise" if low <= 0 <= high else ("better" if low > 0 else "worse"),
        }
    return comparisons


# --------------------------------------------------------------------------- report


def machine_description() -> dict[str, Any]:
    import torch

    description = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "nproc": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        description["cpu"] = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name")), None)
    except (OSError, subprocess.CalledProcessError):
        description["cpu"] = platform.processor() or None
    from importlib import metadata

    for package in ("transformers", "sentence-transformers", "polydistill"):
        try:
            description[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return description


def print_tables(results: dict[str, Any], console) -> None:
    from rich.table import Table

    for task, entry in results["tasks"].items():
        records, comparisons = entry["methods"], entry["comparisons"]
        peer = PEERS[task]
        table = Table(title=f"{task}: {entry['examples_per_epoch']} examples x {results['settings']['epochs']} epochs"
                      + (" (quick: a few steps)" if results["settings"]["quick"] else ""))
        for column in ("method", "train s", "teacher s", "examples/s", "x peer", "end-to-end s", "peak RSS MiB",
                       "x peer mem", entry["metric_short"], "diff vs peer [95% CI]", "cache"):
            table.add_column(column, justify="left" if column == "method" else "right")
        for method, record in records.items():
            if method == "teacher":
                continue
            comparison = comparisons.get(method)
            cache = record.get("cache")
            table.add_row(
                record["label"],
                f"{record['train_seconds']:.1f}",
                f"{record['teacher_pass_seconds']:.1f}",
                f"{record['examples_per_second']:.1f}",
                f"{comparison['throughput_ratio']:.2f}" if comparison else "1.00",
                f"{record['end_to_end_seconds']:.1f}",
                f"{record['peak_rss_mib']:.0f}",
                f"{comparison['peak_memory_ratio']:.2f}" if comparison else "1.00",
                f"{record['quality']['value']:.3f}",
                (f"{comparison['quality_difference']:+.3f} [{comparison['quality_difference_ci95'][0]:+.3f}, "
                 f"{comparison['quality_difference_ci95'][1]:+.3f}]") if comparison else "(peer)",
                (f"{cache['bytes'] / 1e6:.2f} MB{' reused' if cache['reused'] else ''}") if cache else "",
            )
        teacher = records.get("teacher")
        if teacher:
            table.caption = f"teacher {entry['metric_short']}: {teacher['quality']['value']:.3f}; peer: {LABELS[peer]}"
        console.print(table)
        if entry.get("padding"):
            console.print("  " + padding_summary(entry["padding"]))
        for method, record in records.items():
            if record.get("cache") and not record["cache"]["reused"]:
                cache = record["cache"]
                console.print(
                    f"  cache of {record['label']}: {cache['bytes']:,} bytes for {cache['cached_examples']} distinct teacher inputs "
                    f"({record['train_rows']} training examples): {cache['bytes_per_1000_training_examples'] / 1e3:.1f} kB per 1,000 "
                    f"training examples, {cache['bytes_per_1000_cached_examples'] / 1e3:.1f} kB per 1,000 cached inputs"
                )


def padding_summary(padding: dict[str, Any] | None) -> str:
    if not padding:
        return ""
    random, grouped, cache = padding["random_batches"], padding["length_grouped_batches"], padding["cache_build"]

    def sides(entry: dict[str, float]) -> str:
        return ", ".join(f"{side} {share:.0%}" for side, share in entry.items())

    return (
        f"Padding tokens per real token, batches of {padding['batch_size']}: random order (the peers) {sides(random)}; "
        f"length-grouped (polydistill's recipe) {sides(grouped)}. Teacher-cache build, {cache['distinct_inputs']} distinct "
        f"inputs in batches of {cache['batch_size']}: {cache['data_order']:.0%} in data order (as built), "
        f"{cache['length_sorted']:.0%} if sorted by length."
    )


def markdown_tables(results: dict[str, Any]) -> str:
    """The same tables in Markdown, for benchmarks/README.md."""
    lines = []
    for task, entry in results["tasks"].items():
        records, comparisons = entry["methods"], entry["comparisons"]
        metric = entry["metric_short"]
        lines += [
            f"**{task}**: {entry['examples_per_epoch']} training examples x {results['settings']['epochs']:g} epochs; "
            f"quality: {entry['metric']}; peer: {LABELS[entry['peer']]}",
            "",
            f"| method | train s (teacher pass) | examples/s | x peer | end-to-end s | peak RSS MiB (x peer) | {metric} | "
            "diff vs peer [95% CI] | teacher cache |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for method, record in records.items():
            if method == "teacher":
                continue
            comparison = comparisons.get(method)
            cache = record.get("cache")
            lines.append(
                f"| {record['label']} | {record['train_seconds']:.1f} ({record['teacher_pass_seconds']:.1f}) | "
                f"{record['examples_per_second']:.1f} | {comparison['throughput_ratio'] if comparison else 1:.2f} | "
                f"{record['end_to_end_seconds']:.1f} | {record['peak_rss_mib']:.0f} "
                f"({comparison['peak_memory_ratio'] if comparison else 1:.2f}) | {record['quality']['value']:.3f} | "
                + (
                    f"{comparison['quality_difference']:+.3f} [{comparison['quality_difference_ci95'][0]:+.3f}, "
                    f"{comparison['quality_difference_ci95'][1]:+.3f}] |"
                    if comparison else "(peer) |"
                )
                + (f" {cache['bytes'] / 1e6:.2f} MB{', reused' if cache['reused'] else ''} |" if cache else " |")
            )
        if "teacher" in records:
            lines += ["", f"Teacher {metric} on the same evaluation: {records['teacher']['quality']['value']:.3f}."]
        if entry.get("padding"):
            lines += ["", padding_summary(entry["padding"])]
        lines.append("")
    return "\n".join(lines)


def aggregate(settings: Settings, console) -> dict[str, Any]:
    results: dict[str, Any] = {"settings": asdict(settings), "machine": machine_description(), "tasks": {}}
    for task in settings.tasks:
        records = {}
        for method in [*settings.methods[task], "teacher"]:
            path = task_dir(settings, task) / method / "result.json"
            if path.is_file():
                records[method] = json.loads(path.read_text())
        for record in records.values():  # the bootstrap's metric must be the evaluation's
            point = point_quality(task, record["quality"]["examples"])
            if abs(point - record["quality"]["value"]) > 1e-9:
                raise SystemExit(f"{task} {record['method']}: bootstrap metric {point} differs from the evaluation's {record['quality']['value']}")
        padding_path = task_dir(settings, task) / "padding" / "result.json"
        padding = json.loads(padding_path.read_text()) if padding_path.is_file() else None
        comparisons = compare(task, records) if PEERS[task] in records else {}
        slim = {method: {k: v for k, v in record.items()} for method, record in records.items()}
        for record in slim.values():
            record["quality"] = {k: v for k, v in record["quality"].items() if k != "examples"}
        first = next(r for m, r in records.items() if m != "teacher")
        results["tasks"][task] = {
            "methods": slim,
            "comparisons": comparisons,
            "peer": PEERS[task],
            "metric": first["quality"]["metric"],
            "metric_short": "macro-F1" if task == "classification" else "top-1",
            "examples_per_epoch": first["train_rows"],
            "prepared": read_prepared(settings, task),
            "padding": padding,
        }
    (Path(settings.out) / "results.json").write_text(json.dumps(results, indent=2))
    (Path(settings.out) / "results.md").write_text(markdown_tables(results))
    print_tables(results, console)
    console.print(f"results: {Path(settings.out) / 'results.json'}")
    return results


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=[*TASKS, "both"], default="both")
    parser.add_argument("--languages", help="comma-separated languages served besides English (default: de,ja,ar; quick: de)")
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--quick", action="store_true", help=f"one language, {QUICK_STEPS} steps per method: checks the script")
    parser.add_argument("--out", help="output directory (default: runs/distill-speed[-quick])")
    parser.add_argument("--methods", help="comma-separated subset of the methods to (re)run; the others' results are read back")
    parser.add_argument("--threads", type=int, help="torch threads in every method (default: torch's own)")
    parser.add_argument("--classification-teacher", help="an already fine-tuned classifier to use as the teacher (default: fine-tune one)")
    parser.add_argument("--child", choices=["prepare", "method"], help=argparse.SUPPRESS)
    parser.add_argument("--method", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    if arguments.child:
        run_child(Settings.load(arguments.out), arguments.child, arguments.task, arguments.method)
        return 0
    from rich.console import Console

    console = Console(width=max(shutil.get_terminal_size().columns, 200))
    tasks = list(TASKS) if arguments.task == "both" else [arguments.task]
    if arguments.languages:
        languages = [code.strip() for code in arguments.languages.split(",") if code.strip()]
    else:
        languages = QUICK_LANGUAGES if arguments.quick else ["de", "ja", "ar"]
    out = arguments.out or ("runs/distill-speed-quick" if arguments.quick else "runs/distill-speed")
    wanted = [m.strip() for m in arguments.methods.split(",")] if arguments.methods else None
    settings = Settings(
        tasks=tasks,
        languages=languages,
        epochs=arguments.epochs,
        quick=arguments.quick,
        out=str(Path(out).resolve()),
        threads=arguments.threads,
        classification_teacher=arguments.classification_teacher,
        methods={task: list(METHODS[task]) for task in tasks},
    )
    settings.save()
    for task in tasks:
        if not prepared_matches(settings, task):
            spawn(settings, "prepare", task, None, console)
        for method in [*METHODS[task], "teacher", "padding"]:
            if wanted is None or method in wanted or (method == "polydistill-cache-reused" and "polydistill-cache" in wanted):
                spawn(settings, "method", task, method, console)
    aggregate(settings, console)
    return 0


if __name__ == "__main__":
    sys.exit(main())
