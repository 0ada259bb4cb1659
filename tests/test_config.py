"""A run config that cannot run is refused before any work, naming the file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from polydistill.config import check_against_teacher, load_config
from polydistill.errors import ConfigError

VALID = """\
teacher:
  model: {teacher}
student:
  keep_layers: 2
data:
  train:
    path: train.jsonl
objectives:
  soft_targets:
    weight: 1.0
    temperature: 2.0
training:
  num_train_epochs: 1
output_dir: {out}
"""


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    (tmp_path / "train.jsonl").write_text('{"text": "a", "label": "x"}\n')
    return tmp_path


def write(config_dir: Path, text: str) -> Path:
    path = config_dir / "run.yaml"
    path.write_text(text.format(teacher="some/teacher", out=config_dir / "out"))
    return path


def error_of(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return str(info.value)


def test_valid_config_resolves_paths_relative_to_the_file(config_dir):
    config = load_config(write(config_dir, VALID))
    assert config.resolve_path(config.data.train.path) == (config_dir / "train.jsonl").resolve()
    assert config.objectives.soft_targets.temperature == 2.0


def test_unknown_key_names_file_line_field_and_allowed_keys(config_dir):
    path = write(config_dir, VALID.replace("    temperature: 2.0", "    temperture: 2.0"))
    message = error_of(path)
    assert f"{path}:11: objectives.soft_targets.temperture: unknown key" in message
    assert "expected one of: weight, temperature" in message


def test_wrong_type_names_field_and_value(config_dir):
    path = write(config_dir, VALID.replace("keep_layers: 2", "keep_layers: many"))
    message = error_of(path)
    assert f"{path}:4: student.keep_layers" in message and "'many'" in message


def test_missing_required_section(config_dir):
    path = write(config_dir, VALID.replace("teacher:\n  model: {teacher}\n", ""))
    assert "teacher: required field is missing" in error_of(path)


def test_missing_data_file_names_the_field_and_file(config_dir):
    path = write(config_dir, VALID.replace("train.jsonl", "nope.jsonl"))
    message = error_of(path)
    assert "data.train.path" in message and "nope.jsonl" in message and str(path) in message


def test_unknown_training_argument_is_refused(config_dir):
    path = write(config_dir, VALID.replace("num_train_epochs: 1", "num_train_epoch: 1"))
    message = error_of(path)
    assert f"{path}:13: training.num_train_epoch: 'num_train_epoch' is not a transformers.TrainingArguments field" in message
    assert "did you mean num_train_epochs" in message


def test_no_objective_with_weight(config_dir):
    path = write(config_dir, VALID.replace("weight: 1.0", "weight: 0"))
    assert "at least one objective" in error_of(path)


def test_invalid_yaml_names_the_line(config_dir):
    path = write(config_dir, VALID + "  bad: [unclosed\n")
    assert f"{path}:" in error_of(path) and "not valid YAML" in error_of(path)


def test_layer_indices_the_teacher_does_not_have(config_dir):
    config = load_config(write(config_dir, VALID.replace("keep_layers: 2", "keep_layers: [0, 5, 12]")))
    with pytest.raises(ConfigError, match=r"student\.keep_layers: layer 12 does not exist; the teacher has layers 0\.\.11"):
        check_against_teacher(config, teacher_layers=12, student_layers=3)
    mapped = VALID.replace("training:", "  hidden_states:\n    layer_map: {{1: 13}}\ntraining:")
    config = load_config(write(config_dir, mapped))
    with pytest.raises(ConfigError, match=r"objectives\.hidden_states\.layer_map: teacher hidden state 13"):
        check_against_teacher(config, teacher_layers=12, student_layers=2)
