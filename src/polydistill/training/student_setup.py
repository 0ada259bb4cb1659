"""The student a run trains, and the objectives it trains with, built from the config.

Layers are copied from the base model (the teacher unless ``student.model`` names another), the
vocabulary is trimmed to the served languages when asked (with its report written beside the
run), and the objectives get their layer maps from the kept layers, or a uniform map.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from polydistill.config import RunConfig
from polydistill.console import console
from polydistill.data.columns import language_column
from polydistill.data.languages import normalize_languages
from polydistill.data.sampling import texts_by_language
from polydistill.data.sources import corpus_texts_by_language
from polydistill.errors import ConfigError
from polydistill.models.student import build_student
from polydistill.models.trim import trim_vocabulary, write_report
from polydistill.objectives import LayerMaps, ObjectiveSet, build_objectives, needs_layer_map


@dataclass
class PreparedStudent:
    model: Any
    tokenizer: Any
    objectives: ObjectiveSet
    #: which teacher layer each student layer learns from (hidden states, attentions)
    layer_maps: LayerMaps


def prepare_student(config: RunConfig, base: Any, tokenizer: Any, teacher: Any, output_dir: Path, *, train: Any = None) -> PreparedStudent:
    """The student of ``config`` built from ``base``; ``train`` (the run's training data) ranks the
    channels a pruned initialisation keeps."""
    reusable = _reusable
    key = _reuse_key(config, base, train) if reusable is not None else None
    if reusable is not None and key in reusable:
        student, tokenizer, kept_layers, report = copy.deepcopy(reusable[key])
        console.print("[bold]Student[/] reusing the one this process built and trimmed for an earlier run with the same student section")
        if report is not None and int(os.environ.get("RANK", "0")) == 0:
            output_dir.mkdir(parents=True, exist_ok=True)
            write_report(report, output_dir)
    else:
        student, tokenizer, kept_layers, report = _built_student(config, base, tokenizer, output_dir, train)
        if reusable is not None and key is not None:
            reusable[key] = copy.deepcopy((student, tokenizer, kept_layers, report))
            while len(reusable) > REUSED_STUDENTS:
                reusable.pop(next(iter(reusable)))
    if config.objectives.needs_attention_weights:
        student.set_attn_implementation("eager")

    if kept_layers is not None and not config.student.model:
        layer_maps = LayerMaps.from_kept_layers(kept_layers)
    else:
        try:
            layer_maps = LayerMaps.uniform(student.config.num_hidden_layers, teacher.config.num_hidden_layers)
        except ValueError as error:
            if needs_layer_map(config.objectives):
                raise ConfigError(f"{config.source_file or 'config'}: objectives: {error}") from error
            layer_maps = LayerMaps({}, {})
    objectives = build_objectives(config.objectives, teacher_config=teacher.config, student_config=student.config, layer_maps=layer_maps)
    return PreparedStudent(student, tokenizer, objectives, layer_maps)


#: students a process keeps for reuse inside :func:`reusing_students` (one per distinct student section)
REUSED_STUDENTS = 4
_reusable: dict[str, Any] | None = None


@contextmanager
def reusing_students() -> Iterator[None]:
    """Within it, a student built (layers copied, channels pruned, vocabulary trimmed) for one run is
    reused, as a copy, by every later run in this process with the same student section, base model
    and data: the trials of a search mostly differ in objectives and training, and trimming a
    250k-piece vocabulary costs about 25 s a trial."""
    global _reusable
    outer, _reusable = _reusable, {} if _reusable is None else _reusable
    try:
        yield
    finally:
        _reusable = outer


def _reuse_key(config: RunConfig, base: Any, train: Any) -> str | None:
    """What the built student depends on, or None where it cannot be told (a base model not read from a directory)."""
    base_dir = getattr(base.config, "_name_or_path", "")
    if not base_dir or not Path(base_dir).is_dir():
        return None
    trim = config.student.trim_vocabulary
    corpora = [config.resolve_corpus(spec) for spec in (trim.corpus + trim.heldout)] if trim else []
    # the base model's files by identity, not path: each run links the fine-tuned teacher into its own directory
    files = [_file_identity(f, f.name) for f in sorted(Path(base_dir).iterdir()) if f.is_file()]
    files += [_file_identity(Path(c.split("=", 1)[-1]), c) for c in corpora if Path(c.split("=", 1)[-1]).is_file()]
    return json.dumps(
        [
            config.student.model_dump(mode="json"),
            config.student_prefix,
            config.data.max_length,
            config.objectives.needs_attention_weights,
            corpora,
            files,
            config.seed,  # a randomly initialised width
            getattr(train, "_fingerprint", None) if config.student.is_narrower else None,  # the text channels are ranked on
        ],
        sort_keys=True,
        default=str,
    )


def _file_identity(path: Path, name: str) -> tuple[str, int, int, int, int]:
    status = path.stat()
    return name, status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns


def _built_student(config: RunConfig, base: Any, tokenizer: Any, output_dir: Path, train: Any) -> tuple[Any, Any, list[int] | None, Any]:
    """The student model, its tokenizer, the base layers it kept and its trim report (None: not trimmed)."""
    student_config = config.student
    if student_config.is_narrower and student_init(config, base.config) == "pruned":
        built = build_student(base, keep_layers=student_config.keep_layers)
        built.model = _pruned(config, built.model, tokenizer, train)
    else:
        built = build_student(
            base,
            keep_layers=student_config.keep_layers,
            hidden_size=student_config.hidden_size,
            intermediate_size=student_config.intermediate_size,
            num_attention_heads=student_config.num_attention_heads,
        )
    student = built.model
    if student_config.trim_vocabulary:
        trim = student_config.trim_vocabulary
        heldout = [config.resolve_corpus(spec) for spec in trim.heldout]
        trimmed = trim_vocabulary(
            student,
            tokenizer,
            corpus_texts_by_language([config.resolve_corpus(spec) for spec in trim.corpus], trim.languages),
            languages=normalize_languages(trim.languages),
            min_count=trim.min_count,
            max_vocab=trim.max_vocab,
            general=trim.general,
            tokens_per_language=trim.tokens_per_language,
            keep_characters=trim.keep_characters,
            keep_texts=[config.student_prefix] if config.student_prefix else (),
            heldout=corpus_texts_by_language(heldout, trim.languages, require_all=False) if heldout else None,
        )
        student, tokenizer = trimmed.model, trimmed.tokenizer
        if int(os.environ.get("RANK", "0")) == 0:  # every rank trims alike; the main one reports it
            trimmed.report.print_table()
            output_dir.mkdir(parents=True, exist_ok=True)
            write_report(trimmed.report, output_dir)
        return student, tokenizer, built.kept_layers, trimmed.report
    return student, tokenizer, built.kept_layers, None


def student_init(config: RunConfig, base_config: Any) -> str:
    """``student.init``, or its default: pruned when every width set is narrower than the base model's."""
    student = config.student
    widths = {
        "hidden_size": (student.hidden_size, base_config.hidden_size),
        "num_attention_heads": (student.num_attention_heads, base_config.num_attention_heads),
        "intermediate_size": (student.intermediate_size, getattr(base_config, "intermediate_size", None)),
    }
    wider = [name for name, (asked, have) in widths.items() if asked is not None and have is not None and asked > have]
    if student.init == "pruned" and wider:
        raise ConfigError(
            f"{config.source_file or 'config'}: student.init: 'pruned' keeps channels of the base model, but "
            + ", ".join(f"student.{name} ({widths[name][0]}) is wider than its {widths[name][1]}" for name in wider)
        )
    return student.init or ("random" if wider else "pruned")


def _pruned(config: RunConfig, model: Any, tokenizer: Any, train: Any) -> Any:
    student = config.student
    if train is None:
        raise ValueError("a pruned initialisation needs the run's training data to rank channels")
    result = prune_on_training_text(
        config, model, tokenizer, train, heads=student.num_attention_heads, ffn=student.intermediate_size, hidden=student.hidden_size
    )
    console.print(f"[bold]Student initialised[/] from the teacher's most important channels: {result.widths.describe()}")
    return result.model


def prune_on_training_text(
    config: RunConfig, model: Any, tokenizer: Any, train: Any, *, heads, ffn, hidden, per_language: int | None = None
):
    """``model`` pruned to the widths asked, its channels ranked on the run's training text (every language alike)."""
    from polydistill.compress.prune import prune

    texts = texts_by_language(train["text"], language_column(train), per_language or PRUNING_TEXTS_PER_LANGUAGE)
    console.print(f"[bold]Prune[/] ranking heads, neurons and channels on {sum(map(len, texts.values()))} texts in {len(texts)} languages")
    result = prune(
        model, tokenizer, texts, heads=heads, ffn=ffn, hidden=hidden, prefix=config.student_prefix, max_length=config.data.max_length
    )
    for note in result.widths.notes:
        console.print(f"[yellow]prune:[/] {note}")
    return result


#: training texts per language that rank heads, neurons and channels for a pruned student
PRUNING_TEXTS_PER_LANGUAGE = 256
