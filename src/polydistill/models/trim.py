"""Vocabulary trimming: keep only the embedding rows of the tokens a set of languages uses.

In a multilingual encoder most parameters are the embedding matrix (96.0M of
multilingual-e5-small's 117.5M). A model that serves a few languages needs the rows of the
tokens those languages produce, so :func:`trim_vocabulary` tokenises a corpus of those
languages, keeps the tokens seen at least ``min_count`` times (and the special, structural and
fallback tokens described below), and cuts the model and tokenizer down to them:

- the tokenizer keeps its normaliser and pre-tokeniser and the kept pieces (Unigram scores
  unchanged), renumbered: special tokens first in their old order, then the rest in their old
  order, so ``<s> <pad> </s> <unk>`` stay 0-3 in XLM-R (whose position ids depend on the pad id);
- the model keeps the same rows of every vocabulary-sized parameter: input embeddings, output
  embeddings and the MLM head's bias, tied weights staying tied;
- a text whose old tokens are all kept gets the same tokens, renumbered, and so the same
  outputs. This is checked on the whole corpus at trim time.

Unseen text degrades as SentencePiece and WordPiece themselves degrade: a Unigram tokenizer
re-segments a word with the pieces that remain, down to single characters, and writes
``<unk>`` only for characters with no piece; a WordPiece tokenizer splits a word greedily into
the longest pieces that remain (``##`` pieces inside the word) and writes one ``[UNK]`` for a
word it cannot spell to the end. Keeping single characters makes ``<unk>`` rare; how many is
``keep_characters``:

- ``"scripts"`` (default): every single-character piece of each writing system the corpus uses
  (all of Han and kana for Japanese, all of Cyrillic for Russian...), plus shared digits and
  punctuation. Unseen text in the chosen languages never becomes ``<unk>`` unless the original
  vocabulary had no piece for a character either. About 8.5k rows for de/fr/es/ru/ja on XLM-R;
- ``"corpus"``: only the characters the corpus contains (smallest model);
- ``"all"``: every single-character piece (13,828 on XLM-R);
- ``"none"``: no extra pieces (unseen words may fall to ``<unk>`` quickly).

The corpus comes from :func:`polydistill.data.sources.corpus_texts_by_language`; the files of a
sentence-transformers directory are carried over by
:mod:`polydistill.models.sentence_transformers_files`.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from polydistill.errors import DataError, PolydistillError
from polydistill.models import tokenizer_surgery as surgery
from polydistill.models.general_vocabulary import DEFAULT_TOKENS_PER_LANGUAGE, language_distributions, piece_scores, ranked_tokens
from polydistill.models.scripts import character_script, is_shared_character, scripts_of
from polydistill.models.sentence_transformers_files import copy_sentence_transformers_files
from polydistill.sizes import directory_size

if TYPE_CHECKING:
    import torch
    from rich.console import Console
    from transformers import PreTrainedModel, PreTrainedTokenizerFast

CharacterPolicy = Literal["scripts", "corpus", "all", "none"]
CHARACTER_POLICIES: tuple[str, ...] = ("scripts", "corpus", "all", "none")
REPORT_FILE = "trim_report.json"
ENCODE_BATCH = 1024


# ---------------------------------------------------------------------------------------------
# Report


@dataclass
class ParameterCounts:
    """Parameters in vocabulary-sized tensors (``embedding``) and in everything else."""

    embedding: int
    other: int

    @property
    def total(self) -> int:
        return self.embedding + self.other

    def to_dict(self) -> dict[str, int]:
        return {"embedding": self.embedding, "other": self.other, "total": self.total}


@dataclass
class LanguageCoverage:
    """How one language's corpus text tokenises before and after the trim.

    ``covered_tokens`` counts the original tokens that the trimmed tokenizer still produces,
    same span and same piece: a dropped piece lowers it, and so does the re-segmentation it
    causes around it. ``unchanged_texts`` counts texts whose whole token sequence is unchanged.
    """

    texts: int = 0
    tokens: int = 0
    covered_tokens: int = 0
    tokens_after: int = 0
    unknown_before: int = 0
    unknown_after: int = 0
    unchanged_texts: int = 0

    @property
    def coverage(self) -> float:
        return self.covered_tokens / self.tokens if self.tokens else 1.0

    @property
    def unchanged_text_share(self) -> float:
        return self.unchanged_texts / self.texts if self.texts else 1.0

    @property
    def length_ratio(self) -> float:
        return self.tokens_after / self.tokens if self.tokens else 1.0

    def to_dict(self) -> dict[str, float | int]:
        return {
            **asdict(self),
            "coverage": round(self.coverage, 6),
            "unchanged_text_share": round(self.unchanged_text_share, 6),
            "length_ratio": round(self.length_ratio, 6),
        }


@dataclass
class TrimReport:
    """What a trim kept and what it cost; saved as ``trim_report.json`` beside the model."""

    tokenizer_model: str
    vocab_before: int
    vocab_after: int
    parameters_before: ParameterCounts
    parameters_after: ParameterCounts
    #: why each kept token was kept (each counted once, in this order of precedence)
    kept: dict[str, int]
    min_count: int
    max_vocab: int | float | None
    keep_characters: str
    coverage: dict[str, LanguageCoverage]
    #: coverage of held-out text per language: text the choice never saw (another domain)
    heldout_coverage: dict[str, LanguageCoverage] = field(default_factory=dict)
    #: the general-text sources consulted, and what each language's choice was built from
    general: list[str] = field(default_factory=list)
    sources_by_language: dict[str, Any] = field(default_factory=dict)
    disk_bytes_before: int | None = None
    disk_bytes_after: int | None = None
    model: str | None = None
    corpus: list[str] = field(default_factory=list)
    seconds: float | None = None

    @property
    def languages(self) -> list[str]:
        return list(self.coverage)

    def to_dict(self) -> dict[str, Any]:
        before, after = self.parameters_before.total, self.parameters_after.total
        return {
            "model": self.model,
            "tokenizer_model": self.tokenizer_model,
            "languages": self.languages,
            "corpus": list(self.corpus),
            "min_count": self.min_count,
            "max_vocab": self.max_vocab,
            "keep_characters": self.keep_characters,
            "vocab_before": self.vocab_before,
            "vocab_after": self.vocab_after,
            "kept": dict(self.kept),
            "parameters_before": self.parameters_before.to_dict(),
            "parameters_after": self.parameters_after.to_dict(),
            "parameter_reduction": round(1 - after / before, 6) if before else 0.0,
            "disk_bytes_before": self.disk_bytes_before,
            "disk_bytes_after": self.disk_bytes_after,
            "general": list(self.general),
            "sources_by_language": dict(self.sources_by_language),
            "coverage": {language: counts.to_dict() for language, counts in self.coverage.items()},
            "heldout_coverage": {language: counts.to_dict() for language, counts in self.heldout_coverage.items()},
            "seconds": None if self.seconds is None else round(self.seconds, 2),
        }

    def print_table(self, console: Console | None = None) -> None:
        """Sizes before and after, then per-language coverage, as rich tables."""
        from rich.console import Console
        from rich.table import Table

        console = console or Console()
        sizes = Table(title=f"Vocabulary trim{f' of {self.model}' if self.model else ''}")
        sizes.add_column("")
        sizes.add_column("before", justify="right")
        sizes.add_column("after", justify="right")
        sizes.add_column("change", justify="right")

        def row(name: str, before: int | None, after: int | None, unit: float = 1, suffix: str = "") -> None:
            if before is None or after is None:
                return
            change = f"{(after - before) / before:+.1%}" if before else ""
            sizes.add_row(
                name,
                f"{before / unit:,.1f}{suffix}" if unit != 1 else f"{before:,}",
                f"{after / unit:,.1f}{suffix}" if unit != 1 else f"{after:,}",
                change,
            )

        row("vocabulary (tokens)", self.vocab_before, self.vocab_after)
        row("embedding parameters", self.parameters_before.embedding, self.parameters_after.embedding)
        row("other parameters", self.parameters_before.other, self.parameters_after.other)
        row("total parameters", self.parameters_before.total, self.parameters_after.total)
        row("disk size", self.disk_bytes_before, self.disk_bytes_after, unit=1e6, suffix=" MB")
        console.print(sizes)
        reasons = ", ".join(f"{count:,} {reason.replace('_', ' ')}" for reason, count in self.kept.items())
        console.print(f"kept: {reasons}")

        title = f"min_count {self.min_count}{f', max_vocab {self.max_vocab:,}' if self.max_vocab else ''}"
        if self.general:
            title += f", general text: {', '.join(self.general)}"
        console.print(_coverage_table(f"Corpus coverage ({title})", self.coverage))
        if self.heldout_coverage:
            console.print(_coverage_table("Held-out text coverage (text the choice never saw)", self.heldout_coverage))
        console.print(
            "coverage: share of the text's tokens the trimmed tokenizer still produces (same span, "
            "same piece); length: change in token count; unchanged: texts tokenised exactly as before"
        )


def _coverage_table(title: str, coverage: Mapping[str, LanguageCoverage]) -> Any:
    from rich.table import Table

    table = Table(title=title)
    for name in ("language", "texts", "tokens", "coverage", "length", "<unk>", "unchanged"):
        table.add_column(name, justify="left" if name == "language" else "right", no_wrap=True)
    for language, counts in coverage.items():
        table.add_row(
            language,
            f"{counts.texts:,}",
            f"{counts.tokens:,}",
            f"{counts.coverage:.2%}",
            f"{counts.length_ratio - 1:+.1%}",
            f"{counts.unknown_after:,}",
            f"{counts.unchanged_text_share:.1%}",
        )
    return table


@dataclass
class TrimResult:
    """The trimmed model (the one passed in, modified in place), its new tokenizer, the report.

    ``old_ids[new_id]`` is the id a kept token had before the trim.
    """

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerFast
    report: TrimReport
    old_ids: list[int]

    @property
    def old_to_new(self) -> dict[int, int]:
        """New id of every kept old id (dropped ids are absent).

        On text whose tokens are all kept, ``[old_to_new[i] for i in teacher_ids]`` are the
        trimmed model's ids, position for position: a teacher with the original vocabulary and
        its trimmed student see aligned token sequences.
        """
        return {old_id: new_id for new_id, old_id in enumerate(self.old_ids)}


# ---------------------------------------------------------------------------------------------
# Trimming


def trim_vocabulary(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerFast,
    texts_by_language: Mapping[str, Sequence[str]],
    *,
    min_count: int = 1,
    max_vocab: int | float | None = None,
    general: Sequence[str] = (),
    tokens_per_language: int = DEFAULT_TOKENS_PER_LANGUAGE,
    languages: Sequence[str] | None = None,
    keep_tokens: Iterable[str] = (),
    keep_texts: Iterable[str] = (),
    keep_characters: CharacterPolicy = "scripts",
    heldout: Mapping[str, Sequence[str]] | None = None,
) -> TrimResult:
    """Cut ``model`` and ``tokenizer`` down to the tokens the served languages use.

    Kept, in order of precedence: the tokens the tokenizer and model config name (special and
    added tokens, post-processor and padding tokens, ``*_token_id`` of the config) and the
    structural pieces of :func:`~polydistill.models.tokenizer_surgery.structural_token_ids`;
    ``keep_tokens`` and every token of ``keep_texts`` (e.g. prompts such as ``"query: "``); the
    fallback characters of ``keep_characters`` (see the module docstring); then the tokens of
    the languages, chosen by :mod:`polydistill.models.general_vocabulary`: each language's
    token distribution mixes its corpus counts (tokens seen at least ``min_count`` times) with
    the ``general`` sources (``wordfreq``, ``piece_scores``), and the tokens are ranked so that
    every prefix holds each language's most likely ones.

    ``max_vocab`` is the budget: a number of rows (an int) or a share of the original vocabulary
    (a float in (0, 1)); exactly that many tokens are kept (after the ranked tokens, the
    remaining pieces by score fill it). Without a budget every corpus token seen ``min_count``
    times is kept (so the trimmed model is exact on its corpus), plus, with ``general``
    sources, each language's ``tokens_per_language`` most likely tokens. ``languages`` are the
    served languages (default: those of the corpus); the general sources are consulted for
    each. ``heldout`` texts per language are not used for the choice: the report says how much
    of them the kept tokens tokenise unchanged.

    ``model`` is modified in place and returned (copy it first to keep the original); it may
    be a bare encoder, a masked-LM or a sequence-classification model. The returned tokenizer
    is new. Raises :class:`~polydistill.errors.PolydistillError` for unsupported tokenizers,
    unknown ``keep_tokens`` or a ``max_vocab`` smaller than the tokens that must stay.
    """
    import torch

    from polydistill.data.sources import UNTAGGED

    started = time.perf_counter()
    if min_count < 1:
        raise PolydistillError(f"min_count must be at least 1, not {min_count}")
    if keep_characters not in CHARACTER_POLICIES:
        raise PolydistillError(f"keep_characters must be one of {', '.join(CHARACTER_POLICIES)}, not {keep_characters!r}")
    if tokens_per_language < 1:
        raise PolydistillError(f"tokens_per_language must be at least 1, not {tokens_per_language}")
    texts_by_language = {language: list(texts) for language, texts in texts_by_language.items()}
    keep_texts = list(keep_texts)
    if not any(texts_by_language.values()):
        raise DataError("the corpus for vocabulary trimming is empty; give texts for at least one language")
    served = list(languages) if languages is not None else list(texts_by_language)

    state = surgery.tokenizer_state(tokenizer)
    model_type = surgery.tokenizer_model_type(state)
    tokens = surgery.all_tokens(state)
    token_ids = {token: token_id for token_id, token in sorted(tokens.items(), reverse=True)}
    vocabulary_size = len(surgery.model_vocabulary(state))
    input_embeddings = cast("torch.nn.Embedding", model.get_input_embeddings())
    rows = int(input_embeddings.weight.shape[0])
    if max(tokens) >= rows:
        raise PolydistillError(
            f"the tokenizer has ids up to {max(tokens)} but the model's embedding matrix has only "
            f"{rows} rows; tokenizer and model do not belong together"
        )
    budget = vocabulary_budget(max_vocab, len(tokens))

    encoder = _plain_encoder(tokenizer)
    counts_by_language, characters_by_language = _count_tokens(encoder, texts_by_language)
    pooled: Counter[int] = Counter()
    for counts in counts_by_language.values():
        pooled.update(counts)
    frequent = {token_id for token_id, count in pooled.items() if count >= min_count}  # min_count is over the whole corpus
    distributions = language_distributions(
        encoder,
        state,
        {
            language: {token_id: count for token_id, count in counts.items() if token_id in frequent}
            for language, counts in counts_by_language.items()
        },
        {language: scripts_of(characters) for language, characters in characters_by_language.items()},
        [language for language in served if language != UNTAGGED],
        sources=general,
    )
    corpus_characters = set().union(*characters_by_language.values()) | distributions.characters

    # Why each token stays, in order of precedence; a token is counted under its first reason.
    required = {token_ids[token] for token in surgery.referenced_tokens(state) if token in token_ids}
    required |= surgery.special_token_ids(state, tokenizer)
    required |= surgery.structural_token_ids(state)
    required |= {token_id for token_id in _config_token_ids(model) if token_id in tokens}
    if input_embeddings.padding_idx is not None:
        required.add(int(input_embeddings.padding_idx))
    requested = _requested_ids(keep_tokens, keep_texts, token_ids, encoder) - required
    characters = _character_ids(state, keep_characters, corpus_characters) - required - requested
    always = required | requested
    mixtures = {language: distributions.mixture(language) for language in distributions.languages}
    if budget is None:
        chosen = set(frequent)
        if general:
            chosen |= {token_id for mixture in mixtures.values() for token_id in _top(mixture, tokens_per_language)}
        chosen -= always
    else:
        fixed = len(always | characters)
        if fixed > budget:
            raise PolydistillError(
                f"max_vocab {budget:,} is smaller than the {fixed:,} tokens that must stay "
                f"({len(required):,} special and structural, {len(requested):,} requested, "
                f"{len(characters):,} fallback characters with keep_characters={keep_characters!r}); "
                "raise max_vocab or keep fewer characters (keep_characters='corpus' or 'none')"
            )
        ranked = [token_id for token_id in ranked_tokens(mixtures) if token_id not in always]
        chosen = _fill_budget(ranked, _by_score(state), always | characters, budget - fixed)
    corpus_kept = chosen & frequent
    characters -= corpus_kept
    general_kept = chosen - corpus_kept - characters
    kept = required | requested | corpus_kept | general_kept | characters

    specials = surgery.special_token_ids(state, tokenizer)
    old_ids = (
        sorted(token_id for token_id in kept if token_id < vocabulary_size and token_id in specials)
        + sorted(token_id for token_id in kept if token_id < vocabulary_size and token_id not in specials)
        + sorted(token_id for token_id in kept if token_id >= vocabulary_size)
    )
    old_to_new = {old_id: new_id for new_id, old_id in enumerate(old_ids)}

    new_tokenizer = surgery.build_tokenizer(tokenizer, surgery.trimmed_state(state, old_ids))
    if len(new_tokenizer) != len(old_ids):
        raise PolydistillError(
            f"the trimmed tokenizer has {len(new_tokenizer)} tokens after loading, expected {len(old_ids)}; "
            f"{type(tokenizer).__name__} rebuilds its vocabulary in a way trimming cannot follow"
        )

    # every check before the model is touched, so that an error leaves it as it was
    new_encoder = _plain_encoder(new_tokenizer)
    coverage = _coverage(
        encoder, new_encoder, texts_by_language, old_to_new, old_unk=_unknown_id(tokenizer), new_unk=_unknown_id(new_tokenizer)
    )
    heldout_coverage = (
        _coverage(encoder, new_encoder, heldout, old_to_new, old_unk=_unknown_id(tokenizer), new_unk=_unknown_id(new_tokenizer))
        if heldout
        else {}
    )
    _check_faithful(encoder, new_encoder, keep_texts, old_to_new)
    _check_position_ids(model, input_embeddings.padding_idx, old_to_new)

    vocabulary_parameters = _vocabulary_parameters(model, rows)
    parameters_before = _parameter_counts(model, vocabulary_parameters)
    _select_rows(model, vocabulary_parameters, torch.tensor(old_ids, dtype=torch.long), old_to_new)
    parameters_after = _parameter_counts(model, _vocabulary_parameters(model, len(old_ids)))

    report = TrimReport(
        tokenizer_model=model_type,
        vocab_before=len(tokens),
        vocab_after=len(old_ids),
        parameters_before=parameters_before,
        parameters_after=parameters_after,
        kept={
            "special_and_structural": len(required),
            "requested": len(requested),
            "corpus": len(corpus_kept),
            "general_text": len(general_kept),
            "fallback_characters": len(characters),
        },
        min_count=min_count,
        max_vocab=budget,
        keep_characters=keep_characters,
        coverage=coverage,
        heldout_coverage=heldout_coverage,
        general=list(general),
        sources_by_language=distributions.describe() if general else {},
        seconds=time.perf_counter() - started,
    )
    return TrimResult(model=model, tokenizer=new_tokenizer, report=report, old_ids=old_ids)


def vocabulary_budget(max_vocab: int | float | None, vocabulary_size: int) -> int | None:
    """``max_vocab`` as a number of rows: an int is one, a float in (0, 1) a share of ``vocabulary_size``."""
    if max_vocab is None:
        return None
    if isinstance(max_vocab, bool) or not isinstance(max_vocab, int | float):
        raise PolydistillError(f"max_vocab must be a number of tokens or a share of the vocabulary, not {max_vocab!r}")
    if isinstance(max_vocab, float):
        if not 0 < max_vocab < 1:
            raise PolydistillError(f"max_vocab {max_vocab} as a share of the vocabulary must be between 0 and 1 (exclusive)")
        return max(1, round(max_vocab * vocabulary_size))
    if max_vocab < 1:
        raise PolydistillError(f"max_vocab must be at least 1, not {max_vocab}")
    if max_vocab >= vocabulary_size:
        raise PolydistillError(f"max_vocab {max_vocab:,} is not smaller than the vocabulary ({vocabulary_size:,} tokens); nothing to trim")
    return max_vocab


def _fill_budget(ranked: Sequence[int], by_score: Sequence[int], reserved: set[int], room: int) -> set[int]:
    """``room`` tokens beside the ``reserved`` ones: the ranked tokens first, then the rest by piece score.

    Reserved tokens (special, requested, fallback characters) have their slots already, so the
    ranked ones among them cost nothing here.
    """
    chosen: set[int] = set()
    for token_id in ranked:
        if token_id in reserved:
            chosen.add(token_id)
        elif room > 0:
            chosen.add(token_id)
            room -= 1
    for token_id in by_score:
        if room <= 0:
            break
        if token_id not in reserved and token_id not in chosen:
            chosen.add(token_id)
            room -= 1
    return chosen


def _by_score(state: Mapping[str, Any]) -> list[int]:
    """Every token id, most likely first: by Unigram piece score, else (WordPiece) in vocabulary order."""
    scores = piece_scores(state)
    ids = list(range(len(surgery.model_vocabulary(state))))
    return sorted(ids, key=lambda token_id: -scores[token_id]) if scores is not None else ids


def _top(distribution: Mapping[int, float], count: int) -> list[int]:
    return sorted(distribution, key=lambda token_id: (-distribution[token_id], token_id))[:count]


def _plain_encoder(tokenizer: Any) -> Any:
    """The backend, or a copy of it that neither truncates nor pads: counting must see whole texts."""
    from tokenizers import Tokenizer

    backend = tokenizer.backend_tokenizer
    if backend.truncation is None and backend.padding is None:
        return backend  # as transformers leaves it: a copy of a large vocabulary costs seconds
    backend = Tokenizer.from_str(backend.to_str())
    backend.no_truncation()
    backend.no_padding()
    return backend


def _batches(texts: Sequence[str], size: int = ENCODE_BATCH) -> Iterable[Sequence[str]]:
    for start in range(0, len(texts), size):
        yield texts[start : start + size]


def _count_tokens(encoder: Any, texts_by_language: Mapping[str, Sequence[str]]) -> tuple[dict[str, Counter[int]], dict[str, set[str]]]:
    """Per language: how often each token id occurs in its texts, and which characters they hold."""
    from tqdm.auto import tqdm

    counts: dict[str, Counter[int]] = {}
    characters: dict[str, set[str]] = {}
    normalizer = encoder.normalizer
    total = sum(len(texts) for texts in texts_by_language.values())
    with tqdm(total=total, desc="counting tokens", unit="text", disable=None, leave=False) as progress:
        for language, texts in texts_by_language.items():
            language_counts = counts.setdefault(language, Counter())
            language_characters = characters.setdefault(language, set())
            for batch in _batches(texts):
                for encoding in encoder.encode_batch(list(batch), add_special_tokens=False):
                    language_counts.update(encoding.ids)
                for text in batch:
                    language_characters.update(normalizer.normalize_str(text) if normalizer is not None else text)
                progress.update(len(batch))
    return counts, characters


def _requested_ids(keep_tokens: Iterable[str], keep_texts: Iterable[str], token_ids: Mapping[str, int], encoder: Any) -> set[int]:
    keep_tokens = list(keep_tokens)
    unknown = [token for token in keep_tokens if token not in token_ids]
    if unknown:
        raise PolydistillError(f"keep_tokens names tokens the tokenizer does not have: {unknown[:10]}")
    ids = {token_ids[token] for token in keep_tokens}
    texts = [text for text in keep_texts if text]
    if texts:
        for encoding in encoder.encode_batch(texts, add_special_tokens=False):
            ids.update(encoding.ids)
    return ids


def _character_ids(state: Mapping[str, Any], policy: str, corpus_characters: set[str]) -> set[int]:
    """Ids of the single-character pieces ``policy`` keeps for unseen text (module docstring)."""
    pieces = surgery.character_token_ids(state)
    if policy == "none":
        return set()
    if policy == "all":
        chosen: Iterable[str] = pieces
    elif policy == "corpus":
        chosen = [character for character in pieces if character in corpus_characters]
    else:
        scripts = {character_script(character) for character in corpus_characters} - {None}
        chosen = [
            character
            for character in pieces
            if character in corpus_characters or character_script(character) in scripts or is_shared_character(character)
        ]
    return {token_id for character in chosen for token_id in pieces[character]}


def _config_token_ids(model: Any) -> set[int]:
    """Token ids the model's config (and generation config) names: pad, bos, eos, sep..."""
    ids: set[int] = set()
    for config in (model.config, getattr(model, "generation_config", None)):
        if config is None:
            continue
        for key, value in config.to_dict().items():
            if not key.endswith("_token_id"):
                continue
            for token_id in value if isinstance(value, list) else [value]:
                if isinstance(token_id, int) and token_id >= 0:
                    ids.add(token_id)
    return ids


def _output_embeddings(model: Any) -> Any:
    try:
        return model.get_output_embeddings()
    except (AttributeError, NotImplementedError):
        return None


def _vocabulary_parameters(model: Any, rows: int) -> dict[int, torch.nn.Parameter]:
    """Every parameter indexed by token id, by identity (tied parameters appear once).

    The input embeddings; the output embeddings (a masked-LM decoder) and their bias; and the
    1-D vocabulary-sized parameters of the modules that hold the decoder, which is where
    masked-LM heads keep their output bias (``cls.predictions.bias``, ``lm_head.bias``).
    """
    found: dict[int, torch.nn.Parameter] = {}
    weight = model.get_input_embeddings().weight
    found[id(weight)] = weight
    output = _output_embeddings(model)
    if output is None:
        return found
    for parameter in output.parameters(recurse=False):
        if parameter.shape[0] != rows:
            raise PolydistillError(
                f"the output embeddings have {parameter.shape[0]} rows but the input embeddings {rows}; cannot trim them together"
            )
        found[id(parameter)] = parameter
    name = next((name for name, module in model.named_modules() if module is output), None)
    if name:
        parts = name.split(".")
        for depth in range(1, len(parts)):
            holder = model.get_submodule(".".join(parts[:depth]))
            for parameter in holder.parameters(recurse=False):
                if parameter.dim() == 1 and parameter.shape[0] == rows:
                    found[id(parameter)] = parameter
    return found


def _parameter_counts(model: Any, vocabulary_parameters: Mapping[int, Any]) -> ParameterCounts:
    embedding = other = 0
    for parameter in model.parameters():  # shared parameters come once
        if id(parameter) in vocabulary_parameters:
            embedding += parameter.numel()
        else:
            other += parameter.numel()
    return ParameterCounts(embedding=embedding, other=other)


def _check_position_ids(model: Any, old_pad: int | None, old_to_new: Mapping[int, int]) -> None:
    """Refuse a trim that would move the pad id of a model whose position ids start after it.

    RoBERTa-style embeddings number positions from ``padding_idx + 1``: a new pad id would
    shift every position. Putting special tokens first keeps XLM-R's ``<pad>`` at 1.
    """
    import torch

    if old_pad is None or old_to_new.get(old_pad) == old_pad:
        return
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.Embedding) and getattr(module, "padding_idx", None) == old_pad:
            raise PolydistillError(
                f"trimming would move the pad token from id {old_pad} to {old_to_new.get(old_pad)}, "
                f"but {name or 'the model'} derives position ids from the pad id; keep the tokens before it"
            )


def _select_rows(model: Any, vocabulary_parameters: Mapping[int, Any], index: torch.Tensor, old_to_new: Mapping[int, int]) -> None:
    """Keep rows ``index`` of every vocabulary parameter, in place, and update what counts them."""
    import torch

    replacements = {
        key: torch.nn.Parameter(
            parameter.detach().index_select(0, index.to(parameter.device)).clone(),
            requires_grad=parameter.requires_grad,
        )
        for key, parameter in vocabulary_parameters.items()
    }
    for module in model.modules():
        for name, parameter in list(module._parameters.items()):
            if parameter is not None and id(parameter) in replacements:
                setattr(module, name, replacements[id(parameter)])

    size = int(index.numel())
    input_embeddings = model.get_input_embeddings()
    input_embeddings.num_embeddings = size
    if input_embeddings.padding_idx is not None:
        input_embeddings.padding_idx = old_to_new[int(input_embeddings.padding_idx)]
    output = _output_embeddings(model)
    if output is not None and hasattr(output, "out_features"):
        output.out_features = size
    model.config.vocab_size = size
    for config in (model.config, getattr(model, "generation_config", None)):
        if config is not None:
            _remap_config_ids(config, old_to_new)


def _remap_config_ids(config: Any, old_to_new: Mapping[int, int]) -> None:
    for key, value in config.to_dict().items():
        if not key.endswith("_token_id") or value is None:
            continue
        if isinstance(value, list):
            setattr(config, key, [old_to_new[token_id] for token_id in value if token_id in old_to_new])
        elif isinstance(value, int) and value >= 0:
            setattr(config, key, old_to_new.get(value))  # None when the config named no real token


def _unknown_id(tokenizer: Any) -> int | None:
    return tokenizer.unk_token_id if tokenizer.unk_token is not None else None


def _coverage(
    old_encoder: Any,
    new_encoder: Any,
    texts_by_language: Mapping[str, Sequence[str]],
    old_to_new: Mapping[int, int],
    *,
    old_unk: int | None,
    new_unk: int | None,
) -> dict[str, LanguageCoverage]:
    """Re-tokenise the corpus with both tokenizers; check kept text is unchanged, count the rest."""
    from tqdm.auto import tqdm

    coverage: dict[str, LanguageCoverage] = {}
    total = sum(len(texts) for texts in texts_by_language.values())
    with tqdm(total=total, desc="checking coverage", unit="text", disable=None, leave=False) as progress:
        for language, texts in texts_by_language.items():
            counts = coverage[language] = LanguageCoverage()
            for batch in _batches(texts):
                old_encodings = old_encoder.encode_batch(list(batch), add_special_tokens=False)
                new_encodings = new_encoder.encode_batch(list(batch), add_special_tokens=False)
                for text, old, new in zip(batch, old_encodings, new_encodings, strict=True):
                    expected = [old_to_new.get(token_id) for token_id in old.ids]
                    unchanged = new.ids == expected
                    if None not in expected and not unchanged:
                        raise _unfaithful(text, old.tokens, new.tokens)
                    counts.texts += 1
                    counts.tokens += len(old.ids)
                    counts.tokens_after += len(new.ids)
                    counts.unchanged_texts += unchanged
                    counts.unknown_before += sum(token_id == old_unk for token_id in old.ids)
                    counts.unknown_after += sum(token_id == new_unk for token_id in new.ids)
                    if unchanged:
                        counts.covered_tokens += len(old.ids)
                    else:
                        spans = Counter(zip(old.offsets, old.tokens, strict=True)) & Counter(zip(new.offsets, new.tokens, strict=True))
                        counts.covered_tokens += sum(spans.values())
                progress.update(len(batch))
    return coverage


def _check_faithful(old_encoder: Any, new_encoder: Any, texts: list[str], old_to_new: Mapping[int, int]) -> None:
    for text in texts:
        old = old_encoder.encode(text, add_special_tokens=False)
        new = new_encoder.encode(text, add_special_tokens=False)
        if new.ids != [old_to_new.get(token_id) for token_id in old.ids]:
            raise _unfaithful(text, old.tokens, new.tokens)


def _unfaithful(text: str, old: Sequence[str], new: Sequence[str]) -> PolydistillError:
    return PolydistillError(
        "the trimmed tokenizer segments a text whose tokens were all kept differently from the "
        f"original ({text!r}: {list(old)} became {list(new)}); this tokenizer cannot be trimmed "
        "faithfully, please report it"
    )


# ---------------------------------------------------------------------------------------------
# Saving


def save_trimmed(
    result: TrimResult,
    directory: str | Path,
    *,
    source_dir: str | Path | None = None,
    check_texts: Sequence[str] = (),
) -> Path:
    """Write the trimmed model as a standard directory, with ``trim_report.json`` beside it.

    Safetensors weights and the new ``tokenizer.json`` load with ``AutoModel`` /
    ``AutoTokenizer``. When ``source_dir`` is a sentence-transformers directory, its module
    files are copied too, so ``SentenceTransformer(directory)`` gives the pipeline it had
    (pooling, normalisation, prompts). The saved tokenizer is read back and must encode
    ``check_texts`` exactly as the in-memory one does.
    """
    from transformers import AutoTokenizer

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    transformer_dir = directory
    if source_dir is not None:
        transformer_dir = directory / copy_sentence_transformers_files(Path(source_dir), directory)
    result.model.save_pretrained(transformer_dir)
    result.tokenizer.save_pretrained(str(transformer_dir))

    if check_texts:
        reloaded = AutoTokenizer.from_pretrained(str(transformer_dir))
        texts = list(check_texts)
        if reloaded(texts)["input_ids"] != result.tokenizer(texts)["input_ids"]:
            raise PolydistillError(
                f"the tokenizer saved in {transformer_dir} encodes differently once loaded with "
                "AutoTokenizer; the trimmed model was written but should not be used"
            )

    report = result.report
    if source_dir is not None:
        report.disk_bytes_before = directory_size(Path(source_dir))
    report.disk_bytes_after = directory_size(directory)
    write_report(report, directory)
    return directory


def write_report(report: TrimReport, directory: str | Path) -> Path:
    """Write ``report`` as ``trim_report.json`` in ``directory``; return the file."""
    path = Path(directory) / REPORT_FILE
    path.write_text(json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
