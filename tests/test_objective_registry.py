"""The objective registry is the one list of objectives: the config section, the task check, the
layer checks, the layer-map and eager-attention needs and the teacher cache's fields follow it."""

from __future__ import annotations

import re
import typing
from pathlib import Path
from types import SimpleNamespace

import pytest

from polydistill.config import ObjectivesConfig, check_against_teacher, load_config, validate_config
from polydistill.errors import ConfigError
from polydistill.objectives import (
    LayerMaps,
    ObjectiveConfig,
    ObjectiveSpec,
    build_objectives,
    needs_layer_map,
    register,
    registered,
)
from polydistill.objectives.relational import RelationalConfig
from polydistill.training.cache import cache_fields

BEFORE_THE_REGISTRY = [
    "soft_targets",
    "hard_targets",
    "labels",
    "hidden_states",
    "attentions",
    "attention_relations",
    "embedding_mse",
    "embedding_cosine",
    "embedding_similarity",
]
BOTH = frozenset({"classification", "embeddings"})


def run_config(tmp_path: Path, task: str, objectives: dict) -> dict:
    (tmp_path / "train.jsonl").write_text('{"text": "a", "label": "x"}\n')
    return {
        "task": task,
        "teacher": {"model": "some/teacher"},
        "student": {"keep_layers": 2},
        "data": {"train": {"path": str(tmp_path / "train.jsonl")}},
        "objectives": objectives,
    }


def test_relational_is_registered_for_both_tasks():
    spec = registered()["relational"]
    assert spec.tasks == BOTH and spec.config is RelationalConfig


def test_the_objectives_section_has_one_field_per_registered_objective_in_a_stable_order():
    specs = registered()
    assert list(ObjectivesConfig.model_fields) == list(specs)
    assert list(specs)[: len(BEFORE_THE_REGISTRY)] == BEFORE_THE_REGISTRY  # the order terms are summed in
    for name, spec in specs.items():
        field = ObjectivesConfig.model_fields[name]
        assert set(typing.get_args(field.annotation)) == {spec.config, type(None)} and field.default is None


def test_tasks_of_todays_objectives():
    tasks = {name: spec.tasks for name, spec in registered().items()}
    assert {name for name, t in tasks.items() if t == {"classification"}} == {"soft_targets", "hard_targets", "labels"}
    assert {name for name, t in tasks.items() if t == {"embeddings"}} == {
        "embedding_mse",
        "embedding_cosine",
        "embedding_similarity",
    }
    assert {"hidden_states", "attentions", "attention_relations", "relational"} <= {n for n, t in tasks.items() if t == BOTH}


@pytest.mark.parametrize(
    ("task", "objectives", "wrong"),
    [
        ("classification", {"soft_targets": {}, "embedding_mse": {}}, "['embedding_mse']"),
        ("embeddings", {"labels": {}, "soft_targets": {}, "embedding_mse": {}}, "['labels', 'soft_targets']"),
    ],
)
def test_objectives_of_another_task_are_refused(tmp_path, task, objectives, wrong):
    with pytest.raises(ConfigError, match=re.escape(f"objectives {wrong} do not apply to task '{task}'")):
        validate_config(run_config(tmp_path, task, objectives))


def test_an_unknown_objective_lists_every_registered_one(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(f"teacher:\n  model: t\ndata:\n  train:\n    path: {tmp_path / 'train.jsonl'}\nobjectives:\n  relatonal: {{}}\n")
    (tmp_path / "train.jsonl").write_text('{"text": "a", "label": "x"}\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert f"{path}:7: objectives.relatonal: unknown key 'relatonal'; expected one of: {', '.join(registered())}" in str(info.value)


def test_layer_checks_come_from_each_objective(tmp_path):
    objectives = {"soft_targets": {}, "attentions": {"layer_map": {0: 4}}}
    config = validate_config(run_config(tmp_path, "classification", objectives))
    with pytest.raises(ConfigError, match=r"config: objectives\.attentions\.layer_map: teacher layer 4 does not exist \(0\.\.3\)"):
        check_against_teacher(config, teacher_layers=4, student_layers=2)
    config = validate_config(run_config(tmp_path, "embeddings", {"attention_relations": {"student_layer": -3}}))
    with pytest.raises(ConfigError, match=r"objectives\.attention_relations\.student_layer: the student has 2 layers"):
        check_against_teacher(config, teacher_layers=4, student_layers=2)
    check_against_teacher(config, teacher_layers=4, student_layers=3)


def test_layer_map_and_eager_attention_needs():
    assert not needs_layer_map(ObjectivesConfig(soft_targets={}, attention_relations={}))
    assert needs_layer_map(ObjectivesConfig(hidden_states={}))
    assert not needs_layer_map(ObjectivesConfig(hidden_states={"layer_map": {1: 2}}))
    assert needs_layer_map(ObjectivesConfig(hidden_states={"layer_map": {1: 2}}, attentions={}))
    assert ObjectivesConfig(soft_targets={}, attentions={"weight": 0}).needs_attention_weights
    assert not ObjectivesConfig(soft_targets={}, hidden_states={}, attention_relations={}).needs_attention_weights


def test_cache_fields_of_built_objectives():
    config = ObjectivesConfig(
        soft_targets={},
        hidden_states={"layer_map": {0: 0, 2: 4}},
        attentions={},
        attention_relations={"relations": ["query", "value"]},
        relational={},
        labels={"weight": 0},  # not built
    )
    built = build_objectives(
        config,
        teacher_config=SimpleNamespace(hidden_size=8, num_hidden_layers=4),
        student_config=SimpleNamespace(hidden_size=8, num_hidden_layers=2),
        layer_maps=LayerMaps.uniform(2, 4),  # student layers 0, 1 <- teacher layers 1, 3
    )
    assert list(built.objectives) == [
        "soft_targets",
        "hidden_states",
        "attentions",
        "attention_relations",
        "relational",
    ]
    fields = cache_fields(built, teacher_layers=4)
    expected = {
        "logits",
        "embeddings",
        "hidden_states:0",
        "hidden_states:4",
        "attentions:1",
        "attentions:3",
        "qkv:3:query",
        "qkv:3:value",
    }
    assert len(fields) == len(expected) and set(fields) == expected
    assert cache_fields(built, teacher_layers=4, logits=False) == [f for f in fields if f != "logits"]


def test_a_name_is_registered_once_and_tasks_are_known():
    from polydistill.tasks import task_names

    with pytest.raises(ValueError, match="registered twice"):
        register(ObjectiveSpec("relational", ObjectiveConfig, BOTH, build=lambda section, **_: None))
    with pytest.raises(ValueError, match="at least one task"):
        ObjectiveSpec("new_one", ObjectiveConfig, frozenset(), build=lambda section, **_: None)
    # every task an objective names is a registered task (tasks are registered in polydistill.tasks)
    assert all(spec.tasks <= set(task_names()) for spec in registered().values())
