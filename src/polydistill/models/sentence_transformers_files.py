"""Reading and writing the sentence-transformers files of a model directory."""

from __future__ import annotations

import importlib.metadata
import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: sentence-transformers files that describe the pipeline around the transformer
SENTENCE_TRANSFORMERS_FILES = ("modules.json", "config_sentence_transformers.json")


def write_json(path: Path, content: Any) -> None:
    """JSON as the Hub's own files are written: indented, UTF-8 kept as text, newline-terminated."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_sentence_transformers_files(
    directory: Path,
    *,
    hidden_size: int,
    max_seq_length: int,
    prompts: Mapping[str, str],
    do_lower_case: bool = False,
) -> None:
    """The classic sentence-transformers layout: Transformer -> mean Pooling -> Normalize.

    This module-path format loads in every sentence-transformers version from 2 to 6.
    """
    # Versions from metadata: importing sentence_transformers here would cost seconds.
    versions = {
        "sentence_transformers": _installed_version("sentence-transformers"),
        "transformers": _installed_version("transformers"),
        "pytorch": _installed_version("torch"),
    }
    write_json(
        directory / "modules.json",
        [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ],
    )
    write_json(
        directory / "1_Pooling" / "config.json",
        {
            "word_embedding_dimension": hidden_size,
            "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": True,
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
            "pooling_mode_weightedmean_tokens": False,
            "pooling_mode_lasttoken": False,
            "include_prompt": True,
        },
    )
    write_json(
        directory / "sentence_bert_config.json",
        {"max_seq_length": max_seq_length, "do_lower_case": do_lower_case},
    )
    write_json(
        directory / "config_sentence_transformers.json",
        {
            "model_type": "SentenceTransformer",
            "__version__": versions,
            "prompts": dict(prompts),
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
        },
    )


def _installed_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def copy_sentence_transformers_files(source: Path, destination: Path) -> str:
    """Copy the sentence-transformers pipeline around the transformer; return its folder ('' = root)."""
    modules_file = source / "modules.json"
    if not modules_file.is_file():
        return ""
    modules = json.loads(modules_file.read_text(encoding="utf-8"))
    transformer_path = ""
    for module in modules:
        module_path = module.get("path", "")
        if module.get("type", "").endswith(".Transformer"):
            transformer_path = module_path
            # the Transformer module's own settings (max_seq_length, do_lower_case)
            config = source / module_path / "sentence_bert_config.json"
            if config.is_file():
                (destination / module_path).mkdir(parents=True, exist_ok=True)
                shutil.copyfile(config, destination / module_path / "sentence_bert_config.json")
        elif module_path and (source / module_path).is_dir():
            shutil.copytree(source / module_path, destination / module_path, dirs_exist_ok=True)
    for name in SENTENCE_TRANSFORMERS_FILES:
        if (source / name).is_file():
            shutil.copyfile(source / name, destination / name)
    return transformer_path


def sentence_transformers_prompts(model_dir: str | Path) -> list[str]:
    """The prompts a sentence-transformers directory prepends (e5's ``"query: "``, ``"passage: "``).

    Trimming keeps their tokens: a prompt that re-segmented would change every embedding.
    """
    path = Path(model_dir) / "config_sentence_transformers.json"
    if not path.is_file():
        return []
    prompts = json.loads(path.read_text(encoding="utf-8")).get("prompts") or {}
    return [prompt for prompt in prompts.values() if isinstance(prompt, str) and prompt]
