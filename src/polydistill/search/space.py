"""A search space as Optuna sees it, and a trial's run config: the base config with the sampled values set.

Every dimension is an Optuna parameter named by its dotted config path. Choices that are not plain
scalars (a list of layers, a mapping) travel through Optuna as their JSON text, so a study's
storage, plots and importances show ``[0, 6, 11]`` rather than an index.
"""

from __future__ import annotations

import copy
import difflib
import itertools
import json
import random
import typing
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from polydistill.config import RunConfig
from polydistill.config_yaml import source_location
from polydistill.errors import ConfigError
from polydistill.search.config import Choices, Dimension, FloatRange, IntRange, SearchConfig
from polydistill.training.arguments import DEFAULT_TRAINING_ARGUMENTS

SCALAR = (type(None), bool, int, float, str)


def _encoded(choices: list[Any]) -> list[Any]:
    return list(choices) if all(isinstance(c, SCALAR) for c in choices) else [json.dumps(c) for c in choices]


def suggest(trial: Any, space: Mapping[str, Dimension]) -> dict[str, Any]:
    """The trial's value of every dimension (sampled, or fixed by an enqueued grid point), decoded."""
    values = {}
    for name, dimension in space.items():
        if isinstance(dimension, FloatRange):
            value = trial.suggest_float(name, *dimension.float, log=dimension.log, step=dimension.step)
        elif isinstance(dimension, IntRange):
            value = trial.suggest_int(name, *dimension.int, log=dimension.log, step=dimension.step)
        else:
            value = trial.suggest_categorical(name, _encoded(dimension.choices))
        values[name] = decode(dimension, value)
    return values


def decode(dimension: Dimension, value: Any) -> Any:
    """The config value an Optuna parameter stands for (the JSON text of a non-scalar choice parsed back)."""
    if isinstance(dimension, Choices) and not all(isinstance(c, SCALAR) for c in dimension.choices):
        return json.loads(value)
    return value


def grid_points(space: Mapping[str, Dimension], seed: int) -> list[dict[str, Any]]:
    """Every combination of the choices (as Optuna parameters), in an order shuffled by ``seed``:
    a grid cut short by ``--trials`` or a timeout still covers the space evenly."""
    names = list(space)
    values = [_encoded(typing.cast(Choices, space[name]).choices) for name in names]
    points = [dict(zip(names, combination, strict=True)) for combination in itertools.product(*values)]
    random.Random(seed).shuffle(points)
    return points


def trial_raw_config(base: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` (a config as YAML mappings) with each dotted path set to its value; missing mappings are created."""
    raw = copy.deepcopy(dict(base))
    for path, value in params.items():
        node: Any = raw
        parts = path.split(".")
        for part in parts[:-1]:
            if isinstance(node, list):  # check_space made sure every list index is a number within the list
                node = node[int(part)]
                continue
            if not isinstance(node.get(part), dict | list):
                node[part] = {}
            node = node[part]
        last = parts[-1]
        if isinstance(node, list):
            node[int(last)] = copy.deepcopy(value)
        else:
            node[last] = copy.deepcopy(value)
    return raw


def check_space(config: RunConfig, search: SearchConfig, base: Mapping[str, Any]) -> None:
    """Refuse a dimension whose path names no config field, or indexes a list the config does not have,
    before any trial runs; the error names the dimension's line."""
    problems = []
    for path in search.space:
        problem = _path_problem(path, base)
        if problem:
            where = source_location(config.source_file, config.source_text, ["search", "space", path])
            problems.append(f"{where}: search.space.{path}: {problem}")
    if problems:
        raise ConfigError("invalid search space\n  " + "\n  ".join(problems))


def _path_problem(path: str, base: Mapping[str, Any]) -> str | None:
    """Why ``path`` names no field of a run config (None when it does): walks RunConfig's models."""
    parts = path.split(".")
    if parts[0] == "search":
        return "the search section cannot search itself"
    models: list[type[BaseModel]] = [RunConfig]
    node: Any = base
    for depth, part in enumerate(parts):
        here = ".".join(parts[:depth]) or "the config"
        if part.isdigit():
            if not isinstance(node, list) or int(part) >= len(node):
                return f"{here} is not a list of at least {int(part) + 1} entries in the config"
            node = node[int(part)]
            continue
        if isinstance(node, list):
            return f"{here} is a list in the config: name its entry by number, e.g. {here}.0.{part}"
        if not models:
            return f"{here} is a value, not a section"
        fields = {name: info for model in models for name, info in model.model_fields.items() if not info.exclude}
        if part not in fields:
            close = difflib.get_close_matches(part, list(fields), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f"; expected one of: {', '.join(sorted(fields))}"
            return f"unknown field '{part}' in {here}{hint}"
        annotation = fields[part].annotation
        if _is_free_form(annotation):  # training: TrainingArguments, whose keys are checked when the trial's config loads
            return None
        models = _models_in(annotation)
        node = node.get(part) if isinstance(node, dict) else None
    return None


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for argument in typing.get_args(annotation) for model in _models_in(argument)]


def _is_free_form(annotation: Any) -> bool:
    return typing.get_origin(annotation) is dict or annotation is dict or any(_is_free_form(a) for a in typing.get_args(annotation))


def baseline_params(config: RunConfig, base: Mapping[str, Any], search: SearchConfig) -> tuple[dict[str, Any] | None, str]:
    """The config's own value of every dimension, as Optuna parameters: the trial that shows what the
    hand-set recipe scores, run first. None (and why) when a dimension has no value in the config or
    one outside the space."""
    dumped = config.model_dump(mode="json")
    params: dict[str, Any] = {}
    for path, dimension in search.space.items():
        found, value = _value_at(base, path)
        if not found:
            found, value = _value_at(dumped, path)
        if not found and path.startswith("training.") and path.count(".") == 1:  # a TrainingArguments default of polydistill's
            found, value = path.split(".")[1] in DEFAULT_TRAINING_ARGUMENTS, DEFAULT_TRAINING_ARGUMENTS.get(path.split(".")[1])
        if not found or value is None and not isinstance(dimension, Choices):
            return None, f"{path} is not set in the config"
        if isinstance(dimension, Choices):
            encoded = _encoded(dimension.choices)
            key = value if all(isinstance(c, SCALAR) for c in dimension.choices) else json.dumps(value)
            if key not in encoded:
                return None, f"{path}: the config's {json.dumps(value)} is not among the choices"
            params[path] = key
            continue
        low, high = dimension.float if isinstance(dimension, FloatRange) else dimension.int
        if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
            return None, f"{path}: the config's {json.dumps(value)} is outside [{low}, {high}]"
        if isinstance(dimension, IntRange) and (not float(value).is_integer() or (int(value) - low) % dimension.step):
            return None, f"{path}: the config's {json.dumps(value)} is not on the range's steps"
        params[path] = int(value) if isinstance(dimension, IntRange) else float(value)
    return params, ""


def _value_at(tree: Any, path: str) -> tuple[bool, Any]:
    node = tree
    for part in path.split("."):
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return False, None
    return True, node
