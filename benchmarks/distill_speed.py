"""Training speed of polydistill against the recipes a user would otherwise pick, at equal quality.

The benchmark lives in ``distill_speed_lib/`` (its docstring, and ``--help``, say what it
measures); this script is its entry point, for the parent and for every child process:

    python benchmarks/distill_speed.py --task both --languages de,ja,ar --epochs 3 --out runs/distill-speed
    python benchmarks/distill_speed.py --quick          # a few steps, one language: checks the script
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from distill_speed_lib.main import main

if __name__ == "__main__":
    sys.exit(main())
