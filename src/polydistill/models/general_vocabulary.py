"""How likely each token is in a language *in general*, so a trimmed vocabulary serves more than one corpus.

A vocabulary chosen from the user's corpus alone is exact on that corpus and falls apart on
everything else: words it never saw re-segment into characters. What an embedding model is
asked to embed is arbitrary text in the served languages, so :func:`language_distributions`
estimates, per language, the share of a general text's tokens each token would be, from up to
three sources, and :func:`ranked_tokens` orders the vocabulary so that any budget keeps each
language's most likely tokens:

- ``wordfreq``: the word-frequency lists of the ``wordfreq`` package (about 40 languages;
  frequencies pooled from Wikipedia, subtitles, news, books, web text and more). Each of the
  :data:`WORDFREQ_WORDS` most frequent words is tokenised alone, as a word after a space, and
  its tokens are credited with its frequency. The lists are case-folded; a word of a cased
  script is credited as lower-case and capitalised in the proportion the tokenizer's own piece
  scores give the two spellings' first pieces (German nouns come out capitalised, English
  function words lower-case). A language wordfreq lacks is not approximated by another one;
- ``piece_scores``: a SentencePiece unigram tokenizer's scores are the log-probabilities of its
  pieces on its original multilingual training corpus. Restricted to the pieces written in the
  scripts of a language (its corpus and word-list characters), ``exp(score)`` is a weak prior
  for the language, the only one for languages no word list covers. WordPiece has no scores;
- ``corpus``: the user's texts, counted as they are (tokens seen fewer than ``min_count``
  times left out).

Each source gives a distribution over token ids; a language's distribution is their mixture,
with the weights of :data:`SOURCE_WEIGHTS` renormalised over the sources it has. The weights
and :data:`WORDFREQ_WORDS` were chosen by measuring, for the demo's 13 languages, how much of a
held-out domain (Sphinx's catalogs, when trimming on Django's) the kept tokens tokenise
unchanged, and the trimmed teacher's translation retrieval there (benchmarks/README.md).
"""

from __future__ import annotations

import math
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from polydistill.errors import PolydistillError
from polydistill.models import tokenizer_surgery as surgery
from polydistill.models.scripts import scripts_of

GeneralSource = Literal["wordfreq", "piece_scores"]
GENERAL_SOURCES: tuple[str, ...] = ("wordfreq", "piece_scores")
#: the sources a trim consults unless told otherwise (config, CLI)
DEFAULT_GENERAL: tuple[GeneralSource, ...] = ("wordfreq", "piece_scores")
#: without a budget, each language's most likely tokens kept beside the corpus's
DEFAULT_TOKENS_PER_LANGUAGE = 4000
#: the mixture of a language's distribution (renormalised over the sources a language has)
SOURCE_WEIGHTS: Mapping[str, float] = {"corpus": 0.3, "wordfreq": 0.6, "piece_scores": 0.1}
#: most frequent words of each word list that are tokenised (the rest carry little mass)
WORDFREQ_WORDS = 50_000
#: how far (langcodes' distance) a served language may be from a word list's language: a region
#: or a default script (pt-BR -> pt, zh-Hans -> zh), never another language (sw -> en)
_MAX_LANGUAGE_DISTANCE = 9
_ENCODE_BATCH = 4096
#: the most frequent words whose characters name a language's scripts (rarer words bring foreign names)
SCRIPT_WORDS = 2000


@dataclass
class LanguageDistributions:
    """Per language: each source's distribution over token ids (shares summing to 1), and the mixture."""

    by_source: dict[str, dict[str, dict[int, float]]] = field(default_factory=dict)
    #: the wordfreq list each language was matched with (None: no list for it)
    wordfreq_languages: dict[str, str | None] = field(default_factory=dict)
    #: characters the general sources' words write (fallback characters under keep_characters="corpus")
    characters: set[str] = field(default_factory=set)

    def mixture(self, language: str) -> dict[int, float]:
        present = {source: found[language] for source, found in self.by_source.items() if found.get(language)}
        total = sum(SOURCE_WEIGHTS[source] for source in present)
        mixed: defaultdict[int, float] = defaultdict(float)
        for source, distribution in present.items():
            weight = SOURCE_WEIGHTS[source] / total
            for token_id, share in distribution.items():
                mixed[token_id] += weight * share
        return dict(mixed)

    @property
    def languages(self) -> list[str]:
        return list(dict.fromkeys(language for found in self.by_source.values() for language in found))

    def describe(self) -> dict[str, Any]:
        """What each language's distribution was built from, for the trim report."""
        return {
            language: sorted(source for source, found in self.by_source.items() if found.get(language)) for language in self.languages
        } | ({"wordfreq_lists": dict(self.wordfreq_languages)} if self.wordfreq_languages else {})


def normalised(counts: Mapping[int, float]) -> dict[int, float]:
    total = float(sum(counts.values()))
    return {token_id: count / total for token_id, count in counts.items()} if total > 0 else {}


def wordfreq_language(language: str) -> str | None:
    """The wordfreq list for a BCP 47 code (``pt-BR`` -> ``pt``), or None when wordfreq has none for it."""
    import langcodes
    import wordfreq

    available = sorted(wordfreq.available_languages(wordlist="best"))
    match = langcodes.closest_supported_match(language, available, max_distance=_MAX_LANGUAGE_DISTANCE)
    return str(match) if match is not None else None


def wordfreq_words(language: str, count: int = WORDFREQ_WORDS) -> list[tuple[str, float]]:
    """The ``count`` most frequent words of wordfreq's list for ``language`` (its own code) and their frequencies."""
    import wordfreq

    # the frequency table as stored: word_frequency() would re-tokenise each word (MeCab for Japanese)
    frequencies = wordfreq.get_frequency_dict(language, wordlist="best")
    return sorted(frequencies.items(), key=lambda item: (-item[1], item[0]))[:count]


def word_token_distribution(encoder: Any, scores: Mapping[int, float] | None, words: Sequence[tuple[str, float]]) -> dict[int, float]:
    """Token shares of a text made of ``words`` at their frequencies, each word tokenised alone;
    ``scores`` (:func:`piece_scores`) split a case-folded word between its two spellings."""
    forms: list[str] = []
    weights: list[float] = []
    for word, frequency in words:
        capitalised = word[:1].upper() + word[1:]
        if capitalised == word:
            forms.append(word)
            weights.append(frequency)
        else:
            forms += [word, capitalised]
            weights += [frequency, frequency]  # split below, once the first pieces are known
    counts: defaultdict[int, float] = defaultdict(float)
    encodings = [
        encoding
        for start in range(0, len(forms), _ENCODE_BATCH)
        for encoding in encoder.encode_batch(forms[start : start + _ENCODE_BATCH], add_special_tokens=False)
    ]
    index = 0
    for word, _frequency in words:
        capitalised = word[:1].upper() + word[1:]
        if capitalised == word:
            for token_id in encodings[index].ids:
                counts[token_id] += weights[index]
            index += 1
            continue
        lower, upper = encodings[index].ids, encodings[index + 1].ids
        upper_share = _capitalised_share(lower, upper, scores)
        for token_id in lower:
            counts[token_id] += weights[index] * (1 - upper_share)
        for token_id in upper:
            counts[token_id] += weights[index] * upper_share
        index += 2
    return normalised(counts)


#: share of capitalised spellings when the tokenizer has no piece scores to tell
DEFAULT_CAPITALISED_SHARE = 0.2


def _capitalised_share(lower: Sequence[int], upper: Sequence[int], scores: Mapping[int, float] | None) -> float:
    """How often a case-folded word is written capitalised, from the scores of the two spellings' pieces.

    A SentencePiece score is a log-probability, so the two segmentations' summed scores compare
    like the log-frequencies of the spellings in the tokenizer's training text.
    """
    if not scores or not lower or not upper:
        return DEFAULT_CAPITALISED_SHARE
    difference = sum(scores.get(token_id, 0.0) for token_id in upper) - sum(scores.get(token_id, 0.0) for token_id in lower)
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, difference))))


def piece_scores(state: Mapping[str, Any]) -> dict[int, float] | None:
    """A Unigram tokenizer's piece scores (log-probabilities) by id; None for tokenizers without scores."""
    if surgery.tokenizer_model_type(state) != "Unigram":
        return None
    return {token_id: float(score) for token_id, (_piece, score) in enumerate(state["model"]["vocab"])}


def piece_scripts(state: Mapping[str, Any]) -> list[frozenset[str]]:
    """The writing systems of each piece's letters, by id (empty for pieces of digits and punctuation)."""
    replacement = surgery.metaspace_replacement(state) or ""
    return [frozenset(scripts_of(piece.replace(replacement, ""))) for piece in surgery.model_vocabulary(state)]


def piece_score_distribution(
    state: Mapping[str, Any],
    scores: Mapping[int, float] | None,
    scripts: Iterable[str],
    scripts_by_piece: Sequence[frozenset[str]] | None = None,
) -> dict[int, float]:
    """``exp(score)`` of the pieces whose letters are all in ``scripts``, normalised; empty without ``scores``.

    ``scripts_by_piece`` (:func:`piece_scripts` of ``state``) saves reading every piece again when
    several script sets are asked of one tokenizer.
    """
    wanted = set(scripts)
    if scores is None or not wanted:
        return {}
    by_piece = piece_scripts(state) if scripts_by_piece is None else scripts_by_piece
    shares = {token_id: math.exp(scores[token_id]) for token_id, letters in enumerate(by_piece) if letters and letters <= wanted}
    return normalised(shares)


def text_scripts(texts: Iterable[str]) -> set[str]:
    """The writing systems the letters of ``texts`` belong to (Latin, Cyrillic, Han...)."""
    return scripts_of({character for text in texts for character in unicodedata.normalize("NFKC", text)})


def language_distributions(
    encoder: Any,
    state: Mapping[str, Any],
    corpus_counts: Mapping[str, Mapping[int, int]],
    corpus_scripts: Mapping[str, set[str]],
    languages: Sequence[str],
    *,
    sources: Sequence[str],
) -> LanguageDistributions:
    """Each language's token distribution from its corpus counts (those worth counting) and the ``sources`` of
    :data:`GENERAL_SOURCES`."""
    unknown = [source for source in sources if source not in GENERAL_SOURCES]
    if unknown:
        raise PolydistillError(f"unknown general vocabulary source {unknown[0]!r}; expected one of {', '.join(GENERAL_SOURCES)}")
    found = LanguageDistributions()
    found.by_source["corpus"] = {language: normalised(counts) for language, counts in corpus_counts.items()}
    scripts = {language: set(corpus_scripts.get(language, set())) for language in languages}
    scores = piece_scores(state)  # once: every language's spellings and script prior read them
    tokenizer_key = _tokenizer_key(state) if "wordfreq" in sources else ""
    reused: list[str] = []
    if "wordfreq" in sources:
        from tqdm.auto import tqdm

        found.by_source["wordfreq"] = {}
        for language in tqdm(languages, desc="word lists", unit="language", disable=None, leave=False):
            match = found.wordfreq_languages[language] = wordfreq_language(language)
            if match is None:
                continue
            summary = _word_list_summary(encoder, scores, match, tokenizer_key, reused)
            found.characters |= summary.characters
            scripts[language] |= summary.scripts
            found.by_source["wordfreq"][language] = summary.distribution
    if "piece_scores" in sources:
        by_scripts: dict[frozenset[str], dict[int, float]] = {}
        scripts_by_piece = piece_scripts(state) if scores is not None else []
        found.by_source["piece_scores"] = {}
        for language in languages:
            key = frozenset(scripts[language])
            if key not in by_scripts:
                by_scripts[key] = piece_score_distribution(state, scores, key, scripts_by_piece)
            if by_scripts[key]:
                found.by_source["piece_scores"][language] = by_scripts[key]
    if reused:
        from polydistill.console import console

        console.print(f"[bold]Vocabulary[/] word-list distributions of {', '.join(reused)} reused from the cache")
    return found


def _tokenizer_key(state: Mapping[str, Any]) -> str:
    """sha256 of the tokenizer's state (its tokenizer.json): what a word list's token distribution depends on."""
    import hashlib
    import json

    return hashlib.sha256(json.dumps(state, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


@dataclass(frozen=True)
class _WordListSummary:
    """What a trim reads of one wordfreq list: its token shares under the tokenizer, its characters, its scripts."""

    distribution: dict[int, float]
    characters: frozenset[str]
    scripts: frozenset[str]


def _word_list_summary(
    encoder: Any, scores: Mapping[int, float] | None, language: str, tokenizer_key: str, reused: list[str]
) -> _WordListSummary:
    """A wordfreq list's summary, kept in polydistill's cache (``vocabulary/``) per tokenizer, wordfreq
    language and version: reading and tokenising 50,000 words is most of a trim's time, and every
    trial of a search or rerun of a recipe trims the same tokenizer for the same languages. JSON
    floats read back exactly; an unreadable entry is computed again and rewritten."""
    import hashlib
    import json
    from importlib import metadata

    from polydistill.atomic import atomic_write_text
    from polydistill.console import console
    from polydistill.models.offline.cache import cache_root

    version = metadata.version("wordfreq")
    key = f"{tokenizer_key}|{language}|{version}|{WORDFREQ_WORDS}|{SCRIPT_WORDS}|{DEFAULT_CAPITALISED_SHARE}"
    path = cache_root() / "vocabulary" / f"wordfreq-{hashlib.sha256(key.encode()).hexdigest()}.json"
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        summary = _WordListSummary(
            distribution={int(token_id): float(share) for token_id, share in stored["distribution"].items()},
            characters=frozenset(stored["characters"]),
            scripts=frozenset(stored["scripts"]),
        )
        reused.append(language)
        return summary
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass  # absent or unreadable: computed again and rewritten
    words = wordfreq_words(language)
    summary = _WordListSummary(
        distribution=word_token_distribution(encoder, scores, words),
        characters=frozenset(character for word, _ in words for character in unicodedata.normalize("NFKC", word)),
        scripts=frozenset(text_scripts(word for word, _ in words[:SCRIPT_WORDS])),
    )
    record = {
        "language": language,
        "wordfreq": version,
        "distribution": summary.distribution,
        "characters": sorted(summary.characters),
        "scripts": sorted(summary.scripts),
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(record, ensure_ascii=False))
    except OSError as error:  # a cache that cannot be written costs only the reuse
        console.print(f"[yellow]Vocabulary[/] word-list summary not cached ({error})")
    return summary


def ranked_tokens(distributions: Mapping[str, Mapping[int, float]]) -> list[int]:
    """Token ids ordered so that every prefix covers the least-covered language as well as it can.

    Greedy water-filling: the next token is the most likely one not yet taken of the language
    whose text the tokens so far cover least (by its distribution's mass), and a token several
    languages use raises each one's coverage. A budget therefore goes where text would fall
    apart first (Arabic's and Hindi's morphology need more tokens than English for the same
    coverage) instead of to the languages with the most text or the flattest distributions.
    """
    import heapq

    ordered = {
        language: sorted(distribution, key=lambda token_id: (-distribution[token_id], token_id))
        for language, distribution in distributions.items()
        if distribution
    }
    users: defaultdict[int, list[tuple[str, float]]] = defaultdict(list)
    for language, distribution in distributions.items():
        for token_id, share in distribution.items():
            users[token_id].append((language, share))
    coverage = dict.fromkeys(ordered, 0.0)
    position = dict.fromkeys(ordered, 0)
    heap = [(0.0, language) for language in ordered]
    heapq.heapify(heap)
    taken: set[int] = set()
    order: list[int] = []
    while heap:
        covered, language = heapq.heappop(heap)
        if covered < coverage[language]:  # other languages' tokens raised it since: queue it again
            heapq.heappush(heap, (coverage[language], language))
            continue
        tokens = ordered[language]
        while position[language] < len(tokens) and tokens[position[language]] in taken:
            position[language] += 1
        if position[language] == len(tokens):
            continue  # this language has nothing left to ask for
        token_id = tokens[position[language]]
        taken.add(token_id)
        order.append(token_id)
        for user, share in users[token_id]:
            coverage[user] += share
        heapq.heappush(heap, (coverage[language], language))
    return order
