"""The student a run trains, and the objectives it trains with, built from the config.

Layers are copied from the base model (the teacher unless ``student.model`` names another), the
vocabulary is trimmed to the served languages when asked (with its report written beside the
run), and the objectives get their layer maps from the kept layers, or a uniform map.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from polydistill.config import RunConfig
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


def prepare_student(config: RunConfig, base: Any, tokenizer: Any, teacher: Any, output_dir: Path) -> PreparedStudent:
    student_config = config.student
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
        trimmed = trim_vocabulary(
            student,
            tokenizer,
            corpus_texts_by_language(trim.corpus, trim.languages),
            min_count=trim.min_count,
            max_vocab=trim.max_vocab,
            keep_characters=trim.keep_characters,
            keep_texts=[config.student_prefix] if config.student_prefix else (),
        )
        student, tokenizer = trimmed.model, trimmed.tokenizer
        trimmed.report.print_table()
        output_dir.mkdir(parents=True, exist_ok=True)
        write_report(trimmed.report, output_dir)
    if config.objectives.needs_attention_weights:
        student.set_attn_implementation("eager")

    if built.kept_layers is not None and not student_config.model:
        layer_maps = LayerMaps.from_kept_layers(built.kept_layers)
    else:
        try:
            layer_maps = LayerMaps.uniform(student.config.num_hidden_layers, teacher.config.num_hidden_layers)
        except ValueError as error:
            if needs_layer_map(config.objectives):
                raise ConfigError(f"{config.source_file or 'config'}: objectives: {error}") from error
            layer_maps = LayerMaps({}, {})
    objectives = build_objectives(config.objectives, teacher_config=teacher.config, student_config=student.config, layer_maps=layer_maps)
    return PreparedStudent(student, tokenizer, objectives)
