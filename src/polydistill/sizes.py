"""Sizes on disk: measuring a directory, and writing a byte count for people to read."""

from __future__ import annotations

from pathlib import Path


def directory_size(directory: Path) -> int:
    """Bytes of all files under ``directory`` (following links, as a model snapshot needs)."""
    return sum(path.stat().st_size for path in Path(directory).rglob("*") if path.is_file())


def format_bytes(value: float | None) -> str:
    """``"512 B"``, ``"1.5 KiB"``, ``"2.0 MiB"``, ``"3.1 GiB"`` (binary units); ``"–"`` for None."""
    if value is None:
        return "–"
    for limit, suffix in ((1024**3, "GiB"), (1024**2, "MiB"), (1024, "KiB")):
        if abs(value) >= limit:
            return f"{value / limit:.1f} {suffix}"
    return f"{value:.0f} B"
