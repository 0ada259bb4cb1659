"""Exact resume: a run killed with SIGKILL mid-training and resumed ends with the student the uninterrupted
run saves, bitwise (CPU, same seed), for classification and embeddings, with the teacher cache on and off.

The kill is real: the run is a separate ``python -m polydistill run`` process, killed as soon as a
checkpoint at or past a randomly drawn step is complete, so it dies somewhere between two
checkpoints, possibly while writing the next one.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from polydistill.config import load_config
from polydistill.training.checkpoints import newest_checkpoint
from polydistill.training.run import run
from tests.conftest import synthetic_examples, write_jsonl
from tests.test_embeddings_run import parallel_rows

STEPS = 24
CLASSIFICATION = """\
teacher:
  model: {teacher}
  cache: {cache}
student:
  keep_layers: 2
data:
  train: {{path: train.jsonl, lang_column: lang}}
  max_length: 24
  balance_alpha: 0.5
objectives:
  soft_targets: {{weight: 1.0, temperature: 2.0}}
  hidden_states: {{weight: 1.0}}
training:
  max_steps: {steps}
  learning_rate: 0.002
  per_device_train_batch_size: 8
  save_steps: 2
  logging_steps: 1
  use_cpu: true
"""
EMBEDDINGS = """\
task: embeddings
teacher:
  model: {teacher}
  cache: {cache}
student:
  keep_layers: 1
data:
  train: {{path: train.jsonl, translation_column: translation, lang_column: lang}}
  max_length: 24
objectives:
  embedding_mse: {{weight: 1.0}}
  embedding_similarity: {{weight: 0.1, temperature: 0.05}}
training:
  max_steps: {steps}
  learning_rate: 0.003
  per_device_train_batch_size: 8
  save_steps: 2
  logging_steps: 1
  use_cpu: true
"""


def kill_after_a_checkpoint(config: Path, out: Path, at_least: int) -> int:
    """Run ``config`` in its own process and SIGKILL it once a checkpoint at step >= ``at_least`` is complete."""
    # as many threads as this process uses: another thread count sums in another order, which is not bitwise equal
    environment = os.environ | {"PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": str(torch.get_num_threads())}
    process = subprocess.Popen(
        [sys.executable, "-m", "polydistill", "run", str(config), "--out", str(out)],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 300
    while process.poll() is None and time.monotonic() < deadline:
        checkpoint = newest_checkpoint(out / "checkpoints")
        if checkpoint is not None and int(checkpoint.name.split("-")[1]) >= at_least:
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    process.wait()
    assert process.returncode == -signal.SIGKILL, f"the run ended before it could be killed: {process.stderr.read().decode()[-2000:]}"  # type: ignore[union-attr]
    return newest_checkpoint(out / "checkpoints") is not None


@pytest.mark.parametrize("cache", ["true", "false"])
@pytest.mark.parametrize("task", ["classification", "embeddings"])
def test_a_killed_run_resumes_to_the_uninterrupted_student_bitwise(task, cache, tiny_teacher_dir, tiny_encoder_dir, tmp_path):
    """(Bitwise at the same number of threads: the killed process is given this one's.)"""
    if task == "classification":
        rows = [example | {"lang": "de" if i % 3 else "fr"} for i, example in enumerate(synthetic_examples(120, seed=5))]
        template, teacher, weights = CLASSIFICATION, tiny_teacher_dir, "model.safetensors"
    else:
        rows, template, teacher, weights = parallel_rows(120, 3), EMBEDDINGS, tiny_encoder_dir, "model.safetensors"
    write_jsonl(tmp_path / "train.jsonl", rows)
    config_path = tmp_path / "run.yaml"
    config_path.write_text(template.format(teacher=teacher, cache=cache, steps=STEPS))

    uninterrupted = run(load_config(config_path), tmp_path / "uninterrupted")
    killed = tmp_path / "killed"
    kill_at = random.Random(f"{task}-{cache}").randrange(4, STEPS - 6, 2)
    assert kill_after_a_checkpoint(config_path, killed, kill_at)
    resumed = run(load_config(config_path), killed, resume=True)
    resumed_from = Path(json.loads((killed / "run.json").read_text())["resumed_from"])
    assert resumed_from.parent == killed / "checkpoints" and int(resumed_from.name.split("-")[1]) >= kill_at

    expected = load_file(uninterrupted.student_dir / weights)
    got = load_file(resumed.student_dir / weights)
    assert expected.keys() == got.keys()
    different = [name for name in expected if not torch.equal(expected[name], got[name])]
    assert not different, f"killed after step {kill_at}: {different[:5]} differ"
