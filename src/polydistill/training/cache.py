"""Teacher-output cache: run the frozen teacher once over the training data and keep its outputs on disk.

Why: the teacher is the expensive half of every distillation step, and with a fixed training set
its outputs never change. Computing them once (batched, without gradients) and reading them back
for every epoch, every run and every hyperparameter trial with the same teacher and data removes
that cost. A run that changes its inputs on the fly (data augmentation), or has no disk to spare,
turns the cache off and runs the teacher online as before.

What is stored, per training example, in ``<root>/<inputs>-<fields>/`` (numpy ``.npy`` files, read
back memory-mapped so a cache larger than RAM works; ``<inputs>`` names the teacher and its inputs,
``<fields>`` the stored outputs):

==========================  ===========================  ======================================
field                       file                         layout
==========================  ===========================  ======================================
``logits``                  ``logits.npy``               (N, classes) float32, exact
``embeddings``              ``embeddings.npy``           (N, width) float16, mean-pooled last state
``hidden_states:<i>``       ``hidden_states.<i>.npy``    (tokens, width) float16, 0 = embeddings
``qkv:<layer>:<role>``      ``qkv.<layer>.<role>.npy``   (tokens, width) float16, role query/key/value
``attentions:<layer>``      ``attentions.<layer>.npy``   (sum heads*len^2,) float16
==========================  ===========================  ======================================

Token-level fields are ragged: only each example's real tokens are kept, one after another, and
``token_offsets.npy`` (N + 1,) says where each example starts. ``row_hashes.npy`` keeps a 64-bit
hash of each example's teacher input ids, so a batch whose rows are not the cached ones is
refused instead of silently trained on wrong targets. ``complete.json``, written last, lists every
file with its shape, dtype and byte size; a directory without it, or whose files differ from it,
is an interrupted write and is deleted and rebuilt, never read.

Sharing between runs that need different fields (hyperparameter trials with and without a
hidden-state objective, say): a cache of the same inputs that holds every field asked for is
read instead of building another, and a cache that has to be built stores the fields of the other
caches of the same inputs too (the teacher's forward pass gives them all at once), then replaces
them; so after one build for the union, every later run of those inputs reuses it.

Precision: float16 keeps 11 significant bits, so a stored value differs from the teacher's by at
most 2**-11 (about 4.9e-4) of its magnitude (and by at most 2**-25 absolutely below 6.1e-5);
values beyond float16's range (65504) are refused at build time. Logits are stored in float32.

Atomicity (:mod:`polydistill.atomic`): a build writes into a hidden ``.<fingerprint>.partial-*``
directory beside the final one, writes ``complete.json`` last and renames the directory into place
(``os.replace``). An exclusive lock per set of inputs lets one process build while the others (e.g.
the other ranks of a multi-process run) wait and then reuse the result; a partial directory found
under the lock was left by a killed build and is removed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from polydistill.atomic import (
    atomic_directory,
    directory_lock,
    read_manifest,
    write_manifest,
)
from polydistill.console import console
from polydistill.errors import PolydistillError
from polydistill.models.pooling import last_hidden_state, mean_pool, needs_hidden_states_to_pool
from polydistill.objectives.base import Outputs
from polydistill.sizes import format_bytes
from polydistill.training.features import FEATURE_COLUMNS, tokenizer_identity

#: bump when the layout of a cache directory changes: old caches then get new fingerprints
CACHE_FORMAT_VERSION = 2
MANIFEST_FILE = "complete.json"
OFFSETS_FILE = "token_offsets.npy"
ROW_HASHES_FILE = "row_hashes.npy"
ATTENTION_OFFSETS_FILE = "attention_offsets.npy"
ROLES = ("query", "key", "value")
#: fields stored per token (flat, with token offsets) and per example
TOKEN_FIELDS = ("hidden_states", "qkv")
EXAMPLE_FIELDS = ("logits", "embeddings")


class TeacherCacheError(PolydistillError):
    """A teacher cache that cannot be built or does not belong to the batch it is asked about."""


def default_cache_root() -> Path:
    """Where caches live unless a run names a directory: ``teacher-outputs`` in polydistill's
    cache (``$POLYDISTILL_CACHE``, else ``$XDG_CACHE_HOME/polydistill``, else ``~/.cache/polydistill``).
    One place for all runs, so that runs and hyperparameter trials with the same teacher and
    data share one cache."""
    from polydistill.models.offline import cache_root

    return cache_root() / "teacher-outputs"


# --------------------------------------------------------------------------- fields


@dataclass(frozen=True, order=True)
class Field:
    """One stored output: ``kind`` (logits, embeddings, hidden_states, qkv, attentions),
    ``layer`` (hidden-state index or 0-based layer; None for logits and embeddings), ``role`` (qkv)."""

    kind: str
    layer: int | None = None
    role: str | None = None

    @classmethod
    def parse(cls, name: str) -> Field:
        parts = name.split(":")
        kind = parts[0]
        try:
            if kind in EXAMPLE_FIELDS and len(parts) == 1:
                return cls(kind)
            if kind in ("hidden_states", "attentions") and len(parts) == 2 and int(parts[1]) >= 0:
                return cls(kind, int(parts[1]))
            if kind == "qkv" and len(parts) == 3 and int(parts[1]) >= 0 and parts[2] in ROLES:
                return cls(kind, int(parts[1]), parts[2])
        except ValueError:
            pass
        raise ValueError(
            f"unknown teacher-cache field {name!r}: expected logits, embeddings, hidden_states:<index>, "
            "attentions:<layer> or qkv:<layer>:<query|key|value> with non-negative indices"
        )

    @property
    def name(self) -> str:
        return ":".join(str(part) for part in (self.kind, self.layer, self.role) if part is not None)

    @property
    def file(self) -> str:
        return ".".join(str(part) for part in (self.kind, self.layer, self.role) if part is not None) + ".npy"

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.float32 if self.kind == "logits" else np.float16)


def normalise_fields(fields: Iterable[str]) -> list[str]:
    """The fields in a canonical order without repeats (the order never changes a fingerprint)."""
    parsed = sorted({Field.parse(name) for name in fields})
    if not parsed:
        raise ValueError("a teacher cache needs at least one field")
    return [field.name for field in parsed]


def cache_fields(objectives, *, teacher_layers: int, logits: bool = True, embeddings: bool = False) -> list[str]:
    """The fields a set of objectives reads from the teacher (an ``ObjectiveSet`` or its modules):
    ``logits`` unless told otherwise (classifier teachers; they are few), ``embeddings`` when asked,
    and what each objective names (:meth:`Objective.teacher_fields`: ``embeddings``, the mapped
    layers of token-level objectives; negative indices resolved against ``teacher_layers``, the
    teacher's ``num_hidden_layers``).
    """
    modules = objectives.objectives.values() if hasattr(objectives, "objectives") else objectives
    fields = (["logits"] if logits else []) + (["embeddings"] if embeddings else [])
    for objective in modules:
        fields += objective.teacher_fields(teacher_layers)
    return normalise_fields(fields)


# --------------------------------------------------------------------------- fingerprint


def teacher_input_prefix(columns: Iterable[str]) -> str:
    """``teacher_`` when the teacher has inputs of its own (another tokenizer or text), else ``""``."""
    return "teacher_" if "teacher_input_ids" in columns else ""


def cache_fingerprint(*, teacher_sha256: str, tokenizer, features, max_length: int, fields: Sequence[str]) -> str:
    """The name of a cache, ``<inputs>-<fields>``: a sha256 of the teacher's weights, its tokenizer,
    the exact teacher inputs of every example in order (token ids, attention mask, token types:
    these capture the data, the preprocessing and the truncation), ``max_length`` and the cache
    format; then a shorter digest of the stored fields (:func:`fields_key`).

    Anything the teacher's outputs depend on changes the first part; hyperparameters that only the
    loss or the student sees (temperature, weights, learning rate, epochs) do not, so trials share
    a cache, and caches of the same inputs with other fields are found by it.
    """
    digest = hashlib.sha256()

    def part(label: str, data: bytes) -> None:
        digest.update(label.encode() + b"\0" + len(data).to_bytes(8, "little") + data)

    part("format", str(CACHE_FORMAT_VERSION).encode())
    part("teacher_sha256", teacher_sha256.encode())
    part("tokenizer", tokenizer_identity(tokenizer).encode())
    part("max_length", str(int(max_length)).encode())
    part("examples", str(len(features)).encode())
    prefix = teacher_input_prefix(features.column_names)
    for key in FEATURE_COLUMNS:
        column = prefix + key
        if column not in features.column_names:
            continue
        lengths, values = hashlib.sha256(), hashlib.sha256()
        for row_values, row_lengths in _iter_list_column(features, column):
            lengths.update(row_lengths.astype("<i8").tobytes())
            values.update(row_values.astype("<i8").tobytes())
        part(column, lengths.digest() + values.digest())
    return f"{digest.hexdigest()}-{fields_key(fields)}"


def fields_key(fields: Iterable[str]) -> str:
    """A 16-hex-digit digest of a set of fields, the second part of a cache's name."""
    return hashlib.sha256(json.dumps(normalise_fields(fields)).encode()).hexdigest()[:16]


def inputs_part(fingerprint: str) -> str:
    """The part of a cache's name that names the teacher and its inputs (before the fields)."""
    return fingerprint.rpartition("-")[0] or fingerprint


def _iter_list_column(features, column: str, batch_size: int = 65536) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(flattened values, per-row lengths) of a list column, in the dataset's logical row order,
    read through Arrow so no Python list is made per row."""
    import pyarrow.compute as pc

    for table in features.select_columns([column]).with_format("arrow").iter(batch_size=batch_size):
        array = table.column(column).combine_chunks()
        yield (
            np.asarray(array.flatten().to_numpy(zero_copy_only=False)),
            np.asarray(pc.list_value_length(array).to_numpy(zero_copy_only=False), dtype=np.int64),
        )


def _row_lengths(features, prefix: str) -> np.ndarray:
    """Real (attended) tokens of each example's teacher input."""
    mask_column = prefix + "attention_mask"
    column = mask_column if mask_column in features.column_names else prefix + "input_ids"
    found = []
    for values, lengths in _iter_list_column(features, column):
        if column == mask_column:
            ends = np.concatenate([[0], np.cumsum(values.astype(np.int64))])
            offsets = np.concatenate([[0], np.cumsum(lengths)])
            found.append(ends[offsets[1:]] - ends[offsets[:-1]])
        else:
            found.append(lengths)
    return np.concatenate(found) if found else np.zeros(0, dtype=np.int64)


_HASH_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)


def row_hashes(input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    """A 64-bit polynomial hash of each row's real token ids, independent of the padding side."""
    mask = attention_mask.astype(bool)
    rank = np.cumsum(mask, axis=1) - 1
    rank[~mask] = 0
    powers = np.cumprod(np.full(max(mask.shape[1], 1), _HASH_MULTIPLIER, dtype=np.uint64), dtype=np.uint64)
    terms = (input_ids.astype(np.int64).astype(np.uint64) + np.uint64(1)) * powers[rank]
    terms[~mask] = 0
    return terms.sum(axis=1, dtype=np.uint64) ^ (mask.sum(axis=1).astype(np.uint64) * np.uint64(0xBF58476D1CE4E5B9))


# --------------------------------------------------------------------------- sizes


def estimate_cache_bytes(lengths: np.ndarray, widths: Mapping[str, int]) -> int:
    """Bytes of a cache for examples of ``lengths`` real tokens; ``widths`` gives each field's
    width (classes for logits, hidden width, and the head count for ``attentions:<layer>``)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    examples, tokens = len(lengths), int(lengths.sum())
    header = 128  # a .npy header
    total = (examples + 1) * 8 + examples * 8 + 2 * header  # token offsets, row hashes
    attention_fields = [name for name in widths if Field.parse(name).kind == "attentions"]
    if attention_fields:
        total += (examples + 1) * 8 + header
    for name, width in widths.items():
        field = Field.parse(name)
        if field.kind in EXAMPLE_FIELDS:
            count = examples * width
        elif field.kind in TOKEN_FIELDS:
            count = tokens * width
        else:
            count = int((lengths**2).sum()) * width
        total += count * field.dtype.itemsize + header
    return total


# --------------------------------------------------------------------------- reading


class CachedLayers:
    """Stands in for a teacher's ``hidden_states`` / ``attentions`` tuple: indexable by layer
    (negative indices count from the end) and holding only the cached layers."""

    def __init__(self, count: int, tensors: dict[int, torch.Tensor], what: str):
        self.count, self.tensors, self.what = count, tensors, what

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> torch.Tensor:
        if not -self.count <= index < self.count:
            raise IndexError(f"teacher {self.what} {index} does not exist (the teacher has {self.count})")
        layer = index % self.count
        if layer not in self.tensors:
            raise KeyError(
                f"teacher {self.what} {layer} is not in the teacher cache (cached: {sorted(self.tensors)}); "
                "build the cache with the fields of cache_fields(objectives, ...)"
            )
        return self.tensors[layer]


class TeacherCache:
    """A teacher's outputs for every example of a tokenised dataset, memory-mapped from disk.

    Build or reuse one with :meth:`load_or_build`; read a batch's outputs with :meth:`batch`
    (arrays) or :meth:`outputs` (an :class:`~polydistill.objectives.Outputs` for the objectives).
    ``forward_batches`` counts the teacher forward passes this object's creation ran: 0 when an
    existing cache was reused.
    """

    def __init__(
        self,
        directory: Path,
        manifest: dict[str, Any],
        arrays: dict[str, np.ndarray],
        forward_batches: int = 0,
        fields: Sequence[str] | None = None,
    ):
        self.directory = directory
        self.manifest = manifest
        self.fingerprint: str = manifest["fingerprint"]
        #: the fields this cache serves: those asked for when it was opened (the directory may hold more)
        self.fields: list[str] = normalise_fields(fields) if fields is not None else manifest["fields"]
        self.teacher_layers: int = manifest["teacher_layers"]
        self.forward_batches = forward_batches
        self._arrays = arrays
        self._offsets = arrays[OFFSETS_FILE]
        self._lengths = np.diff(self._offsets)
        self._row_hashes = arrays[ROW_HASHES_FILE]
        self._fields = [Field.parse(name) for name in self.fields]

    def __len__(self) -> int:
        return len(self._lengths)

    def __repr__(self) -> str:
        return f"TeacherCache({self.directory}, examples={len(self)}, fields={self.fields})"

    @property
    def lengths(self) -> np.ndarray:
        """Real tokens of each example's teacher input."""
        return self._lengths

    # ----------------------------------------------------------------- opening

    @classmethod
    def open(cls, directory: str | Path, *, fingerprint: str | None = None, fields: Sequence[str] | None = None) -> TeacherCache:
        """Map a complete cache directory, serving ``fields`` (default: all it holds); raise
        :class:`TeacherCacheError` for anything else."""
        directory = Path(directory)
        manifest, problem = _read_manifest(directory, fingerprint, fields)
        if problem:
            raise TeacherCacheError(f"teacher cache {directory}: {problem}")
        arrays = {name: np.load(directory / name, mmap_mode="r", allow_pickle=False) for name in manifest["files"]}
        return cls(directory, manifest, arrays, fields=fields)

    @classmethod
    def load_or_build(
        cls,
        root: str | Path,
        *,
        fingerprint: str,
        teacher: torch.nn.Module,
        features,
        collator: Callable[[list[dict[str, Any]]], dict[str, torch.Tensor]],
        fields: Sequence[str],
        batch_size: int = 64,
        device: str | torch.device | None = None,
    ) -> TeacherCache:
        """Reuse ``root/<fingerprint>`` when it is complete, or another cache of the same inputs that
        holds every field asked for; else run ``teacher`` over ``features`` (in row order,
        ``batch_size`` rows per forward pass, padded by ``collator``) and store ``fields``, with the
        fields of the other caches of these inputs, which the new one then replaces. The
        ``embeddings`` field is the mean-pooled ``last_hidden_state`` of the same forward pass (the
        trainer's pooling). ``device`` moves the teacher there (default: where it is).
        """
        root = Path(root)
        fields = normalise_fields(fields)
        inputs = inputs_part(fingerprint)
        final = root / fingerprint
        with directory_lock(root / inputs):  # one builder per set of inputs, whichever fields it stores
            if final.exists():
                _, problem = _read_manifest(final, fingerprint, fields)
                if problem is None:
                    console.print(f"[bold]Teacher cache[/] reused: {final}")
                    return cls.open(final, fingerprint=fingerprint, fields=fields)
                console.print(f"[yellow]Teacher cache[/] {final} is incomplete ({problem}): rebuilding it")
            siblings = _complete_siblings(root, inputs, exclude=final)
            holding = [(directory, held) for directory, held in siblings if set(fields) <= set(held)]
            if holding:
                directory, held = min(holding, key=lambda sibling: len(sibling[1]))
                console.print(
                    f"[bold]Teacher cache[/] reused: {directory} (it holds {len(held)} fields, the {len(fields)} asked among them)"
                )
                return cls.open(directory, fields=fields)
            stored = normalise_fields([*fields, *(name for _, held in siblings for name in held)])
            if stored != fields:
                final = root / f"{inputs}-{fields_key(stored)}"
                console.print(
                    f"[bold]Teacher cache[/] storing {len(stored) - len(fields)} more fields than asked, those of "
                    f"{len(siblings)} other cache(s) of these inputs, which it replaces"
                )
            with atomic_directory(final, manifest_name=MANIFEST_FILE) as partial:
                forward_batches = _CacheWriter(
                    partial,
                    fingerprint=final.name,
                    teacher=teacher,
                    features=features,
                    collator=collator,
                    fields=stored,
                    batch_size=batch_size,
                    device=device,
                ).write()
            cache = cls.open(final, fingerprint=final.name, fields=fields)
            for directory, _ in siblings:  # every field they hold is in the new cache; open readers keep their mappings
                if directory != final:
                    shutil.rmtree(directory, ignore_errors=True)
        console.print(f"[bold green]Teacher cache[/] written: {final}")
        cache.forward_batches = forward_batches
        return cache

    # ----------------------------------------------------------------- reading

    def batch(
        self,
        indices: Sequence[int] | np.ndarray,
        *,
        pad_to: int | None = None,
        attention_mask: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """The cached outputs of examples ``indices`` as a padded batch (CPU tensors, float32).

        Token-level values are placed at the positions of ``attention_mask`` (the teacher's mask
        of the batch, any padding side) or, without it, right-padded with zeros to ``pad_to``
        (default: the longest example). Keys: ``logits`` (B, C), ``embeddings`` (B, D),
        ``hidden_states:<i>`` and ``qkv:<layer>:<role>`` (B, T, W), ``attentions:<layer>``
        (B, H, T, T) and ``attention_mask`` (B, T). With ``input_ids`` (the teacher's), every row
        is checked to be the example the cache holds at its index.
        """
        index = np.asarray(indices, dtype=np.int64).reshape(-1)
        if index.size and (index.min() < 0 or index.max() >= len(self)):
            raise TeacherCacheError(f"example_index out of range: the teacher cache holds {len(self)} examples")
        lengths = self._lengths[index]
        if attention_mask is not None:
            mask = attention_mask.detach().cpu().numpy().astype(bool)
            if mask.shape[0] != len(index) or (mask.sum(axis=1) != lengths).any():
                raise TeacherCacheError(
                    "this batch's teacher token counts differ from the cached examples at its example_index: "
                    "the cache belongs to other data"
                )
        else:
            longest = int(lengths.max()) if lengths.size else 0
            width = longest if pad_to is None else int(pad_to)
            if width < longest:
                raise ValueError(f"pad_to={pad_to} is shorter than the longest example in the batch ({longest})")
            mask = np.arange(width)[None, :] < lengths[:, None]
        if input_ids is not None:
            found = row_hashes(input_ids.detach().cpu().numpy(), mask)
            wrong = np.flatnonzero(found != self._row_hashes[index])
            if wrong.size:
                raise TeacherCacheError(
                    f"rows {wrong.tolist()} of this batch are not the examples the teacher cache holds at "
                    f"example_index {index[wrong].tolist()}: the cache belongs to other data, or example_index "
                    "was added before the dataset was filtered or reordered"
                )

        out: dict[str, torch.Tensor] = {"attention_mask": torch.from_numpy(mask.astype(np.int64))}
        token_rows = _token_rows(self._offsets, index, lengths)
        for field in self._fields:
            stored = self._arrays[field.file]
            if field.kind in EXAMPLE_FIELDS:
                values = np.asarray(stored[index], dtype=np.float32)
            elif field.kind in TOKEN_FIELDS:
                values = np.zeros((*mask.shape, stored.shape[1]), dtype=np.float32)
                values[mask] = stored[token_rows]
            else:
                values = self._attention_batch(stored, index, mask)
            out[field.name] = torch.from_numpy(values)
        return out

    def _attention_batch(self, stored: np.ndarray, index: np.ndarray, mask: np.ndarray) -> np.ndarray:
        heads = self.manifest["attention_heads"]
        offsets = self._arrays[ATTENTION_OFFSETS_FILE]
        values = np.zeros((len(index), heads, mask.shape[1], mask.shape[1]), dtype=np.float32)
        for row, example in enumerate(index):
            positions = np.flatnonzero(mask[row])
            length = len(positions)
            block = stored[offsets[example] : offsets[example + 1]].reshape(heads, length, length)
            values[row][:, positions[:, None], positions[None, :]] = block
        return values

    def outputs(self, inputs: Mapping[str, torch.Tensor]) -> Outputs:
        """The teacher's :class:`Outputs` for a collated batch carrying ``example_index``, on the
        batch's device; the rows are checked against the cache (see :meth:`batch`)."""
        prefix = teacher_input_prefix(inputs)
        input_ids = inputs[prefix + "input_ids"]
        attention_mask = inputs.get(prefix + "attention_mask")
        values = self.batch(
            inputs["example_index"].tolist(),
            pad_to=input_ids.shape[1],
            attention_mask=attention_mask,
            input_ids=input_ids,
        )
        device = input_ids.device
        values = {name: tensor.to(device) for name, tensor in values.items()}
        hidden: dict[int, torch.Tensor] = {}
        attentions: dict[int, torch.Tensor] = {}
        qkv: dict[int, dict[str, torch.Tensor]] = {}
        for field in self._fields:
            if field.layer is None:  # logits and embeddings, read by name below
                continue
            if field.kind == "hidden_states":
                hidden[field.layer] = values[field.name]
            elif field.kind == "attentions":
                attentions[field.layer] = values[field.name]
            elif field.kind == "qkv":
                assert field.role is not None  # Field.parse gives every qkv field its role
                qkv.setdefault(field.layer, {})[field.role] = values[field.name]
        extra = {"embeddings": values["embeddings"]} if "embeddings" in values and "embeddings" in _OUTPUTS_FIELDS else {}
        return Outputs(
            **extra,
            logits=values.get("logits"),
            hidden_states=CachedLayers(self.teacher_layers + 1, hidden, "hidden state") if hidden else None,
            attentions=CachedLayers(self.teacher_layers, attentions, "attention layer") if attentions else None,
            qkv=qkv,
            attention_mask=attention_mask if attention_mask is not None else values["attention_mask"],
        )


_OUTPUTS_FIELDS = {field.name for field in dataclasses.fields(Outputs)}


def _token_rows(offsets: np.ndarray, index: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Flat-array rows of the real tokens of examples ``index``, example after example."""
    total = int(lengths.sum())
    starts_in_batch = np.concatenate([[0], np.cumsum(lengths)[:-1]]) if len(lengths) else np.zeros(0, np.int64)
    return np.repeat(offsets[index] - starts_in_batch, lengths) + np.arange(total)


# --------------------------------------------------------------------------- manifest, locking


def _read_manifest(directory: Path, fingerprint: str | None, fields: Sequence[str] | None) -> tuple[dict[str, Any], str | None]:
    """The manifest of a cache directory and what is wrong with the directory (None: nothing)."""
    if not (directory / MANIFEST_FILE).is_file():
        return {}, f"no {MANIFEST_FILE}: an interrupted write"
    manifest = read_manifest(directory, MANIFEST_FILE)
    files = (manifest or {}).get("files")
    if manifest is None or not isinstance(files, dict):
        return {}, f"{MANIFEST_FILE} is unreadable"
    if manifest.get("format") != CACHE_FORMAT_VERSION:
        return manifest, f"cache format {manifest.get('format')}, expected {CACHE_FORMAT_VERSION}"
    if fingerprint is not None and manifest.get("fingerprint") != fingerprint:
        return manifest, "it was written for another fingerprint"
    if fields is not None:
        missing = [name for name in normalise_fields(fields) if name not in manifest.get("fields", [])]
        if missing:
            return manifest, f"it holds fields {manifest.get('fields')}, not {', '.join(missing)}"
    for name, entry in files.items():
        file = directory / name
        if not file.is_file():
            return manifest, f"{name} is missing"
        if file.stat().st_size != entry["bytes"]:
            return manifest, f"{name} has {file.stat().st_size} bytes, the manifest says {entry['bytes']}"
    return manifest, None


def _complete_siblings(root: Path, inputs: str, *, exclude: Path) -> list[tuple[Path, list[str]]]:
    """The complete caches of the same teacher inputs in ``root`` (other than ``exclude``) and their fields."""
    found = []
    for directory in sorted(root.glob(f"{inputs}-*")):
        if directory == exclude or not directory.is_dir():
            continue
        manifest, problem = _read_manifest(directory, directory.name, None)
        if problem is None:
            found.append((directory, list(manifest["fields"])))
    return found


# --------------------------------------------------------------------------- writing


class _CacheWriter:
    """Runs the teacher over the features batch by batch and streams its outputs into memmaps."""

    def __init__(self, directory: Path, *, fingerprint, teacher, features, collator, fields, batch_size, device):
        self.directory = directory
        self.fingerprint = fingerprint
        self.teacher = teacher
        self.features = features
        self.collator = collator
        self.fields = [Field.parse(name) for name in fields]
        self.batch_size = batch_size
        self.device = torch.device(device) if device is not None else next(teacher.parameters()).device
        self.prefix = teacher_input_prefix(features.column_names)
        self.teacher_layers = int(teacher.config.num_hidden_layers)
        for field in self.fields:
            limit = self.teacher_layers + 1 if field.kind == "hidden_states" else self.teacher_layers
            if field.layer is not None and field.layer >= limit:
                raise ValueError(f"teacher-cache field {field.name}: the teacher has {self.teacher_layers} layers")

    def write(self) -> int:
        examples = len(self.features)
        if examples == 0:
            raise TeacherCacheError("cannot cache teacher outputs for an empty dataset")
        from tqdm.auto import tqdm

        from polydistill.objectives.capture import QKVRecorder

        lengths = _row_lengths(self.features, self.prefix)
        self.offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        self.lengths = lengths
        qkv_layers = sorted({f.layer for f in self.fields if f.kind == "qkv" and f.layer is not None})
        recorder = QKVRecorder(self.teacher, qkv_layers) if qkv_layers else None
        self.teacher.eval().to(self.device)
        self.arrays: dict[str, np.memmap] = {}
        hashes = np.zeros(examples, dtype=np.uint64)
        forward_batches = 0
        try:
            with tqdm(total=examples, desc="Teacher outputs", unit="example") as progress:
                for start in range(0, examples, self.batch_size):
                    stop = min(start + self.batch_size, examples)
                    values, hashes[start:stop] = self._run_batch(start, stop, recorder)
                    forward_batches += 1
                    if not self.arrays:
                        self._allocate(values)
                    self._store(start, stop, values)
                    progress.update(stop - start)
        finally:
            if recorder is not None:
                recorder.remove()
        for array in self.arrays.values():
            array.flush()
        np.save(self.directory / OFFSETS_FILE, self.offsets)
        np.save(self.directory / ROW_HASHES_FILE, hashes)
        if self.attention_offsets is not None:
            np.save(self.directory / ATTENTION_OFFSETS_FILE, self.attention_offsets)
        files = {}
        for path in sorted(self.directory.iterdir()):
            array = np.load(path, mmap_mode="r")
            files[path.name] = {"shape": list(array.shape), "dtype": array.dtype.str, "bytes": path.stat().st_size}
            del array
            with path.open("rb") as handle:
                os.fsync(handle.fileno())
        manifest = {
            "format": CACHE_FORMAT_VERSION,
            "fingerprint": self.fingerprint,
            "examples": examples,
            "tokens": int(self.offsets[-1]),
            "fields": [field.name for field in self.fields],
            "teacher_layers": self.teacher_layers,
            "attention_heads": self.attention_heads,
            "float16_fields": [field.name for field in self.fields if field.dtype == np.float16],
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "files": files,
        }
        # written last: its presence, with matching file sizes, is what makes a cache complete
        write_manifest(self.directory, manifest, MANIFEST_FILE)
        return forward_batches

    def _run_batch(self, start: int, stop: int, recorder) -> tuple[dict[str, Any], np.ndarray]:
        chunk = self.features[start:stop]
        rows = [dict(zip(chunk, values, strict=True)) for values in zip(*chunk.values(), strict=True)]
        batch = self.collator(rows)
        inputs = {key: batch[self.prefix + key].to(self.device) for key in FEATURE_COLUMNS if self.prefix + key in batch}
        mask = inputs.get("attention_mask")
        if mask is None:
            mask = torch.ones_like(inputs["input_ids"])
        mask_bool = mask.bool()
        if (mask.sum(dim=1).cpu().numpy() != self.lengths[start:stop]).any():
            raise TeacherCacheError("the collator's teacher attention mask disagrees with the dataset's token counts")
        kinds = {field.kind for field in self.fields}
        with torch.inference_mode():
            output = self.teacher(
                **inputs,
                output_hidden_states="hidden_states" in kinds or ("embeddings" in kinds and needs_hidden_states_to_pool(self.teacher)),
                output_attentions="attentions" in kinds,
            )
            qkv = recorder.take() if recorder is not None else {}
            values: dict[str, Any] = {}
            for field in self.fields:
                if field.kind == "logits":
                    values[field.name] = output.logits.float().cpu().numpy()
                elif field.kind == "embeddings":
                    values[field.name] = _half(mean_pool(_last_hidden_state(output), mask), field)
                elif field.kind == "hidden_states":
                    values[field.name] = _half(output.hidden_states[field.layer][mask_bool], field)
                elif field.kind == "qkv":
                    values[field.name] = _half(qkv[field.layer][field.role][mask_bool], field)
                else:
                    if output.attentions is None or output.attentions[field.layer] is None:
                        raise TeacherCacheError("caching attention maps needs a teacher loaded with attn_implementation='eager'")
                    maps = output.attentions[field.layer]
                    values[field.name] = [
                        _half(maps[row][:, positions][:, :, positions].reshape(-1), field)
                        for row, positions in enumerate(m.nonzero().squeeze(-1) for m in mask_bool)
                    ]
        hashes = row_hashes(inputs["input_ids"].cpu().numpy(), mask.cpu().numpy())
        return values, hashes

    def _allocate(self, first: dict[str, Any]) -> None:
        """Size every file from the first batch's widths, say how much disk it takes, and create
        the memory-mapped files (refusing when the disk is too small)."""
        widths, self.attention_heads, self.attention_offsets = {}, None, None
        for field in self.fields:
            value = first[field.name]
            if field.kind == "attentions":
                length = int(self.lengths[0])
                widths[field.name] = self.attention_heads = value[0].size // (length * length)
            else:
                widths[field.name] = value.shape[-1]
        size = estimate_cache_bytes(self.lengths, widths)
        examples, tokens = len(self.lengths), int(self.offsets[-1])
        console.print(
            f"[bold]Teacher cache[/] {examples:,} examples, {tokens:,} tokens, fields {', '.join(widths)}: "
            f"writing about {format_bytes(size)} to {self.directory.parent}"
        )
        free = shutil.disk_usage(self.directory).free
        if size > free:
            raise TeacherCacheError(
                f"the teacher cache needs about {format_bytes(size)} but {self.directory.parent} has "
                f"{format_bytes(free)} free: free some space, cache fewer fields, or turn the cache off (online teacher)"
            )
        if self.attention_heads is not None:
            self.attention_offsets = np.concatenate([[0], np.cumsum(self.attention_heads * self.lengths**2)]).astype(np.int64)
        for field in self.fields:
            if field.kind in EXAMPLE_FIELDS:
                shape: tuple[int, ...] = (examples, widths[field.name])
            elif field.kind in TOKEN_FIELDS:
                shape = (tokens, widths[field.name])
            else:
                assert self.attention_offsets is not None  # set above: there is an attentions field
                shape = (int(self.attention_offsets[-1]),)
            self.arrays[field.file] = np.lib.format.open_memmap(self.directory / field.file, mode="w+", dtype=field.dtype, shape=shape)

    def _store(self, start: int, stop: int, values: dict[str, Any]) -> None:
        for field in self.fields:
            target, value = self.arrays[field.file], values[field.name]
            if field.kind in EXAMPLE_FIELDS:
                target[start:stop] = value
            elif field.kind in TOKEN_FIELDS:
                target[self.offsets[start] : self.offsets[stop]] = value
            else:
                assert self.attention_offsets is not None  # _allocate sets it for attentions fields
                target[self.attention_offsets[start] : self.attention_offsets[stop]] = np.concatenate(value)


def _last_hidden_state(output) -> torch.Tensor:
    last = last_hidden_state(output)
    if last is None:
        raise TeacherCacheError(
            f"the 'embeddings' field pools the teacher's last_hidden_state, which {type(output).__name__} does not "
            "have: load the embedding teacher as a base model (AutoModel), as the trainer does"
        )
    return last


def _half(tensor: torch.Tensor, field: Field) -> np.ndarray:
    """float16 on the CPU, refusing values beyond its range rather than storing infinities."""
    half = tensor.to(torch.float16)
    if not torch.isfinite(half).all():
        raise TeacherCacheError(
            f"teacher output {field.name} has values beyond float16's range (|x| > 65504) or not finite; "
            "turn the cache off (online teacher) for this teacher"
        )
    return half.cpu().numpy()
