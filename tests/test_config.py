"""A run config that cannot run is refused before any work, naming the file, line and field."""

from __future__ import annotations

from importlib import resources
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
    assert f"{path}:7: data.train.path" in message and "nope.jsonl" in message


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
    with pytest.raises(ConfigError, match=r"run\.yaml:4: student\.keep_layers: layer 12 does not exist; the teacher has layers 0\.\.11"):
        check_against_teacher(config, teacher_layers=12, student_layers=3)
    mapped = VALID.replace("training:", "  hidden_states:\n    layer_map: {{1: 13}}\ntraining:")
    config = load_config(write(config_dir, mapped))
    with pytest.raises(ConfigError, match=r"run\.yaml:13: objectives\.hidden_states\.layer_map: teacher hidden state 13"):
        check_against_teacher(config, teacher_layers=12, student_layers=2)


# --- the file itself: encoding, directory, empty, keys given twice ---------------------------


def test_utf8_with_byte_order_mark_loads(config_dir):
    path = config_dir / "run.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + VALID.format(teacher="some/teacher", out="out").encode())
    assert load_config(path).teacher.model == "some/teacher"


def test_latin1_config_names_the_line_the_byte_and_the_likely_encoding(config_dir):
    text = VALID.format(teacher="some/t\u00e9acher", out="out")
    path = config_dir / "run.yaml"
    path.write_bytes(text.encode("latin-1"))
    offset = text.index("\u00e9")  # every character before it is ASCII: one byte each
    message = error_of(path)
    assert message.startswith(f"{path}:2: byte 0xE9 (byte offset {offset}, column 16) is not valid UTF-8")
    assert "cp1252" in message and "expected UTF-8" in message


def test_utf16_config_is_named_as_such(config_dir):
    path = config_dir / "run.yaml"
    path.write_bytes(VALID.format(teacher="some/teacher", out="out").encode("utf-16"))
    assert error_of(path) == (
        f"{path}: not UTF-8 text; expected UTF-8. It looks like UTF-16 (it starts with a UTF-16 byte-order mark); "
        f"convert it with: iconv -f UTF-16 -t UTF-8 {path} > {config_dir / 'run.utf8.yaml'}"
    )


def test_directory_and_empty_file_are_refused(config_dir):
    assert error_of(config_dir) == f"{config_dir}: is a directory; expected a YAML run config file"
    empty = config_dir / "empty.yaml"
    empty.write_text("# only a comment\n")
    assert error_of(empty).startswith(f"{empty}: the config file is empty")


def test_a_section_given_twice_is_refused_with_both_lines(config_dir):
    path = write(config_dir, VALID + "training:\n  num_train_epochs: 2\n")
    assert error_of(path).startswith(f"{path}:12 and :15: key 'training' appears twice")


def test_a_key_given_twice_inside_a_section_is_refused_with_both_lines(config_dir):
    path = write(config_dir, VALID.replace("    temperature: 2.0", "    temperature: 2.0\n    temperature: 3.0"))
    assert error_of(path).startswith(f"{path}:11 and :12: key 'temperature' appears twice")


def test_a_control_character_names_its_line(config_dir):
    path = write(config_dir, VALID.replace("keep_layers: 2", "keep_layers: 2\x07"))
    assert error_of(path).startswith(f"{path}:4: not valid YAML (character #x0007 is not allowed")


# --- training sections: nonsense numbers at load time, at their line -------------------------


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("learning_rate: -1", "training.learning_rate: expected a learning rate of 0 or more (e.g. 5.0e-5), got -1"),
        ("learning_rate: .inf", "training.learning_rate: expected a learning rate of 0 or more (e.g. 5.0e-5), got inf"),
        ("learning_rate: fast", "training.learning_rate: expected a number, got 'fast'"),
        ("learning_rate: true", "training.learning_rate: expected a number, got true"),
        ("learning_rate: .nan", "training.learning_rate: expected a number, got nan"),
        ("per_device_train_batch_size: 0", "training.per_device_train_batch_size: expected a batch size of at least 1, got 0"),
        ("per_device_eval_batch_size: -8", "training.per_device_eval_batch_size: expected a batch size of at least 1, got -8"),
        ("per_device_train_batch_size: 1.5", "training.per_device_train_batch_size: expected a whole number, got 1.5"),
        ("gradient_accumulation_steps: 0", "training.gradient_accumulation_steps: expected at least 1 step, got 0"),
        ("num_train_epochs: -1", "training.num_train_epochs: expected a number of epochs of 0 or more"),
        ("max_steps: 0", "training.max_steps: expected -1 (train num_train_epochs) or a number of steps of at least 1, got 0"),
        ("num_train_epochs: 0", "training.num_train_epochs: 0 epochs and no max_steps trains nothing"),
        ("lr_scheduler_type: sideways", "training.lr_scheduler_type: sideways is not a valid SchedulerType"),
        ("max_nonfinite_steps: -1", "training.max_nonfinite_steps: expected 0 or more steps to skip"),
    ],
)
def test_training_nonsense_is_refused_at_its_line(config_dir, setting, expected):
    path = write(config_dir, VALID.replace("num_train_epochs: 1", setting))
    assert f"{path}:13: {expected}" in error_of(path)


def test_a_number_yaml_reads_as_text_is_taken_as_the_number(config_dir):
    # YAML 1.1 reads 5e-5 (no dot) as the string '5e-5'; the optimizer needs the number
    config = load_config(write(config_dir, VALID.replace("num_train_epochs: 1", "num_train_epochs: 1\n  learning_rate: 5e-5")))
    assert config.training["learning_rate"] == 5e-5 and isinstance(config.training["learning_rate"], float)
    assert config.training["num_train_epochs"] == 1 and isinstance(config.training["num_train_epochs"], int)


def test_polydistill_training_keys_are_accepted_and_kept_from_training_arguments(config_dir, tmp_path):
    from polydistill.training.arguments import training_arguments

    settings = "num_train_epochs: 1\n  max_nonfinite_steps: 3"
    config = load_config(write(config_dir, VALID.replace("num_train_epochs: 1", settings)))
    assert config.training["max_nonfinite_steps"] == 3
    arguments = training_arguments(config, tmp_path / "checkpoints", config.training)
    assert arguments.num_train_epochs == 1 and not hasattr(arguments, "max_nonfinite_steps")


def test_prune_and_finetune_training_sections_are_checked_too(config_dir):
    with_eval = VALID.replace("    path: train.jsonl\n", "    path: train.jsonl\n  eval:\n    path: train.jsonl\n")
    pruned = with_eval + "compress:\n  prune:\n    heads: 0.5\n    training:\n      learning_rate: -0.1\n"
    path = write(config_dir, pruned)
    assert f"{path}:21: compress.prune.training.learning_rate: expected a learning rate of 0 or more" in error_of(path)
    finetuned = VALID.replace(
        "  model: {teacher}\n",
        "  model: {teacher}\n  finetune:\n    data:\n      path: train.jsonl\n    training:\n      per_device_train_batch_size: 0\n",
    )
    path = write(config_dir, finetuned)
    assert f"{path}:7: teacher.finetune.training.per_device_train_batch_size: expected a batch size of at least 1" in error_of(path)


def test_a_negative_seed_is_refused(config_dir):
    path = write(config_dir, VALID + "seed: -3\n")
    assert f"{path}:15: seed: Input should be greater than or equal to 0" in error_of(path)


def test_a_model_validator_problem_points_at_its_field(config_dir):
    path = write(config_dir, VALID + "compress:\n  prune:\n    heads: 0.5\n")
    assert f"{path}:15: compress: compress measures every stage per language" in error_of(path)


# --- lines after validation, model paths beside the config ------------------------------------


def test_config_location_names_the_deepest_line_the_file_has(config_dir):
    from polydistill.config import config_location

    path = write(config_dir, VALID)
    config = load_config(path)
    resolved = path.resolve()
    assert config_location(config, ["objectives", "soft_targets", "temperature"]) == f"{resolved}:11"
    assert config_location(config, "objectives.labels") == f"{resolved}:8"  # not in the file: its section's line
    assert config_location(config, ["evaluation"]) == str(resolved)


def test_model_directories_resolve_beside_the_config_from_any_working_directory(config_dir, tmp_path_factory, monkeypatch):
    from polydistill.training.provenance import resolved_config

    teacher = config_dir / "my-teacher"
    teacher.mkdir()
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    config = load_config(write(config_dir, VALID.replace("model: {teacher}", "model: ./my-teacher")))
    assert config.resolve_model(config.teacher.model) == str(teacher.resolve())
    assert config.resolve_model("my-teacher") == str(teacher.resolve())  # a bare name that is a directory beside the config
    assert config.resolve_model("org/hub-model") == "org/hub-model"
    assert config.resolve_model("offline:tiny") == "offline:tiny"
    assert resolved_config(config, config_dir / "out")["teacher"]["model"] == str(teacher.resolve())


def test_a_model_path_that_is_not_there_is_refused_at_its_line(config_dir):
    path = write(config_dir, VALID.replace("model: {teacher}", "model: ./missing-teacher"))
    expected = f"{path}:2: teacher.model: model directory './missing-teacher' does not exist (looked for {config_dir.resolve() / 'missing-teacher'})"
    assert error_of(path) == expected


@pytest.mark.parametrize("recipe", sorted(p.name for p in resources.files("polydistill.recipes").iterdir() if p.name.endswith(".yaml")))
def test_every_shipped_recipe_loads_as_a_run_config(recipe):
    """The recipes the demo runs go through the same strict loader as users' configs (no key twice, every field known)."""
    from polydistill.config import load_config

    config = load_config(Path(str(resources.files("polydistill.recipes").joinpath(recipe))))
    assert config.data.eval is not None
