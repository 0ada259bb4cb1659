"""``polydistill finetune CONFIG``: only the ``teacher.finetune`` step of a run config.

Many users start from an encoder that has not learned their task yet; this teaches it the task
(gold labels, cross-entropy) on the same Trainer machinery and saves it where ``polydistill run``
with the same config will find and reuse it (``OUT/teacher``).
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("finetune", help="fine-tune the teacher of a run config on its task", description=__doc__)
    parser.add_argument("config", help="run config (YAML) with a teacher.finetune section")
    parser.add_argument("--out", help="output directory (overrides output_dir in the config)")
    parser.set_defaults(func=_finetune)


def _finetune(args: argparse.Namespace) -> int:
    from pathlib import Path

    from polydistill.config import load_config
    from polydistill.errors import ConfigError
    from polydistill.models.zoo import resolve_model_path
    from polydistill.training.finetune import finetune_teacher

    config = load_config(args.config)
    if config.teacher.finetune is None:
        raise ConfigError(f"{config.source_file}: teacher.finetune: the config has no finetune section")
    output_dir = Path(args.out or config.output_dir)
    base_dir = resolve_model_path(config.resolve_model(config.teacher.model), revision=config.teacher.revision)
    print(finetune_teacher(config, base_dir, output_dir / "teacher", label_names=None))
    return 0
