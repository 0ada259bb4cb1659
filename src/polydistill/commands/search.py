"""``polydistill search CONFIG``: search the recipe of a run config's ``search:`` section with Optuna.

Every trial is a run of the config with the sampled values (validated first), scored on the
first eval set; trials share the teacher-output cache, and a pruner stops those that fall behind.
The best trial's config is written as OUT/best.yaml (``polydistill run OUT/best.yaml`` reruns it
in full), with a table of the trials, plots and the best student's report. Several workers share
one study through its storage: ``--workers K`` on this machine, or ``--join`` on others with the
same ``--storage`` URL and ``--study`` name.
"""

from __future__ import annotations

import argparse

from polydistill.commands.run import add_overwrite_option


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "search", help="search a recipe's settings with Optuna (the config's search: section)", description=__doc__
    )
    parser.add_argument("config", help="run config (YAML) with a search: section")
    parser.add_argument("--out", help="output directory (default: the config's output_dir + '-search')")
    parser.add_argument("--trials", type=int, help="trials with a result the study should have (default: search.trials)")
    parser.add_argument("--timeout", type=float, help="seconds after which no new trial starts (default: search.timeout)")
    parser.add_argument(
        "--storage", help="Optuna storage URL: sqlite:///FILE, postgresql://USER@HOST/DB, mysql://..., journal:FILE (default: OUT/study.db)"
    )
    parser.add_argument("--study", dest="study_name", help="study name (default: the config file's name)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes on this machine, the cores shared among them (default 1)")
    parser.add_argument(
        "--join",
        action="store_true",
        help="run trials from the queue of a study another polydistill search started (same --storage and --study); writes no results",
    )
    parser.add_argument("--seed-offset", type=int, default=0, help=argparse.SUPPRESS)  # each worker process samples with its own seed
    add_overwrite_option(parser)
    parser.set_defaults(func=_search)


def _search(args: argparse.Namespace) -> int:
    from polydistill.search.runner import search

    summary = search(
        args.config,
        out=args.out,
        trials=args.trials,
        timeout=args.timeout,
        storage=args.storage,
        study_name=args.study_name,
        workers=args.workers,
        overwrite=args.overwrite,
        join=args.join,
        seed_offset=args.seed_offset,
    )
    if summary is None:
        return 0
    best = summary.get("best")
    if best is None:
        print("no trial completed; see the trials table in the search report")
        return 1
    print(best["config"])
    return 0
