"""One run, end to end: config -> teacher -> student -> data -> distillation -> saved student.

Every step is a function of its own so that the CLI subcommands and users' scripts can call
one step alone; :func:`run` strings them together in the order of the design's one flow.
"""

from __future__ import annotations

import functools
import hashlib
import json
import platform
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from polydistill.config import DataSourceConfig, RunConfig, check_against_teacher
from polydistill.errors import ConfigError

console = Console(stderr=True)

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

#: TrainingArguments that polydistill sets; the config's ``training`` section overrides the rest
DEFAULT_TRAINING_ARGUMENTS: dict[str, Any] = {
    "num_train_epochs": 3,
    "per_device_train_batch_size": 32,
    "per_device_eval_batch_size": 64,
    "learning_rate": 5e-5,
    "warmup_steps": 0.06,
    "weight_decay": 0.01,
    "logging_steps": 10,
    "save_strategy": "no",
    "report_to": "none",
}


@dataclass
class RunResult:
    output_dir: Path
    student_dir: Path
    train_metrics: dict[str, float]
    #: the metrics.json document, when the run had evaluation data
    metrics: dict[str, Any] | None = None


# --------------------------------------------------------------------------- provenance


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


def write_run_record(config: RunConfig, output_dir: Path, teacher_dir: Path) -> None:
    """The resolved config (rerunnable with ``polydistill run``), versions and teacher fingerprint."""
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "config.yaml").write_text(yaml.safe_dump(resolved_config(config, output_dir), sort_keys=False))
    record = {
        "versions": package_versions(),
        "teacher": {"model": config.teacher.model, "directory": str(teacher_dir), "sha256": fingerprint_weights(teacher_dir)},
        "config_file": str(config.source_file) if config.source_file else None,
    }
    (output_dir / "run.json").write_text(json.dumps(record, indent=2))


def resolved_config(config: RunConfig, output_dir: Path) -> dict[str, Any]:
    """The config with input paths made absolute, so the saved copy runs from anywhere."""
    data = config.model_dump(mode="json", exclude_none=True)
    data["output_dir"] = str(output_dir)

    def absolute(section: dict[str, Any] | None) -> None:
        if section and not section["path"].startswith("catalogs:"):
            section["path"] = str(config.resolve_path(section["path"]))

    absolute(data["data"]["train"])
    absolute(data["data"].get("eval"))
    if data["teacher"].get("finetune"):
        absolute(data["teacher"]["finetune"]["data"])
    return data


# --------------------------------------------------------------------------- steps


def load_tokenizer(model_dir: Path, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir, trust_remote_code=trust_remote_code)


#: the column a source's teacher text is given under, whatever it was called in the source
TEACHER_TEXT = "teacher_text"


def load_examples(source: DataSourceConfig, config: RunConfig, *, tokenizer, label_names: list[str] | None):
    """Read one data source of the config into canonical columns: text, label, lang, teacher_text.

    A built-in catalog source is one split (``source.split``) of the catalogs; a file is read
    and validated by :func:`polydistill.data.readers.read_examples`.
    """
    from polydistill.data import catalogs
    from polydistill.data.readers import read_examples

    where = f"{config.source_file or 'config'}: data source '{source.path}'"
    if source.path.startswith("catalogs:"):
        name = source.path.removeprefix("catalogs:")
        if name == "django-components":
            splits = catalogs.catalog_classification(languages=source.languages)
        elif name in catalogs.CATALOG_ORIGINS:
            splits = catalogs.catalog_pairs_splits(name, languages=source.languages)
        else:
            raise ConfigError(f"{where}: unknown built-in source; expected catalogs:django-components, catalogs:django, catalogs:sphinx or catalogs:all")
        if source.split not in splits:
            raise ConfigError(f"{where}: split: expected one of {', '.join(splits)}, got {source.split!r}")
        dataset = splits[source.split]
        if "label" in dataset.column_names and label_names is not None:
            dataset = _align_labels(dataset, label_names, where)
    else:
        path = config.resolve_path(source.path)
        label_column = source.label_column
        if "label_column" not in source.model_fields_set and label_column not in _file_columns(path):
            label_column = None  # the default 'label' column is optional: unlabeled data distils too
        dataset = read_examples(
            path,
            text_column=source.text_column,
            label_column=label_column,
            lang_column=source.lang_column,
            translation_column=source.teacher_text_column,
            label_names=label_names,
            tokenizer=tokenizer,
            max_length=config.data.max_length,
            overlong=source.overlong,
        )
        if source.teacher_text_column:
            dataset = dataset.rename_column("translation", TEACHER_TEXT)
        if source.languages and "lang" in dataset.column_names:
            from polydistill.data.languages import normalize_language

            wanted = {normalize_language(code) for code in source.languages}
            dataset = dataset.filter(lambda row: row["lang"] in wanted)
    if source.teacher_text_column and TEACHER_TEXT not in dataset.column_names:
        if source.teacher_text_column not in dataset.column_names:
            raise ConfigError(f"{where}: teacher_text_column: no column '{source.teacher_text_column}' (columns: {dataset.column_names})")
        dataset = dataset.add_column(TEACHER_TEXT, dataset[source.teacher_text_column])
    return dataset


def _align_labels(dataset, label_names: list[str], where: str):
    """Renumber a built-in source's labels to the teacher's label ids, by name."""
    from datasets import ClassLabel

    names = dataset.features["label"].names
    if sorted(names) != sorted(label_names):
        raise ConfigError(f"{where}: its labels {names} differ from the teacher's {label_names}")
    if names == label_names:
        return dataset
    new_id = {i: label_names.index(name) for i, name in enumerate(names)}
    dataset = dataset.map(lambda row: {"label": new_id[row["label"]]})
    return dataset.cast_column("label", ClassLabel(names=label_names))


def _file_columns(path: Path) -> set[str]:
    """Column names of a data file, read from its first record or header."""
    import csv

    from polydistill.data.readers import detect_format

    data_format = detect_format(path)
    if data_format == "jsonl":
        with path.open(encoding="utf-8") as handle:
            first = next((line for line in handle if line.strip()), "{}")
        try:
            record = json.loads(first)
        except json.JSONDecodeError:
            return set()  # read_examples reports the malformed line
        return set(record) if isinstance(record, dict) else set()
    if data_format in ("csv", "tsv"):
        with path.open(encoding="utf-8", newline="") as handle:
            return set(next(csv.reader(handle, delimiter="," if data_format == "csv" else "\t"), []))
    if data_format == "parquet":
        import pyarrow.parquet as pq

        return set(pq.read_schema(path).names)
    from datasets import load_from_disk

    return set(load_from_disk(str(path)).column_names)


def classifier_label_names(model_config) -> list[str] | None:
    """The teacher's label names, unless they are transformers' placeholders (LABEL_0, ...)."""
    names = [model_config.id2label[i] for i in sorted(model_config.id2label)]
    if all(name == f"LABEL_{i}" for i, name in enumerate(names)):
        return None
    return names


def load_classifier(model_dir: Path, *, label_names: list[str] | None = None, eager_attention: bool = False, trust_remote_code: bool = False):
    """A sequence classifier, and whether its classification head had to be initialised fresh."""
    from transformers import AutoModelForSequenceClassification

    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    if label_names is not None:
        kwargs |= {
            "num_labels": len(label_names),
            "id2label": dict(enumerate(label_names)),
            "label2id": {name: i for i, name in enumerate(label_names)},
        }
    if eager_attention:
        kwargs["attn_implementation"] = "eager"
    model, info = AutoModelForSequenceClassification.from_pretrained(model_dir, output_loading_info=True, **kwargs)
    fresh_head = bool(info["missing_keys"]) or bool(info.get("mismatched_keys"))
    return model, fresh_head


def save_model_dir(model, tokenizer, directory: Path) -> None:
    """A standard Hugging Face directory: safetensors weights, config, tokenizer; no pickles."""
    model.save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)


def training_arguments(config: RunConfig, output_dir: Path, overrides: dict[str, Any]):
    from transformers import TrainingArguments

    arguments = DEFAULT_TRAINING_ARGUMENTS | {"seed": config.seed, "data_seed": config.seed} | overrides
    try:
        return TrainingArguments(
            output_dir=str(output_dir),
            remove_unused_columns=False,
            label_names=["labels"],
            **arguments,
        )
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{config.source_file or 'config'}: training: {error}") from error


def student_layer_count(config: RunConfig, base_layers: int) -> int:
    keep = config.student.keep_layers
    if keep is None:
        return base_layers
    return keep if isinstance(keep, int) else len(keep)


# --------------------------------------------------------------------------- the run


def run(config: RunConfig, output_dir: str | Path | None = None) -> RunResult:
    from transformers import AutoConfig, set_seed

    from polydistill.models.zoo import resolve_model_path

    output_dir = Path(output_dir or config.output_dir)
    set_seed(config.seed)

    console.print(f"[bold]Teacher[/] {config.teacher.model}")
    teacher_dir = resolve_model_path(config.teacher.model, revision=config.teacher.revision)
    trust = config.teacher.trust_remote_code
    teacher_config = AutoConfig.from_pretrained(teacher_dir, trust_remote_code=trust)
    base_dir = resolve_model_path(config.student.model) if config.student.model else teacher_dir
    base_layers = (AutoConfig.from_pretrained(base_dir) if config.student.model else teacher_config).num_hidden_layers
    check_against_teacher(config, teacher_config.num_hidden_layers, student_layer_count(config, base_layers), base_layers)

    teacher_tokenizer = load_tokenizer(teacher_dir, trust)
    eager = config.objectives.needs_attention_weights
    if config.task == "embeddings":
        from polydistill.training import embeddings

        train = embeddings.load_pairs(config.data.train, config, tokenizer=teacher_tokenizer)
        evaluation = embeddings.load_pairs(config.data.eval, config, tokenizer=teacher_tokenizer) if config.data.eval else None
        write_run_record(config, output_dir, teacher_dir)
        teacher = embeddings.load_encoder(teacher_dir, eager_attention=eager, trust_remote_code=trust)
        label_names = None
    else:
        label_names = classifier_label_names(teacher_config) if not config.teacher.finetune else None
        train = load_examples(config.data.train, config, tokenizer=teacher_tokenizer, label_names=label_names)
        from polydistill.evaluation.evaluate import dataset_label_names

        label_names = label_names or dataset_label_names(train)
        evaluation = (
            load_examples(config.data.eval, config, tokenizer=teacher_tokenizer, label_names=label_names)
            if config.data.eval
            else None
        )
        write_run_record(config, output_dir, teacher_dir)
        if config.teacher.finetune:
            from polydistill.training.finetune import finetune_teacher

            teacher_dir = finetune_teacher(config, teacher_dir, output_dir / "teacher", label_names=label_names)
        teacher, fresh_head = load_classifier(teacher_dir, label_names=label_names, eager_attention=eager, trust_remote_code=trust)
        if fresh_head:
            raise ConfigError(
                f"{config.source_file or 'config'}: teacher.model: '{config.teacher.model}' has no trained "
                "classification head for this task; add a teacher.finetune section or give a fine-tuned classifier"
            )
    result, student, tokenizer = distil(config, teacher, teacher_tokenizer, base_dir, train, evaluation, output_dir, label_names)
    console.print(f"[bold green]Student saved[/] to {result.student_dir}")
    if evaluation is not None:
        if config.task == "embeddings":
            result.metrics = embeddings.evaluate_embeddings_run(
                config, output_dir, student=student, tokenizer=tokenizer, teacher=teacher,
                teacher_tokenizer=teacher_tokenizer, evaluation=evaluation, teacher_dir=teacher_dir,
                student_dir=result.student_dir,
            )
            write_card(config, result.student_dir, result.metrics, pipeline_tag="sentence-similarity")
        else:
            result.metrics = evaluate_and_report(
                config, output_dir, student, tokenizer, teacher, teacher_tokenizer, evaluation, teacher_dir, result.student_dir
            )
            write_card(config, result.student_dir, result.metrics, pipeline_tag="text-classification")
        console.print(f"[bold green]Report[/] {output_dir / 'report.html'}")
    return result


def write_card(config: RunConfig, student_dir: Path, metrics: dict[str, Any], *, pipeline_tag: str) -> None:
    from polydistill.evaluation.model_card import write_model_card

    write_model_card(
        student_dir,
        metrics,
        teacher=config.teacher.model,
        data=config.data.train.path,
        languages=None,
        objectives={name: section.model_dump() for name, section in config.objectives.enabled()},
        pipeline_tag=pipeline_tag,
    )


def evaluate_and_report(config: RunConfig, output_dir: Path, student, tokenizer, teacher, teacher_tokenizer, evaluation, teacher_dir: Path, student_dir: Path) -> dict[str, Any]:
    """Per-language quality of teacher and student, their size and speed, and the report."""
    from polydistill.evaluation.efficiency import settings_for
    from polydistill.evaluation.evaluate import evaluate_run

    efficiency = settings_for(config.evaluation.efficiency, max_length=config.data.max_length)
    console.print("[bold]Evaluating[/] teacher and student per language")
    student.eval()
    metrics = evaluate_run(
        output_dir,
        student=student,
        tokenizer=tokenizer,
        dataset=evaluation,
        teacher=teacher,
        teacher_tokenizer=teacher_tokenizer,
        student_dir=student_dir,
        teacher_dir=teacher_dir,
        config=run_summary(config),
        batch_size=config.evaluation.batch_size,
        max_length=config.data.max_length,
        efficiency=efficiency,
        teacher_text_column=_teacher_text(config.data.eval),
    )
    return metrics


def run_summary(config: RunConfig) -> dict[str, Any]:
    return {
        "teacher": config.teacher.model,
        "student": describe_student(config),
        "student_config": config.student.model_dump(mode="json", exclude_none=True),
        "data": config.data.train.path,
        "objectives": {name: section.model_dump() for name, section in config.objectives.enabled()},
    }


def distil(config: RunConfig, teacher, teacher_tokenizer, base_dir: Path, train, evaluation, output_dir: Path, label_names):
    """Build the student from ``base_dir`` (the teacher's directory unless the config names another
    model), train it against ``teacher`` and save it as a standard Hugging Face directory."""
    from polydistill.models.student import build_student
    from polydistill.objectives import LayerMaps, build_objectives
    from polydistill.training.features import DistillationCollator, tokenize_for_distillation
    from polydistill.training.trainer import DISTILLATION_HEADS_FILE, DistillationTrainer

    student_cfg = config.student
    eager = config.objectives.needs_attention_weights
    if config.student.model and config.task == "embeddings":
        from polydistill.training.embeddings import load_encoder

        base, tokenizer = load_encoder(base_dir, eager_attention=eager), load_tokenizer(base_dir)
    elif config.student.model:
        base, _ = load_classifier(base_dir, label_names=label_names or classifier_label_names(teacher.config), eager_attention=eager)
        tokenizer = load_tokenizer(base_dir)
    else:
        base, tokenizer = teacher, teacher_tokenizer
    built = build_student(
        base,
        keep_layers=student_cfg.keep_layers,
        hidden_size=student_cfg.hidden_size,
        intermediate_size=student_cfg.intermediate_size,
        num_attention_heads=student_cfg.num_attention_heads,
    )
    student = built.model
    if student_cfg.trim_vocabulary:
        from polydistill.models.trim import corpus_texts_by_language, trim_vocabulary, write_report

        trim = student_cfg.trim_vocabulary
        texts = corpus_texts_by_language(trim.corpus, trim.languages)
        trimmed = trim_vocabulary(
            student,
            tokenizer,
            texts,
            min_count=trim.min_count,
            max_vocab=trim.max_vocab,
            keep_characters=trim.keep_characters,
            keep_texts=[config.student_prefix] if config.student_prefix else (),
        )
        student, tokenizer = trimmed.model, trimmed.tokenizer
        trimmed.report.print_table()
        output_dir.mkdir(parents=True, exist_ok=True)
        write_report(trimmed.report, output_dir)
    if eager:
        student.set_attn_implementation("eager")

    teacher_layers, student_layers = teacher.config.num_hidden_layers, student.config.num_hidden_layers
    if built.kept_layers is not None and not config.student.model:
        layer_maps = LayerMaps.from_kept_layers(built.kept_layers)
    else:
        try:
            layer_maps = LayerMaps.uniform(student_layers, teacher_layers)
        except ValueError as error:
            if _needs_layer_map(config):
                raise ConfigError(f"{config.source_file or 'config'}: objectives: {error}") from error
            layer_maps = LayerMaps({}, {})
    objectives = build_objectives(
        config.objectives, teacher_config=teacher.config, student_config=student.config, layer_maps=layer_maps
    )

    tokenize = dict(
        teacher_tokenizer=teacher_tokenizer,
        max_length=config.data.max_length,
        prefix=config.student_prefix,
        teacher_prefix=config.teacher.prefix,
    )
    train_features = tokenize_for_distillation(train, tokenizer, teacher_text_column=_teacher_text(config.data.train), **tokenize)
    eval_features = (
        tokenize_for_distillation(evaluation, tokenizer, teacher_text_column=_teacher_text(config.data.eval), **tokenize)
        if evaluation is not None
        else None
    )
    arguments = training_arguments(config, output_dir / "checkpoints", config.training)
    teacher_cache = None
    if config.teacher.cache:
        unique_rows, example_index = distinct_teacher_inputs(train_features)
        teacher_cache = build_teacher_cache(
            config, teacher, teacher_tokenizer, tokenizer, train_features.select(unique_rows), objectives, arguments
        )
        train_features = train_features.add_column("example_index", example_index)
    trainer = DistillationTrainer(
        model=student,
        args=arguments,
        teacher=teacher,
        objectives=objectives,
        language_alpha=config.data.balance_alpha,
        teacher_cache=teacher_cache,
        train_dataset=train_features,
        eval_dataset=eval_features,
        data_collator=DistillationCollator(tokenizer, teacher_tokenizer),
        processing_class=tokenizer,
    )
    train_output = trainer.train()

    student_dir = output_dir / "student"
    if trainer.is_world_process_zero():
        if config.task == "embeddings":
            from polydistill.training.embeddings import save_sentence_transformer

            save_sentence_transformer(student, tokenizer, student_dir, prefix=config.student_prefix, max_seq_length=config.data.max_length)
        else:
            save_model_dir(student, tokenizer, student_dir)
        heads = trainer._objective_state()
        if heads:
            from safetensors.torch import save_file

            save_file(heads, str(output_dir / DISTILLATION_HEADS_FILE))
    (output_dir / "train_metrics.json").write_text(json.dumps(train_output.metrics, indent=2))
    return RunResult(output_dir, student_dir, train_output.metrics), student, tokenizer


def distinct_teacher_inputs(features) -> tuple[list[int], list[int]]:
    """Rows with distinct teacher inputs (shortest first), and for every row the position of its input among them.

    When the teacher reads the English source of each translation, one source stands for a row
    in every language: the teacher needs to run once per source, not once per row.
    """
    from polydistill.data.readers import column_values

    column = "teacher_input_ids" if "teacher_input_ids" in features.column_names else "input_ids"
    first_row: dict[tuple[int, ...], int] = {}
    keys = [tuple(ids) for ids in column_values(features, column)]
    for row, key in enumerate(keys):
        first_row.setdefault(key, row)
    # in order of length, so the teacher's batches carry little padding while the cache is built
    ordered = sorted(first_row, key=len)
    position = {key: index for index, key in enumerate(ordered)}
    return [first_row[key] for key in ordered], [position[key] for key in keys]


def build_teacher_cache(config: RunConfig, teacher, teacher_tokenizer, tokenizer, train_features, objectives, arguments):
    """Run the teacher once over the (distinct) training inputs, or reuse the outputs stored by an
    earlier run with the same teacher weights, tokenizer, inputs and fields."""
    from polydistill.training.cache import TeacherCache, cache_fields, cache_fingerprint, default_cache_root
    from polydistill.training.features import DistillationCollator
    from polydistill.training.trainer import mean_pool

    embeddings = config.task == "embeddings"
    fields = cache_fields(objectives, teacher_layers=teacher.config.num_hidden_layers, logits=not embeddings, embeddings=embeddings)
    teacher_sha256 = fingerprint_weights(Path(teacher.name_or_path))
    fingerprint = cache_fingerprint(
        teacher_sha256=teacher_sha256, tokenizer=teacher_tokenizer, features=train_features,
        max_length=config.data.max_length, fields=fields,
    )
    root = Path(config.teacher.cache_dir).expanduser() if config.teacher.cache_dir else default_cache_root()
    with arguments.main_process_first(desc="teacher cache"):
        return TeacherCache.load_or_build(
            root,
            fingerprint=fingerprint,
            teacher=teacher,
            features=train_features,
            collator=DistillationCollator(tokenizer, teacher_tokenizer),
            fields=fields,
            batch_size=arguments.per_device_eval_batch_size,
            device=arguments.device,
            embed=(lambda model, inputs: mean_pool(model(**inputs).last_hidden_state, inputs["attention_mask"])) if embeddings else None,
        )


def _needs_layer_map(config: RunConfig) -> bool:
    o = config.objectives
    return bool((o.hidden_states and not o.hidden_states.layer_map) or (o.attentions and not o.attentions.layer_map))


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


def _teacher_text(source: DataSourceConfig) -> str | None:
    return TEACHER_TEXT if source.teacher_text_column else None
