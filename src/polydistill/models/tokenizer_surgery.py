"""Rewrite a fast tokenizer's ``tokenizer.json`` so that it keeps only some tokens, renumbered.

Vocabulary trimming (:mod:`polydistill.models.trim`) decides *which* tokens stay; this module
knows *how* a ``tokenizers`` serialisation refers to token ids, so that every reference moves
with its token: the model's vocabulary (SentencePiece Unigram pieces with their scores, or a
WordPiece vocabulary), the Unigram ``unk_id``, the added tokens, the ids baked into the
post-processor (``TemplateProcessing``, ``RobertaProcessing``, ``BertProcessing``, nested in a
``Sequence``) and the padding settings. The normaliser, pre-tokeniser and decoder hold no ids
and are kept as they are, so the trimmed tokenizer splits text exactly as before.

Why only Unigram and WordPiece: both segment with a vocabulary alone, so a sub-vocabulary gives
the old segmentation wherever the old pieces are all kept (see :func:`trimmed_state`). BPE
segments by replaying merges, and dropping a token breaks every merge built on it; it is
refused with a clear error rather than trimmed approximately.
"""

from __future__ import annotations

import copy
import json
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from polydistill.errors import PolydistillError

#: tokenizer models whose vocabulary can be cut without changing how kept tokens segment
SUPPORTED_MODELS = ("Unigram", "WordPiece")
#: the files a trimmed tokenizer directory may hold; vocabulary files of the slow tokenizers
#: (``sentencepiece.bpe.model``, ``vocab.txt``) would describe the old ids, so none is written
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja")
#: what SentencePiece writes for a space (the Metaspace pre-tokeniser's default replacement)
DEFAULT_METASPACE = "\u2581"


def tokenizer_state(tokenizer: Any) -> dict[str, Any]:
    """The fast tokenizer's backend as the JSON object that ``tokenizer.json`` holds."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise PolydistillError(
            f"{type(tokenizer).__name__} is not a fast (tokenizers-backed) tokenizer; vocabulary "
            "trimming rewrites tokenizer.json and needs one (load it with AutoTokenizer)"
        )
    return json.loads(backend.to_str())


def tokenizer_model_type(state: Mapping[str, Any]) -> str:
    """``Unigram`` or ``WordPiece``; any other model is refused with the reason."""
    model_type = state["model"].get("type")
    if model_type is None:  # very old serialisations omit the type
        model_type = "Unigram" if isinstance(state["model"].get("vocab"), list) else "WordPiece"
    if model_type not in SUPPORTED_MODELS:
        raise PolydistillError(
            f"vocabulary trimming supports SentencePiece-Unigram (XLM-R family) and WordPiece "
            f"(BERT family) tokenizers; this tokenizer's model is {model_type}, whose merges or "
            "rules would break when tokens are removed"
        )
    return model_type


def model_vocabulary(state: Mapping[str, Any]) -> list[str]:
    """The tokenizer model's own tokens, index = id (added tokens beyond it are not included)."""
    vocab = state["model"]["vocab"]
    if tokenizer_model_type(state) == "Unigram":
        return [piece for piece, _score in vocab]
    tokens = [""] * len(vocab)
    for token, token_id in vocab.items():
        if not 0 <= token_id < len(vocab) or tokens[token_id]:
            raise PolydistillError("the WordPiece vocabulary's ids are not 0..n-1 each used once; cannot trim it")
        tokens[token_id] = token
    return tokens


def all_tokens(state: Mapping[str, Any]) -> dict[int, str]:
    """Every id the tokenizer can produce and its token: the model's vocabulary plus added tokens."""
    tokens = dict(enumerate(model_vocabulary(state)))
    for added in state.get("added_tokens") or []:
        tokens[int(added["id"])] = added["content"]
    return tokens


def special_token_ids(state: Mapping[str, Any], tokenizer: Any = None) -> set[int]:
    """Ids of the added tokens marked special, plus the wrapper's named special tokens."""
    ids = {int(added["id"]) for added in state.get("added_tokens") or [] if added.get("special")}
    if tokenizer is not None:
        ids.update(int(token_id) for token_id in tokenizer.all_special_ids if token_id is not None)
    return ids


def referenced_tokens(state: Mapping[str, Any]) -> set[str]:
    """Tokens the pipeline names itself: added tokens, post-processor tokens, padding and unknown.

    Trimming must keep these, or the post-processor, padding or unknown fallback would point at
    a token that no longer exists.
    """
    tokens = {added["content"] for added in state.get("added_tokens") or []}
    for node in _walk(state.get("post_processor")):
        if isinstance(node.get("tokens"), list):
            tokens.update(str(token) for token in node["tokens"])
        for key in ("sep", "cls"):
            value = node.get(key)
            if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
                tokens.add(value[0])
    padding = state.get("padding")
    if padding and padding.get("pad_token"):
        tokens.add(padding["pad_token"])
    model = state["model"]
    if tokenizer_model_type(state) == "Unigram":
        if model.get("unk_id") is not None:
            tokens.add(model["vocab"][model["unk_id"]][0])
    elif model.get("unk_token"):
        tokens.add(model["unk_token"])
    return tokens


def metaspace_replacement(state: Mapping[str, Any]) -> str | None:
    """The character a Metaspace pre-tokeniser writes for spaces (SentencePiece's ``▁``), if any."""
    for node in _walk(state.get("pre_tokenizer")):
        if node.get("type") == "Metaspace":
            return node.get("replacement", DEFAULT_METASPACE)
    return None


def structural_token_ids(state: Mapping[str, Any]) -> set[int]:
    """Pieces that segmentation of *unseen* text relies on, whatever the corpus holds.

    - the Metaspace replacement ``▁`` alone, so a word whose ``▁word`` piece was dropped can
      still start with ``▁`` followed by smaller pieces;
    - the 256 ``<0xNN>`` pieces when the Unigram model falls back to bytes;
    - for Unigram, one piece with the lowest score. SentencePiece scores an unknown character
      as ``min(score) - 10``; keeping the minimum keeps that penalty as it was, so a text whose
      pieces are all kept cannot find a new, better path through ``<unk>`` and segments exactly
      as before (every path of the trimmed lattice then scores no higher than one of the
      original lattice).
    """
    tokens = model_vocabulary(state)
    index = {token: token_id for token_id, token in enumerate(tokens)}
    ids: set[int] = set()
    replacement = metaspace_replacement(state)
    if replacement is not None and replacement in index:
        ids.add(index[replacement])
    model = state["model"]
    if tokenizer_model_type(state) == "Unigram":
        if model.get("byte_fallback"):
            ids.update(index[piece] for piece in (f"<0x{byte:02X}>" for byte in range(256)) if piece in index)
        if model["vocab"]:
            ids.add(min((score, token_id) for token_id, (_piece, score) in enumerate(model["vocab"]))[1])
    return ids


def character_token_ids(state: Mapping[str, Any]) -> dict[str, list[int]]:
    """For every single character the model knows as a piece, the ids that spell it alone.

    Unigram: the piece ``c``. WordPiece: ``c`` (word start) and ``##c`` (inside a word), since
    a word WordPiece cannot spell to the end becomes one ``[UNK]``.
    """
    tokens = model_vocabulary(state)
    pieces: dict[str, list[int]] = {}
    if tokenizer_model_type(state) == "Unigram":
        for token_id, token in enumerate(tokens):
            if len(token) == 1:
                pieces.setdefault(token, []).append(token_id)
        return pieces
    prefix = state["model"].get("continuing_subword_prefix") or "##"
    for token_id, token in enumerate(tokens):
        if len(token) == 1:
            pieces.setdefault(token, []).append(token_id)
        elif token.startswith(prefix) and len(token) == len(prefix) + 1:
            pieces.setdefault(token[len(prefix) :], []).append(token_id)
    return pieces


def trimmed_state(state: Mapping[str, Any], new_order: Sequence[int]) -> dict[str, Any]:
    """A copy of ``state`` holding only the tokens ``new_order`` lists; new id i = ``new_order[i]``.

    ``new_order`` must list the kept ids of the model's vocabulary before any added token that
    lies beyond it, and keep every token :func:`referenced_tokens` names. Unigram pieces keep
    their scores and WordPiece its greedy longest match, so a text whose old tokens are all
    kept gets the same tokens (renumbered); for other text see :func:`structural_token_ids`.
    """
    model_type = tokenizer_model_type(state)
    vocabulary = model_vocabulary(state)
    size = len(vocabulary)
    old_to_new = {old_id: new_id for new_id, old_id in enumerate(new_order)}
    if len(old_to_new) != len(new_order):
        raise ValueError("new_order lists an id twice")
    inside = [old_id for old_id in new_order if old_id < size]
    if new_order[: len(inside)] != inside:
        raise ValueError("new_order must list the model vocabulary's ids before added tokens beyond it")
    tokens = all_tokens(state)
    unknown_ids = [old_id for old_id in new_order if old_id not in tokens]
    if unknown_ids:
        raise ValueError(f"ids {unknown_ids[:5]} are not tokens of this tokenizer")
    kept_tokens = {tokens[old_id] for old_id in new_order}
    missing = sorted(referenced_tokens(state) - kept_tokens)
    if missing:
        raise ValueError(f"the tokenizer pipeline refers to tokens that are not kept: {missing}")

    # a deep copy of everything but the vocabulary, which is rebuilt (copying it costs seconds)
    new_state = {key: copy.deepcopy(value) for key, value in state.items() if key != "model"}
    model = new_state["model"] = {key: copy.deepcopy(value) for key, value in state["model"].items() if key != "vocab"}
    if model_type == "Unigram":
        model["vocab"] = [list(state["model"]["vocab"][old_id]) for old_id in inside]
        if model.get("unk_id") is not None:
            model["unk_id"] = old_to_new[state["model"]["unk_id"]]
    else:
        model["vocab"] = {vocabulary[old_id]: new_id for new_id, old_id in enumerate(inside)}

    token_to_new = {vocabulary[old_id]: old_to_new[old_id] for old_id in inside}
    added_tokens = []
    for added in new_state.get("added_tokens") or []:
        added["id"] = old_to_new[int(added["id"])]
        token_to_new[added["content"]] = added["id"]  # added tokens win, as in tokenizers
        added_tokens.append(added)
    new_state["added_tokens"] = sorted(added_tokens, key=lambda added: added["id"])

    for node in _walk(new_state.get("post_processor")):
        if isinstance(node.get("tokens"), list) and isinstance(node.get("ids"), list):
            node["ids"] = [token_to_new[str(token)] for token in node["tokens"]]
        for key in ("sep", "cls"):
            value = node.get(key)
            if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
                node[key] = [value[0], token_to_new[value[0]]]
    padding = new_state.get("padding")
    if padding and padding.get("pad_token") is not None:
        padding["pad_id"] = token_to_new[padding["pad_token"]]
    return new_state


def build_tokenizer(original: Any, state: Mapping[str, Any]) -> Any:
    """A tokenizer of ``original``'s class whose backend is ``state``, as ``from_pretrained`` loads it.

    The new tokenizer goes through a save-and-load round trip rather than being patched in
    memory: classes such as ``XLMRobertaTokenizer`` rebuild parts of their pipeline when loaded,
    so the round trip gives exactly what a user will get from the saved directory.
    """
    with tempfile.TemporaryDirectory(prefix="polydistill-tokenizer-") as directory:
        write_tokenizer(original, state, Path(directory))
        return type(original).from_pretrained(directory)


def write_tokenizer(original: Any, state: Mapping[str, Any], directory: Path) -> None:
    """Save ``original``'s settings with ``state`` as its ``tokenizer.json``, and nothing stale."""
    directory.mkdir(parents=True, exist_ok=True)
    original.save_pretrained(str(directory))
    for path in directory.iterdir():
        if path.is_file() and path.name not in TOKENIZER_FILES:
            path.unlink()  # e.g. a sentencepiece.bpe.model or vocab.txt with the old ids
    (directory / "tokenizer.json").write_text(json.dumps(state, ensure_ascii=False), encoding="utf-8")
    config_path = directory / "tokenizer_config.json"
    if config_path.is_file():
        config = json.loads(config_path.read_text(encoding="utf-8"))
        # ids of added tokens in the config would be the old ones; tokenizer.json holds them all
        config.pop("added_tokens_decoder", None)
        config_path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    """Every JSON object inside ``node`` (``Sequence`` pipelines nest their steps)."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)
