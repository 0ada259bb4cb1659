"""The one flow of a run, checked where it joins its steps: the trainer's sampler, resumed
projection heads, a student built from another model, and the provenance of a fine-tuned teacher."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import pytest
import torch
from datasets import Dataset
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification, AutoTokenizer, BertForSequenceClassification, TrainingArguments

from polydistill.models.student import build_student
from polydistill.objectives import HiddenStates, ObjectiveSet, SoftTargets
from polydistill.training.features import DistillationCollator, tokenize_for_distillation
from polydistill.training.trainer import DISTILLATION_HEADS_FILE, DistillationTrainer
from tests.conftest import synthetic_examples, tiny_bert_config, write_jsonl


def sha256_of_weights(directory: Path) -> str:
    """Worked out here, not by polydistill: name then bytes of every weight file, in name order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.suffix in {".safetensors", ".bin"}):
        digest.update(path.relative_to(directory).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def features(tokenizer, rows: list[dict]) -> Dataset:
    return tokenize_for_distillation(Dataset.from_list(rows), tokenizer, max_length=32)


def test_trainer_draws_languages_balanced_when_alpha_is_zero(tiny_teacher_dir, tmp_path):
    teacher = AutoModelForSequenceClassification.from_pretrained(tiny_teacher_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_teacher_dir)
    # 90% German, 10% French: uniform sampling would draw about 9 German rows per French one
    rows = [{"text": e["text"], "lang": "de" if i % 10 else "fr"} for i, e in enumerate(synthetic_examples(400, seed=3))]
    trainer = DistillationTrainer(
        model=build_student(teacher, keep_layers=1).model,
        args=TrainingArguments(
            output_dir=str(tmp_path), report_to="none", use_cpu=True, remove_unused_columns=False, per_device_train_batch_size=50
        ),
        teacher=teacher,
        objectives=ObjectiveSet({"soft_targets": SoftTargets(2.0)}, {"soft_targets": 1.0}),
        language_alpha=0.0,
        train_dataset=features(tokenizer, rows),
        data_collator=DistillationCollator(tokenizer),
    )
    langs = [rows[i]["lang"] for i in trainer._get_train_sampler()]
    counts = Counter(langs)
    assert len(langs) == 400
    assert abs(counts["fr"] / len(langs) - 0.5) < 0.1, counts
    uniform = Counter(rows[i]["lang"] for i in torch.randperm(400).tolist())
    assert uniform["fr"] == 40  # the data really are imbalanced


def test_resuming_from_a_checkpoint_restores_the_projection_heads(tiny_teacher_dir, tmp_path):
    teacher = AutoModelForSequenceClassification.from_pretrained(tiny_teacher_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_teacher_dir)
    train = features(tokenizer, [{"text": e["text"]} for e in synthetic_examples(64, seed=4)])

    def trainer_for(output: Path, steps: int) -> DistillationTrainer:
        torch.manual_seed(0)
        student = build_student(teacher, keep_layers=2, hidden_size=16, num_attention_heads=2, intermediate_size=32).model
        objectives = ObjectiveSet({"hidden_states": HiddenStates({1: 2, 2: 4}, student_width=16, teacher_width=32)}, {"hidden_states": 1.0})
        args = TrainingArguments(
            output_dir=str(output),
            report_to="none",
            use_cpu=True,
            remove_unused_columns=False,
            per_device_train_batch_size=16,
            max_steps=steps,
            save_strategy="steps",
            save_steps=2,
            learning_rate=1e-2,
        )
        return DistillationTrainer(
            model=student,
            args=args,
            teacher=teacher,
            objectives=objectives,
            train_dataset=train,
            data_collator=DistillationCollator(tokenizer),
        )

    first = trainer_for(tmp_path / "a", steps=2)
    first.train()
    saved = load_file(str(tmp_path / "a" / "checkpoint-2" / DISTILLATION_HEADS_FILE))
    assert saved and all(torch.equal(saved[k], v) for k, v in first._objective_state().items())

    resumed = trainer_for(tmp_path / "a", steps=2)
    fresh = {k: v.clone() for k, v in resumed._objective_state().items()}
    assert any(not torch.equal(fresh[k], saved[k]) for k in saved)  # the new trainer starts elsewhere
    resumed.train(resume_from_checkpoint=str(tmp_path / "a" / "checkpoint-2"))
    # resumed at the last step: nothing more to train, so the heads are exactly the checkpoint's
    assert all(torch.equal(resumed._objective_state()[k], saved[k]) for k in saved)


RUN = """\
teacher:
  model: {teacher}
{student}
data:
  train: {{path: train.jsonl}}
  max_length: 32
objectives:
  soft_targets: {{weight: 1.0}}
training:
  max_steps: 1
  learning_rate: 0.0
  use_cpu: true
"""


def test_student_model_other_than_the_teacher_is_built_from_that_model(tiny_teacher_dir, wordpiece_tokenizer, tmp_path):
    from polydistill.config import load_config
    from polydistill.training.run import run

    torch.manual_seed(5)
    other = tmp_path / "other"
    BertForSequenceClassification(tiny_bert_config(wordpiece_tokenizer, layers=3, hidden=24, heads=2)).save_pretrained(other)
    wordpiece_tokenizer.save_pretrained(other)
    write_jsonl(tmp_path / "train.jsonl", synthetic_examples(40, seed=6))
    (tmp_path / "run.yaml").write_text(RUN.format(teacher=tiny_teacher_dir, student=f"student:\n  model: {other}\n  keep_layers: [0, 2]"))
    result = run(load_config(tmp_path / "run.yaml"), output_dir=tmp_path / "out")

    student = BertForSequenceClassification.from_pretrained(result.student_dir)
    base = BertForSequenceClassification.from_pretrained(other)
    assert student.config.num_hidden_layers == 2 and student.config.hidden_size == 24
    # learning rate 0: the student is exactly layers 0 and 2 of the other model
    assert torch.equal(student.bert.embeddings.word_embeddings.weight, base.bert.embeddings.word_embeddings.weight)
    for kept, layer in zip((0, 2), student.bert.encoder.layer, strict=True):
        assert torch.equal(layer.output.dense.weight, base.bert.encoder.layer[kept].output.dense.weight)


def test_run_json_names_the_fine_tuned_teacher_and_its_base(wordpiece_tokenizer, tmp_path):
    from transformers import BertModel

    from polydistill.config import load_config
    from polydistill.training.run import run

    torch.manual_seed(7)
    encoder = tmp_path / "encoder"  # no classification head: the run must fine-tune it first
    BertModel(tiny_bert_config(wordpiece_tokenizer, layers=2)).save_pretrained(encoder)
    wordpiece_tokenizer.save_pretrained(encoder)
    write_jsonl(tmp_path / "train.jsonl", synthetic_examples(40, seed=8))
    finetune = "  finetune:\n    data: {path: train.jsonl}\n    training: {max_steps: 2, use_cpu: true}"
    (tmp_path / "run.yaml").write_text(RUN.format(teacher=f"{encoder}\n{finetune}", student="student:\n  keep_layers: 1"))
    run(load_config(tmp_path / "run.yaml"), output_dir=tmp_path / "out")

    record = json.loads((tmp_path / "out" / "run.json").read_text())
    fine_tuned = tmp_path / "out" / "teacher"
    assert record["teacher"]["sha256"] == sha256_of_weights(fine_tuned)
    assert record["teacher"]["fine_tuned_from"]["sha256"] == sha256_of_weights(encoder)
    assert sha256_of_weights(fine_tuned) != sha256_of_weights(encoder)


def test_relational_objective_trains_a_classifier_on_its_pooled_final_states(tiny_teacher_dir, tmp_path):
    from polydistill.models.pooling import mean_pool
    from polydistill.objectives.base import Outputs
    from polydistill.objectives.relational import Relational

    teacher = AutoModelForSequenceClassification.from_pretrained(tiny_teacher_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_teacher_dir)
    student = build_student(teacher, keep_layers=2, hidden_size=16, num_attention_heads=2, intermediate_size=32).model
    trainer = DistillationTrainer(
        model=student,
        args=TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True, remove_unused_columns=False),
        teacher=teacher,
        objectives=ObjectiveSet({"relational": Relational()}, {"relational": 1.0}),
        data_collator=DistillationCollator(tokenizer),
    )
    texts = ["the apple now", "we saw a big red bus today", "many drum here", "they took the harp"]
    batch = DistillationCollator(tokenizer)([dict(tokenizer(t)) for t in texts])
    student.eval()  # no dropout, so the loss can be recomputed; gradients flow all the same
    loss = trainer.compute_loss(student, batch)
    loss.backward()
    assert student.get_input_embeddings().weight.grad.abs().sum() > 0

    def pooled(model):  # independently: mean of the final hidden states over the real tokens
        inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in batch}
        return mean_pool(model(**inputs, output_hidden_states=True).hidden_states[-1], batch["attention_mask"])

    with torch.no_grad():
        expected = Relational()(Outputs(embeddings=pooled(student)), Outputs(embeddings=pooled(teacher)), {})
    assert set(expected) == {"relational_distance", "relational_angle"} and expected["relational_angle"] > 0
    assert loss.item() == pytest.approx((expected["relational_distance"] + expected["relational_angle"]).item(), rel=1e-5)
