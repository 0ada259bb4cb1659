"""Checks of a model directory before anything loads it: what is wrong, in which file, and the fix.

A model directory goes wrong in a few ways that transformers reports badly (a traceback deep in
its loader, or a silently different model): a ``config.json`` that does not parse, no weights at
all, a Git LFS pointer where the weights should be (a clone without ``git lfs``), a safetensors
file cut short by an interrupted download, a sharded checkpoint with a shard missing, and weights
stored only as pickle files, which polydistill refuses because unpickling a file can run arbitrary
code. :func:`check_model_dir` finds these by reading the files' first bytes and the safetensors
headers only, so it costs milliseconds even for a large model.

This module imports the standard library and :mod:`polydistill.errors` only: the torch-free
runtime uses it too.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from polydistill.errors import ModelFileError
from polydistill.text_files import lfs_pointer_size

#: set to 1 to load weights stored only as pickle files (torch's restricted ``weights_only`` loader)
PICKLE_OPT_IN_ENV = "POLYDISTILL_ALLOW_PICKLE"
SAFETENSORS_INDEX = "model.safetensors.index.json"
PICKLE_INDEX = "pytorch_model.bin.index.json"
#: file endings of torch pickle checkpoints
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")
#: pickle files a Trainer writes beside a model that are not its weights
PICKLE_NOT_WEIGHTS = frozenset(
    {"training_args.bin", "optimizer.bin", "scheduler.bin", "optimizer.pt", "scheduler.pt", "scaler.pt", "rng_state.pth"}
)
#: weights in formats polydistill does not load (named in the "no weights" message)
OTHER_WEIGHT_FILES = ("tf_model.h5", "flax_model.msgpack", "model.onnx", "onnx/model.onnx")
#: safetensors' own limit on the JSON header (bytes); a larger length means the file is something else
SAFETENSORS_MAX_HEADER = 100_000_000


def check_model_dir(directory: Path, *, reference: str) -> None:
    """Raise :class:`ModelFileError` naming the file and what is wrong when ``directory`` (the model
    ``reference`` resolved to) cannot be loaded as a Hugging Face model with safetensors weights.

    A sentence-transformers directory passes with its transformer in the directory itself or in the
    folder its ``modules.json`` names (``0_Transformer/`` in older models).
    """
    folder = transformer_folder(directory)
    read_json_object(folder / "config.json", reference=reference)
    check_weights(folder, reference=reference)


def transformer_folder(directory: Path) -> Path:
    """The folder holding the transformer's config and weights: the directory itself, or the
    Transformer module's folder of a sentence-transformers ``modules.json``."""
    modules_file = directory / "modules.json"
    if not modules_file.is_file():
        return directory
    modules = read_json(modules_file)
    if not isinstance(modules, list):
        raise ModelFileError(f"{modules_file} holds a JSON {type(modules).__name__}; expected the list of sentence-transformers modules")
    for module in modules:
        if isinstance(module, dict) and str(module.get("type", "")).endswith(".Transformer"):
            folder = directory / str(module.get("path", ""))
            if not folder.is_dir():
                raise ModelFileError(
                    f"{modules_file} puts the Transformer module in '{module.get('path')}', which is not a folder of {directory}"
                )
            return folder
    return directory


def read_json_object(path: Path, *, reference: str) -> dict[str, Any]:
    """The JSON object in ``path``, a file the model needs."""
    if not path.is_file():
        raise ModelFileError(
            f"model '{reference}' has no {path.name} in {path.parent}; "
            "expected a Hugging Face model directory (as save_pretrained writes it)"
        )
    content = read_json(path)
    if not isinstance(content, dict):
        raise ModelFileError(f"{path} holds a JSON {type(content).__name__}; expected a JSON object")
    return content


def read_json(path: Path) -> Any:
    """The parsed content of a JSON file, or an error naming the line and column where it breaks."""
    refuse_lfs_pointer(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ModelFileError(
            f"{path} is not UTF-8 text (byte {error.start} is {error.object[error.start : error.start + 1]!r}); expected a JSON file"
        ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ModelFileError(f"{path} is not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}") from None


# --- Git LFS pointers ------------------------------------------------------------------------


def refuse_lfs_pointer(path: Path) -> None:
    """An error naming ``path`` when it is a Git LFS pointer instead of the file's content."""
    size = lfs_pointer_size(path)
    if size is None:
        return
    stands_for = f"the {size:,}-byte file" if size else "the file"
    raise ModelFileError(
        f"{path} is a Git LFS pointer, not the file itself ({stands_for} was never downloaded). "
        f"Fetch it: install git-lfs, then run `git lfs pull` in the repository holding {path.parent} "
        "(or download the model again with huggingface_hub)"
    )


# --- tokenizer files -------------------------------------------------------------------------

#: the tokenizer files transformers reads (JSON ones are parsed, every one checked for an LFS pointer)
TOKENIZER_JSON_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "vocab.json")
TOKENIZER_OTHER_FILES = ("vocab.txt", "merges.txt", "sentencepiece.bpe.model", "spiece.model", "tokenizer.model")


#: the files one of which holds a tokenizer's vocabulary; without any, transformers builds an empty tokenizer silently
TOKENIZER_VOCABULARY_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "sentencepiece.bpe.model", "spiece.model", "tokenizer.model")


def require_tokenizer_vocabulary(directory: Path) -> None:
    """Refuse a model directory without a tokenizer vocabulary: transformers would make one of
    special tokens only, and every word would become ``[UNK]`` without a word of warning."""
    if not any((directory / name).is_file() for name in TOKENIZER_VOCABULARY_FILES):
        raise ModelFileError(
            f"{directory} has no tokenizer (none of {', '.join(TOKENIZER_VOCABULARY_FILES)}); save the tokenizer beside the model "
            "(tokenizer.save_pretrained(directory)) or copy its files from the model it came from"
        )


def check_tokenizer_files(directory: Path) -> None:
    """An error naming the tokenizer file that is an LFS pointer or invalid JSON. Parsing
    tokenizer.json costs a fraction of a second for a large vocabulary, so callers run this only
    once loading the tokenizer failed, to say which file is to blame."""
    for name in TOKENIZER_OTHER_FILES:
        if (directory / name).is_file():
            refuse_lfs_pointer(directory / name)
    for name in TOKENIZER_JSON_FILES:
        if (directory / name).is_file():
            read_json(directory / name)


# --- weights ---------------------------------------------------------------------------------


def check_weights(folder: Path, *, reference: str) -> None:
    """Safetensors weights that are complete; pickle weights only with the explicit opt-in."""
    safetensors_files = set(folder.glob("*.safetensors"))
    if (folder / SAFETENSORS_INDEX).is_file():
        safetensors_files |= set(indexed_shards(folder / SAFETENSORS_INDEX))
    if safetensors_files:
        for path in sorted(safetensors_files):
            check_safetensors_file(path)
        return
    pickles = pickle_weight_files(folder)
    if pickles:
        if not pickle_allowed():
            raise ModelFileError(pickle_refusal(folder, pickles))
        if (folder / PICKLE_INDEX).is_file():
            indexed_shards(folder / PICKLE_INDEX)
        for path in pickles:
            refuse_lfs_pointer(path)
        return
    raise ModelFileError(no_weights_message(folder, reference))


def indexed_shards(index: Path) -> list[Path]:
    """The shard files a sharded checkpoint's index names, each checked to exist."""
    content = read_json(index)
    weight_map = content.get("weight_map") if isinstance(content, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise ModelFileError(f"{index} has no 'weight_map' object (tensor name -> shard file); expected a sharded checkpoint's index")
    shards = sorted({str(name) for name in weight_map.values()})
    missing = [name for name in shards if not (index.parent / name).is_file()]
    if missing:
        raise ModelFileError(
            f"{index} names {len(shards)} shard files but {len(missing)} are missing from {index.parent}: "
            f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}; download the model again"
        )
    return [index.parent / name for name in shards]


def check_safetensors_file(path: Path) -> None:
    """An error naming ``path`` when it is an LFS pointer, not a safetensors file, or shorter or
    longer than its header says (the length safetensors itself requires exactly)."""
    refuse_lfs_pointer(path)
    actual = path.stat().st_size
    with path.open("rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise ModelFileError(
                f"{path} is truncated: {actual} bytes, fewer than the 8 bytes of a safetensors header length; download it again"
            )
        header_length = int.from_bytes(prefix, "little")
        if header_length > SAFETENSORS_MAX_HEADER:
            raise ModelFileError(f"{path} is not a safetensors file: its first 8 bytes {prefix!r} are not a header length")
        header_bytes = handle.read(header_length)
    if len(header_bytes) < header_length:
        raise ModelFileError(
            f"{path} is truncated: its header alone needs {8 + header_length} bytes, the file has {actual}; "
            "the download or copy was interrupted, download it again"
        )
    expected = 8 + header_length + _data_length(path, header_bytes)
    if actual < expected:
        raise ModelFileError(
            f"{path} is truncated: its header says {expected} bytes, the file has {actual} "
            f"({expected - actual} missing); the download or copy was interrupted, download it again"
        )
    if actual > expected:
        raise ModelFileError(f"{path} is corrupt: its header says {expected} bytes, the file has {actual} ({actual - expected} too many)")


def _data_length(path: Path, header_bytes: bytes) -> int:
    """The byte length of the tensor data a safetensors header describes (its largest end offset)."""
    try:
        header = json.loads(header_bytes.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelFileError(f"{path} is corrupt or not a safetensors file: its header is not JSON ({error})") from None
    if not isinstance(header, dict):
        raise ModelFileError(f"{path} is corrupt: its header is a JSON {type(header).__name__}, expected an object")
    end = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if not (
            isinstance(offsets, list)
            and len(offsets) == 2
            and all(isinstance(o, int) and o >= 0 for o in offsets)
            and offsets[0] <= offsets[1]
        ):
            raise ModelFileError(f"{path} is corrupt: the header entry of tensor '{name}' has no valid data_offsets [begin, end]")
        end = max(end, offsets[1])
    return end


# --- pickle ----------------------------------------------------------------------------------


def pickle_allowed() -> bool:
    """Whether the user opted in to loading pickle weights (``POLYDISTILL_ALLOW_PICKLE=1``)."""
    return os.environ.get(PICKLE_OPT_IN_ENV, "").strip().lower() in {"1", "true", "yes"}


def pickle_weight_files(folder: Path) -> list[Path]:
    """The torch pickle files in ``folder`` that hold weights (not a Trainer's training_args.bin)."""
    return sorted(
        path for path in folder.iterdir() if path.suffix in PICKLE_SUFFIXES and path.name not in PICKLE_NOT_WEIGHTS and path.is_file()
    )


def pickle_refusal(folder: Path, pickles: list[Path]) -> str:
    """Why pickle weights are refused, how to convert them once, and the opt-in."""
    names = ", ".join(path.name for path in pickles)
    single = [path for path in pickles if path.name == "pytorch_model.bin"] or pickles
    source, target = single[0], folder / "model.safetensors"
    convert = (
        f'python -c "import torch; from safetensors.torch import save_file; '
        f"weights = torch.load('{source}', weights_only=True); "
        f"save_file({{k: v.contiguous().clone() for k, v in weights.items()}}, '{target}', metadata={{'format': 'pt'}})\""
    )
    return (
        f"{folder} holds its weights only as pickle files ({names}); polydistill does not load them, "
        "because unpickling a file can run arbitrary code. Convert them to safetensors once, in an "
        f"environment you trust:\n  {convert}\n"
        "(for a sharded checkpoint, or one that is not a plain state dict: load the model with its transformers class "
        "and call model.save_pretrained(directory, safe_serialization=True)). "
        f"Or set {PICKLE_OPT_IN_ENV}=1 to load the pickle files anyway (with torch's weights_only loader)."
    )


def no_weights_message(folder: Path, reference: str) -> str:
    """No weight file at all: what was expected, and the formats found that polydistill does not load."""
    others = [name for name in OTHER_WEIGHT_FILES if (folder / name).is_file()]
    found = f"; it has {', '.join(others)}, a format polydistill does not load" if others else ""
    return (
        f"model '{reference}' has no weight file in {folder}{found}; expected model.safetensors "
        f"(or {SAFETENSORS_INDEX} with its shards), as save_pretrained writes it. From the Hugging Face Hub, "
        "polydistill downloads safetensors weights only"
    )


def checked_model_dir(directory: Path, *, reference: str) -> Path:
    """``directory`` once :func:`check_model_dir` found nothing wrong in it."""
    check_model_dir(directory, reference=reference)
    return directory
