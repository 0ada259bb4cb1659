"""Tokenise examples for distillation and pad them into batches.

The student and the teacher may tokenise differently: a student with a trimmed vocabulary maps
text to other ids, and in cross-lingual transfer the teacher may read the English source while
the student reads the translation. Then each example carries ``teacher_input_ids`` too, and
``token_aligned`` says whether both sides are the same token sequence, the condition for
token-level objectives (hidden states, attentions) to compare them position by position.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import torch
from datasets import Dataset
from transformers import PreTrainedTokenizerBase

FEATURE_COLUMNS = ("input_ids", "attention_mask", "token_type_ids")


def same_tokenizer(a: PreTrainedTokenizerBase, b: PreTrainedTokenizerBase) -> bool:
    if a is b:
        return True
    return a.backend_tokenizer.to_str() == b.backend_tokenizer.to_str() if a.is_fast and b.is_fast else False


def tokenize_for_distillation(
    dataset: Dataset,
    tokenizer: PreTrainedTokenizerBase,
    *,
    teacher_tokenizer: PreTrainedTokenizerBase | None = None,
    max_length: int = 128,
    teacher_text_column: str | None = None,
    prefix: str = "",
    teacher_prefix: str = "",
    desc: str = "Tokenising",
) -> Dataset:
    """Add the model inputs; keep only the columns the trainer uses (and ``lang``, for sampling).

    A ``translation`` column (parallel data for the embeddings task) is tokenised for the
    student too, as ``translation_input_ids``; the teacher reads only the source ``text``.
    ``prefix``/``teacher_prefix`` are put before every text (e5's ``"query: "``).
    """
    separate_teacher = (
        teacher_text_column is not None
        or prefix != teacher_prefix
        or (teacher_tokenizer is not None and not same_tokenizer(tokenizer, teacher_tokenizer))
    )
    teacher_tokenizer = teacher_tokenizer or tokenizer

    def encode(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        features = dict(tokenizer([prefix + t for t in batch["text"]], truncation=True, max_length=max_length))
        if "translation" in batch:
            translation = tokenizer([prefix + t for t in batch["translation"]], truncation=True, max_length=max_length)
            features.update({f"translation_{k}": v for k, v in translation.items() if k in FEATURE_COLUMNS})
        if separate_teacher:
            teacher_texts = batch[teacher_text_column] if teacher_text_column else batch["text"]
            teacher = teacher_tokenizer([teacher_prefix + t for t in teacher_texts], truncation=True, max_length=max_length)
            for key in FEATURE_COLUMNS:
                if key in teacher:
                    features[f"teacher_{key}"] = teacher[key]
            # a row whose teacher reads the student's own text (a source row of cross-lingual data) can align
            features["token_aligned"] = [
                teacher_text == text
                and prefix == teacher_prefix
                and tokenizer.convert_ids_to_tokens(s) == teacher_tokenizer.convert_ids_to_tokens(t)
                for teacher_text, text, s, t in zip(teacher_texts, batch["text"], features["input_ids"], teacher["input_ids"], strict=True)
            ]
        if "label" in batch:  # a row without a gold label (-1: pooled from an unlabelled source) is ignored by the loss
            features["labels"] = [label if label >= 0 else -100 for label in batch["label"]]
        return features

    keep = {"lang", "source"}  # what the training sampler reads
    settings = {
        "max_length": max_length,
        "prefix": prefix,
        "teacher_prefix": teacher_prefix,
        "teacher_text_column": teacher_text_column,
        "separate_teacher": separate_teacher,
    }
    return dataset.map(
        encode,
        batched=True,
        remove_columns=[c for c in dataset.column_names if c not in keep],
        desc=desc,
        new_fingerprint=_features_fingerprint(dataset, tokenizer, teacher_tokenizer if separate_teacher else None, settings),
    )


#: bump when ``encode`` changes what it writes, so no cached map result of the old code is reused
FEATURES_VERSION = 1


def _features_fingerprint(
    dataset: Dataset, tokenizer: PreTrainedTokenizerBase, teacher_tokenizer: PreTrainedTokenizerBase | None, settings: dict[str, Any]
) -> str:
    """The map's fingerprint from what the features depend on: the input's fingerprint, the tokenizers'
    identities and the settings. ``datasets``' default pickles the closure and with it the tokenizers
    (about 10 s per map for a 250k-piece vocabulary, paid again by every trial of a search)."""
    digest = hashlib.sha256(json.dumps([FEATURES_VERSION, dataset._fingerprint, settings], sort_keys=True).encode())
    for each in (tokenizer, teacher_tokenizer):
        if each is not None:
            digest.update(tokenizer_identity(each).encode())
    return digest.hexdigest()[:32]


def tokenizer_identity(tokenizer) -> str:
    """What decides a tokenizer's output: its full serialisation (fast tokenizers) or vocabulary,
    its special tokens and its padding and truncation sides. The backend's truncation and padding
    settings are left out: each encode or pad call sets them, so they say how it was last used."""
    identity: dict[str, Any] = {
        "special_tokens": getattr(tokenizer, "special_tokens_map", {}),
        "padding_side": getattr(tokenizer, "padding_side", None),
        "truncation_side": getattr(tokenizer, "truncation_side", None),
    }
    if getattr(tokenizer, "is_fast", False):
        backend = json.loads(tokenizer.backend_tokenizer.to_str())
        # call-time state that every encode/pad call rewrites, not part of what the tokenizer is
        backend.pop("truncation", None)
        backend.pop("padding", None)
        identity["backend"] = backend
    else:
        identity["vocabulary"] = sorted(tokenizer.get_vocab().items())
    return json.dumps(identity, sort_keys=True, default=str)


class DistillationCollator:
    """Pads student (and teacher) inputs to the longest example of the batch (dynamic padding)."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, teacher_tokenizer: PreTrainedTokenizerBase | None = None):
        self.tokenizer = tokenizer
        self.teacher_tokenizer = teacher_tokenizer or tokenizer

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = self._pad(self.tokenizer, [{k: f[k] for k in FEATURE_COLUMNS if k in f} for f in features])
        if "teacher_input_ids" in features[0]:
            teacher = self._pad(
                self.teacher_tokenizer,
                [{k: f[f"teacher_{k}"] for k in FEATURE_COLUMNS if f"teacher_{k}" in f} for f in features],
            )
            batch.update({f"teacher_{k}": v for k, v in teacher.items()})
            batch["token_aligned"] = torch.tensor([f["token_aligned"] for f in features])
        if "translation_input_ids" in features[0]:
            translation = self._pad(
                self.tokenizer,
                [{k: f[f"translation_{k}"] for k in FEATURE_COLUMNS if f"translation_{k}" in f} for f in features],
            )
            batch.update({f"translation_{k}": v for k, v in translation.items()})
        if "labels" in features[0]:
            batch["labels"] = torch.tensor([f["labels"] for f in features], dtype=torch.long)
        if "example_index" in features[0]:  # the row of the teacher-output cache
            batch["example_index"] = torch.tensor([f["example_index"] for f in features], dtype=torch.long)
        return batch

    @staticmethod
    def _pad(tokenizer: PreTrainedTokenizerBase, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        return dict(tokenizer.pad(features, padding=True, return_tensors="pt"))
