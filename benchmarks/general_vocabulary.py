"""How much translation retrieval a vocabulary-trimmed teacher keeps on a domain it was not trimmed on.

The teacher (multilingual-e5-small, all 12 layers, no distillation) is trimmed to the embeddings
demo's 13 languages with each variant below, then both the trimmed and the untrimmed teacher
retrieve translations (top-1, English to target and back) on held-out catalogs: pairs of
catalogs whose text the trimming never saw. Retention = trimmed / untrimmed, per language.

    python benchmarks/general_vocabulary.py                       # every variant
    python benchmarks/general_vocabulary.py --variants corpus-min2 general-quarter
    python benchmarks/general_vocabulary.py --heldout catalogs:sphinx --out runs/general-vocabulary.json

One process, torch's default threads; the untrimmed teacher's vectors are computed once and shared.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from pathlib import Path
from typing import Any

LANGUAGES = ["en", "de", "fr", "es", "pt-BR", "ru", "uk", "ar", "hi", "ja", "zh-Hans", "ko", "sw"]
GENERAL = ["wordfreq", "piece_scores"]
VARIANTS: dict[str, dict[str, Any]] = {
    # the embeddings demo before issue 14, and the second measurement
    "corpus-min2": {"min_count": 2, "keep_characters": "corpus"},
    "corpus-min1-scripts": {"min_count": 1, "keep_characters": "scripts"},
    # general-text vocabularies under budgets: a quarter and an eighth of the rows, and 24k
    "general-quarter": {"general": GENERAL, "max_vocab": 0.25},
    "general-eighth": {"general": GENERAL, "max_vocab": 0.125},
    "general-24k": {"general": GENERAL, "max_vocab": 24_000},
    # the fallback characters of the text (corpus and word lists) instead of whole scripts (Han alone is 7,692 pieces)
    "general-24k-text-characters": {"general": GENERAL, "max_vocab": 24_000, "keep_characters": "corpus"},
    "general-quarter-text-characters": {"general": GENERAL, "max_vocab": 0.25, "keep_characters": "corpus"},
    "wordfreq-quarter": {"general": ["wordfreq"], "max_vocab": 0.25},
    # no budget: every corpus token plus each language's 4,000 most likely (the default)
    "general-default": {"general": GENERAL},
    "corpus-quarter": {"general": [], "max_vocab": 0.25},
}


def heldout_pairs(specs: list[str]) -> Any:
    """Every pair of the held-out catalogs in the served languages (regional tags folded: uk-UA -> uk)."""
    from polydistill.data import catalogs
    from polydistill.data.columns import dataset_from_columns

    columns: dict[str, list[str]] = {"text": [], "translation": [], "lang": []}
    for spec in specs:
        pairs = catalogs.catalog_pairs(spec.removeprefix("catalogs:"))
        for text, translation, lang in zip(pairs["text"], pairs["translation"], pairs["lang"], strict=True):
            served = next((code for code in LANGUAGES if lang == code or lang.split("-")[0] == code and "-" not in code), None)
            if served is not None and served != "en":
                columns["text"].append(text)
                columns["translation"].append(translation)
                columns["lang"].append(served)
    import datasets

    return dataset_from_columns(columns, datasets.Features({name: datasets.Value("string") for name in columns}))


def corpus_by_language(pairs: Any) -> dict[str, list[str]]:
    """The held-out text per language, for the trim report's held-out coverage."""
    texts: dict[str, list[str]] = {"en": sorted(set(pairs["text"]))}
    for translation, lang in zip(pairs["translation"], pairs["lang"], strict=True):
        texts.setdefault(lang, []).append(translation)
    return texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--corpus", nargs="*", default=["catalogs:django"], help="the trimming corpus")
    parser.add_argument("--heldout", nargs="*", default=["catalogs:sphinx"], help="held-out catalogs to retrieve on")
    parser.add_argument("--out", default="runs/general-vocabulary.json")
    args = parser.parse_args()

    import numpy as np

    from polydistill.data.sources import corpus_texts_by_language
    from polydistill.evaluation.retrieval import evaluate_embeddings
    from polydistill.models.loading import load_encoder, load_tokenizer
    from polydistill.models.pooling import encoder_function
    from polydistill.models.trim import trim_vocabulary
    from polydistill.models.zoo import resolve_model_path

    teacher_dir = resolve_model_path("offline:multilingual-e5-small")
    teacher, tokenizer = load_encoder(teacher_dir), load_tokenizer(teacher_dir)
    pairs = heldout_pairs(args.heldout)
    corpus = corpus_texts_by_language(args.corpus, LANGUAGES)
    heldout_texts = corpus_by_language(pairs)
    teacher_encode = encoder_function(teacher, tokenizer, prefix="query: ", max_length=64)
    memo: dict[str, np.ndarray] = {}

    def cached_teacher(texts: list[str]) -> np.ndarray:
        missing = [text for text in texts if text not in memo]
        if missing:
            memo.update(zip(missing, teacher_encode(missing), strict=True))
        return np.stack([memo[text] for text in texts])

    results: dict[str, Any] = {}
    for name in args.variants:
        started = time.perf_counter()
        trimmed = trim_vocabulary(
            copy.deepcopy(teacher), tokenizer, corpus, languages=LANGUAGES, keep_texts=["query: "], heldout=heldout_texts, **VARIANTS[name]
        )
        seconds = time.perf_counter() - started
        quality = evaluate_embeddings(
            encoder_function(trimmed.model, trimmed.tokenizer, prefix="query: ", max_length=64), pairs, teacher_encode=cached_teacher
        )
        retention = {
            language: (entry["student"]["top1_en_to_x"] + entry["student"]["top1_x_to_en"])
            / max(1e-9, entry["teacher"]["top1_en_to_x"] + entry["teacher"]["top1_x_to_en"])
            for language, entry in quality["languages"].items()
        }
        report = trimmed.report.to_dict()
        results[name] = {
            "settings": VARIANTS[name],
            "rows": trimmed.report.vocab_after,
            "row_share": trimmed.report.vocab_after / trimmed.report.vocab_before,
            "kept": report["kept"],
            "trim_seconds": round(seconds, 1),
            "retention_top1": {language: round(value, 4) for language, value in retention.items()},
            "mean_retention": round(statistics.mean(retention.values()), 4),
            "min_retention": round(min(retention.values()), 4),
            "heldout_unchanged": {language: entry["unchanged_text_share"] for language, entry in report["heldout_coverage"].items()},
            "heldout_token_coverage": {language: entry["coverage"] for language, entry in report["heldout_coverage"].items()},
        }
        worst = min(retention, key=lambda language: retention[language])
        print(
            f"{name:22} rows {trimmed.report.vocab_after:>7,} ({results[name]['row_share']:.1%})  "
            f"retention mean {results[name]['mean_retention']:.1%}  worst {retention[worst]:.1%} ({worst})  "
            + " ".join(f"{language} {value:.0%}" for language, value in retention.items()),
            flush=True,
        )
        del trimmed
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"corpus": args.corpus, "heldout": args.heldout, "variants": results}, indent=2) + "\n")
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
