"""What a file that should hold text (or weights) really holds, diagnosed the same way everywhere.

Data readers, the config loader and the model checks all meet the same mistakes: a file saved in
the encoding of a Windows spreadsheet or as UTF-16, and a Git LFS pointer where a clone without
``git lfs`` left a 130-byte stand-in for the real file. This module says which it is and how to fix
it; each caller raises its own error (DataError, ConfigError, ModelFileError) with the words.
"""

from __future__ import annotations

import codecs
import shlex
from pathlib import Path

#: how a Git LFS pointer file begins (https://github.com/git-lfs/git-lfs/blob/main/docs/spec.md)
LFS_POINTER_PREFIX = b"version https://git-lfs.github.com/spec/v1"
#: LFS pointers are about 130 bytes; the spec caps them at 1024
LFS_POINTER_MAX_BYTES = 1024
#: byte-order marks of encodings other than UTF-8, longest first (UTF-32LE starts like UTF-16LE)
FOREIGN_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)


def lfs_pointer_size(path: Path) -> int | None:
    """The size of the file a Git LFS pointer stands for (0 when it names none), or None when
    ``path`` is not an LFS pointer. Reads at most 1 KiB."""
    if path.stat().st_size > LFS_POINTER_MAX_BYTES:
        return None
    content = path.read_bytes()
    if not content.startswith(LFS_POINTER_PREFIX):
        return None
    for line in content.decode("utf-8", errors="replace").splitlines():
        key, _, value = line.partition(" ")
        if key == "size" and value.strip().isdigit():
            return int(value)
    return 0


def likely_encoding(data: bytes) -> tuple[str, str] | None:
    """(description, iconv name) of the encoding ``data`` probably has; None for binary data.

    A byte-order mark settles it; NUL bytes at every other position are UTF-16 without one;
    otherwise the usual culprit is a spreadsheet's Windows-1252 (a superset of Latin-1 in
    print), and Latin-1 when a byte is undefined in Windows-1252.
    """
    for bom, name in FOREIGN_BOMS:
        if data.startswith(bom):
            return f"{name} (it starts with a {name} byte-order mark)", name
    sample = data[:4096]
    if b"\x00" in sample:
        odd, even = sample[1::2].count(0), sample[0::2].count(0)
        if odd > len(sample) // 4 and even == 0:
            return "UTF-16 little-endian without a byte-order mark", "UTF-16LE"
        if even > len(sample) // 4 and odd == 0:
            return "UTF-16 big-endian without a byte-order mark", "UTF-16BE"
        return None
    try:
        data.decode("cp1252")
    except UnicodeDecodeError:
        return "Latin-1 (ISO-8859-1)", "ISO-8859-1"
    return "Windows-1252 (cp1252, what spreadsheet programs on Windows save)", "CP1252"


def conversion_hint(path: Path, data: bytes) -> str:
    """What a file that is not UTF-8 probably is, and the command that converts it (a sentence)."""
    encoding = likely_encoding(data)
    if encoding is None:
        return "The file holds NUL bytes: binary data, not text"
    label, iconv_name = encoding
    converted = path.with_name(f"{path.stem}.utf8{path.suffix}")
    return (
        f"It looks like {label}; convert it with: iconv -f {iconv_name} -t UTF-8 {shlex.quote(str(path))} > {shlex.quote(str(converted))}"
    )
