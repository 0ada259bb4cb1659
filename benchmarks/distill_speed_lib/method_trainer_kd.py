"""Method (c) for classification: a plain ``transformers.Trainer`` with a hand-written KD loss."""

from __future__ import annotations

import shutil
import time
from typing import Any

from distill_speed_lib.measure import method_record, peak_rss_mib
from distill_speed_lib.settings import (
    Settings,
    peer_training_arguments,
    read_prepared,
    recipe_dict,
    task_dir,
    validated,
)


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

    from polydistill.data.sources import read_labelled
    from polydistill.models.loading import classifier_label_names

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
            kl = (
                F.kl_div(
                    F.log_softmax(outputs.logits / t, dim=-1),
                    F.log_softmax(teacher_logits / t, dim=-1),
                    log_target=True,
                    reduction="batchmean",
                )
                * t
                * t
            )
            loss = soft_weight * kl + hard_weight * F.cross_entropy(outputs.logits, teacher_logits.argmax(dim=-1))
            return (loss, outputs) if return_outputs else loss

    start = time.perf_counter()
    teacher_dir, student_dir = prepared["teacher_dir"], prepared["student_init"]
    teacher_tokenizer = AutoTokenizer.from_pretrained(teacher_dir)
    student_tokenizer = AutoTokenizer.from_pretrained(student_dir)
    teacher = AutoModelForSequenceClassification.from_pretrained(teacher_dir)
    student = AutoModelForSequenceClassification.from_pretrained(student_dir)
    train = read_labelled(config.data.train, config, tokenizer=teacher_tokenizer, label_names=classifier_label_names(teacher.config))
    teacher_column = config.data.train.teacher_text_column

    def tokenize(batch):
        features = dict(student_tokenizer(batch["text"], truncation=True, max_length=max_length))
        teacher_features = teacher_tokenizer(batch[teacher_column], truncation=True, max_length=max_length)
        features.update({f"teacher_{k}": v for k, v in teacher_features.items()})
        return features

    features = train.map(tokenize, batched=True, remove_columns=train.column_names)
    set_seed(config.seed)
    arguments = TrainingArguments(
        output_dir=str(output_dir / "checkpoints"), remove_unused_columns=False, **peer_training_arguments(config)
    )
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
        task,
        "trainer-kd",
        settings,
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
