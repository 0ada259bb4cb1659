"""Copy a model directory out of the cache, as a directory of the user's own."""

from __future__ import annotations

import shutil
from pathlib import Path

from polydistill.errors import PolydistillError
from polydistill.models.offline.cache import MANIFEST_NAME


def save_model_directory(source: Path, destination: Path, *, force: bool = False) -> Path:
    """Copy the standard model directory ``source`` (resolve a reference with
    :func:`polydistill.models.zoo.resolve_model_path`) to ``destination``, which then loads with
    AutoModel, AutoTokenizer and SentenceTransformer.

    A non-empty ``destination`` is refused unless ``force``; with ``force``, files of the same
    name are overwritten and other files are left alone. The cache manifest is not copied: it
    describes the cache entry, not the model. Files get the user's default permissions rather
    than the private cache's.
    """
    destination = Path(destination).expanduser()
    if destination.exists() and not destination.is_dir():
        raise PolydistillError(f"'{destination}' exists and is not a directory")
    if destination.is_dir() and any(destination.iterdir()) and not force:
        raise PolydistillError(
            f"'{destination}' is not empty; choose an empty directory or pass --force to overwrite files of the same name"
        )
    source = Path(source).resolve()
    if destination.resolve() == source:
        raise PolydistillError(f"'{destination}' is the model's own directory")
    for path in sorted(source.rglob("*")):
        if not path.is_file() or path.name == MANIFEST_NAME:
            continue
        target = destination / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    return destination
