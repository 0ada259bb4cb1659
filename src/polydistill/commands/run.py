"""``polydistill run CONFIG``: one whole distillation run from a YAML config."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("run", help="run a distillation from a YAML config", description=__doc__)
    parser.add_argument("config", help="run config (YAML)")
    parser.add_argument("--out", help="output directory (overrides output_dir in the config)")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from polydistill.config import load_config
    from polydistill.training.run import run

    config = load_config(args.config)
    result = run(config, output_dir=args.out)
    print(result.student_dir)
    return 0
