"""Loading a model directory in the head a task needs, and saving one the ecosystem loads.

``trust_remote_code`` stays off unless the config turns it on; weights are written as
safetensors only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def load_tokenizer(model_dir: Path, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir, trust_remote_code=trust_remote_code)


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
    model, info = AutoModelForSequenceClassification.from_pretrained(model_dir, output_loading_info=True, **kwargs)
    fresh_head = bool(info["missing_keys"]) or bool(info.get("mismatched_keys"))
    return model, fresh_head


def load_encoder(model_dir: Path, *, eager_attention: bool = False, trust_remote_code: bool = False):
    """The transformer of a sentence-embedding model (a sentence-transformers directory or any encoder)."""
    from transformers import AutoModel

    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    if eager_attention:
        kwargs["attn_implementation"] = "eager"
    return AutoModel.from_pretrained(model_dir, **kwargs)


def save_model_dir(model, tokenizer, directory: Path) -> None:
    """A standard Hugging Face directory: safetensors weights, config, tokenizer; no pickles."""
    model.save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
