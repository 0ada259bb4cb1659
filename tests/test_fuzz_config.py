"""Whatever a config file holds, load_config either loads it or refuses it with a PolydistillError
that names the file: never another exception (a traceback for the user).

A seeded mutation loop over a few valid configs (no hypothesis dependency): truncation, byte flips,
other encodings, values of another type at random fields, keys given twice, keys deleted. Each case
has its own seed; a failure prints the seed and the mutation, so it replays alone.
"""

from __future__ import annotations

import json
import random
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from polydistill.config import load_config
from polydistill.errors import PolydistillError

CLASSIFICATION = """\
task: classification
teacher:
  model: some/teacher
student:
  keep_layers: [0, 2]
  hidden_size: 32
  num_attention_heads: 4
data:
  train:
    path: train.jsonl
    lang_column: lang
  eval:
    path: train.jsonl
  max_length: 64
  balance_alpha: 0.5
objectives:
  soft_targets:
    weight: 1.0
    temperature: 2.0
  hidden_states:
    weight: 0.5
    layer_map: {1: 2, 2: 4}
training:
  num_train_epochs: 2
  learning_rate: 1.0e-4
  per_device_train_batch_size: 8
  max_nonfinite_steps: 2
compress:
  prune: {heads: 0.5, ffn: 0.25, training: {num_train_epochs: 1}}
  quantize: {max_drop: 0.02}
evaluation:
  efficiency: quick
output_dir: out
seed: 7
"""

FINETUNE = """\
teacher:
  model: offline:tiny
  prefix: "query: "
  finetune:
    data:
      path: train.jsonl
      languages: [en]
    training:
      num_train_epochs: 1
      warmup_steps: 0.1
student:
  keep_layers: 2
  trim_vocabulary:
    languages: [en, de]
    min_count: 2
data:
  train:
    path: train.jsonl
objectives:
  labels:
    weight: 1.0
  hard_targets:
    weight: 0.5
"""

EMBEDDINGS = """\
task: embeddings
teacher:
  model: some/encoder
  cache: false
student:
  model: ./student_base
  keep_layers: 2
data:
  train:
    path: pairs.jsonl
    translation_column: translation
  eval:
    path: pairs.jsonl
    translation_column: translation
objectives:
  embedding_mse:
    weight: 1.0
training:
  max_steps: 10
  gradient_accumulation_steps: 2
"""

BASES = {"classification": CLASSIFICATION, "finetune": FINETUNE, "embeddings": EMBEDDINGS}
CASES_PER_BASE = 100

#: values of every YAML type a field may wrongly get
ODD_VALUES: list[Any] = ["text", "", 0, -1, 7, 2.5, 1e30, [1, "a"], [], {"a": 1}, {}, None, True, False]


def dotted_paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value in a parsed YAML document (mapping keys and list indices)."""
    paths = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            paths += dotted_paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            paths += dotted_paths(value, (*prefix, index))
    return paths


def container_of(document: Any, path: tuple[Any, ...]) -> Any:
    for part in path[:-1]:
        document = document[part]
    return document


def truncate(rng: random.Random, text: str) -> tuple[str, bytes]:
    data = text.encode()
    cut = rng.randrange(len(data))
    return f"truncate at byte {cut}", data[:cut]


def flip_bytes(rng: random.Random, text: str) -> tuple[str, bytes]:
    data = bytearray(text.encode())
    flips = [(rng.randrange(len(data)), rng.randrange(256)) for _ in range(rng.randint(1, 3))]
    for offset, value in flips:
        data[offset] = value
    return f"set bytes {flips}", bytes(data)


def reencode(rng: random.Random, text: str) -> tuple[str, bytes]:
    encoding = rng.choice(["latin-1", "cp1252", "utf-16", "utf-16-le", "utf-8-sig", "utf-32"])
    accented = text.replace("some/", "s\u00f6me/").replace("query: ", "qu\u00e9ry: ")
    return f"encode as {encoding}", accented.encode(encoding)


def swap_type(rng: random.Random, text: str) -> tuple[str, bytes]:
    document = yaml.safe_load(text)
    path = rng.choice(dotted_paths(document))
    value = rng.choice(ODD_VALUES)
    container_of(document, path)[path[-1]] = value
    return f"set {path} to {value!r}", yaml.safe_dump(document).encode()


def delete_key(rng: random.Random, text: str) -> tuple[str, bytes]:
    document = yaml.safe_load(text)
    path = rng.choice([p for p in dotted_paths(document) if isinstance(container_of(document, p), dict)])
    del container_of(document, path)[path[-1]]
    return f"delete {path}", yaml.safe_dump(document).encode()


def duplicate_key(rng: random.Random, text: str) -> tuple[str, bytes]:
    lines = text.splitlines(keepends=True)
    keyed = [i for i, line in enumerate(lines) if ":" in line and not line.lstrip().startswith(("-", "#"))]
    index = rng.choice(keyed)
    at = rng.randint(index + 1, len(lines))  # the copy goes somewhere after the original
    indent = len(lines[index]) - len(lines[index].lstrip())
    while at < len(lines) and len(lines[at]) - len(lines[at].lstrip()) > indent:
        at += 1  # not inside a deeper mapping
    lines.insert(at, lines[index])
    return f"copy line {index + 1} to line {at + 1}", "".join(lines).encode()


MUTATIONS: list[Callable[[random.Random, str], tuple[str, bytes]]] = [truncate, flip_bytes, reencode, swap_type, delete_key, duplicate_key]


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    rows = [{"text": "hello", "label": "a", "lang": "en", "translation": "hallo"}, {"text": "bye", "label": "b", "lang": "de"}]
    for name in ("train.jsonl", "pairs.jsonl"):
        (tmp_path / name).write_text("".join(json.dumps(row) + "\n" for row in rows))
    (tmp_path / "student_base").mkdir()
    return tmp_path


def test_the_base_configs_load(config_dir):
    """Otherwise every mutation would be refused for the same reason and the fuzzing would test nothing."""
    for name, text in BASES.items():
        path = config_dir / f"{name}.yaml"
        path.write_text(text)
        load_config(path)


def test_every_mutated_config_loads_or_is_refused_naming_the_file(config_dir):
    failures = []
    outcomes = {"loaded": 0, "refused": 0}
    for base_name, text in BASES.items():
        for case in range(CASES_PER_BASE):
            seed = f"{base_name}-{case}"
            rng = random.Random(seed)
            mutation = rng.choice(MUTATIONS)
            description, data = mutation(rng, text)
            path = config_dir / f"fuzz-{seed}.yaml"
            path.write_bytes(data)
            try:
                load_config(path)
                outcomes["loaded"] += 1
            except PolydistillError as error:
                outcomes["refused"] += 1
                if path.name not in str(error):
                    failures.append(f"seed {seed!r}, {mutation.__name__}: {description}: message does not name the file: {error}")
            except Exception:
                failures.append(f"seed {seed!r}, {mutation.__name__}: {description}:\n{traceback.format_exc()}")
    assert not failures, "\n\n".join(failures)
    assert outcomes["refused"] > 0 and outcomes["loaded"] > 0, outcomes  # both kinds of outcome were exercised
