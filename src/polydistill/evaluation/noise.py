"""Seeded, realistic noise for robustness scores: typos, dropped diacritics, changed case.

A student that matches its teacher on clean test text can still fall apart on what users type.
:func:`add_noise` turns test texts into the kind of text seen in the field (the character-level
noise of nlpaug / TextAttack: typos and keyboard slips, accents left out, case changed), so the
evaluation can score teacher and student per language on the *same* noisy texts.

What one text gets, in this order (each decided independently of the others):

1. **Typos**, per word. A word is a whitespace-separated token; in scripts written without spaces
   (Han, Hiragana, Katakana, Thai, Lao, Khmer, Myanmar) each run of up to
   :data:`UNSPACED_WORD_LENGTH` characters counts as one word. ``typo_rate`` is the share of
   words that get exactly one typo, among the words that have two or more letters a typo may
   touch (a one-letter word is left alone). One typo is one of: swap two adjacent, different
   letters; delete a letter; double a letter; replace a Latin letter a-z with a neighbouring
   key on a QWERTY keyboard, keeping its case. The kind is drawn uniformly from those the word
   allows, then the letter. Only letters change: digits, punctuation, symbols and emoji never
   do, nor anything inside a format placeholder (``%(name)s``, ``%s``, ``%1$d``, ``{0}``,
   ``{name}``, ``${x}``, ``{{ x }}``, ICU ``{n, plural, ...}`` keywords), a URL, an e-mail address
   or markup (``<b>``, ``&amp;``). Edits work on grapheme-like units (a character plus the
   combining or spacing marks, joiners and variation selectors that follow it), so a Devanagari
   vowel sign or an accent moves or goes with its letter and never lands on another.
2. **Dropped diacritics**, for a share ``diacritics_rate`` of texts. Latin, Greek and Cyrillic
   letters lose their combining marks (NFD, marks of category Mn dropped, NFC again), and
   ``ł ø đ ħ ı`` (letters with a built-in stroke or without a dot, which no decomposition
   splits) become ``l o d h i``, as a user without the right keyboard types them. Letters whose
   mark makes a different letter that users do not leave out keep it: Cyrillic ``й ў ї ѓ ќ``
   (``ё`` becomes ``е``, as Russian writing commonly does). Arabic loses its harakat
   (U+064B-U+065F, U+0670) and Hebrew its points and cantillation marks: modern writing leaves
   both out. Other scripts are left as they are: a Devanagari vowel sign, a Japanese dakuten or a
   Hangul jamo is part of the spelling, and dropping it destroys the word rather than adding noise.
3. **Changed case**, for a share ``case_rate`` of texts: all lower-case, all upper-case, or the
   first letter lower-cased, drawn uniformly among those that change the text (a text whose
   case nothing can change stays as it is). Only scripts with case in everyday writing change;
   Georgian (whose Mtavruli capitals are for titles) and Cherokee keep their letters. With
   ``languages`` given, Turkish and Azerbaijani texts use their own dotted and dotless i
   (``I`` <-> ``ı``, ``İ`` <-> ``i``): Python's language-neutral mapping would turn ``KIŞ`` into
   ``kiş``, a different word, where a Turkish user types ``kış``.

Determinism: text ``i`` draws all its randomness from ``numpy.random.default_rng([NOISE_STREAM_TAG,
seed, i])``, always in the same order and number (three draws for the text, then four per word,
whether or not the word gets a typo). The same text at the same index with the same settings
therefore always gets the same noise, whatever the other texts are and whatever Python's hash
seed; another seed gives other noise. Because every decision compares its own draw with its own
rate, raising one rate adds noise without moving the rest: the words with a typo at
``typo_rate=0.05`` also have the same typo at ``0.1``, and the texts that lose their diacritics
do not depend on ``typo_rate`` or ``case_rate``.

A non-empty text never comes back empty (a word keeps a letter; a text of nothing but marks
that would lose them all is returned as it was).
"""

from __future__ import annotations

import functools
import itertools
import numbers
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields

import numpy as np

from polydistill.errors import PolydistillError

__all__ = [
    "NOISE_STREAM_TAG",
    "UNSPACED_WORD_LENGTH",
    "NoiseInputError",
    "NoiseInputTypeError",
    "NoiseSettings",
    "NoiseSettingsError",
    "add_noise",
    "describe_noise",
    "noise_settings_dict",
]

NOISE_STREAM_TAG = 0x6E6F6973
"""First word of every text's seed ("nois" in ASCII): keeps the noise draws apart from any other
stream a caller seeds with the same ``seed``."""

UNSPACED_WORD_LENGTH = 4
"""Characters that make one word for typos in scripts written without spaces (a Chinese or
Japanese word is mostly 1-4 characters, a Thai syllable cluster a few)."""


class NoiseSettingsError(PolydistillError, ValueError):
    """A :class:`NoiseSettings` field out of range: names the field and the value."""


class NoiseInputError(PolydistillError, ValueError):
    """Texts or languages :func:`add_noise` cannot use: names the argument and the index."""


class NoiseInputTypeError(NoiseInputError, TypeError):
    """A text or language that is not a string: names the index and the type found."""


@dataclass(frozen=True)
class NoiseSettings:
    """How much noise :func:`add_noise` adds; the module docstring says what each rate means.

    ``typo_rate`` is the share of words (of two or more letters) that get exactly one typo;
    ``diacritics_rate`` the share of texts whose optional diacritics are dropped; ``case_rate``
    the share of texts whose case is changed; ``seed`` picks which words and texts.
    """

    typo_rate: float = 0.05
    diacritics_rate: float = 0.3
    case_rate: float = 0.2
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("typo_rate", "diacritics_rate", "case_rate"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= float(value) <= 1.0:
                raise NoiseSettingsError(f"NoiseSettings.{name} must be a number from 0 to 1, got {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, numbers.Integral) or self.seed < 0:
            raise NoiseSettingsError(f"NoiseSettings.seed must be an integer >= 0, got {self.seed!r}")


def noise_settings_dict(settings: NoiseSettings) -> dict[str, float | int]:
    """The settings as plain numbers, for a metrics file or a report's provenance."""
    return {
        "typo_rate": float(settings.typo_rate),
        "diacritics_rate": float(settings.diacritics_rate),
        "case_rate": float(settings.case_rate),
        "seed": int(settings.seed),
    }


def describe_noise(settings: NoiseSettings) -> str:
    """One plain sentence for a report: what was done to the texts, at which rates, with which seed."""
    if all(float(getattr(settings, f.name)) == 0.0 for f in fields(settings) if f.name != "seed"):
        return f"No noise was added to the test texts (all rates 0, seed {settings.seed})."
    return (
        f"Test texts were made noisy with seed {settings.seed}: "
        f"{_percent(settings.typo_rate)} of words got one typo (two letters swapped, a letter deleted, "
        f"doubled or replaced by a neighbouring QWERTY key), "
        f"{_percent(settings.diacritics_rate)} of texts lost their optional diacritics (accents, Arabic and Hebrew vowel marks), "
        f"and {_percent(settings.case_rate)} of texts had their case changed (all lower, all upper or first letter lower); "
        f"digits, placeholders and URLs were left untouched."
    )


def _percent(rate: float) -> str:
    return f"{float(rate) * 100:.4g}%"


def add_noise(
    texts: Sequence[str],
    settings: NoiseSettings = NoiseSettings(),  # noqa: B008 (frozen, so one shared default is safe)
    *,
    languages: Sequence[str] | None = None,
) -> list[str]:
    """Return ``texts`` with seeded typos, dropped diacritics and changed case (see the module docstring).

    ``languages``, one BCP 47 tag per text when given, is used only for the case of Turkish and
    Azerbaijani (``tr``, ``az``: dotted and dotless i); without it every text is cased the
    language-neutral way.
    """
    if isinstance(texts, str):
        raise NoiseInputTypeError("texts must be a sequence of strings, got one string")
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise NoiseInputTypeError(f"texts[{index}] must be a string, got {type(text).__name__}")
    if languages is not None:
        if isinstance(languages, str):
            raise NoiseInputTypeError("languages must be a sequence of language tags, got one string")
        if len(languages) != len(texts):
            raise NoiseInputError(f"languages has {len(languages)} entries but texts has {len(texts)}; give one language per text")
        for index, language in enumerate(languages):
            if not isinstance(language, str):
                raise NoiseInputTypeError(f"languages[{index}] must be a string, got {type(language).__name__}")
    return [
        _noisy_text(text, index, settings, turkic=languages is not None and _is_turkic(languages[index]))
        for index, text in enumerate(texts)
    ]


def _noisy_text(text: str, index: int, settings: NoiseSettings, *, turkic: bool) -> str:
    rng = np.random.default_rng([NOISE_STREAM_TAG, int(settings.seed), index])
    diacritics_draw, case_draw, case_kind_draw = rng.random(3)
    noisy = _add_typos(text, rng, float(settings.typo_rate))
    if diacritics_draw < settings.diacritics_rate:
        noisy = _drop_diacritics(noisy)
    if case_draw < settings.case_rate:
        noisy = _change_case(noisy, case_kind_draw, turkic=turkic)
    return noisy


# ---------------------------------------------------------------------------------------------
# Units and words


@functools.lru_cache(maxsize=4096)
def _char_name(char: str) -> str:
    return unicodedata.name(char, "")


def _attaches(char: str) -> bool:
    """Whether ``char`` belongs to the unit before it rather than starting one of its own."""
    code = ord(char)
    return (
        unicodedata.category(char).startswith("M")
        or unicodedata.combining(char) != 0
        or char in "\u200c\u200d"  # zero-width (non-)joiner
        or 0xFE00 <= code <= 0xFE0F  # variation selectors
        or 0xE0100 <= code <= 0xE01EF
        or 0x1F3FB <= code <= 0x1F3FF  # emoji skin tones
        or 0xE0020 <= code <= 0xE007F  # emoji tags
        or 0x1160 <= code <= 0x11FF  # conjoining Hangul vowels and final consonants
        or 0xD7B0 <= code <= 0xD7FF
    )


def _units(text: str) -> list[str]:
    """``text`` cut into grapheme-like units: a character plus the marks and joiners after it."""
    units: list[str] = []
    for char in text:
        if units and (_attaches(char) or units[-1].endswith("\u200d")):
            units[-1] += char
        else:
            units.append(char)
    return units


_UNSPACED_SCRIPTS = (
    "CJK UNIFIED IDEOGRAPH",
    "CJK COMPATIBILITY IDEOGRAPH",
    "HIRAGANA",
    "KATAKANA",
    "HALFWIDTH KATAKANA",
    "THAI",
    "LAO",
    "KHMER",
    "MYANMAR",
)


def _is_letter(unit: str) -> bool:
    return unicodedata.category(unit[0]).startswith("L")


def _is_unspaced_letter(unit: str) -> bool:
    return _is_letter(unit) and _char_name(unit[0]).startswith(_UNSPACED_SCRIPTS)


def _words(units: Sequence[str]) -> list[list[int]]:
    """Indices of the units of each word: whitespace splits words, and a run of letters of a script
    written without spaces is cut into words of :data:`UNSPACED_WORD_LENGTH` units."""
    words: list[list[int]] = []
    current: list[int] = []
    current_unspaced = False
    for position, unit in enumerate(units):
        if unit[0].isspace() or unit[0] == "\u200b":  # zero-width space separates Thai and Khmer words
            if current:
                words.append(current)
            current = []
            continue
        unspaced = _is_unspaced_letter(unit)
        if current and (unspaced != current_unspaced or (unspaced and len(current) == UNSPACED_WORD_LENGTH)):
            words.append(current)
            current = []
        current.append(position)
        current_unspaced = unspaced
    if current:
        words.append(current)
    return words


# ---------------------------------------------------------------------------------------------
# Typos

_PROTECTED = re.compile(
    r"(?:https?|ftp)://\S+|www\.\S+"  # URLs
    r"|[\w.+-]+@[\w-]+(?:\.[\w-]+)+"  # e-mail addresses
    r"|%(?:\d+\$)?(?:\([^)\s]*\))?[-#0+]*(?:\d+|\*)?(?:\.(?:\d+|\*)?)?[hlL]?[A-Za-z%]"  # printf, strftime
    r"|%\([^)\s]*\)|%\d+"  # a named placeholder without its conversion; Qt's %1
    r"|\$\{[^{}]*\}|\{\{.*?\}\}|\{%.*?%\}"  # ${x}, {{ x }}, {% tag %}
    r"|\{\s*\w+\s*,\s*\w+\s*,?"  # the head of an ICU argument: {count, plural,
    r"|(?:\b(?:zero|one|two|few|many|other)|=\d+)\s*(?=\{)"  # ICU plural selectors
    r"|\{[^{}]*\}"  # str.format {0}, {name}, {}
    r"|</?[^\W\d_][^<>]*>|<!--.*?-->|&#?\w+;",  # markup tags, comments, entities
    re.DOTALL,
)

_QWERTY_NEIGHBOURS = {
    "q": "wa",
    "w": "qeas",
    "e": "wrsd",
    "r": "etdf",
    "t": "ryfg",
    "y": "tugh",
    "u": "yihj",
    "i": "uojk",
    "o": "ipkl",
    "p": "ol",
    "a": "qwsz",
    "s": "weadzx",
    "d": "ersfxc",
    "f": "rtdgcv",
    "g": "tyfhvb",
    "h": "yugjbn",
    "j": "uihknm",
    "k": "iojlm",
    "l": "opk",
    "z": "asx",
    "x": "zsdc",
    "c": "xdfv",
    "v": "cfgb",
    "b": "vghn",
    "n": "bhjm",
    "m": "njk",
}
"""Keys next to each letter key (same row, and the two touching keys of the rows above and below)."""


def _protected_units(text: str, units: Sequence[str]) -> list[bool]:
    protected_chars = [False] * len(text)
    for match in _PROTECTED.finditer(text):
        protected_chars[match.start() : match.end()] = [True] * (match.end() - match.start())
    flags = []
    start = 0
    for unit in units:
        flags.append(any(protected_chars[start : start + len(unit)]))
        start += len(unit)
    return flags


def _pick(draw: float, count: int) -> int:
    return min(int(draw * count), count - 1)


def _add_typos(text: str, rng: np.random.Generator, rate: float) -> str:
    units = _units(text)
    words = _words(units)
    draws = rng.random((len(words), 4))  # always drawn, so the stream does not depend on the rate
    if rate == 0.0 or not words:
        return text
    protected = _protected_units(text, units)
    editable = [not protected[i] and _is_letter(unit) for i, unit in enumerate(units)]
    noisy = list(units)
    for word, (select_draw, kind_draw, position_draw, key_draw) in zip(words, draws, strict=True):
        letters = [i for i in word if editable[i]]
        if select_draw >= rate or len(letters) < 2:
            continue
        letter_set = set(letters)
        swaps = [i for i in letters if i + 1 in letter_set and units[i] != units[i + 1]]
        keys = [i for i in letters if len(units[i]) == 1 and units[i].lower() in _QWERTY_NEIGHBOURS]
        kinds = (["swap"] if swaps else []) + ["delete", "double"] + (["key"] if keys else [])
        kind = kinds[_pick(kind_draw, len(kinds))]
        if kind == "swap":
            i = swaps[_pick(position_draw, len(swaps))]
            noisy[i], noisy[i + 1] = units[i + 1], units[i]
        elif kind == "delete":
            noisy[letters[_pick(position_draw, len(letters))]] = ""
        elif kind == "double":
            i = letters[_pick(position_draw, len(letters))]
            noisy[i] = units[i] * 2
        else:
            i = keys[_pick(position_draw, len(keys))]
            neighbours = _QWERTY_NEIGHBOURS[units[i].lower()]
            key = neighbours[_pick(key_draw, len(neighbours))]
            noisy[i] = key.upper() if units[i].isupper() else key
    return "".join(noisy)


# ---------------------------------------------------------------------------------------------
# Diacritics

_MARKED_SCRIPTS = ("LATIN", "GREEK", "CYRILLIC")
_KEEP_MARK = frozenset("йЙўЎїЇѓЃќЌ")
_UNDECOMPOSED = str.maketrans("łŁøØđĐħĦı", "lLoOdDhHi")
_ARABIC_HARAKAT = frozenset([chr(code) for code in range(0x064B, 0x0660)] + ["\u0670"])
_HEBREW_POINTS = frozenset(chr(code) for code in range(0x0591, 0x05C8) if unicodedata.category(chr(code)) == "Mn")
_OPTIONAL_MARKS = _ARABIC_HARAKAT | _HEBREW_POINTS


def _strip_marks(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text)
    return unicodedata.normalize("NFC", "".join(c for c in decomposed if unicodedata.category(c) != "Mn"))


def _unit_without_diacritics(unit: str) -> str:
    if _is_letter(unit) and _char_name(unit[0]).startswith(_MARKED_SCRIPTS):
        composed = unicodedata.normalize("NFC", unit)
        if composed[0] in _KEEP_MARK:
            return composed[0] + _strip_marks(composed[1:])
        return _strip_marks(unit).translate(_UNDECOMPOSED)
    if any(char in _OPTIONAL_MARKS for char in unit):
        return "".join(char for char in unit if char not in _OPTIONAL_MARKS)
    return unit


def _drop_diacritics(text: str) -> str:
    stripped = "".join(_unit_without_diacritics(unit) for unit in _units(text))
    return stripped if stripped.strip() or not text.strip() else text


# ---------------------------------------------------------------------------------------------
# Case

_CASELESS_IN_PRACTICE = ("GEORGIAN", "CHEROKEE")
_TURKIC_LANGUAGES = frozenset({"tr", "az"})


def _is_turkic(language: str) -> bool:
    return re.split(r"[-_]", language.strip(), maxsplit=1)[0].lower() in _TURKIC_LANGUAGES


def _keeps_case(char: str) -> bool:
    return _char_name(char).startswith(_CASELESS_IN_PRACTICE)


def _lower(text: str, *, turkic: bool) -> str:
    return text.replace("I", "ı").replace("İ", "i").lower() if turkic else text.lower()


def _upper(text: str, *, turkic: bool) -> str:
    return text.replace("i", "İ").upper() if turkic else text.upper()


def _cased_parts(text: str, convert: Callable[[str], str]) -> str:
    """``convert`` applied to each run of characters outside the scripts that keep their case."""
    parts = []
    for keeps, group in itertools.groupby(text, key=_keeps_case):
        run = "".join(group)
        parts.append(run if keeps else convert(run))
    return "".join(parts)


def _first_letter_lower(text: str, *, turkic: bool) -> str:
    for position, char in enumerate(text):
        if char.isalpha():
            if _keeps_case(char):
                return text
            return text[:position] + _lower(char, turkic=turkic) + text[position + 1 :]
    return text


def _change_case(text: str, kind_draw: float, *, turkic: bool) -> str:
    candidates = [
        _cased_parts(text, functools.partial(_lower, turkic=turkic)),
        _cased_parts(text, functools.partial(_upper, turkic=turkic)),
        _first_letter_lower(text, turkic=turkic),
    ]
    changed = [candidate for candidate in candidates if candidate != text]
    return changed[_pick(kind_draw, len(changed))] if changed else text
