"""Reading a run config's YAML file: its text, its document, and the line of any field in it.

A config is UTF-8 text (a byte-order mark is fine); anything else is refused with the line and
byte of the first bad byte and the encoding the file most likely has. The document is read by a
``yaml.SafeLoader`` that refuses a key given twice in one mapping (``safe_load`` keeps the last:
a second ``training:`` section would silently replace the first). :func:`line_of` finds the line
of a field for messages about it, long after the document was validated.
"""

from __future__ import annotations

import functools
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any, Protocol

import yaml

from polydistill.errors import ConfigError
from polydistill.text_files import FOREIGN_BOMS, conversion_hint


class _DuplicateKeyError(yaml.YAMLError):
    """A key that appears twice in one YAML mapping, with the lines of both."""

    def __init__(self, key: Any, first_line: int, second_line: int) -> None:
        super().__init__(f"key {key!r} appears twice")
        self.key, self.first_line, self.second_line = key, first_line, second_line


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key given twice in one mapping is refused (safe_load
    silently keeps the last: a second ``training:`` section would replace the first), and a value
    that looks like a date but is none (``2024-13-45``) is a YAML error at its line, not a crash."""

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            self._refuse_duplicate_keys(node)
        return super().construct_mapping(node, deep=deep)

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, TypeError, OverflowError) as error:
            raise yaml.constructor.ConstructorError(None, None, f"cannot read this value: {error}", node.start_mark) from error

    def _refuse_duplicate_keys(self, node: yaml.MappingNode) -> None:
        first_lines: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # '<<: *base' merges another mapping in; its keys may be overridden
                continue
            key = self.construct_object(key_node)
            if not isinstance(key, Hashable):
                continue  # the base loader refuses it, with its line
            line = key_node.start_mark.line + 1
            if key in first_lines:  # also true and 1: one key of a Python dict
                raise _DuplicateKeyError(key, first_lines[key], line)
            first_lines[key] = line


def read_config_text(path: Path) -> str:
    """The config file's text; a directory, an unreadable file or one not in UTF-8 is a ConfigError."""
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory; expected a YAML run config file")
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the config file ({error.strerror or error})") from None
    return decode_utf8(path, data)


def decode_utf8(path: Path, data: bytes) -> str:
    """UTF-8 (a byte-order mark is fine); otherwise where the first bad byte is and what the file likely is."""
    if data.startswith(tuple(bom for bom, _ in FOREIGN_BOMS)) or b"\x00" in data[:4096]:
        raise ConfigError(f"{path}: not UTF-8 text; expected UTF-8. {conversion_hint(path, data)}")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
        raise ConfigError(
            f"{path}:{line}: byte 0x{data[error.start]:02X} (byte offset {error.start}, column {column}) is not valid UTF-8; "
            f"expected UTF-8. {conversion_hint(path, data)}"
        ) from None


def parse_config_yaml(path: Path, text: str) -> Any:
    """The YAML document; a syntax error, a control character or a key given twice names its line."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except _DuplicateKeyError as error:
        lines = f"{error.first_line}" if error.first_line == error.second_line else f"{error.first_line} and :{error.second_line}"
        raise ConfigError(f"{path}:{lines}: key '{error.key}' appears twice; keep one (YAML would silently use the second)") from None
    except yaml.reader.ReaderError as error:
        line = text.count("\n", 0, error.position) + 1
        raise ConfigError(f"{path}:{line}: not valid YAML (character #x{error.character:04x} is not allowed: {error.reason})") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: not valid YAML ({getattr(error, 'problem', None) or error})") from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid YAML (nested too deeply)") from None


def line_of(source_text: str, location: list[Any]) -> int | None:
    """Line (1-based) of the deepest YAML node on ``location`` that exists in the file."""
    node = _composed(source_text)
    line = None
    for part in location:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if str(k.value) == str(part)), None)
            if match is None:
                break
            line, node = match[0].start_mark.line + 1, match[1]
        elif isinstance(node, yaml.SequenceNode) and str(part).isdigit() and int(part) < len(node.value):
            node = node.value[int(part)]
            line = node.start_mark.line + 1
        else:
            break
    return line


@functools.lru_cache(maxsize=8)
def _composed(source_text: str) -> yaml.Node | None:
    """The YAML node tree of a config's text (parsed once: every error line of a config needs it)."""
    try:
        return yaml.compose(source_text, Loader=yaml.SafeLoader)
    except (yaml.YAMLError, RecursionError):
        return None


class ConfigSource(Protocol):
    """What a message needs of a config to name a field's line: its file and text (a RunConfig)."""

    source_file: Path | None

    @property
    def source_text(self) -> str | None: ...


def config_location(config: ConfigSource, field: Sequence[str | int] | str) -> str:
    """``file:line`` of ``field`` (a dotted name or its parts) in the config's YAML, for an error message.

    The line is that of the deepest part of the field the file has (``objectives.labels`` points at
    ``objectives`` when the file leaves the objectives to the task); the file alone when the config
    has no text (built in code), "config" when it has no file either.
    """
    parts = field.split(".") if isinstance(field, str) else list(field)
    return source_location(config.source_file, config.source_text, parts)


def source_location(source_file: Path | None, source_text: str | None, path: list[Any]) -> str:
    """``file:line`` of the deepest node of ``path`` the YAML has (the file alone, or "config", when unknown)."""
    line = line_of(source_text, path) if source_text else None
    return f"{source_file}:{line}" if source_file and line else str(source_file or "config")
