"""The ``transformers.TrainingArguments`` of a run: polydistill's defaults under the config's ``training``.

Every ``training`` section of a config (the run's, ``teacher.finetune.training``,
``compress.prune.training``) is checked when the config loads (:func:`check_training_sections`):
unknown keys with close names suggested, values of the wrong type or out of range, and whatever
``TrainingArguments`` itself refuses, each at its line.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter, ValidationError

from polydistill.config_yaml import config_location
from polydistill.errors import ConfigError

if TYPE_CHECKING:
    from polydistill.config import RunConfig

#: TrainingArguments that polydistill sets; the config's ``training`` section overrides the rest
DEFAULT_TRAINING_ARGUMENTS: dict[str, Any] = {
    "num_train_epochs": 3,
    "per_device_train_batch_size": 32,
    "per_device_eval_batch_size": 64,
    "learning_rate": 5e-5,
    "warmup_steps": 0.06,
    "weight_decay": 0.01,
    "logging_steps": 10,
    # a rolling last-good checkpoint (student, heads, optimizer: never the teacher) that --resume continues from;
    # the non-finite guard stops a run before a bad step, so every checkpoint holds finite weights
    "save_strategy": "steps",
    "save_steps": 200,
    "save_total_limit": 1,
    "report_to": "none",
}


#: Arguments that polydistill sets itself; a config may not override them.
RESERVED_TRAINING_ARGUMENTS = {"output_dir", "remove_unused_columns", "label_names"}

#: Keys of a ``training`` section that polydistill reads itself; they never reach TrainingArguments.
POLYDISTILL_TRAINING_KEYS = {"max_nonfinite_steps"}

#: Ranges that ``TrainingArguments`` does not check itself (it takes a learning rate of -1 or a
#: batch size of 0 and fails, or trains nothing, later): key -> (in range, what is expected).
TRAINING_VALUE_RANGES: dict[str, tuple[Callable[[Any], bool], str]] = {
    # 0 is allowed: it runs the whole flow with the weights the student starts from (tests do)
    "learning_rate": (lambda v: 0 <= v < math.inf, "a learning rate of 0 or more (e.g. 5.0e-5)"),
    "per_device_train_batch_size": (lambda v: v >= 1, "a batch size of at least 1"),
    "per_device_eval_batch_size": (lambda v: v >= 1, "a batch size of at least 1"),
    "gradient_accumulation_steps": (lambda v: v >= 1, "at least 1 step"),
    "num_train_epochs": (lambda v: 0 <= v < math.inf, "a number of epochs of 0 or more (0 only with max_steps)"),
    "max_steps": (lambda v: v == -1 or v >= 1, "-1 (train num_train_epochs) or a number of steps of at least 1"),
    "warmup_steps": (lambda v: 0 <= v < math.inf, "0 or more (below 1: a share of the training steps)"),
    "weight_decay": (lambda v: 0 <= v < math.inf, "0 or more"),
    "max_grad_norm": (lambda v: 0 <= v < math.inf, "0 or more (0: no clipping)"),
    "adam_beta1": (lambda v: 0 <= v < 1, "a value in [0, 1)"),
    "adam_beta2": (lambda v: 0 <= v < 1, "a value in [0, 1)"),
    "adam_epsilon": (lambda v: 0 < v < math.inf, "a value above 0 (e.g. 1.0e-8)"),
    "logging_steps": (lambda v: 0 < v < math.inf, "a number of steps above 0 (below 1: a share of the training steps)"),
    "save_steps": (lambda v: 0 < v < math.inf, "a number of steps above 0 (below 1: a share of the training steps)"),
    "eval_steps": (lambda v: 0 < v < math.inf, "a number of steps above 0 (below 1: a share of the training steps)"),
    "seed": (lambda v: 0 <= v < 2**32, "a seed in 0..4294967295"),
    "data_seed": (lambda v: 0 <= v < 2**32, "a seed in 0..4294967295"),
    "dataloader_num_workers": (lambda v: v >= 0, "0 or more worker processes"),
    "save_total_limit": (lambda v: v >= 1, "at least 1 checkpoint (or null: keep all)"),
    "max_nonfinite_steps": (lambda v: v >= 0, "0 or more steps to skip (0: stop at the first non-finite step)"),
}


def training_argument_problems(training: dict[str, Any]) -> list[tuple[str, str]]:
    """(key, problem) for each key that ``transformers.TrainingArguments`` does not take from us."""

    from transformers import TrainingArguments

    known = {f.name for f in dataclasses.fields(TrainingArguments) if f.init} | POLYDISTILL_TRAINING_KEYS
    problems = []
    for key in training:
        if not isinstance(key, str):
            problems.append((str(key), "expected the name of a training argument"))
        elif key in RESERVED_TRAINING_ARGUMENTS:
            problems.append((key, "is set by polydistill; remove it (output_dir is a top-level key)"))
        elif key not in known:
            close = difflib.get_close_matches(key, known, n=3)
            hint = f"; did you mean {' or '.join(close)}?" if close else ""
            problems.append((key, f"is not a transformers.TrainingArguments field{hint}"))
    return problems


def check_training_values(training: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """(values, problems): the values to replace, and (key, problem) for each value that is wrong.

    A number written so that YAML reads it as text (``5e-5``: YAML wants ``5.0e-5``) is to be
    replaced by the number it spells, so that TrainingArguments and the optimizer get a number;
    ``true`` is not taken for 1. Values out of :data:`TRAINING_VALUE_RANGES` are problems.
    """
    types = _training_field_types()
    values: dict[str, Any] = {}
    problems = []
    for key, value in training.items():
        if key not in types:
            continue
        converted, problem = _converted_training_value(types[key], value)
        if problem is None and key in TRAINING_VALUE_RANGES and converted is not None:
            in_range, expected = TRAINING_VALUE_RANGES[key]
            problem = None if in_range(converted) else f"expected {expected}, got {value!r}"
        if problem is not None:
            problems.append((key, problem))
        elif isinstance(value, str) and not isinstance(converted, str):
            values[key] = converted
    return values, problems


@functools.cache
def _training_field_types() -> dict[str, Any]:
    """The declared type of every TrainingArguments field, and of polydistill's own training keys."""
    import typing

    from transformers import TrainingArguments

    try:
        hints = typing.get_type_hints(TrainingArguments)
    except Exception:  # a forward reference this transformers version cannot resolve: TrainingArguments checks alone
        hints = {}
    types = {f.name: hints[f.name] for f in dataclasses.fields(TrainingArguments) if f.init and f.name in hints}
    return types | dict.fromkeys(POLYDISTILL_TRAINING_KEYS, int)


@functools.cache
def _type_adapter(annotation: Any) -> TypeAdapter[Any] | None:
    try:
        return TypeAdapter(annotation)
    except Exception:  # a type pydantic cannot check (an arbitrary class): TrainingArguments checks it
        return None


def _converted_training_value(annotation: Any, value: Any) -> tuple[Any, str | None]:
    """(value as ``annotation``, None), or (None, what was expected) when it is not one."""
    import typing

    members = typing.get_args(annotation) if typing.get_origin(annotation) in (typing.Union, _UNION_TYPE) else (annotation,)
    if isinstance(value, bool) and bool not in members and any(m in (int, float) for m in members):
        return None, f"expected {_describe_type(members)}, got {str(value).lower()}"
    adapter = _type_adapter(annotation)
    if adapter is None:
        return value, None
    try:
        converted = adapter.validate_python(value)
    except ValidationError:
        return None, f"expected {_describe_type(members)}, got {value!r}"
    if isinstance(converted, float) and math.isnan(converted):
        return None, f"expected {_describe_type(members)}, got nan"
    return converted, None


_UNION_TYPE = type(int | None)

#: how an expected type reads in an error message
_TYPE_WORDS: dict[Any, str] = {int: "a whole number", float: "a number", bool: "true or false", str: "text", type(None): "null"}


def _describe_type(members: Sequence[Any]) -> str:
    return " or ".join(dict.fromkeys(_TYPE_WORDS.get(m, getattr(m, "__name__", str(m))) for m in members))


def training_sections(config: RunConfig) -> list[tuple[tuple[str, ...], dict[str, Any]]]:
    """(location, section) of every ``training`` section of the config, the most specific first."""
    sections: list[tuple[tuple[str, ...], dict[str, Any]]] = []
    if config.compress and config.compress.prune:
        sections.append((("compress", "prune", "training"), config.compress.prune.training))
    if config.teacher.finetune:
        sections.append((("teacher", "finetune", "training"), config.teacher.finetune.training))
    return [*sections, (("training",), config.training)]


def training_runs(config: RunConfig) -> list[dict[str, Any]]:
    """The ``training`` overrides of each Trainer the config starts (as training/ passes them)."""
    runs = [config.training]
    if config.teacher.finetune:
        runs.append(config.teacher.finetune.training)
    if config.compress and config.compress.prune and config.compress.prune.redistil:
        runs.append({**config.training, **config.compress.prune.training})
    return runs


def training_field(config: RunConfig, overrides: dict[str, Any], message: str) -> list[str]:
    """The field a TrainingArguments error is about: the first key of ``overrides`` that ``message``
    names, in the section that set it; else the section ``overrides`` came from."""
    named = sorted(
        (match.start(), key)
        for key in overrides
        if isinstance(key, str) and (match := re.search(rf"(?<![\w.]){re.escape(key)}(?!\w)", message))
    )
    if not named:  # "bogus is not a valid SchedulerType": the value it names
        named = sorted(
            (match.start(), key)
            for key, value in overrides.items()
            if isinstance(value, str) and value and (match := re.search(rf"(?<!\w){re.escape(value)}(?!\w)", message))
        )
    sections = training_sections(config)
    for _, key in named:
        for location, section in sections:
            if key in section and section[key] is overrides[key]:
                return [*location, key]
    for location, section in sections:
        if section is overrides or (section and all(k in overrides and overrides[k] is v for k, v in section.items())):
            return list(location)
    return ["training"]


def check_training_sections(config: RunConfig) -> None:
    """Unknown keys, values of the wrong type or out of range, then whatever TrainingArguments itself
    refuses: all at load time, each at its line, rather than after the teacher has loaded."""
    lines = []
    for location, training in training_sections(config):
        unknown = training_argument_problems(training)
        for key, problem in unknown:
            path = [*location, key]
            lines.append(f"{config_location(config, path)}: {'.'.join(path)}: '{key}' {problem}")
        values, problems = check_training_values({k: v for k, v in training.items() if k not in dict(unknown)})
        training.update(values)
        for key, problem in problems:
            path = [*location, key]
            lines.append(f"{config_location(config, path)}: {'.'.join(path)}: {problem}")
    if lines:
        raise ConfigError("invalid run config\n  " + "\n  ".join(lines))
    check_training_runs(config, on_this_machine=False)


def check_training_runs(config: RunConfig, *, on_this_machine: bool) -> None:
    """Build the arguments of every Trainer the config starts: what TrainingArguments refuses is a
    ConfigError at its line. Not ``on_this_machine``, they are built as if for the CPU, so that a
    config made for a GPU (``bf16: true``) still loads where there is none, for the commands that
    do not train (compress, report); a run checks ``on_this_machine`` before it writes anything."""
    for overrides in training_runs(config):
        arguments = overrides if on_this_machine else overrides | {"use_cpu": True}
        training_arguments(config, Path(config.output_dir) / "checkpoints", arguments)


def training_arguments(config: RunConfig, output_dir: Path, overrides: dict[str, Any]):
    """The Trainer's arguments: polydistill's defaults, the run's seed, then ``overrides`` (a
    ``training`` section) without the keys polydistill reads itself. What TrainingArguments
    refuses is a ConfigError at the line of the key its message names."""
    from transformers import TrainingArguments

    own = {key: value for key, value in overrides.items() if key not in POLYDISTILL_TRAINING_KEYS}
    arguments = DEFAULT_TRAINING_ARGUMENTS | {"seed": config.seed, "data_seed": config.seed} | own
    if "use_cpu" not in own and _several_processes_without_accelerator():
        # without it accelerate finds no multi-CPU setup under torchrun and every rank trains alone on its shard
        arguments["use_cpu"] = True
    try:
        built = TrainingArguments(
            output_dir=str(output_dir),
            remove_unused_columns=False,
            label_names=["labels"],
            **arguments,
        )
    except Exception as error:  # only TrainingArguments runs here: whatever it refuses (a value, a missing package) is the config's
        field = training_field(config, overrides, str(error))
        raise ConfigError(f"{config_location(config, field)}: {'.'.join(field)}: {error}") from error
    if built.max_steps < 1 and built.num_train_epochs <= 0:
        field = training_field(config, overrides, "num_train_epochs")
        raise ConfigError(
            f"{config_location(config, field)}: {'.'.join(field)}: 0 epochs and no max_steps trains nothing; "
            "expected num_train_epochs above 0 or max_steps of at least 1"
        )
    return built


def _several_processes_without_accelerator() -> bool:
    """Launched as one of several processes (torchrun, accelerate launch) on a machine with no GPU or other accelerator."""
    import os

    import torch

    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.accelerator.is_available()
