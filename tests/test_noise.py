"""Seeded noise for robustness scores: expected outputs are worked out by hand (the accents a text
loses, the edits a typo may be), never replayed from the code."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import unicodedata

import pytest

from polydistill.errors import PolydistillError
from polydistill.evaluation.noise import NoiseSettings, add_noise, describe_noise, noise_settings_dict

ONLY_TYPOS = NoiseSettings(typo_rate=1.0, diacritics_rate=0.0, case_rate=0.0)
ONLY_DIACRITICS = NoiseSettings(typo_rate=0.0, diacritics_rate=1.0, case_rate=0.0)
ONLY_CASE = NoiseSettings(typo_rate=0.0, diacritics_rate=0.0, case_rate=1.0)

MIXED_TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Café naïve Ελληνικά ёлка",
    "Удалить %(count)s файлов из {0}?",
    "東京タワーへ行きました。",
    "مُحَمَّد رسول",
    "हिन्दी भाषा बहुत सुंदर है",
    "한국어 텍스트",
    "Tiếng Việt có dấu",
    "See https://example.com/Path?q=1 or mail info@example.org",
    "",
    "   ",
    "42",
]

QWERTY_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
ROW_OFFSETS = (0.0, 0.25, 0.75)  # how far each row of a real keyboard sits to the right of the one above


def key_position(letter: str) -> tuple[int, float]:
    for row, keys in enumerate(QWERTY_ROWS):
        if letter in keys:
            return row, keys.index(letter) + ROW_OFFSETS[row]
    raise AssertionError(f"{letter!r} is not a letter key")


def keys_touch(a: str, b: str) -> bool:
    (row_a, x_a), (row_b, x_b) = key_position(a.lower()), key_position(b.lower())
    return a.lower() != b.lower() and abs(row_a - row_b) <= 1 and abs(x_a - x_b) <= 1.0


def damerau_distance(a: str, b: str) -> int:
    """Optimal string alignment distance: insertions, deletions, substitutions, adjacent swaps."""
    d = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) + 1):
        d[i][0] = i
    for j in range(len(b) + 1):
        d[0][j] = j
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[len(a)][len(b)]


def edit_kind(before: str, after: str) -> str:
    """Which one edit turned ``before`` into ``after`` (the caller checked the distance is 1)."""
    if len(after) == len(before) - 1:
        return "delete"
    if len(after) == len(before) + 1:
        return "double"
    differing = [i for i, (x, y) in enumerate(zip(before, after, strict=True)) if x != y]
    return "swap" if len(differing) == 2 else "key"


def within_binomial(count: int, n: int, p: float, sigmas: float = 4.0) -> bool:
    return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p))


# --- determinism --------------------------------------------------------------------------------


def test_same_settings_give_the_same_noise() -> None:
    settings = NoiseSettings(typo_rate=0.5, diacritics_rate=0.5, case_rate=0.5, seed=7)
    assert add_noise(MIXED_TEXTS, settings) == add_noise(list(MIXED_TEXTS), settings)


def test_a_text_noise_does_not_depend_on_the_other_texts() -> None:
    settings = NoiseSettings(typo_rate=0.5, diacritics_rate=0.5, case_rate=0.5, seed=3)
    alone = add_noise(MIXED_TEXTS, settings)
    others = add_noise(["something else entirely"] * 3 + MIXED_TEXTS[3:] + ["and more", "text"], settings)
    assert others[3 : len(MIXED_TEXTS)] == alone[3:]


def test_noise_does_not_depend_on_the_python_hash_seed() -> None:
    script = (
        "import json, sys; from polydistill.evaluation.noise import NoiseSettings, add_noise; "
        "texts = json.loads(sys.stdin.read()); "
        "print(json.dumps(add_noise(texts, NoiseSettings(typo_rate=0.5, diacritics_rate=0.5, case_rate=0.5, seed=11))))"
    )
    outputs = []
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        done = subprocess.run(
            [sys.executable, "-c", script], input=json.dumps(MIXED_TEXTS), capture_output=True, text=True, env=env, check=True
        )
        outputs.append(json.loads(done.stdout))
    assert outputs[0] == outputs[1]


def test_another_seed_gives_other_noise() -> None:
    texts = ["The quick brown fox jumps over the lazy dog"] * 20
    first = add_noise(texts, NoiseSettings(typo_rate=0.5, seed=0))
    second = add_noise(texts, NoiseSettings(typo_rate=0.5, seed=1))
    assert first != second


def test_a_higher_typo_rate_keeps_the_typos_of_a_lower_one() -> None:
    """Each word compares its own draw with the rate: at 0.5 the words of 0.2 have the same typos."""
    texts = ["alpha bravo charlie delta echo foxtrot golf hotel india juliet"] * 30
    low = add_noise(texts, NoiseSettings(typo_rate=0.2, diacritics_rate=0, case_rate=0, seed=5))
    high = add_noise(texts, NoiseSettings(typo_rate=0.5, diacritics_rate=0, case_rate=0, seed=5))
    clean_words = texts[0].split()
    for low_text, high_text in zip(low, high, strict=True):
        for clean, low_word, high_word in zip(clean_words, low_text.split(), high_text.split(), strict=True):
            if low_word != clean:
                assert high_word == low_word


# --- rates 0 and 1 ------------------------------------------------------------------------------


def test_rates_zero_give_the_texts_back() -> None:
    for seed in range(5):
        assert add_noise(MIXED_TEXTS, NoiseSettings(typo_rate=0, diacritics_rate=0, case_rate=0, seed=seed)) == MIXED_TEXTS


def test_typo_rate_one_makes_one_edit_in_every_word() -> None:
    text = "The quick Brown fox jumps over a lazy dog, then sleeps all afternoon."
    clean_words = text.split()
    kinds = set()
    for seed in range(60):
        (noisy,) = add_noise([text], NoiseSettings(typo_rate=1.0, diacritics_rate=0, case_rate=0, seed=seed))
        noisy_words = noisy.split()
        assert len(noisy_words) == len(clean_words)
        for clean, word in zip(clean_words, noisy_words, strict=True):
            if len(clean) == 1:  # "a": one letter, left alone
                assert word == clean
                continue
            assert damerau_distance(clean, word) == 1, (clean, word)
            kind = edit_kind(clean, word)
            kinds.add(kind)
            if kind == "key":
                (position,) = [i for i, (x, y) in enumerate(zip(clean, word, strict=True)) if x != y]
                assert keys_touch(clean[position], word[position]), (clean, word)
                assert clean[position].isupper() == word[position].isupper()
            assert re.sub(r"[A-Za-z]", "", word) == re.sub(r"[A-Za-z]", "", clean)  # punctuation stays
    assert kinds == {"swap", "delete", "double", "key"}


def test_typos_leave_placeholders_digits_urls_and_markup_alone() -> None:
    protected = [
        "%(name)s",
        "{0}",
        "%s",
        "%1$d",
        "{count}",
        "${user}",
        "https://example.com/Some/Path?id=42",
        "info@example.org",
        "<b>",
        "&amp;",
    ]
    text = "Hello %(name)s, you have {0} new messages and %s drafts from %1$d senders in 2024 {count} ${user} " + (
        "https://example.com/Some/Path?id=42 info@example.org <b>bold</b> &amp; more 3.14"
    )
    for seed in range(30):
        (noisy,) = add_noise([text], NoiseSettings(typo_rate=1.0, diacritics_rate=0, case_rate=0, seed=seed))
        assert noisy != text
        for piece in protected:
            assert piece in noisy, (piece, noisy)
        assert re.findall(r"\d", noisy) == re.findall(r"\d", text)


def test_no_text_comes_back_empty() -> None:
    texts = ["ab", "é", "\u064e", "Ok", "x", "日本"]
    for seed in range(20):
        noisy = add_noise(texts, NoiseSettings(typo_rate=1.0, diacritics_rate=1.0, case_rate=1.0, seed=seed))
        assert all(noisy), noisy


def test_typos_keep_marks_on_a_letter() -> None:
    """A Devanagari vowel sign or virama always follows a consonant, before and after a typo."""
    text = "हिन्दी भाषा बहुत सुंदर है"
    for seed in range(30):
        (noisy,) = add_noise([text], NoiseSettings(typo_rate=1.0, diacritics_rate=0, case_rate=0, seed=seed))
        for word in noisy.split():
            assert not unicodedata.category(word[0]).startswith("M"), noisy


def test_scripts_without_spaces_get_one_typo_per_four_characters() -> None:
    text = "東京タワーへ行きました"  # 11 characters: words of 4, 4 and 3
    for seed in range(20):
        (noisy,) = add_noise([text], NoiseSettings(typo_rate=1.0, diacritics_rate=0, case_rate=0, seed=seed))
        assert 1 <= damerau_distance(text, noisy) <= 3


def test_emoji_and_digits_only_texts_are_untouched_by_typos() -> None:
    texts = ["👍🏽 👨‍👩‍👧", "2024-05-01 12:30", "!!!"]
    assert add_noise(texts, ONLY_TYPOS) == texts


# --- diacritics -----------------------------------------------------------------------------------


def test_latin_greek_cyrillic_lose_their_accents() -> None:
    texts = ["Café naïve Ελληνικά ёлка", "Tiếng Việt", "Łódź", "Cafe\u0301"]  # the last one decomposed
    assert add_noise(texts, ONLY_DIACRITICS) == ["Cafe naive Ελληνικα елка", "Tieng Viet", "Lodz", "Cafe"]


def test_letters_and_scripts_whose_marks_are_spelling_are_kept() -> None:
    texts = ["йод Йошкар-Ола", "हिन्दी", "が", "か\u3099", "한국어", "ўсё"]
    noisy = add_noise(texts, ONLY_DIACRITICS)
    assert noisy[:5] == texts[:5]
    assert noisy[5] == "ўсе"  # ў keeps its breve, ё becomes е


def test_arabic_loses_its_harakat() -> None:
    assert add_noise(["مُحَمَّد", "عَرَبِيّ"], ONLY_DIACRITICS) == ["محمد", "عربي"]


# --- case -----------------------------------------------------------------------------------------


def test_case_changes_are_lower_upper_or_first_letter() -> None:
    seen = set()
    for seed in range(40):
        (noisy,) = add_noise(["Hello World"], NoiseSettings(typo_rate=0, diacritics_rate=0, case_rate=1.0, seed=seed))
        seen.add(noisy)
    assert seen == {"hello world", "HELLO WORLD", "hello World"}


def test_case_leaves_caseless_scripts_alone() -> None:
    texts = ["中文 日本語", "हिन्दी", "العربية", "한국어", "ქართული", "ᏣᎳᎩ"]
    for seed in range(10):
        assert add_noise(texts, NoiseSettings(typo_rate=0, diacritics_rate=0, case_rate=1.0, seed=seed)) == texts
    for seed in range(10):
        (noisy,) = add_noise(["Hello ქართული"], NoiseSettings(typo_rate=0, diacritics_rate=0, case_rate=1.0, seed=seed))
        assert noisy in {"hello ქართული", "HELLO ქართული"}


def test_turkish_case_uses_dotted_and_dotless_i() -> None:
    seen = set()
    for seed in range(40):
        (noisy,) = add_noise(["KIŞ İzmir"], NoiseSettings(typo_rate=0, diacritics_rate=0, case_rate=1.0, seed=seed), languages=["tr-TR"])
        seen.add(noisy)
    assert seen == {"kış izmir", "KIŞ İZMİR", "kIŞ İzmir"}


# --- rates ----------------------------------------------------------------------------------------


def test_the_share_of_noisy_texts_is_near_each_rate() -> None:
    n = 2000
    texts = [f"Élan número {i} déjà vu" for i in range(n)]
    diacritics = add_noise(texts, NoiseSettings(typo_rate=0, diacritics_rate=0.3, case_rate=0, seed=1))
    assert within_binomial(sum(a != b for a, b in zip(texts, diacritics, strict=True)), n, 0.3)
    case = add_noise(texts, NoiseSettings(typo_rate=0, diacritics_rate=0, case_rate=0.2, seed=1))
    assert within_binomial(sum(a != b for a, b in zip(texts, case, strict=True)), n, 0.2)


def test_the_share_of_words_with_a_typo_is_near_the_rate() -> None:
    n = 2000
    texts = ["alpha bravo charlie delta echo"] * n
    noisy = add_noise(texts, NoiseSettings(typo_rate=0.05, diacritics_rate=0, case_rate=0, seed=2))
    changed = sum(
        a != b for text, noisy_text in zip(texts, noisy, strict=True) for a, b in zip(text.split(), noisy_text.split(), strict=True)
    )
    assert within_binomial(changed, 5 * n, 0.05)


# --- settings, validation, description ---------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [("typo_rate", 1.5), ("typo_rate", -0.1), ("diacritics_rate", float("nan")), ("case_rate", "0.2"), ("seed", -1), ("seed", 1.5)],
)
def test_invalid_settings_name_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field) as raised:
        NoiseSettings(**{field: value})  # type: ignore[arg-type]
    assert isinstance(raised.value, PolydistillError)


def test_non_string_texts_name_the_index() -> None:
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        add_noise(["fine", 3])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="one string"):
        add_noise("not a list")
    with pytest.raises(ValueError, match="languages"):
        add_noise(["a", "b"], languages=["en"])


def test_description_and_dict_state_the_rates_and_seed() -> None:
    settings = NoiseSettings(typo_rate=0.05, diacritics_rate=0.3, case_rate=0.2, seed=4)
    sentence = describe_noise(settings)
    assert "5% of words" in sentence and "30% of texts" in sentence and "20% of texts" in sentence and "seed 4" in sentence
    assert sentence.count(".") == 1 and sentence.endswith(".")
    assert noise_settings_dict(settings) == {"typo_rate": 0.05, "diacritics_rate": 0.3, "case_rate": 0.2, "seed": 4}
    assert "No noise" in describe_noise(NoiseSettings(typo_rate=0, diacritics_rate=0, case_rate=0))
