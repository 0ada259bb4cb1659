"""``polydistill trim``: keep only the vocabulary that some languages use.

polydistill trim offline:multilingual-e5-small --languages de,fr,es,ru,ja --max-vocab 0.25 --out DIR
polydistill trim MODEL --languages de --corpus catalogs:django --corpus de=mails.txt --heldout catalogs:sphinx --out DIR
polydistill trim MODEL --languages de --general none --min-count 2 --out DIR     # the corpus's tokens alone
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from polydistill.models.general_vocabulary import DEFAULT_GENERAL, DEFAULT_TOKENS_PER_LANGUAGE, GENERAL_SOURCES


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "trim",
        help="cut a multilingual model's vocabulary down to the tokens of some languages",
        description=(
            "Choose the tokens the chosen languages use in general (word-frequency lists, the "
            "tokenizer's piece scores) and in a corpus on top, keep the special tokens and fallback "
            "characters, and write a model whose embedding matrix (and MLM head) holds only those "
            "rows, with a tokenizer that maps text to the new ids. Text made only of kept tokens "
            "encodes and embeds exactly as before. A report (trim_report.json) goes beside the model, "
            "with per-language coverage of the corpus and of --heldout text."
        ),
    )
    parser.add_argument("model", metavar="MODEL", help="offline:<name>, a model directory or a Hub id")
    parser.add_argument(
        "--languages",
        required=True,
        type=_language_list,
        help="comma-separated BCP 47 codes of the languages to keep, e.g. de,fr,ja",
    )
    parser.add_argument(
        "--corpus",
        action="append",
        metavar="SOURCE",
        help="text to count tokens on (repeatable): a built-in catalog (catalogs:django, catalogs:sphinx, catalogs:all, catalogs:extra...), "
        "a .txt file (one text a line), a JSONL/CSV/TSV/Parquet file with a 'text' column (and "
        "'lang'), or LANG=PATH for a file in one language (default: catalogs:all)",
    )
    parser.add_argument(
        "--general",
        type=_general_sources,
        default=list(DEFAULT_GENERAL),
        metavar="SOURCES",
        help="general-text sources of each language's tokens, comma-separated: wordfreq (word-frequency lists), "
        f"piece_scores (the tokenizer's SentencePiece scores), or none (default {','.join(DEFAULT_GENERAL)})",
    )
    parser.add_argument(
        "--min-count", type=int, default=1, metavar="N", help="corpus tokens seen fewer than N times are left out (default 1)"
    )
    parser.add_argument(
        "--max-vocab",
        type=_budget,
        default=None,
        metavar="N|SHARE",
        help="the budget: exactly N tokens, or a share of the vocabulary (0.25); default: every corpus token plus "
        "each language's --tokens-per-language most likely tokens",
    )
    parser.add_argument(
        "--tokens-per-language",
        type=int,
        default=DEFAULT_TOKENS_PER_LANGUAGE,
        metavar="N",
        help=f"without --max-vocab: each language's N most likely tokens (default {DEFAULT_TOKENS_PER_LANGUAGE})",
    )
    parser.add_argument(
        "--heldout",
        action="append",
        default=[],
        metavar="SOURCE",
        help="text not used for the choice, as for --corpus (repeatable): the report says how much of it the kept tokens tokenise unchanged",
    )
    parser.add_argument(
        "--keep-characters",
        choices=("scripts", "corpus", "all", "none"),
        default="scripts",
        help="single-character pieces kept so unseen words re-segment instead of becoming <unk>: "
        "all of each script the corpus uses (default), only the corpus's characters, all, or none",
    )
    parser.add_argument(
        "--keep-token",
        action="append",
        default=[],
        metavar="TOKEN",
        help="a token to keep whatever the corpus (repeatable)",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="where to write the trimmed model")
    parser.add_argument("--force", action="store_true", help="write into a non-empty DIR (files of the same name are replaced)")
    parser.set_defaults(func=_trim)


def _language_list(value: str) -> list[str]:
    languages = [part for part in re.split(r"[,\s]+", value) if part]
    if not languages:
        raise argparse.ArgumentTypeError("expected comma-separated language codes, e.g. de,fr,ja")
    return languages


def _general_sources(value: str) -> list[str]:
    sources = [part for part in re.split(r"[,\s]+", value) if part]
    if sources == ["none"]:
        return []
    unknown = [source for source in sources if source not in GENERAL_SOURCES]
    if unknown or not sources:
        raise argparse.ArgumentTypeError(f"expected none or comma-separated {', '.join(GENERAL_SOURCES)}, not {value!r}")
    return sources


def _budget(value: str) -> int | float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number of tokens (60000) or a share of the vocabulary (0.25), not {value!r}"
        ) from None
    if not number > 0 or (number >= 1 and not number.is_integer()):
        raise argparse.ArgumentTypeError(f"expected a number of tokens (60000) or a share of the vocabulary (0.25), not {value!r}")
    return int(number) if number >= 1 else number


def _trim(args: argparse.Namespace) -> int:
    import random
    import time

    from rich.console import Console

    from polydistill.console import console
    from polydistill.data.languages import normalize_languages
    from polydistill.data.sources import DEFAULT_CORPUS, corpus_texts_by_language
    from polydistill.errors import PolydistillError
    from polydistill.models.sentence_transformers_files import sentence_transformers_prompts
    from polydistill.models.trim import save_trimmed, trim_vocabulary, write_report
    from polydistill.models.zoo import resolve_model_path

    started = time.perf_counter()
    out = Path(args.out).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not args.force:
        raise PolydistillError(f"{out} exists and is not empty; choose another --out or pass --force")
    if args.min_count < 1:
        raise PolydistillError(f"--min-count must be at least 1, not {args.min_count}")
    if args.tokens_per_language < 1:
        raise PolydistillError(f"--tokens-per-language must be at least 1, not {args.tokens_per_language}")

    source_dir = resolve_model_path(args.model)
    if source_dir.resolve() == out.resolve():
        raise PolydistillError("--out must differ from the model directory")
    sources = args.corpus or list(DEFAULT_CORPUS)
    console.print(f"reading the corpus ({', '.join(sources)}) for {', '.join(args.languages)}")
    texts = corpus_texts_by_language(sources, args.languages)
    heldout = corpus_texts_by_language(args.heldout, args.languages, require_all=False) if args.heldout else None

    console.print(f"loading {args.model} from {source_dir}")
    model, tokenizer = _load(source_dir)
    prompts = sentence_transformers_prompts(source_dir)
    result = trim_vocabulary(
        model,
        tokenizer,
        texts,
        languages=normalize_languages(args.languages),
        min_count=args.min_count,
        max_vocab=args.max_vocab,
        general=args.general,
        tokens_per_language=args.tokens_per_language,
        heldout=heldout,
        keep_tokens=args.keep_token,
        keep_texts=prompts,
        keep_characters=args.keep_characters,
    )
    report = result.report
    report.model = args.model
    report.corpus = sources

    rng = random.Random(0)
    check_texts = prompts + [text for language_texts in texts.values() for text in rng.sample(language_texts, min(50, len(language_texts)))]
    console.print(f"writing {out}")
    save_trimmed(result, out, source_dir=source_dir, check_texts=check_texts)
    report.seconds = time.perf_counter() - started
    write_report(report, out)  # again, now that the time includes saving
    report.print_table(Console())
    console.print(f"trimmed model written to {out} in {report.seconds:.1f} s (report: {out / 'trim_report.json'})")
    return 0


def _load(directory: Path) -> tuple[Any, Any]:
    """The model class its config names (so a masked-LM or classifier keeps its head) and its tokenizer."""
    import transformers
    from transformers import AutoModel, AutoTokenizer

    from polydistill.errors import PolydistillError
    from polydistill.models.loading import load_model_config, weights_kwargs

    config = load_model_config(directory)
    architectures = getattr(config, "architectures", None) or []
    model_class = getattr(transformers, architectures[0], None) if architectures else None
    if model_class is None:
        model_class = AutoModel
    model = model_class.from_pretrained(directory, dtype="auto", **weights_kwargs()).eval()
    tokenizer = AutoTokenizer.from_pretrained(directory)
    if not getattr(tokenizer, "is_fast", False):
        raise PolydistillError(f"the tokenizer in {directory} is not a fast tokenizer (tokenizer.json); cannot trim it")
    return model, tokenizer
