"""What defines a benchmark run: the methods, the settings every child reads, the recipes."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

TASKS = ("classification", "embeddings")
#: the peer recipe of each task, the method every polydistill method is compared with
PEERS = {"classification": "trainer-kd", "embeddings": "st-mseloss"}
METHODS = {
    "classification": ("polydistill-cache", "polydistill-cache-reused", "polydistill-online", "trainer-kd"),
    "embeddings": (
        "polydistill-cache",
        "polydistill-cache-reused",
        "polydistill-online",
        "polydistill-cache-mse",
        "st-mseloss",
    ),
}
LABELS = {
    "polydistill-cache": "(a) polydistill, cache built",
    "polydistill-cache-reused": "(a') polydistill, cache reused",
    "polydistill-online": "(b) polydistill, online teacher",
    "polydistill-cache-mse": "(a) polydistill, cache built, MSE only",
    "trainer-kd": "(c) transformers.Trainer + KD loss",
    "st-mseloss": "(c) sentence-transformers MSELoss",
    "teacher": "teacher (reference)",
    "padding": "padding of each way of batching",
}
#: the cache directory of each cached method; a method whose cache must be built is given a fresh one
CACHE_DIRS = {"polydistill-cache": "cache-a", "polydistill-cache-reused": "cache-a", "polydistill-cache-mse": "cache-a-mse"}
FRESH_CACHE = {"polydistill-cache", "polydistill-cache-mse"}
QUICK_LANGUAGES = ["de"]
QUICK_STEPS = 6
BOOTSTRAP_SAMPLES = 2000


@dataclass
class Settings:
    """Everything that defines a benchmark run; children read it from ``OUT/settings.json``."""

    tasks: list[str]
    languages: list[str] | None
    epochs: float
    quick: bool
    out: str
    threads: int | None = None
    classification_teacher: str | None = None
    methods: dict[str, list[str]] = field(default_factory=dict)

    def save(self) -> None:
        Path(self.out).mkdir(parents=True, exist_ok=True)
        (Path(self.out) / "settings.json").write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, out: str) -> Settings:
        return cls(**json.loads((Path(out) / "settings.json").read_text()))

    def prepare_key(self, task: str) -> dict[str, Any]:
        """What the teacher and student initialisation of a task depend on."""
        return {"task": task, "languages": self.languages, "quick": self.quick, "teacher": self.classification_teacher}


def recipe_dict(task: str, settings: Settings) -> dict[str, Any]:
    """The demo recipe with this benchmark's languages and epochs, efficiency measurement off."""
    from polydistill.commands.demo import demo_config_dict

    raw = demo_config_dict(task, languages=settings.languages, quick=False)
    raw["training"]["num_train_epochs"] = settings.epochs
    if settings.quick:
        raw["training"]["max_steps"] = QUICK_STEPS
        if "finetune" in raw["teacher"]:
            raw["teacher"]["finetune"]["training"]["max_steps"] = QUICK_STEPS
    raw["evaluation"] = {"efficiency": "off"}
    return raw


def validated(raw: dict[str, Any], task: str):
    from polydistill.commands.demo import recipe_path
    from polydistill.config import validate_config

    return validate_config(raw, source_file=Path(str(recipe_path(task))))


def peer_training_arguments(config) -> dict[str, Any]:
    """polydistill's TrainingArguments defaults and the recipe's training section, without the
    sampling strategy (group_by_length is polydistill's choice, not the peers')."""
    from polydistill.training.arguments import DEFAULT_TRAINING_ARGUMENTS

    arguments = DEFAULT_TRAINING_ARGUMENTS | {"seed": config.seed, "data_seed": config.seed} | dict(config.training)
    arguments.pop("train_sampling_strategy", None)
    return arguments


def task_dir(settings: Settings, task: str) -> Path:
    return Path(settings.out) / task


def read_prepared(settings: Settings, task: str) -> dict[str, Any]:
    return json.loads((task_dir(settings, task) / "prepare.json").read_text())
