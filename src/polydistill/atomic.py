"""Build a directory so that readers see all of it or none of it, and concurrent builders build once.

Model caches, teacher-output caches and saved students are directories of several files that
take long to write. A crash, a Ctrl-C or a second process (another rank of a multi-process run)
must never leave a directory that looks finished but is not. The rules, in one place:

- files are written into a hidden ``.<name>.partial-<random>`` directory beside the destination,
  on the same file system, so the final rename is atomic;
- the manifest (JSON) is written last and synced: a directory without it is unfinished;
- ``os.replace`` moves the finished directory into place. It cannot replace a non-empty
  directory, so an existing one is first moved aside to ``.<name>.discarded-<random>`` and
  deleted after; readers see the old directory or the new one, never a mix;
- a file lock ``.<name>.lock`` beside the destination lets one process build while the others
  wait, then find the result complete and reuse it; partial and discarded directories found
  under the lock were left by killed builds and are removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from polydistill.errors import PolydistillError

LOCK_TIMEOUT_S = 1800.0


@contextlib.contextmanager
def directory_lock(destination: Path, *, timeout: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold ``.<name>.lock`` beside ``destination`` (created with its parents).

    Re-entrant within a process, so a caller can check the destination under the lock and then
    build it with :func:`atomic_directory`, which takes the same lock.
    """
    from filelock import FileLock, Timeout

    destination = Path(destination)
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise PolydistillError(f"cannot create {destination.parent} ({error})") from error
    lock = FileLock(str(destination.parent / f".{destination.name}.lock"), is_singleton=True)
    try:
        lock.acquire(timeout=timeout)
    except Timeout:
        raise PolydistillError(
            f"waited {timeout:.0f} s for another process to build {destination} (lock {lock.lock_file}); "
            "remove the lock file if no build is running"
        ) from None
    try:
        yield
    finally:
        lock.release()


@contextlib.contextmanager
def atomic_directory(
    destination: Path,
    *,
    manifest: Mapping[str, Any] | None = None,
    manifest_name: str = "manifest.json",
    lock_timeout: float = LOCK_TIMEOUT_S,
) -> Iterator[Path]:
    """Yield an empty temporary directory to write into; on a clean exit it becomes ``destination``.

    ``manifest``, when given, is written as ``manifest_name`` after the caller's files. A caller
    whose manifest describes the files it wrote (sizes, hashes) writes it itself with
    :func:`write_manifest` as the last statement of the block. An exception inside the block
    removes the temporary directory and leaves ``destination`` as it was.
    """
    destination = Path(destination)
    with directory_lock(destination, timeout=lock_timeout):
        remove_stale_builds(destination)
        partial = destination.parent / f".{destination.name}.partial-{uuid.uuid4().hex}"
        partial.mkdir()
        try:
            yield partial
            if manifest is not None:
                write_manifest(partial, manifest, manifest_name)
            if destination.exists():
                discarded = destination.parent / f".{destination.name}.discarded-{uuid.uuid4().hex}"
                os.replace(destination, discarded)
                os.replace(partial, destination)
                shutil.rmtree(discarded, ignore_errors=True)
            else:
                os.replace(partial, destination)
        except BaseException:
            _discard(partial)
            raise


def remove_stale_builds(destination: Path) -> list[Path]:
    """Remove what killed builds of ``destination`` left beside it; call it under the lock."""
    stale = [
        path
        for pattern in (f".{destination.name}.partial-*", f".{destination.name}.discarded-*")
        for path in destination.parent.glob(pattern)
        if path.is_dir()
    ]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return stale


def _discard(partial: Path) -> None:
    """Remove the temporary directory of a build that failed (a killed build cannot: the next
    build of the same destination removes it under the lock)."""
    shutil.rmtree(partial, ignore_errors=True)


def atomic_write_text(path: Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file beside it and a rename.

    A reader, or a run killed halfway, sees the old file or the new one, never half of either.
    """
    path = Path(path)
    temporary = path.with_name(f".{path.name}.partial-{uuid.uuid4().hex}")
    try:
        with temporary.open("w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def write_manifest(directory: Path, manifest: Mapping[str, Any], name: str = "manifest.json") -> None:
    """Write ``manifest`` as JSON and sync it to disk: its presence is what marks completion."""
    with (Path(directory) / name).open("w", encoding="utf-8") as handle:
        handle.write(json.dumps(manifest, indent=2) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def read_manifest(directory: Path, name: str = "manifest.json") -> dict[str, Any] | None:
    """The manifest of ``directory``, or None when it is absent, unreadable or not an object."""
    try:
        manifest = json.loads((Path(directory) / name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None
