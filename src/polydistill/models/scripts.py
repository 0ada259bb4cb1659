"""Which writing system a character belongs to, for choosing the fallback characters of a vocabulary.

The standard library has no Unicode Script property; the first word of a character's Unicode
name (``CYRILLIC SMALL LETTER A``) is a close approximation for letters and marks.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Iterable

#: single characters that belong to no script yet occur in any language's text
_SHARED_CATEGORIES = frozenset({"Nd", "Nl", "No", "Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po", "Sm", "Sc", "Sk", "Zs"})
#: first words of Unicode names that name a script by another word, or no script at all
_SCRIPT_ALIASES = {
    "CJK": "Han",
    "IDEOGRAPHIC": "Han",
    "HIRAGANA": "Kana",
    "KATAKANA": "Kana",
    "KATAKANA-HIRAGANA": "Kana",
}
_NAME_QUALIFIERS = frozenset({"FULLWIDTH", "HALFWIDTH", "SMALL", "MATHEMATICAL", "PARENTHESIZED", "CIRCLED"})
_NO_SCRIPT = frozenset({"COMBINING", "MODIFIER", "VARIATION", "CARON", "ZERO", "TAG"})


@functools.lru_cache(maxsize=1 << 17)
def character_script(character: str) -> str | None:
    """The writing system of a letter or mark, from its Unicode name; None for shared characters.

    An approximation of the Unicode Script property (which the standard library lacks): the
    first word of the name (``CYRILLIC SMALL LETTER A``), with Han and kana named as such.
    Digits, punctuation, symbols and combining marks return None. Memoised: a trim asks it of
    every character of 250,000 pieces, a few thousand distinct characters.
    """
    if unicodedata.category(character)[0] not in "LM":
        return None
    words = unicodedata.name(character, "").split()
    while len(words) > 1 and words[0] in _NAME_QUALIFIERS:
        words = words[1:]
    if not words or words[0] in _NO_SCRIPT:
        return None
    return _SCRIPT_ALIASES.get(words[0], words[0].title())


def is_shared_character(character: str) -> bool:
    return character_script(character) is None and (
        unicodedata.category(character) in _SHARED_CATEGORIES or unicodedata.category(character)[0] == "M"
    )


def scripts_of(characters: Iterable[str]) -> set[str]:
    """The writing systems ``characters`` belong to (Latin, Cyrillic, Han...); shared characters name none."""
    return {script for character in characters if (script := character_script(character)) is not None}
