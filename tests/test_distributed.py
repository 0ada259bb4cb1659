"""Multi-process training on CPU (torchrun, gloo): two processes of 4 rows each fine-tune the teacher
and train the student a single process of 8 rows does, with the teacher cache built once and only
rank 0 writing.

Why the two runs see the same rows: the Trainer's RandomSampler becomes accelerate's
SeedableRandomSampler, the same permutation (from the run's seed) in every process, and accelerate's
BatchSamplerShard hands process k batch k of each group of two batches of 4, so step i of the
2 x 4 run covers rows 8i..8i+7 of that permutation, step i of the 1 x 8 run. The objectives are
per-row (or, with every row the same length and no padding, per-token) means and DDP averages the
gradients of the student and of the projection heads, so only float32 summation order differs.

Tolerance: max abs difference 1e-5 over every tensor (teacher, student weights and saved heads). Measured on
this setup: 3.3e-8 for the fine-tuned teacher, 1.2e-7 for the student, 1.5e-7 for the heads; rows split
wrongly (one process of 4 rows) differ by 8e-3, and a teacher fine-tuned by each rank alone (what
TrainingArguments without use_cpu did under torchrun on CPU) by 2.5e-3.
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from polydistill.training.trainer import DISTILLATION_HEADS_FILE
from tests.conftest import FILLER, KEYWORDS, LABEL_NAMES, tiny_bert_config, write_jsonl

TOLERANCE = 1e-5
CONFIG = """\
teacher:
  model: {teacher}
  cache: true
  cache_dir: {cache_dir}
  finetune:
    data: {{path: train.jsonl}}
    training: {{max_steps: 4, learning_rate: 0.001, per_device_train_batch_size: {batch}}}
student:
  keep_layers: 2
  hidden_size: 16
  num_attention_heads: 2
  intermediate_size: 32
data:
  train: {{path: train.jsonl}}
  eval: {{path: test.jsonl}}
  max_length: 24
objectives:
  soft_targets: {{weight: 1.0, temperature: 2.0}}
  hidden_states: {{weight: 1.0}}
training:
  max_steps: 6
  learning_rate: 0.002
  per_device_train_batch_size: {batch}
  save_steps: 3
  logging_steps: 1
  use_cpu: true
evaluation:
  efficiency: "off"
  noise: null
"""

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch built without torch.distributed")


def same_length_rows(n: int, seed: int) -> list[dict]:
    """Rows of 7 words, one token each: no padding, so a per-token mean over 4 rows averages to the one over 8."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        label = rng.randrange(len(KEYWORDS))
        words = rng.choices(FILLER, k=6)
        words.insert(rng.randrange(7), rng.choice(KEYWORDS[label]))
        rows.append({"text": " ".join(words), "label": LABEL_NAMES[label]})
    return rows


@pytest.fixture()
def setup(tmp_path, wordpiece_tokenizer) -> Path:
    """A teacher without dropout (ranks would draw different masks than the single process), and the data."""
    from transformers import BertForSequenceClassification

    config = tiny_bert_config(wordpiece_tokenizer)
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0
    torch.manual_seed(0)
    teacher = tmp_path / "teacher"
    BertForSequenceClassification(config).save_pretrained(teacher)
    wordpiece_tokenizer.save_pretrained(teacher)
    write_jsonl(tmp_path / "train.jsonl", same_length_rows(64, seed=7))
    write_jsonl(tmp_path / "test.jsonl", same_length_rows(24, seed=8))
    return tmp_path


def launch(launcher: list[str], root: Path, name: str, batch: int) -> tuple[Path, Path, str]:
    """Run the config with ``batch`` rows per process under ``launcher``: its output dir, cache dir and log."""
    cache_dir, out = root / f"cache-{name}", root / name
    config = root / f"{name}.yaml"
    config.write_text(CONFIG.format(teacher=root / "teacher", cache_dir=cache_dir, batch=batch))
    environment = os.environ | {"PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1", "COLUMNS": "400"}
    completed = subprocess.run(
        [sys.executable, *launcher, "-m", "polydistill", "run", str(config), "--out", str(out)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    log = completed.stdout + completed.stderr
    assert completed.returncode == 0, f"{name} exited with {completed.returncode}: {log[-3000:]}"
    return out, cache_dir, log


def max_difference(expected: dict[str, torch.Tensor], got: dict[str, torch.Tensor]) -> float:
    assert expected.keys() == got.keys()
    return max((expected[k].float() - got[k].float()).abs().max().item() for k in expected)


def test_two_gloo_processes_train_the_single_process_student(setup):
    single, _, _ = launch([], setup, "one", batch=8)
    two, cache_dir, log = launch(["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"], setup, "two", batch=4)

    # the teacher, fine-tuned by both ranks (DDP) and saved by rank 0 alone before the others read it
    base, fine_tuned = load_file(setup / "teacher" / "model.safetensors"), load_file(two / "teacher" / "model.safetensors")
    assert max_difference(load_file(single / "teacher" / "model.safetensors"), fine_tuned) < TOLERANCE
    assert max_difference(base, fine_tuned) > 100 * TOLERANCE
    assert log.count("Teacher fine-tuning") == 2 and log.count("reusing the fine-tuned teacher") == 0
    student = max_difference(load_file(single / "student" / "model.safetensors"), load_file(two / "student" / "model.safetensors"))
    assert student < TOLERANCE
    # the heads exist (16 -> 32 projections), were averaged across ranks, and rank 0 saved them
    heads = load_file(two / DISTILLATION_HEADS_FILE)
    assert any("projections" in key for key in heads)
    assert max_difference(load_file(single / DISTILLATION_HEADS_FILE), heads) < TOLERANCE

    # the teacher cache: written by rank 0, read by rank 1, one directory
    assert len(re.findall(r"Teacher cache\s+written", log)) == 1
    assert len(re.findall(r"Teacher cache\s+reused", log)) == 1
    assert len([entry for entry in cache_dir.iterdir() if entry.is_dir()]) == 1
    # only rank 0 saved, evaluated and reported
    assert log.count("Student saved") == 1
    assert log.count("Evaluating teacher and student") == 1
    assert log.count("Report ") == 1
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in single.iterdir())
    assert '"status": "finished"' in (two / "run.json").read_text()
