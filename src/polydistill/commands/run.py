"""``polydistill run CONFIG``: one whole distillation run from a YAML config."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("run", help="run a distillation from a YAML config", description=__doc__)
    parser.add_argument("config", help="run config (YAML)")
    parser.add_argument("--out", help="output directory (overrides output_dir in the config)")
    add_output_options(parser)
    parser.set_defaults(func=_run)


def add_output_options(parser: argparse.ArgumentParser) -> None:
    """--resume / --overwrite: what a run does with an output directory that already holds something."""
    existing = parser.add_mutually_exclusive_group()
    existing.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in the output directory from its newest checkpoint (after a crash, a kill, or a fixed divergence)",
    )
    add_overwrite_option(existing)


def add_overwrite_option(parser: argparse.ArgumentParser | argparse._MutuallyExclusiveGroup) -> None:
    """--overwrite: start afresh in an output directory that holds something (polydistill.output_dir)."""
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="start afresh in an output directory that holds something: its contents are moved aside to <dir>.previous-<time>, not deleted",
    )


def _run(args: argparse.Namespace) -> int:
    from polydistill.config import load_config
    from polydistill.training.run import is_main_process, run

    config = load_config(args.config)
    result = run(config, output_dir=args.out, overwrite=args.overwrite, resume=args.resume)
    if is_main_process():  # one line per launch, not per rank
        print(result.student_dir)
    return 0
