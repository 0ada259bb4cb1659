"""The ``transformers.TrainingArguments`` of a run: polydistill's defaults under the config's ``training``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from polydistill.config import RunConfig
from polydistill.errors import ConfigError

#: TrainingArguments that polydistill sets; the config's ``training`` section overrides the rest
DEFAULT_TRAINING_ARGUMENTS: dict[str, Any] = {
    "num_train_epochs": 3,
    "per_device_train_batch_size": 32,
    "per_device_eval_batch_size": 64,
    "learning_rate": 5e-5,
    "warmup_steps": 0.06,
    "weight_decay": 0.01,
    "logging_steps": 10,
    "save_strategy": "no",
    "report_to": "none",
}


def training_arguments(config: RunConfig, output_dir: Path, overrides: dict[str, Any]):
    from transformers import TrainingArguments

    arguments = DEFAULT_TRAINING_ARGUMENTS | {"seed": config.seed, "data_seed": config.seed} | overrides
    try:
        return TrainingArguments(
            output_dir=str(output_dir),
            remove_unused_columns=False,
            label_names=["labels"],
            **arguments,
        )
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{config.source_file or 'config'}: training: {error}") from error
