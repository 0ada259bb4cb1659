"""The cross-lingual levers of issue 13, one run each, on the quick demo's config (benchmarks/README.md,
"Every language as good as the teacher's best").

Each variant is ``polydistill demo --quick``'s config without compression and with the teacher's full
6 fine-tuning epochs (the full demo's teacher, fine-tuned once and then reused from the cache), with
the variant's change merged in. Run one at a time, alone on the machine:

    python benchmarks/crosslingual_levers.py runs/levers [--only NAME ...]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

QUICK = {"training": {"num_train_epochs": 5, "learning_rate": 3e-4}}
TRAIN_LANGUAGES = ["en", "de", "ja", "ar"]
VARIANTS: dict[str, dict[str, Any]] = {
    "quick": {},
    "alignment": {"objectives": {"cross_lingual_alignment": {"weight": 1.0}}},
    "hidden-states": {"objectives": {"hidden_states": {"weight": 1.0}}},
    "gold-labels": {"objectives": {"labels": {"weight": 0.5}}},
    "four-layers": {"student": {"keep_layers": [0, 4, 8, 11]}},
    "eight-epochs": {"training": {"num_train_epochs": 8}},
    "sphinx-text": {
        "training": {"num_train_epochs": 3},
        "data": {
            "train": [
                {"path": "catalogs:django-components", "split": "train", "languages": TRAIN_LANGUAGES, "teacher_text_column": "en"},
                {
                    "path": "catalogs:sphinx",
                    "split": "train",
                    "languages": TRAIN_LANGUAGES,
                    "teacher_text_column": "en",
                    "source_language": "en",
                    "label_column": None,
                },
            ]
        },
    },
}


def merge(target: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            merge(target[key], value)
        else:
            target[key] = value
    return target


def variant_config(name: str) -> dict[str, Any]:
    from polydistill.commands.demo import demo_config_dict

    raw = demo_config_dict("classification", languages=None, quick=True)
    raw["teacher"]["finetune"]["training"]["num_train_epochs"] = 6
    return merge(merge(raw, json.loads(json.dumps(QUICK))), json.loads(json.dumps(VARIANTS[name])))


def main() -> None:
    from polydistill.config import validate_config
    from polydistill.training.run import run

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--only", nargs="*", choices=sorted(VARIANTS), help="variants to run (default: all)")
    args = parser.parse_args()
    rows = []
    for name in args.only or list(VARIANTS):
        started = time.perf_counter()
        result = run(validate_config(variant_config(name)), output_dir=args.out / name, overwrite=True)
        assert result.metrics is not None
        languages = result.metrics["languages"]
        teacher_english = languages["en"]["teacher"]["macro_f1"]
        rows.append(
            {
                "variant": name,
                "seconds": round(time.perf_counter() - started),
                "student": {code: round(entry["student"]["macro_f1"], 3) for code, entry in languages.items()},
                "teacher": {code: round(entry["teacher"]["macro_f1"], 3) for code, entry in languages.items()},
                "en_retention": round(languages["en"]["retention"]["macro_f1"], 3),
                "worst_vs_teacher_english": round(min(entry["student"]["macro_f1"] for entry in languages.values()) / teacher_english, 3),
            }
        )
        print(json.dumps(rows[-1]))
    (args.out / "levers.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
