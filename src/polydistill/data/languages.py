"""Language codes: normalise gettext/POSIX/ISO spellings to one BCP 47 tag per language.

Data arrive with many spellings of one language: gettext directories (``pt_BR``, ``zh_Hans``,
``sr@latin``, ``zh_TW.Big5``), ISO 639-2 codes (``deu``), deprecated ones (``iw``). Counting,
balancing and reporting per language needs one spelling, so every code that enters polydistill
goes through :func:`normalize_language`.

The knowledge comes from CLDR through ``babel`` (a dependency of Sphinx): language, script and
region subtags are *known* when CLDR names them or has likely-subtags data for them; deprecated
and three-letter codes are replaced by CLDR's language aliases.

Rules, in order:
- a codeset suffix (``.UTF-8``, ``.Big5``) is dropped; the gettext modifiers ``@latin`` /
  ``@cyrillic`` become the scripts ``Latn`` / ``Cyrl``; other modifiers become variants
  (``ca@valencia`` -> ``ca-valencia``);
- subtags are separated by ``-`` and cased as BCP 47 recommends (``zh-Hant-TW``, ``pt-BR``);
- Chinese is told apart by script, as Django does: a Chinese tag with a region and no script
  gets the region's likely script, and the region is dropped where it is that script's default
  (``zh_CN`` -> ``zh-Hans``, ``zh_TW`` -> ``zh-Hant``, ``zh_HK`` -> ``zh-Hant-HK``);
- other regions are kept (``pt-BR`` and ``pt`` stay distinct, as do ``de-DE`` and ``de``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

from polydistill.errors import DataError

__all__ = [
    "UNDETERMINED",
    "is_known_language",
    "language_name",
    "normalize_language",
    "normalize_languages",
]

#: BCP 47 tag for "language not given" (rows without a language column).
UNDETERMINED = "und"

_SCRIPT_MODIFIERS = {"latin": "Latn", "cyrillic": "Cyrl", "arabic": "Arab", "devanagari": "Deva"}
_SUBTAG = re.compile(r"^[A-Za-z0-9]{1,8}$")


@functools.lru_cache(maxsize=1)
def _cldr() -> tuple[frozenset[str], frozenset[str], frozenset[str], frozenset[str], dict[str, str], dict[str, str]]:
    """Known language, script, region and variant subtags, language aliases and likely subtags."""
    from babel import Locale
    from babel.core import get_global

    english = Locale("en")
    likely: dict[str, str] = dict(get_global("likely_subtags"))
    languages = {str(code) for code in english.languages if "_" not in str(code)}
    languages |= {code for code in likely if "_" not in code and code != "und"}
    aliases: dict[str, str] = dict(get_global("language_aliases"))
    languages |= set(aliases)
    scripts = frozenset(str(code) for code in english.scripts)
    regions = frozenset(str(code) for code in english.territories)
    variants = frozenset(str(variant).lower() for variant in english.variants)
    return frozenset(languages), scripts, regions, variants, aliases, likely


@functools.lru_cache(maxsize=4096)
def normalize_language(code: str) -> str:
    """Return the BCP 47 tag for ``code``; raise ``ValueError`` naming what is unknown."""
    if not isinstance(code, str) or not code.strip():
        raise ValueError(f"empty language code {code!r}")
    raw = code.strip()
    languages, scripts, regions, known_variants, aliases, likely = _cldr()

    body, _, modifier = raw.partition("@")
    body = body.split(".", 1)[0]  # codeset suffix such as .UTF-8 or .Big5
    parts = [part for part in re.split(r"[-_]", body)]
    if not parts or any(not _SUBTAG.match(part) for part in parts):
        raise ValueError(f"'{raw}' is not a language tag (expected e.g. 'de', 'pt-BR', 'zh-Hans')")

    language = parts[0].lower()
    if language == UNDETERMINED and len(parts) == 1:
        return UNDETERMINED
    alias = aliases.get(language)
    script: str | None = None
    region: str | None = None
    variants: list[str] = []
    if alias:
        alias_parts = alias.split("_")
        language = alias_parts[0]
        for extra in alias_parts[1:]:
            if len(extra) == 4:
                script = extra
            else:
                region = extra
    if language not in languages or not re.fullmatch(r"[a-z]{2,3}", language):
        raise ValueError(f"'{raw}' has an unknown language subtag '{parts[0]}'")

    for part in parts[1:]:
        if len(part) == 4 and part.isalpha() and script is None and region is None and not variants:
            script = part.title()
            if script not in scripts:
                raise ValueError(f"'{raw}' has an unknown script subtag '{part}'")
        elif (len(part) == 2 and part.isalpha()) or (len(part) == 3 and part.isdigit()):
            if region is not None or variants:
                raise ValueError(f"'{raw}' has more than one region subtag")
            region = part.upper()
            if region not in regions:
                raise ValueError(f"'{raw}' has an unknown region subtag '{part}'")
        elif 5 <= len(part) <= 8 or (len(part) == 4 and part[0].isdigit()):
            variants.append(part.lower())
        else:
            raise ValueError(f"'{raw}' has a subtag '{part}' that is neither script, region nor variant")

    if modifier:
        modifier = modifier.lower()
        if modifier in _SCRIPT_MODIFIERS:
            script = _SCRIPT_MODIFIERS[modifier]
        elif 5 <= len(modifier) <= 8 and modifier.isalnum():
            variants.append(modifier)
        else:
            raise ValueError(f"'{raw}' has an unknown modifier '@{modifier}'")

    for variant in variants:
        if variant not in known_variants:
            raise ValueError(f"'{raw}' has an unknown variant '{variant}'")
    if language == "zh" and region is not None:
        if script is None:
            script = _likely_part(likely.get(f"zh_{region}"), index=1) or "Hans"
        script_default = likely.get(f"zh_{script}")
        if script_default is None and _likely_part(likely.get("zh"), index=1) == script:
            script_default = likely.get("zh")  # CLDR lists zh -> zh_Hans_CN but no zh_Hans entry
        default_region = _likely_part(script_default, index=2)
        if default_region == region:
            region = None
    return "-".join(part for part in (language, script, region, *variants) if part)


def normalize_languages(languages: Sequence[str] | str) -> list[str]:
    """A list of languages (or one comma/space-separated string) as BCP 47 tags, in order, once each.

    Raises :class:`~polydistill.errors.DataError` ``languages: ...`` for a code that is unknown.
    """
    if isinstance(languages, str):
        languages = [part for part in re.split(r"[,\s]+", languages) if part]
    normalized = []
    for code in languages:
        try:
            normalized.append(normalize_language(code))
        except ValueError as error:
            raise DataError(f"languages: {error}") from None
    return list(dict.fromkeys(normalized))


def _likely_part(likely_tag: str | None, *, index: int) -> str | None:
    if not likely_tag:
        return None
    parts = likely_tag.split("_")
    return parts[index] if len(parts) > index else None


def is_known_language(code: str) -> bool:
    """True when :func:`normalize_language` accepts ``code``."""
    try:
        normalize_language(code)
    except ValueError:
        return False
    return True


@functools.lru_cache(maxsize=1024)
def language_name(tag: str) -> str:
    """English name of a BCP 47 tag ("pt-BR" -> "Portuguese (Brazil)"); the tag itself if unnamed."""
    from babel import Locale

    if tag == UNDETERMINED:
        return "undetermined"
    parts = tag.split("-")
    english = Locale("en")
    name = english.languages.get(parts[0])
    if name is None:
        return tag
    details = []
    for part in parts[1:]:
        detail = english.scripts.get(part) or english.territories.get(part)
        if detail is None:
            detail = english.variants.get(part.upper(), part)
        details.append(detail)
    return f"{name} ({', '.join(details)})" if details else name
