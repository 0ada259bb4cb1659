"""Vocabularies for general text: budgets, general-text sources and held-out coverage.

Built on the tiny XLM-R-style tokenizer of test_trim.py; expected values are worked out by hand
(ranks, shares of two spellings) or from the tokenizer itself (the pieces a word tokenises to).
"""

from __future__ import annotations

import copy
import math

import pytest
from test_trim import CORPUS, SPECIALS_UNIGRAM, UNSEEN_LATIN, build_xlmr_tokenizer, tiny_xlmr_mlm

from polydistill.config import TrimVocabularyConfig
from polydistill.errors import PolydistillError
from polydistill.models import general_vocabulary
from polydistill.models.general_vocabulary import _capitalised_share, piece_scores, ranked_tokens, word_token_distribution
from polydistill.models.tokenizer_surgery import tokenizer_state
from polydistill.models.trim import trim_vocabulary

HELDOUT = {"de": [UNSEEN_LATIN, "der zug und der hund"]}


def corpus_characters() -> set[str]:
    return {character for texts in CORPUS.values() for text in texts for character in text if character != " "}


@pytest.mark.parametrize("budget", [30, 41, 0.5])
def test_a_budget_keeps_exactly_that_many_tokens_with_specials_and_fallback_characters(budget):
    tokenizer = build_xlmr_tokenizer()
    size = len(tokenizer)
    rows = budget if isinstance(budget, int) else round(budget * size)
    result = trim_vocabulary(tiny_xlmr_mlm(tokenizer), tokenizer, CORPUS, max_vocab=budget, keep_characters="corpus")
    kept = set(result.tokenizer.get_vocab())
    assert len(result.tokenizer) == rows == result.model.get_input_embeddings().weight.shape[0]
    assert set(SPECIALS_UNIGRAM) | {"<mask>", "▁"} <= kept
    assert corpus_characters() <= kept
    assert sum(result.report.kept.values()) == rows and result.report.max_vocab == rows


def test_a_budget_beyond_the_ranked_tokens_is_filled_by_piece_score():
    tokenizer = build_xlmr_tokenizer()
    only = {"de": ["das haus"]}
    result = trim_vocabulary(tiny_xlmr_mlm(tokenizer), tokenizer, only, max_vocab=40, keep_characters="none")
    assert len(result.tokenizer) == 40
    # after the specials and the corpus's pieces, the best-scored pieces of the vocabulary: "▁" (-3) and whole words (-5...)
    scores = dict(tokenizer_state(tokenizer)["model"]["vocab"])
    kept = set(result.tokenizer.get_vocab())
    dropped = [piece for piece in scores if piece not in kept]
    lowest = min(scores.values())  # one lowest-score piece stays anyway (structural: unknown characters cost as before)
    filled = [piece for piece in kept if piece not in {"▁das", "▁haus", *SPECIALS_UNIGRAM, "<mask>"} and scores[piece] > lowest]
    assert min(scores[piece] for piece in filled) >= max(scores[piece] for piece in dropped)


def test_budget_errors_name_what_is_wrong():
    tokenizer = build_xlmr_tokenizer()
    for budget, message in [(len(tokenizer), "not smaller than the vocabulary"), (1.5, "between 0 and 1"), (3, "smaller than the")]:
        with pytest.raises(PolydistillError, match=message):
            trim_vocabulary(tiny_xlmr_mlm(tokenizer), tokenizer, CORPUS, max_vocab=budget)
    assert TrimVocabularyConfig(languages=["de"], max_vocab=0.25).max_vocab == 0.25
    assert TrimVocabularyConfig(languages=["de"], max_vocab=60000.0).max_vocab == 60000
    with pytest.raises(ValueError, match="whole number"):
        TrimVocabularyConfig(languages=["de"], max_vocab=2.5)


def test_a_general_source_raises_the_coverage_of_held_out_text(monkeypatch, tmp_path):
    """The corpus never writes 'hund', 'zug', 'der'; a word list that does makes the held-out text tokenise as before."""
    monkeypatch.setenv("POLYDISTILL_CACHE", str(tmp_path))  # a made-up word list must not be cached as the real one
    frequencies = [("der", 0.02), ("und", 0.01), ("hund", 0.004), ("zug", 0.003), ("bellt", 0.001)]
    monkeypatch.setattr(general_vocabulary, "wordfreq_words", lambda language, count=0: frequencies if language == "de" else [])
    monkeypatch.setattr(general_vocabulary, "wordfreq_language", lambda language: language)
    tokenizer = build_xlmr_tokenizer()
    plain = trim_vocabulary(tiny_xlmr_mlm(tokenizer), tokenizer, CORPUS, keep_characters="corpus", heldout=HELDOUT)
    general = trim_vocabulary(tiny_xlmr_mlm(tokenizer), tokenizer, CORPUS, general=["wordfreq"], keep_characters="corpus", heldout=HELDOUT)
    before, after = plain.report.heldout_coverage["de"], general.report.heldout_coverage["de"]
    assert before.coverage < 0.7 and before.unchanged_texts == 0
    assert after.coverage > before.coverage
    # each word's pieces, lower-case and capitalised (this vocabulary has no capitals: those spell around <unk>)
    ids = {
        i for word, _ in frequencies for form in (word, word.capitalize()) for i in tokenizer(form, add_special_tokens=False)["input_ids"]
    }
    expected = set(tokenizer.convert_ids_to_tokens(sorted(ids)))
    assert {token for word, _ in frequencies for token in tokenizer.tokenize(word)} <= set(general.tokenizer.get_vocab())
    assert general.tokenizer.tokenize("hund bellt im zug") == tokenizer.tokenize("hund bellt im zug")
    # and, as fallback characters (keep_characters="corpus"), the characters the word list writes
    letters = {character for word, _ in frequencies for character in word} & set(tokenizer.get_vocab())
    assert set(general.tokenizer.get_vocab()) == set(plain.tokenizer.get_vocab()) | expected | letters
    assert general.report.kept["general_text"] == len(expected - set(plain.tokenizer.get_vocab()) - letters)
    assert general.report.sources_by_language["de"] == ["corpus", "wordfreq"]


def test_real_word_lists_rank_common_german_words_first_and_skip_languages_they_lack():
    tokenizer = build_xlmr_tokenizer()
    encoder, state = tokenizer.backend_tokenizer, tokenizer_state(tokenizer)
    found = general_vocabulary.language_distributions(encoder, state, {}, {}, ["de", "fr", "sw"], sources=["wordfreq", "piece_scores"])
    assert found.wordfreq_languages == {"de": "de", "fr": "fr", "sw": None}  # no Swahili list: never another language's
    german = found.by_source["wordfreq"]["de"]
    und, hund, zug, bellt = tokenizer.convert_tokens_to_ids(["▁und", "▁hund", "▁zug", "▁bellt"])
    # German text says 'und' far more often than 'Hund' or 'Zug', and those more often than 'bellt'
    assert german[und] > german[hund] > german.get(bellt, 0.0) and german[zug] > german.get(bellt, 0.0)
    assert "sw" not in found.by_source["wordfreq"] and "sw" not in found.by_source["piece_scores"]  # nor Latin scripts it never wrote
    assert found.by_source["piece_scores"]["de"]  # German's Latin letters come from its word list


def test_word_list_summaries_are_cached_per_tokenizer_and_rebuilt_when_unreadable(monkeypatch, tmp_path):
    monkeypatch.setenv("POLYDISTILL_CACHE", str(tmp_path))
    frequencies = [("der", 0.02), ("Straße", 0.01), ("zug", 0.003)]
    calls: list[str] = []

    def word_list(language, count=0):
        calls.append(language)
        return frequencies

    monkeypatch.setattr(general_vocabulary, "wordfreq_words", word_list)
    monkeypatch.setattr(general_vocabulary, "wordfreq_language", lambda language: language)
    tokenizer = build_xlmr_tokenizer()
    encoder, state = tokenizer.backend_tokenizer, tokenizer_state(tokenizer)

    def summary():
        found = general_vocabulary.language_distributions(encoder, state, {}, {}, ["de"], sources=["wordfreq"])
        return found.by_source["wordfreq"]["de"], found.characters

    first = summary()
    assert calls == ["de"]
    assert first[0] == word_token_distribution(encoder, piece_scores(state), frequencies)
    assert first[1] == set("derStraßezug")
    (entry,) = (tmp_path / "vocabulary").iterdir()
    assert summary() == first and calls == ["de"]  # read back exactly, the word list not read again

    changed = copy.deepcopy(state)  # another tokenizer (one piece's score differs): another entry
    changed["model"]["vocab"][-2][1] -= 1.0
    general_vocabulary.language_distributions(encoder, changed, {}, {}, ["de"], sources=["wordfreq"])
    assert calls == ["de", "de"] and len(list((tmp_path / "vocabulary").iterdir())) == 2

    entry.write_text('{"distribution": {"5": ', encoding="utf-8")  # a torn write: read again, rewritten
    assert summary() == first and calls == ["de", "de", "de"]
    assert summary() == first and calls == ["de", "de", "de"]


def test_ranked_tokens_share_a_budget_between_languages():
    order = ranked_tokens({"a": {1: 0.5, 2: 0.3, 3: 0.2}, "b": {4: 0.6, 1: 0.4}})
    # best ranks: 1 -> 0 (in a), 4 -> 0 (in b), 2 -> 1, 3 -> 2; ties by summed share (1: 0.9 > 4: 0.6)
    assert order == [1, 4, 2, 3]


def test_capitalised_share_follows_the_piece_scores():
    scores = {1: -5.0, 2: -5.0 + math.log(3)}  # the capitalised piece three times as likely
    assert _capitalised_share([1], [2], scores) == pytest.approx(0.75)
    assert _capitalised_share([1], [2], None) == general_vocabulary.DEFAULT_CAPITALISED_SHARE


def test_word_distribution_credits_each_words_pieces_by_frequency():
    tokenizer = build_xlmr_tokenizer()
    state = tokenizer_state(tokenizer)
    scores = {index: score for index, (_piece, score) in enumerate(state["model"]["vocab"])}
    distribution = word_token_distribution(tokenizer.backend_tokenizer, piece_scores(state), [("haus", 0.03), ("дом", 0.01)])

    def lower_share(word: str) -> float:  # the lower-case spelling's share: its pieces' summed scores against the capitalised one's
        lower = sum(scores[i] for i in tokenizer.convert_tokens_to_ids(tokenizer.tokenize(word)))
        upper = sum(scores[i] for i in tokenizer.convert_tokens_to_ids(tokenizer.tokenize(word.capitalize())))
        return math.exp(lower) / (math.exp(lower) + math.exp(upper))

    haus, dom = tokenizer.convert_tokens_to_ids(["▁haus", "▁дом"])
    assert distribution[haus] / distribution[dom] == pytest.approx(3 * lower_share("haus") / lower_share("дом"))
    assert sum(distribution.values()) == pytest.approx(1.0)
