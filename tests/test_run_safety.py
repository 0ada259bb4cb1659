"""A run never ends "successfully" with a broken student and never loses what a directory held.

- a loss or gradient that stops being finite stops the run at that step (non-zero exit, the step,
  the term and the learning rate named, no student saved), and ``--resume`` continues from the
  last good checkpoint once the config is fixed;
- ``training.max_nonfinite_steps`` skips bad steps the way a loss scaler does: the weights and the
  optimizer's state are left exactly as they were;
- an output directory that holds anything is refused unless ``--overwrite`` (moved aside, every
  file kept) or ``--resume``; a config error leaves the directory untouched.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from polydistill.cli import main
from polydistill.training.guard import NonFiniteGuard, TrainingDiverged

CONFIG = """\
teacher:
  model: {teacher}
student:
  keep_layers: 1
data:
  train:
    path: {train}
  eval:
    path: {test}
  max_length: 24
training:
  max_steps: {steps}
  learning_rate: {lr}
  per_device_train_batch_size: 16
  save_steps: 3
  logging_steps: 1
  use_cpu: true
evaluation:
  efficiency: "off"
"""


def write_config(path: Path, teacher: Path, data: dict[str, Path], *, lr: float, steps: int = 8) -> Path:
    path.write_text(CONFIG.format(teacher=teacher, train=data["train"], test=data["test"], lr=lr, steps=steps))
    return path


def tree_digest(directory: Path) -> dict[str, str]:
    """Every file under ``directory`` by relative path -> sha256 of its bytes (worked out here, not by polydistill)."""
    return {
        path.relative_to(directory).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


# --------------------------------------------------------------------------- non-finite losses


def test_a_diverging_run_stops_at_the_step_names_it_and_saves_no_student(tiny_teacher_dir, synthetic_data, tmp_path, capsys):
    config = write_config(tmp_path / "run.yaml", tiny_teacher_dir, synthetic_data, lr=1e12, steps=30)
    out = tmp_path / "out"
    assert main(["run", str(config), "--out", str(out)]) == 2
    message = capsys.readouterr().err
    assert "training diverged at step" in message and "learning rate" in message
    assert "soft_targets" in message or "gradient norm" in message
    assert "Traceback" not in message
    assert not (out / "student").exists() and not (out / "metrics.json").exists() and not (out / "report.html").exists()
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "failed" and "diverged" in record["error"]


def test_resume_after_a_divergence_continues_from_the_last_good_checkpoint(tiny_teacher_dir, synthetic_data, tmp_path, capsys):
    """A run killed right after its step-3 checkpoint is resumed at an absurd learning rate: it stops at a later step
    naming checkpoint-3 as the last good state; resumed again with the rate fixed, it finishes with a finite student."""
    out = tmp_path / "out"
    first = write_config(tmp_path / "run.yaml", tiny_teacher_dir, synthetic_data, lr=1e-3, steps=3)
    first.write_text(first.read_text().replace("  save_steps: 3", "  save_steps: 3\n  save_strategy: steps"))
    assert main(["run", str(first), "--out", str(out)]) == 0
    checkpoint = out / "checkpoints" / "checkpoint-3"
    assert (checkpoint / "trainer_state.json").is_file()  # a user's save_strategy keeps the checkpoints
    shutil.rmtree(out / "student")  # as if killed after the checkpoint, before the student was saved
    (out / "run.json").write_text(json.dumps(json.loads((out / "run.json").read_text()) | {"status": "running"}))

    for lr, steps, expected in ((1e12, 12, 2), (1e-3, 12, 0)):
        config = write_config(tmp_path / "run.yaml", tiny_teacher_dir, synthetic_data, lr=lr, steps=steps)
        config.write_text(config.read_text().replace("  save_steps: 3", "  save_steps: 3\n  save_strategy: steps"))
        assert main(["run", str(config), "--out", str(out), "--resume"]) == expected
    message = capsys.readouterr().err
    assert re.search(r"training diverged at step ([4-9]|1[0-2]): ", message), message
    assert f"The last good state is {checkpoint} (step 3)" in message and "--resume" in message

    weights = load_file(out / "student" / "model.safetensors")
    assert all(torch.isfinite(t).all() for t in weights.values() if t.is_floating_point())
    assert json.loads((out / "run.json").read_text())["status"] == "finished"
    assert json.loads((out / "train_metrics.json").read_text())["train_loss"] > 0


def _optimizer_with_gradients(gradient: float) -> tuple[torch.nn.Linear, torch.optim.AdamW]:
    torch.manual_seed(0)
    layer = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(layer.parameters(), lr=0.1)
    return layer, optimizer


def test_skipped_nonfinite_steps_leave_weights_and_optimizer_state_exactly_as_they_were():
    layer, optimizer = _optimizer_with_gradients(1.0)
    guard = NonFiniteGuard(max_skipped_steps=1)
    optimizer.register_step_pre_hook(lambda opt, args, kwargs: guard.before_optimizer_step(opt, 1))

    layer(torch.ones(1, 3)).sum().backward()
    optimizer.step()  # a good step: Adam has state now
    optimizer.zero_grad()
    before = {k: v.clone() for k, v in layer.state_dict().items()}
    state_before = {id(p): {k: v.clone() for k, v in s.items()} for p, s in optimizer.state.items()}

    (layer(torch.ones(1, 3)).sum() * float("nan")).backward()
    optimizer.step()  # skipped
    assert all(torch.equal(before[k], v) for k, v in layer.state_dict().items())
    for p, s in optimizer.state.items():
        assert all(torch.equal(state_before[id(p)][k], v) for k, v in s.items())
    assert len(guard.skipped) == 1 and guard.skipped[0].grad_norm != guard.skipped[0].grad_norm  # nan

    optimizer.zero_grad()
    (layer(torch.ones(1, 3)).sum() * float("inf")).backward()
    with pytest.raises(TrainingDiverged, match=r"step 1: .*gradient norm = (nan|inf).*learning rate 0.1"):
        optimizer.step()


def test_a_nonfinite_loss_term_is_named():
    guard = NonFiniteGuard()
    layer, optimizer = _optimizer_with_gradients(1.0)
    layer(torch.ones(1, 3)).sum().backward()  # finite gradients: only the loss tells
    guard.check_loss(7, 0.5, torch.tensor(float("inf")), {"soft_targets": torch.tensor(float("inf")), "hidden_states": torch.tensor(0.3)})
    with pytest.raises(TrainingDiverged) as raised:
        guard.before_optimizer_step(optimizer, 7)
    assert "step 7: loss term soft_targets = inf, total loss = inf" in str(raised.value) and "hidden_states" not in str(raised.value)


# --------------------------------------------------------------------------- output directories


def test_a_rerun_is_refused_and_overwrite_moves_the_old_run_aside(tiny_teacher_dir, synthetic_data, tmp_path, capsys):
    config = write_config(tmp_path / "run.yaml", tiny_teacher_dir, synthetic_data, lr=1e-3, steps=2)
    out = tmp_path / "out"
    assert main(["run", str(config), "--out", str(out)]) == 0
    (out / "my-notes.txt").write_text("not polydistill's")
    before = tree_digest(out)

    assert main(["run", str(config), "--out", str(out)]) == 2
    assert "already holds a previous run" in capsys.readouterr().err
    assert tree_digest(out) == before

    broken = tmp_path / "broken.yaml"
    broken.write_text(config.read_text().replace("max_steps", "max_stepz"))
    assert main(["run", str(broken), "--out", str(out), "--overwrite"]) == 2
    assert tree_digest(out) == before  # a config error moves nothing

    assert main(["run", str(config), "--out", str(out), "--overwrite"]) == 0
    (moved,) = tmp_path.glob("out.previous-*")
    assert tree_digest(moved) == before
    assert (out / "student" / "model.safetensors").is_file() and not (out / "my-notes.txt").exists()


def test_an_output_path_that_is_a_file_is_refused(tiny_teacher_dir, synthetic_data, tmp_path, capsys):
    config = write_config(tmp_path / "run.yaml", tiny_teacher_dir, synthetic_data, lr=1e-3, steps=2)
    target = tmp_path / "taken"
    target.write_text("keep me")
    assert main(["run", str(config), "--out", str(target)]) == 2
    assert "is a file, not a directory" in capsys.readouterr().err
    assert target.read_text() == "keep me"


def test_resume_of_nothing_and_of_another_run_is_refused(tiny_teacher_dir, synthetic_data, tmp_path, capsys):
    config = write_config(tmp_path / "run.yaml", tiny_teacher_dir, synthetic_data, lr=1e-3, steps=2)
    assert main(["run", str(config), "--out", str(tmp_path / "none"), "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err
    out = tmp_path / "out"
    assert main(["run", str(config), "--out", str(out)]) == 0
    assert main(["run", str(config), "--out", str(out), "--resume"]) == 2
    assert "has finished" in capsys.readouterr().err
    other = tmp_path / "other.yaml"
    other.write_text(config.read_text().replace("keep_layers: 1", "keep_layers: 2"))
    (out / "run.json").write_text(json.dumps(json.loads((out / "run.json").read_text()) | {"status": "running"}))
    assert main(["run", str(other), "--out", str(out), "--resume"]) == 2
    assert "student.keep_layers: the run had 1, the config has 2" in capsys.readouterr().err


def test_eval_out_keeps_an_earlier_evaluation(tiny_teacher_dir, synthetic_data, tmp_path, capsys):
    out = tmp_path / "eval"
    arguments = ["eval", str(tiny_teacher_dir), "--data", str(synthetic_data["test"]), "--out", str(out), "--no-efficiency"]
    assert main(arguments) == 0
    before = tree_digest(out)
    assert main(arguments) == 2
    assert "already holds files" in capsys.readouterr().err and tree_digest(out) == before
    assert main([*arguments, "--overwrite"]) == 0
    (moved,) = tmp_path.glob("eval.previous-*")
    assert tree_digest(moved) == before and (out / "metrics.json").is_file()


def test_bad_finetune_data_is_refused_before_the_output_directory_is_made(tiny_teacher_dir, synthetic_data, tmp_path, capsys):
    config = write_config(tmp_path / "run.yaml", tiny_teacher_dir, synthetic_data, lr=1e-3, steps=2)
    (tmp_path / "english.csv").write_bytes("text,label\ncafé apple,fruit\n".encode("cp1252"))  # a spreadsheet's export
    config.write_text(config.read_text().replace("  model:", "  finetune: {data: {path: english.csv}}\n  model:", 1))
    out = tmp_path / "out"
    assert main(["run", str(config), "--out", str(out)]) == 2
    message = capsys.readouterr().err
    assert "english.csv" in message and "UTF-8" in message and "Traceback" not in message
    assert not out.exists()


def test_overwrite_never_moves_the_runs_own_inputs_aside(tiny_teacher_dir, synthetic_data, tmp_path, capsys):
    teacher = tmp_path / "teacher"
    shutil.copytree(tiny_teacher_dir, teacher)
    config = write_config(tmp_path / "run.yaml", teacher, synthetic_data, lr=1e-3, steps=2)
    before = tree_digest(teacher)
    assert main(["run", str(config), "--out", str(teacher), "--overwrite"]) == 2
    assert "--overwrite would move" in capsys.readouterr().err and tree_digest(teacher) == before
    assert main(["run", str(config), "--out", str(tmp_path), "--overwrite"]) == 2  # the config and the teacher are inside
    assert tree_digest(teacher) == before and config.is_file()
    assert main(["run", str(config), "--out", "."]) == 2
    assert "the working directory (or one above it) cannot be an output directory" in capsys.readouterr().err
    config.write_text(config.read_text() + 'output_dir: ""\n')
    assert main(["run", str(config)]) == 2
    assert f"{config}:20: output_dir: String should have at least 1 character" in capsys.readouterr().err


def test_a_teacher_without_a_tokenizer_and_a_max_length_beyond_its_positions_are_refused(
    tiny_teacher_dir, synthetic_data, tmp_path, capsys
):
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny_teacher_dir / name, bare / name)
    config = write_config(tmp_path / "run.yaml", bare, synthetic_data, lr=1e-3, steps=2)
    assert main(["run", str(config), "--out", str(tmp_path / "out")]) == 2
    assert f"{bare} has no tokenizer" in capsys.readouterr().err and not (tmp_path / "out").exists()

    long = write_config(tmp_path / "long.yaml", tiny_teacher_dir, synthetic_data, lr=1e-3, steps=2)
    long.write_text(long.read_text().replace("max_length: 24", "max_length: 512"))
    assert main(["run", str(long), "--out", str(tmp_path / "out")]) == 2
    assert f"{long}:10: data.max_length: 512 tokens, but the teacher reads at most 64" in capsys.readouterr().err

    missing = write_config(tmp_path / "hub.yaml", tiny_teacher_dir, synthetic_data, lr=1e-3, steps=2)
    missing.write_text(missing.read_text().replace(f"model: {tiny_teacher_dir}", "model: offline:no-such-model"))
    assert main(["run", str(missing), "--out", str(tmp_path / "out")]) == 2
    assert f"{missing}:2: teacher.model: " in capsys.readouterr().err


def test_large_but_finite_gradients_are_not_taken_for_a_divergence():
    """float32 gradients of 1e30: their squares overflow float32, the guard's norm (float64) does not."""
    layer, optimizer = _optimizer_with_gradients(1.0)
    guard = NonFiniteGuard()
    for parameter in layer.parameters():
        parameter.grad = torch.full_like(parameter, 1e30)
    guard.before_optimizer_step(optimizer, 1)  # no TrainingDiverged
    assert all(parameter.grad is not None for parameter in layer.parameters())


def test_a_bf16_config_loads_on_a_cpu_machine_but_a_run_refuses_it_before_writing(tiny_teacher_dir, synthetic_data, tmp_path, capsys):
    """A config made for a GPU still loads for the commands that do not train (compress, report); a run says why it cannot."""
    from polydistill.config import load_config

    if torch.cuda.is_available():
        pytest.skip("this machine has bf16 hardware")
    config = write_config(tmp_path / "run.yaml", tiny_teacher_dir, synthetic_data, lr=1e-3, steps=2)
    config.write_text(config.read_text().replace("  use_cpu: true", "  bf16: true"))
    assert load_config(config).training["bf16"] is True
    out = tmp_path / "out"
    assert main(["run", str(config), "--out", str(out)]) == 2
    assert f"{config}:17: training.bf16: " in capsys.readouterr().err and not out.exists()


def test_overwrite_reuses_the_fine_tuned_teacher_of_the_run_it_moves_aside(tiny_teacher_dir, synthetic_data, tmp_path, capsys):
    config = write_config(tmp_path / "run.yaml", tiny_teacher_dir, synthetic_data, lr=1e-3, steps=2)
    finetune = f"  finetune: {{data: {{path: {synthetic_data['train']}}}, training: {{max_steps: 2, use_cpu: true}}}}\n  model:"
    config.write_text(config.read_text().replace("  model:", finetune, 1))
    out = tmp_path / "out"
    assert main(["run", str(config), "--out", str(out)]) == 0
    first = tree_digest(out / "teacher")
    capsys.readouterr()
    assert main(["run", str(config), "--out", str(out), "--overwrite"]) == 0
    assert "reusing the fine-tuned teacher" in capsys.readouterr().err
    assert tree_digest(out / "teacher") == first  # copied over, not trained again
    (moved,) = tmp_path.glob("out.previous-*")
    assert tree_digest(moved / "teacher") == first


def test_another_run_of_the_same_fine_tuning_copies_the_cached_teacher(tiny_teacher_dir, synthetic_data, tmp_path, capsys):
    config = write_config(tmp_path / "run.yaml", tiny_teacher_dir, synthetic_data, lr=1e-3, steps=2)
    finetune = f"  finetune: {{data: {{path: {synthetic_data['train']}}}, training: {{max_steps: 3, use_cpu: true}}}}\n  model:"
    config.write_text(config.read_text().replace("  model:", finetune, 1))
    assert main(["run", str(config), "--out", str(tmp_path / "first")]) == 0
    first = tree_digest(tmp_path / "first" / "teacher")
    capsys.readouterr()
    assert main(["run", str(config), "--out", str(tmp_path / "second")]) == 0
    assert "reusing the fine-tuned teacher cached in" in capsys.readouterr().err
    assert tree_digest(tmp_path / "second" / "teacher") == first
    # teacher.cache off: trained again (fine-tuning is seeded, so to the same weights), nothing read from the cache
    config.write_text(config.read_text().replace("  model:", "  cache: false\n  model:", 1))
    assert main(["run", str(config), "--out", str(tmp_path / "third")]) == 0
    assert "fine-tuning" in capsys.readouterr().err
