"""Translation retrieval with an offline model loaded by ``SentenceTransformer``.

For each language, English msgids and their human translations (msgstr) from Django's own
catalogs (``django/conf/locale/<lang>/LC_MESSAGES/django.po``) are embedded; each English string
retrieves the nearest translation among all translations of that language, and top-1 accuracy is
the share that retrieve their own. This checks that a converted model is the real thing, not
just a model that loads.

    python benchmarks/offline_retrieval.py                           # offline:multilingual-e5-small
    python benchmarks/offline_retrieval.py --model DIR --prompt none  # any saved directory
    python benchmarks/offline_retrieval.py --model offline:all-MiniLM-L6-v2

Pairs: translated, non-fuzzy, non-obsolete, singular entries; placeholders (``%(name)s``, ``%s``,
``{name}``) and HTML tags stripped from both sides; English of at least 4 words; duplicated
English or translated strings dropped so that every query has exactly one right answer.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

PLACEHOLDER = re.compile(r"%\([^)]*\)[a-zA-Z]|%[a-zA-Z%]|\{[^{}]*\}|<[^<>]+>")
SPACES = re.compile(r"\s+")
DEFAULT_LANGUAGES = ("de", "fr", "ru", "ja")


def clean(text: str) -> str:
    return SPACES.sub(" ", PLACEHOLDER.sub(" ", text)).strip()


def catalog_paths(language: str, catalogs: str) -> list[Path]:
    """Django's core catalog for ``language`` or, with ``catalogs='all'``, every app's too."""
    import django

    root = Path(django.__file__).parent
    if catalogs == "core":
        paths = [root / "conf" / "locale" / language / "LC_MESSAGES" / "django.po"]
    else:
        paths = sorted(root.glob(f"**/locale/{language}/LC_MESSAGES/*.po"))
    paths = [path for path in paths if path.is_file()]
    if not paths:
        raise SystemExit(f"no Django catalog for language '{language}'")
    return paths


def django_pairs(language: str, min_words: int = 4, catalogs: str = "core") -> list[tuple[str, str]]:
    """(English, translation) pairs of Django's catalogs for ``language``."""
    import polib

    pairs: list[tuple[str, str]] = []
    seen_source: set[str] = set()
    seen_target: set[str] = set()
    entries = [entry for path in catalog_paths(language, catalogs) for entry in polib.pofile(str(path))]
    for entry in entries:
        if entry.obsolete or "fuzzy" in entry.flags or entry.msgid_plural or not entry.msgstr:
            continue
        source, target = clean(entry.msgid), clean(entry.msgstr)
        if len(source.split()) < min_words or not target:
            continue
        if source in seen_source or target in seen_target:
            continue
        seen_source.add(source)
        seen_target.add(target)
        pairs.append((source, target))
    return pairs


def top1_accuracy(model: object, pairs: list[tuple[str, str]], prompt_name: str | None) -> float:
    import numpy as np

    sources = [source for source, _ in pairs]
    targets = [target for _, target in pairs]
    kwargs = {"prompt_name": prompt_name} if prompt_name else {}
    source_vectors = model.encode(sources, normalize_embeddings=True, batch_size=64, **kwargs)
    target_vectors = model.encode(targets, normalize_embeddings=True, batch_size=64, **kwargs)
    best = (source_vectors @ target_vectors.T).argmax(axis=1)
    return float((best == np.arange(len(pairs))).mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model",
        default="offline:multilingual-e5-small",
        help="offline:<name>, or a directory (e.g. one written by `polydistill models save`)",
    )
    parser.add_argument("--languages", nargs="+", default=list(DEFAULT_LANGUAGES))
    parser.add_argument("--prompt", default="query", help="prompt name of the model to use, or 'none'")
    parser.add_argument("--min-words", type=int, default=4)
    parser.add_argument(
        "--catalogs", choices=("core", "all"), default="core", help="core: django/conf/locale only; all: every Django app's catalog too"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    from polydistill.models.zoo import resolve_model_path

    directory = resolve_model_path(args.model)
    model = SentenceTransformer(str(directory), device="cpu")
    prompt_name = None if args.prompt == "none" else args.prompt
    if prompt_name and prompt_name not in model.prompts:
        print(f"note: {args.model} has no prompt '{prompt_name}'; encoding without one", file=sys.stderr)
        prompt_name = None

    results: dict[str, dict[str, float | int]] = {}
    print(f"model {args.model} ({directory}), prompt {prompt_name or 'none'}, catalogs {args.catalogs}")
    print(f"{'lang':<9}{'pairs':>7}{'top-1':>8}{'seconds':>9}")
    for language in args.languages:
        pairs = django_pairs(language, args.min_words, args.catalogs)
        started = time.perf_counter()
        accuracy = top1_accuracy(model, pairs, prompt_name)
        seconds = time.perf_counter() - started
        results[language] = {"pairs": len(pairs), "top1": round(accuracy, 4)}
        print(f"{language:<9}{len(pairs):>7}{accuracy:>8.3f}{seconds:>9.1f}")
    if args.json:
        summary = {"model": args.model, "prompt": prompt_name, "catalogs": args.catalogs, "min_words": args.min_words, "results": results}
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
