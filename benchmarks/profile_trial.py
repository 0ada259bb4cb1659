"""Where a search trial's time goes outside training: a few short trials of a study's config, profiled.

    python benchmarks/search_demo.py --out runs/search-demo   # writes OUT/search.yaml when its study starts
    python benchmarks/profile_trial.py runs/search-demo/search.yaml --steps 20 --trials 3

Each trial is the study's trial config (the search section's baseline values) cut to ``--steps``
training steps, run one after another in this process as a search worker runs them (the student
reused inside :func:`~polydistill.training.student_setup.reusing_students`), each timed, the last
profiled with cProfile (the top functions by cumulative time printed, the full profile written
beside the trials).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path, help="a run config with a search section (search_demo.py writes OUT/search.yaml)")
    parser.add_argument("--out", type=Path, default=Path("runs/profile-trial"))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--top", type=int, default=30, help="functions shown, by cumulative time")
    args = parser.parse_args()

    from polydistill.search.runner import load_search
    from polydistill.search.trial import trial_config
    from polydistill.training.run import run
    from polydistill.training.student_setup import reusing_students

    setup = load_search(args.config, out=args.out)
    profile = cProfile.Profile()
    with reusing_students():
        for index in range(args.trials):
            directory = (args.out / f"trial-{index}").resolve()
            config = trial_config(setup, {"training.max_steps": args.steps}, directory)
            last = index == args.trials - 1
            started = time.perf_counter()
            if last:
                profile.enable()
            run(config, directory, evaluate=False, overwrite=True)
            if last:
                profile.disable()
            print(f"trial {index}: {time.perf_counter() - started:.1f} s ({args.steps} steps)", file=sys.stderr)
    profile.dump_stats(str(args.out / "last-trial.prof"))
    pstats.Stats(profile, stream=sys.stderr).sort_stats("cumulative").print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
