"""The distillation trainer end to end on a tiny synthetic task."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, TrainingArguments

from polydistill.models.student import build_student
from polydistill.objectives import AttentionRelations, Attentions, HiddenStates, ObjectiveSet, SoftTargets
from polydistill.training.features import DistillationCollator
from polydistill.training.trainer import DistillationTrainer


def load_teacher(directory: Path, eager: bool = False):
    kwargs = {"attn_implementation": "eager"} if eager else {}
    return AutoModelForSequenceClassification.from_pretrained(directory, **kwargs), AutoTokenizer.from_pretrained(directory)


def test_gradients_reach_student_and_projections_never_teacher(tiny_teacher_dir, tmp_path):
    teacher, tokenizer = load_teacher(tiny_teacher_dir, eager=True)
    student = build_student(teacher, keep_layers=2, hidden_size=16, num_attention_heads=2, intermediate_size=32).model
    student.set_attn_implementation("eager")
    objectives = ObjectiveSet(
        {
            "soft_targets": SoftTargets(2.0),
            "hidden_states": HiddenStates({1: 2, 2: 4}, student_width=16, teacher_width=32),
            "attentions": Attentions({0: 1, 1: 3}),
            "attention_relations": AttentionRelations(teacher_layer=3, student_layer=1, relation_heads=4),
        },
        {"soft_targets": 1.0, "hidden_states": 1.0, "attentions": 1.0, "attention_relations": 1.0},
    )
    trainer = DistillationTrainer(
        model=student,
        args=TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True, remove_unused_columns=False),
        teacher=teacher,
        objectives=objectives,
        data_collator=DistillationCollator(tokenizer),
    )
    batch = DistillationCollator(tokenizer)([dict(tokenizer(t)) for t in ["the apple now", "we saw a big red bus today"]])
    loss = trainer.compute_loss(student, batch)
    loss.backward()
    terms = set(trainer._term_sums)
    assert terms == {
        "soft_targets",
        "hidden_states",
        "attentions",
        "attention_relations_query",
        "attention_relations_key",
        "attention_relations_value",
    }
    assert all(p.grad is not None for p in student.parameters() if p.requires_grad and "pooler" not in str(p.shape))
    assert student.get_input_embeddings().weight.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in objectives.parameters())
    assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())
    assert not teacher.training


def agreement(student_dir: Path, teacher_dir: Path, texts: list[str]) -> float:
    student, student_tokenizer = load_teacher(student_dir)
    teacher, teacher_tokenizer = load_teacher(teacher_dir)
    with torch.no_grad():
        s = student(**student_tokenizer(texts, padding=True, return_tensors="pt")).logits.argmax(-1)
        t = teacher(**teacher_tokenizer(texts, padding=True, return_tensors="pt")).logits.argmax(-1)
    return (s == t).float().mean().item()


RUN_CONFIG = """\
teacher:
  model: {teacher}
student:
  keep_layers: 2
data:
  train:
    path: {train}
  eval:
    path: {test}
  max_length: 32
objectives:
  soft_targets:
    weight: 1.0
    temperature: 2.0
  hidden_states:
    weight: 1.0
training:
  num_train_epochs: 6
  learning_rate: 0.003
  per_device_train_batch_size: 32
  logging_steps: 5
  use_cpu: true
evaluation:
  efficiency: quick
"""


def test_cli_run_distils_a_student_that_agrees_with_its_teacher(tiny_teacher_dir, synthetic_data, tmp_path):
    from transformers import pipeline

    from polydistill.cli import main

    config = tmp_path / "run.yaml"
    config.write_text(RUN_CONFIG.format(teacher=tiny_teacher_dir, train=synthetic_data["train"], test=synthetic_data["test"]))
    out = tmp_path / "out"
    assert main(["run", str(config), "--out", str(out)]) == 0

    student_dir = out / "student"
    assert (student_dir / "model.safetensors").is_file() and not list(student_dir.glob("*.bin"))
    held_out = [json.loads(line) for line in synthetic_data["test"].read_text().splitlines()]
    texts = [row["text"] for row in held_out]
    assert agreement(student_dir, tiny_teacher_dir, texts) >= 0.9

    classify = pipeline("text-classification", model=str(student_dir))
    predictions = classify(texts[:20])
    assert {p["label"] for p in predictions} <= {"fruit", "vehicle", "instrument"}

    # provenance, per-term logs, metrics and report
    record = json.loads((out / "run.json").read_text())
    assert len(record["teacher"]["sha256"]) == 64 and record["versions"]["transformers"]
    assert (out / "config.yaml").is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["overall"]["student"]["accuracy"] >= 0.85
    assert (out / "report.html").is_file() and (student_dir / "README.md").is_file()


def test_labels_objective_without_labels_is_refused(tiny_teacher_dir, tmp_path):
    from polydistill.config import load_config
    from polydistill.errors import ConfigError

    (tmp_path / "train.jsonl").write_text('{"text": "the apple"}\n')
    config = tmp_path / "run.yaml"
    config.write_text(
        f"teacher:\n  model: {tiny_teacher_dir}\ndata:\n  train:\n    path: train.jsonl\n    label_column: null\nobjectives:\n  labels: {{}}\n"
    )
    with pytest.raises(ConfigError, match="objectives.labels needs gold labels"):
        load_config(config)


def test_teacher_runs_once_per_distinct_input():
    from datasets import Dataset

    from polydistill.training.teacher_cache import distinct_teacher_inputs

    features = Dataset.from_dict(
        {
            "input_ids": [[1, 5], [1, 6], [1, 7], [1, 8]],
            # rows 0, 2, 3: one English source; row 1 a shorter one
            "teacher_input_ids": [[2, 9, 8, 3], [2, 4, 3], [2, 9, 8, 3], [2, 9, 8, 3]],
        }
    )
    unique_rows, example_index = distinct_teacher_inputs(features)
    assert unique_rows == [1, 0]  # shortest first
    assert example_index == [1, 0, 1, 1]
