"""A second real cross-lingual classification task, from CLDR (through Babel, which Sphinx brings):
is a name the name of a country, a language, a currency or a script?

Every CLDR locale names the same territories, languages, currencies and scripts, written by
human translators, so the English name is the source and each locale's name its translation;
the label is the kind of thing named, the same in every language. The files come in the layout
a user with English labelled data and translations has (issue 13):

- ``train-en.jsonl``: the English names of the train split, labelled (``text``, ``label``, ``lang``);
- ``train-translations.jsonl``: their translations, unlabelled, each with its English source
  (``text``, ``en``, ``lang``);
- ``test.jsonl``: the test split in every language, English included, labelled.

Split by English name (a stable hash), never by row, so no translation of a test name is trained
on. Names shared by two kinds in a language (a script and a language both called "Thai") are dropped.

    python benchmarks/cldr_names.py OUT_DIR --languages de,ja,ar
"""

from __future__ import annotations

import argparse
import json
import re
import zlib
from pathlib import Path

KINDS = ("country", "language", "currency", "script")
TEST_SHARE = 0.3


def names_by_kind(locale: str) -> dict[str, dict[str, str]]:
    """code -> name, per kind, of one CLDR locale (countries with a two-letter code, current currencies)."""
    from babel import Locale

    parsed = Locale.parse(locale)
    return {
        "country": {code: name for code, name in parsed.territories.items() if re.fullmatch(r"[A-Z]{2}", code)},
        "language": {code: name for code, name in parsed.languages.items() if re.fullmatch(r"[a-z]{2}", code)},
        "currency": {code: name for code, name in parsed.currencies.items() if "(" not in name},
        "script": {code: name for code, name in parsed.scripts.items() if "(" not in name},
    }


def in_test_split(english: str) -> bool:
    return zlib.crc32(english.encode()) % 1000 < TEST_SHARE * 1000


def build(out: Path, languages: list[str]) -> dict[str, int]:
    english = names_by_kind("en")
    rows: dict[str, list[dict]] = {"train-en": [], "train-translations": [], "test": []}
    for language in ["en", *[code for code in languages if code != "en"]]:
        local = names_by_kind(language.replace("-", "_"))
        seen: dict[str, set[str]] = {}
        for kind in KINDS:
            for name in local[kind].values():
                seen.setdefault(name.casefold(), set()).add(kind)
        for kind in KINDS:
            for code, name in sorted(local[kind].items()):
                source = english[kind].get(code)
                if source is None or len(seen[name.casefold()]) > 1:
                    continue
                if in_test_split(source):
                    rows["test"].append({"text": name, "label": kind, "lang": language, "en": source})
                elif language == "en":
                    rows["train-en"].append({"text": name, "label": kind, "lang": "en"})
                else:
                    rows["train-translations"].append({"text": name, "en": source, "lang": language})
    out.mkdir(parents=True, exist_ok=True)
    for name, items in rows.items():
        (out / f"{name}.jsonl").write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in items), encoding="utf-8")
    return {name: len(items) for name, items in rows.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--languages", default="de,ja,ar", help="comma-separated CLDR locales besides English")
    args = parser.parse_args()
    counts = build(args.out, [code.strip() for code in args.languages.split(",") if code.strip()])
    print(json.dumps(counts))


if __name__ == "__main__":
    main()
