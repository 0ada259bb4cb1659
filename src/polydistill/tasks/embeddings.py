"""Sentence embeddings: parallel data in, a sentence-transformers student out.

A sentence and its translations should land on the teacher's vector for the source sentence
(Reimers & Gurevych, 2020). The teacher embeds only the source; the student embeds both sides.
The student is saved as a sentence-transformers directory (mean pooling, L2 normalisation, the
input prefix as its default prompt) and evaluated by translation retrieval per language and by
how well it keeps the teacher's similarity structure.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from polydistill.compress.probes import EmbeddingsProbe
from polydistill.data.columns import language_column
from polydistill.data.sources import read_pairs, read_sources
from polydistill.evaluation.efficiency import measure_teacher_and_student, settings_dict, settings_for
from polydistill.evaluation.evaluate import METRICS_FILENAME, build_metrics_document, score_eval_sets, write_metrics
from polydistill.evaluation.report import write_report
from polydistill.evaluation.retrieval import evaluate_embeddings
from polydistill.models.loading import load_encoder, load_tokenizer, save_model_dir
from polydistill.models.pooling import encoder_function
from polydistill.models.sentence_transformers_files import write_sentence_transformers_files
from polydistill.tasks.base import EvaluationSet, TaskData, TrainedModels, read_evaluation_sets, register_task
from polydistill.training.provenance import run_summary

if TYPE_CHECKING:
    from polydistill.config import RunConfig


@register_task
class Embeddings:
    name: ClassVar[str] = "embeddings"
    pipeline_tag: ClassVar[str] = "sentence-similarity"
    default_objectives: ClassVar[Mapping[str, Mapping[str, Any]]] = {"embedding_mse": {}}
    cached_outputs: ClassVar[frozenset[str]] = frozenset({"embeddings"})

    def check_config(self, config: RunConfig) -> Iterable[tuple[str, str]]:
        if config.teacher.finetune is not None:
            yield "teacher.finetune", "applies to classification; an embeddings teacher is used as it is"

    def read_data(self, config: RunConfig, *, tokenizer: Any, teacher_config: Any) -> TaskData:
        def read(source: Any, _: Any) -> Any:
            return read_pairs(source, config, tokenizer=tokenizer)

        train = read_sources(config.data.train_sources, read)
        sets = read_evaluation_sets(config, read)  # each test set on its own
        return TaskData(train, sets[0].dataset if sets else None, evaluation_sets=sets)

    def prepare_teacher(self, config: RunConfig, teacher_dir: Path, output_dir: Path, data: TaskData) -> Path:
        return teacher_dir

    def load_teacher(self, config: RunConfig, teacher_dir: Path, data: TaskData, *, eager_attention: bool) -> Any:
        return load_encoder(teacher_dir, eager_attention=eager_attention, trust_remote_code=config.teacher.trust_remote_code)

    def load_student_base(self, config: RunConfig, base_dir: Path, data: TaskData, teacher: Any, *, eager_attention: bool) -> Any:
        return load_encoder(base_dir, eager_attention=eager_attention)

    def save_student(self, config: RunConfig, student: Any, tokenizer: Any, directory: Path) -> None:
        save_sentence_transformer(student, tokenizer, directory, prefix=config.student_prefix, max_seq_length=config.data.max_length)

    def evaluate(
        self, config: RunConfig, output_dir: Path, models: TrainedModels, evaluation: Any, evaluation_sets: Sequence[EvaluationSet] = ()
    ) -> dict[str, Any]:
        """Translation retrieval per language, similarity-structure retention, size and speed on the primary
        test set; retrieval and similarity structure on every one of ``evaluation_sets`` (``eval_sets``)."""
        max_length = config.data.max_length
        student_encode = encoder_function(models.student, models.tokenizer, prefix=config.student_prefix, max_length=max_length)
        teacher_encode = encoder_function(models.teacher, models.teacher_tokenizer, prefix=config.teacher.prefix, max_length=max_length)
        quality = evaluate_embeddings(student_encode, evaluation, teacher_encode=teacher_encode)
        eval_sets = None
        if evaluation_sets:
            eval_sets = score_eval_sets(
                quality, evaluation_sets, lambda pairs: evaluate_embeddings(student_encode, pairs, teacher_encode=teacher_encode)
            )
        efficiency = settings_for(config.evaluation.efficiency, max_length=max_length)
        teacher_efficiency = student_efficiency = None
        if efficiency is not None:
            texts = [str(t) for t in evaluation.select_columns(["translation"])[:]["translation"]]
            teacher_efficiency, student_efficiency = measure_teacher_and_student(
                efficiency,
                student=models.student,
                tokenizer=models.tokenizer,
                student_texts=texts,
                student_dir=models.student_dir,
                teacher=models.teacher,
                teacher_tokenizer=models.teacher_tokenizer,
                teacher_dir=models.teacher_dir,
                max_length=max_length,
            )
        document = build_metrics_document(
            "embeddings",
            quality,
            teacher_efficiency=teacher_efficiency,
            student_efficiency=student_efficiency,
            config=run_summary(config),
            meta={"max_length": max_length, "efficiency_settings": None if efficiency is None else settings_dict(efficiency)},
            eval_sets=eval_sets,
        )
        write_metrics(output_dir / METRICS_FILENAME, document)
        write_report(output_dir)
        return document

    def load_saved_student(self, config: RunConfig, directory: Path) -> tuple[Any, Any]:
        return load_encoder(directory), load_tokenizer(directory)

    def quality_probe(self, config: RunConfig, evaluation: Any, label_names: list[str] | None) -> EmbeddingsProbe:
        return EmbeddingsProbe(
            sources=[str(text) for text in evaluation["text"]],
            translations=[str(text) for text in evaluation["translation"]],
            languages=language_column(evaluation),
            max_length=config.data.max_length,
            batch_size=config.evaluation.batch_size,
        )


def save_sentence_transformer(model, tokenizer, directory: Path, *, prefix: str, max_seq_length: int) -> None:
    """A directory that ``SentenceTransformer(directory)`` loads: Transformer -> mean Pooling -> Normalize,
    with the training prefix as the default prompt, so ``encode`` embeds as the student was trained."""
    save_model_dir(model, tokenizer, directory)
    write_sentence_transformers_files(
        directory,
        hidden_size=model.config.hidden_size,
        max_seq_length=max_seq_length,
        prompts={"default": prefix} if prefix else {},
    )
    if prefix:
        settings_path = directory / "config_sentence_transformers.json"
        settings = json.loads(settings_path.read_text())
        settings["default_prompt_name"] = "default"
        settings_path.write_text(json.dumps(settings, indent=2) + "\n")
