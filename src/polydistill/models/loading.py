"""Loading a model directory in the head a task needs, and saving one the ecosystem loads.

``trust_remote_code`` stays off unless the config turns it on; weights are read from safetensors
only (pickle files only with the ``POLYDISTILL_ALLOW_PICKLE=1`` opt-in, see
:mod:`polydistill.models.checks`) and written as safetensors only. A directory that cannot be
loaded is a :class:`~polydistill.errors.ModelFileError` naming it, never a transformers traceback.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from polydistill.errors import ModelFileError
from polydistill.models.checks import check_model_dir, check_tokenizer_files, pickle_allowed, require_tokenizer_vocabulary


def load_tokenizer(model_dir: Path, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    require_tokenizer_vocabulary(Path(model_dir))
    try:
        return AutoTokenizer.from_pretrained(model_dir, trust_remote_code=trust_remote_code)
    except Exception as error:  # the tokenizers library raises bare Exception for a corrupt tokenizer.json
        check_tokenizer_files(Path(model_dir))  # names the file when one is an LFS pointer or invalid JSON
        raise ModelFileError(f"could not load the tokenizer of {model_dir}: {type(error).__name__}: {error}") from error


def load_model_config(model_dir: Path, trust_remote_code: bool = False):
    """The ``transformers`` config of ``model_dir``; one it cannot read (an unknown ``model_type``,
    a missing field) is an error naming the file, not a transformers traceback."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(model_dir, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError) as error:
        import transformers

        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ModelFileError(
            f"{Path(model_dir) / 'config.json'}: transformers {transformers.__version__} cannot read this model config ({first_line})"
        ) from None


def weights_kwargs() -> dict[str, Any]:
    """``from_pretrained`` arguments that keep transformers on safetensors (it would otherwise
    fall back to unpickling ``pytorch_model.bin``), unless the user opted in to pickle."""
    return {} if pickle_allowed() else {"use_safetensors": True}


@contextmanager
def loading_weights(model_dir: Path) -> Iterator[None]:
    """Check ``model_dir`` first, then turn the loader's own errors into one naming the directory."""
    from safetensors import SafetensorError

    check_model_dir(Path(model_dir), reference=str(model_dir))
    try:
        yield
    except pickle.UnpicklingError:
        raise ModelFileError(
            f"could not load the pickle weights in {model_dir}: they hold more than plain tensors, which torch's weights_only "
            "loader refuses, and polydistill never unpickles anything else; convert them to safetensors where you trust them"
        ) from None
    except RuntimeError as error:  # transformers' load report: weights whose shapes config.json does not describe
        raise ModelFileError(
            f"could not load the model in {model_dir}: its weights do not fit its config.json ({str(error).splitlines()[0]}); "
            "the files come from different models or the config was edited: restore a matching config.json"
        ) from error
    except (OSError, ValueError, SafetensorError) as error:
        raise ModelFileError(f"could not load the model in {model_dir}: {type(error).__name__}: {error}") from error


def classifier_label_names(model_config) -> list[str] | None:
    """A classifier's label names, unless they are transformers' placeholders (LABEL_0, ...)."""
    names = [model_config.id2label[i] for i in sorted(model_config.id2label)]
    if all(name == f"LABEL_{i}" for i, name in enumerate(names)):
        return None
    return names


def load_classifier(
    model_dir: Path, *, label_names: list[str] | None = None, eager_attention: bool = False, trust_remote_code: bool = False
):
    """A sequence classifier, and whether its classification head had to be initialised fresh."""
    from transformers import AutoModelForSequenceClassification

    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    if label_names is not None:
        kwargs |= {
            "num_labels": len(label_names),
            "id2label": dict(enumerate(label_names)),
            "label2id": {name: i for i, name in enumerate(label_names)},
        }
    if eager_attention:
        kwargs["attn_implementation"] = "eager"
    with loading_weights(model_dir):
        model, info = AutoModelForSequenceClassification.from_pretrained(model_dir, output_loading_info=True, **kwargs, **weights_kwargs())
    fresh_head = bool(info["missing_keys"]) or bool(info.get("mismatched_keys"))
    return model, fresh_head


def load_encoder(model_dir: Path, *, eager_attention: bool = False, trust_remote_code: bool = False):
    """The transformer of a sentence-embedding model (a sentence-transformers directory or any encoder)."""
    from transformers import AutoModel

    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    if eager_attention:
        kwargs["attn_implementation"] = "eager"
    with loading_weights(model_dir):
        return AutoModel.from_pretrained(model_dir, **kwargs, **weights_kwargs())


def save_model_dir(model, tokenizer, directory: Path) -> None:
    """A standard Hugging Face directory: safetensors weights, config, tokenizer; no pickles."""
    model.save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
