"""``polydistill search``: a study over a tiny teacher finds the setting known to be better, reruns to
its metric, runs the teacher once, reports bad trials, prunes, resumes and writes a Pareto front."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from sklearn.metrics import f1_score
from transformers import AutoModelForSequenceClassification, AutoTokenizer, BertForSequenceClassification, TrainerCallback

from polydistill.cli import main
from polydistill.errors import ConfigError
from polydistill.models.student import build_student
from polydistill.search.runner import search
from polydistill.search.space import grid_points
from tests.conftest import LABEL_NAMES

CONFIG = """\
teacher:
  model: {teacher}
  cache_dir: {cache}
student:
  keep_layers: 1
data:
  train: {{path: {train}, lang_column: lang}}
  eval: {{path: {test}, lang_column: lang}}
  max_length: 24
training:
  max_steps: 12
  learning_rate: 2.0e-3
  per_device_train_batch_size: 16
  logging_steps: 4
  use_cpu: true
evaluation:
  efficiency: "off"
  noise: null
search:
{search}
"""


def write_config(path: Path, teacher: Path, data: dict[str, Path], search_section: str) -> Path:
    text = CONFIG.format(
        teacher=teacher, cache=path.parent / "teacher-cache", train=data["train"], test=data["test"], search=search_section
    )
    path.write_text(text)
    return path


def macro_f1_by_language(model, tokenizer, path: Path) -> dict[str, float]:
    """Worked out here with scikit-learn, not by polydistill: macro-F1 of the model's argmax per language."""
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    with torch.no_grad():
        inputs = tokenizer([r["text"] for r in rows], padding=True, truncation=True, max_length=24, return_tensors="pt")
        predicted = model(**inputs).logits.argmax(-1).numpy()
    id_of = {name: index for index, name in model.config.id2label.items()}
    gold = np.array([id_of[r["label"]] for r in rows])
    languages = np.array([r["lang"] for r in rows])
    return {
        lang: float(f1_score(gold[languages == lang], predicted[languages == lang], average="macro", labels=range(len(LABEL_NAMES))))
        for lang in sorted(set(languages))
    }


class TeacherForwards(TrainerCallback):
    """Counts forward passes of 4-layer models (the tiny teacher; students keep 1 or 2 layers) up to each trial's end."""

    def __init__(self, monkeypatch):
        self.calls = 0
        self.at_train_end: list[int] = []
        original = BertForSequenceClassification.forward

        def counting(module, *args, **kwargs):
            if module.config.num_hidden_layers == 4:
                self.calls += 1
            return original(module, *args, **kwargs)

        monkeypatch.setattr(BertForSequenceClassification, "forward", counting)

    def on_train_end(self, args, state, control, **kwargs):
        self.at_train_end.append(self.calls)


def test_a_search_finds_the_better_setting_runs_the_teacher_once_and_best_yaml_reruns_to_its_metric(
    tiny_teacher_dir, two_language_data, tmp_path, monkeypatch, capsys
):
    # learning rate 0 leaves the copied 1-layer student as it starts; 2e-3 distils it: the outcome is known
    config = write_config(
        tmp_path / "lr.yaml", tiny_teacher_dir, two_language_data, "  space:\n    training.learning_rate: {choices: [0.0, 2.0e-3]}"
    )
    forwards = TeacherForwards(monkeypatch)
    summary = search(config, out=tmp_path / "out", extra_callbacks=[forwards])
    assert summary is not None

    trials = {
        json.loads(p.read_text())["params"]["training.learning_rate"]: json.loads(p.read_text())
        for p in (tmp_path / "out").glob("trials/*/trial.json")
    }
    assert set(trials) == {0.0, 2.0e-3} and all(t["outcome"] == "complete" for t in trials.values())
    assert summary["best"]["params"] == {"training.learning_rate": 2.0e-3}
    # the config's own learning rate ran first, as the baseline the search is compared with
    assert summary["baseline"] == {"trial": 0, "values": {"mean": trials[2.0e-3]["mean"]}}

    # the lr-0 trial scores the untrained student: the same number worked out here from the teacher's first layer
    teacher = AutoModelForSequenceClassification.from_pretrained(tiny_teacher_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_teacher_dir)
    untrained = macro_f1_by_language(build_student(teacher, keep_layers=1).model.eval(), tokenizer, two_language_data["test"])
    # the lr-0 trial trained a copy of the student trial 0 built (not trial 0's trained one)
    assert "Student reusing the one this process built" in capsys.readouterr().err
    assert trials[0.0]["languages"] == pytest.approx(untrained, abs=1e-6)
    assert trials[0.0]["mean"] == pytest.approx(sum(untrained.values()) / 2, abs=1e-6)
    assert trials[2.0e-3]["mean"] > trials[0.0]["mean"] + 0.1

    # the teacher ran for the first trial's cache only: the second trial read it (eval never needs the teacher)
    first, second = forwards.at_train_end
    assert first > 0 and second == first

    # only the best trial keeps its student; it was evaluated beside the teacher, as a run's student is
    best_dir = Path(summary["best"]["directory"])
    assert [p.parent.name for p in (tmp_path / "out").glob("trials/*/student")] == [best_dir.name]
    metrics = json.loads((best_dir / "metrics.json").read_text())
    assert {lang: entry["student"]["macro_f1"] for lang, entry in metrics["languages"].items()} == pytest.approx(
        trials[2.0e-3]["languages"], abs=1e-6
    )
    rows = list(csv.DictReader((tmp_path / "out" / "trials.csv").open()))
    assert len(rows) == 2 and {row["outcome"] for row in rows} == {"complete"}
    for name in ("history.png", "importances.png"):
        assert (tmp_path / "out" / "plots" / name).stat().st_size > 1000
    assert "Best trial" in (tmp_path / "out" / "search_report.md").read_text()

    # best.yaml is a run config without the search section; running it reproduces the best trial's score
    best = yaml.safe_load((tmp_path / "out" / "best.yaml").read_text())
    assert "search" not in best and best["training"]["learning_rate"] == 2.0e-3
    assert main(["run", str(tmp_path / "out" / "best.yaml"), "--out", str(tmp_path / "rerun")]) == 0
    rerun = json.loads((tmp_path / "rerun" / "metrics.json").read_text())
    scores = [entry["student"]["macro_f1"] for entry in rerun["languages"].values()]
    assert sum(scores) / len(scores) == pytest.approx(trials[2.0e-3]["mean"], abs=1e-6)


def test_an_invalid_sampled_config_is_a_failed_trial_and_a_bad_path_is_refused_before_any(
    tiny_teacher_dir, two_language_data, tmp_path, capsys
):
    # the tiny teacher has 4 layers: keeping 9 cannot be built; the study records it and goes on
    config = write_config(
        tmp_path / "layers.yaml", tiny_teacher_dir, two_language_data, "  space:\n    student.keep_layers: {choices: [1, 9]}"
    )
    assert main(["search", str(config), "--out", str(tmp_path / "out")]) == 0
    records = {
        json.loads(p.read_text())["params"]["student.keep_layers"]: json.loads(p.read_text())
        for p in (tmp_path / "out").glob("trials/*/trial.json")
    }
    assert records[9]["outcome"] == "invalid" and "keep_layers" in records[9]["error"]
    assert records[1]["outcome"] == "complete"
    assert json.loads((tmp_path / "out" / "search.json").read_text())["trials"] == {"complete": 1, "invalid": 1}

    typo = write_config(tmp_path / "typo.yaml", tiny_teacher_dir, two_language_data, "  space:\n    student.keep_layer: {choices: [1, 2]}")
    with pytest.raises(ConfigError, match=r"typo.yaml:\d+: search.space.student.keep_layer: unknown field 'keep_layer' .*keep_layers"):
        search(typo, out=tmp_path / "typo-out")
    assert not (tmp_path / "typo-out").exists()
    empty = write_config(
        tmp_path / "range.yaml", tiny_teacher_dir, two_language_data, "  space:\n    training.learning_rate: {float: [1, 0]}"
    )
    assert main(["search", str(empty)]) == 2
    assert "range.yaml:" in capsys.readouterr().err


def test_a_falling_behind_trial_is_pruned_and_the_same_command_resumes_the_study(tiny_teacher_dir, two_language_data, tmp_path):
    space = {"training.learning_rate": {"choices": [2.0e-3, 1.0e-3, 0.0]}}
    from polydistill.search.config import SearchConfig

    # a seed whose shuffled grid runs learning rate 0 last, after the two trials the median pruner needs
    seed = next(
        s for s in range(100) if grid_points(SearchConfig.model_validate({"space": space}).space, s)[-1] == {"training.learning_rate": 0.0}
    )
    section = f"  space: {json.dumps(space)}\n  seed: {seed}\n  report_every: 4\n  pruner: median"
    config = write_config(tmp_path / "prune.yaml", tiny_teacher_dir, two_language_data, section)
    first = search(config, out=tmp_path / "out", trials=2)
    assert first is not None and first["trials"] == {"complete": 2}
    # the same command with more trials continues the study: the third grid point runs, and the pruner stops it
    second = search(config, out=tmp_path / "out", trials=3)
    assert second is not None and second["trials"] == {"complete": 2, "pruned": 1}
    pruned = json.loads((tmp_path / "out" / "trials" / "0002" / "trial.json").read_text())
    assert pruned["params"] == {"training.learning_rate": 0.0} and pruned["outcome"] == "pruned"
    assert pruned["history"][-1]["step"] < 12  # stopped before its last step
    assert not (tmp_path / "out" / "trials" / "0002" / "student").exists()
    assert json.loads((tmp_path / "out" / "trials" / "0002" / "run.json").read_text())["status"] == "pruned"
    assert (tmp_path / "out" / "plots" / "curves.png").stat().st_size > 1000


def test_two_objectives_give_a_pareto_front_of_non_dominated_trials(tiny_teacher_dir, two_language_data, tmp_path):
    section = "  space:\n    student.keep_layers: {choices: [1, 2]}\n  optimize: [mean, size]"
    config = write_config(tmp_path / "front.yaml", tiny_teacher_dir, two_language_data, section)
    summary = search(config, out=tmp_path / "out")
    assert summary is not None
    records = [json.loads(p.read_text()) for p in sorted((tmp_path / "out").glob("trials/*/trial.json"))]
    teacher = AutoModelForSequenceClassification.from_pretrained(tiny_teacher_dir)
    for record in records:  # size: the student's parameters, counted here
        student = build_student(teacher, keep_layers=record["params"]["student.keep_layers"]).model
        assert record["values"]["size"] == sum(p.numel() for p in student.parameters())

    def dominates(a: dict, b: dict) -> bool:
        better_or_equal = a["mean"] >= b["mean"] and a["size"] <= b["size"]
        return better_or_equal and (a["mean"] > b["mean"] or a["size"] < b["size"])

    values = [r["values"] for r in records]
    expected = {r["number"] for r, v in zip(records, values, strict=True) if not any(dominates(o, v) for o in values if o is not v)}
    assert {entry["trial"] for entry in summary["pareto_front"]} == expected
    for number in expected:
        assert (tmp_path / "out" / "pareto" / f"trial-{number:04d}.yaml").is_file()
    assert (tmp_path / "out" / "plots" / "pareto.png").stat().st_size > 1000
    assert all(math.isfinite(v["mean"]) for v in values)


def study_with_one_running_trial(tmp_path: Path, heartbeat: int = 30, retries: int = 0):
    """A study in SQLite with one trial taken (RUNNING, temperature sampled) and nothing else queued."""
    import optuna

    from polydistill.search.config import SearchConfig
    from polydistill.search.study import open_storage, open_study, take_trial

    search_config = SearchConfig(space={"objectives.soft_targets.temperature": {"float": [1.0, 4.0]}}, heartbeat=heartbeat)
    study = open_study(open_storage(f"sqlite:///{tmp_path / 'study.db'}", heartbeat=heartbeat), "s", search_config, seed=0, create=True)
    study.enqueue_trial({}, user_attrs={"retries": retries} if retries else None)
    trial = take_trial(study)
    temperature = trial.suggest_float("objectives.soft_targets.temperature", 1.0, 4.0)
    return optuna, study, trial, temperature


def dead_pid() -> int:
    """A process id that no process has: a child that has exited and been reaped."""
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_dead_workers_trial_is_failed_once_and_queued_again_with_its_parameters(tmp_path):
    import socket

    from polydistill.search.study import MAX_RETRIES, outcome_of, reclaim_dead_workers

    optuna, study, trial, temperature = study_with_one_running_trial(tmp_path)
    pid = dead_pid()
    study._storage.set_trial_user_attr(trial._trial_id, "worker", f"{socket.gethostname()}:{pid}")
    reclaim_dead_workers(study)
    reclaim_dead_workers(study)  # a second worker noticing the same dead one changes nothing
    first, retry = study.get_trials()
    assert first.state.name == "FAIL" and outcome_of(first) == "interrupted" and f"process {pid}" in first.user_attrs["interrupted"]
    assert retry.state.name == "WAITING" and retry.user_attrs["retry_of"] == first.number
    assert retry.system_attrs["fixed_params"] == {"objectives.soft_targets.temperature": temperature}

    # a trial interrupted MAX_RETRIES times already is a failed trial with a result, not queued again
    (tmp_path / "again").mkdir()
    optuna, study, trial, _ = study_with_one_running_trial(tmp_path / "again", retries=MAX_RETRIES)
    study._storage.set_trial_user_attr(trial._trial_id, "worker", f"{socket.gethostname()}:{pid}")
    reclaim_dead_workers(study)
    (only,) = study.get_trials()
    assert only.state.name == "FAIL" and outcome_of(only) == "failed" and "interrupted 3 times" in only.user_attrs["error"]


def test_a_trial_whose_heartbeat_stops_is_failed_and_queued_again(tmp_path):
    import time

    from polydistill.search.study import heartbeat, outcome_of, reclaim_dead_workers

    optuna, study, trial, temperature = study_with_one_running_trial(tmp_path, heartbeat=1)
    study._storage.set_trial_user_attr(trial._trial_id, "worker", "another-machine:1")  # not a process of this one
    with heartbeat(study, trial, 1):
        time.sleep(2.5)
        reclaim_dead_workers(study)  # beating: left alone
        assert [t.state.name for t in study.get_trials()] == ["RUNNING"]
    time.sleep(4.5)  # silent for longer than the grace period of 4 heartbeats
    reclaim_dead_workers(study)
    first, retry = study.get_trials()
    assert first.state.name == "FAIL" and outcome_of(first) == "interrupted"
    assert retry.state.name == "WAITING" and retry.user_attrs["retry_reason"] == "its worker stopped sending heartbeats"
    assert retry.system_attrs["fixed_params"] == {"objectives.soft_targets.temperature": temperature}
