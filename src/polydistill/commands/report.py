"""``polydistill report RUN_DIR``: (re)write report.md, report.html and plots from metrics.json."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="write report.md, a self-contained report.html and plots from RUN_DIR/metrics.json",
        description=(
            "Read RUN_DIR/metrics.json (written by `polydistill eval` or at the end of a run) and write "
            "RUN_DIR/report.md, RUN_DIR/report.html (one file, plots embedded) and RUN_DIR/plots/*.png."
        ),
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="directory holding metrics.json")
    parser.set_defaults(func=run_report)


def run_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from polydistill.console import console
    from polydistill.evaluation.report import check_lines, is_compression_only, read_report_metrics, status_headline, verdict, write_report

    run_dir = Path(args.run_dir)
    paths = write_report(run_dir)
    metrics = read_report_metrics(run_dir)
    if is_compression_only(metrics):
        for line in check_lines(metrics):
            console.print(line.text)
    else:
        status, sentence = verdict(metrics)
        colour = {"ok": "green", "warn": "yellow", "bad": "red"}.get(status, "cyan")
        console.print(f"[bold {colour}]{status_headline(metrics, status)}.[/] {sentence}")
    console.print(f"Wrote {paths['html']} and {paths['markdown']}")
    return 0
