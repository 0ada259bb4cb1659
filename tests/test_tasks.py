"""Tasks are found by name and refuse, at the config's line, what they cannot do."""

from __future__ import annotations

import pytest

from polydistill.config import load_config
from polydistill.errors import ConfigError
from polydistill.tasks import get_task, register_task, task_names


def test_both_tasks_are_registered_with_what_the_run_asks_of_them():
    assert task_names() == ["classification", "embeddings"]
    classification, embeddings = get_task("classification"), get_task("embeddings")
    assert (classification.pipeline_tag, embeddings.pipeline_tag) == ("text-classification", "sentence-similarity")
    assert classification.cached_outputs == {"logits"} and embeddings.cached_outputs == {"embeddings"}
    for task in (classification, embeddings):
        for step in ("read_data", "prepare_teacher", "load_teacher", "load_student_base", "save_student", "evaluate", "check_config"):
            assert callable(getattr(task, step)), step


def test_a_task_name_is_registered_once():
    class Impostor:
        name = "classification"

    with pytest.raises(ValueError, match="two tasks are registered as 'classification'"):
        register_task(Impostor)  # type: ignore[arg-type]
    assert type(get_task("classification")).__name__ == "Classification"


def test_an_unknown_task_is_refused_at_its_line(tmp_path):
    (tmp_path / "run.yaml").write_text("teacher: {model: x}\ntask: translation\ndata: {train: {path: catalogs:all}}\n")
    with pytest.raises(ConfigError, match=r"run.yaml:2: task: .*expected one of: classification, embeddings"):
        load_config(tmp_path / "run.yaml")


def test_the_default_objectives_are_the_tasks(tmp_path):
    (tmp_path / "run.yaml").write_text("task: embeddings\nteacher: {model: x}\ndata: {train: {path: catalogs:all}}\n")
    assert [name for name, _ in load_config(tmp_path / "run.yaml").objectives.enabled()] == ["embedding_mse"]
    (tmp_path / "run.yaml").write_text("teacher: {model: x}\ndata: {train: {path: catalogs:all}}\n")
    assert [name for name, _ in load_config(tmp_path / "run.yaml").objectives.enabled()] == ["soft_targets"]


def test_a_setting_the_task_cannot_honour_names_its_line_and_field(tmp_path):
    (tmp_path / "run.yaml").write_text(
        "task: embeddings\nteacher:\n  model: x\n  finetune:\n    data: {path: catalogs:all}\ndata: {train: {path: catalogs:all}}\n"
    )
    with pytest.raises(ConfigError, match=r"run.yaml:4: teacher.finetune: applies to classification"):
        load_config(tmp_path / "run.yaml")
