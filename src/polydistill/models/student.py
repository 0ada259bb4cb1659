"""Build a student from a teacher: fewer layers copied from chosen teacher layers, or narrower.

Copying whole layers (DistilBERT's initialisation) gives the student a head start that a fresh
model needs many more steps to reach. A narrower student built here starts fresh (``student.init:
random``); by default a run instead prunes the copied layers to the narrower widths, keeping the
teacher's most important channels (:mod:`polydistill.compress.prune`, ``student.init: pruned``).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel

#: transformer layers are ``...layer.<i>.`` in BERT, XLM-R (encoder.layer) and DistilBERT (transformer.layer)
_LAYER_KEY = re.compile(r"^(.*\.layer\.)(\d+)(\..*)$")

#: config attribute holding the feed-forward width, where families disagree on the name
_INTERMEDIATE_ATTRIBUTE = {"distilbert": "hidden_dim"}


@dataclass
class StudentModel:
    model: PreTrainedModel
    #: teacher layers the student's layers were copied from, in order; None for a fresh student
    kept_layers: list[int] | None


def spread_layers(keep: int, total: int) -> list[int]:
    """``keep`` layer indices spread evenly over ``total``, first and last included."""
    if not 1 <= keep <= total:
        raise ValueError(f"cannot keep {keep} of {total} layers")
    if keep == 1:
        return [0]
    return sorted({round(i * (total - 1) / (keep - 1)) for i in range(keep)})


def num_layers(model: PreTrainedModel) -> int:
    return model.config.num_hidden_layers


def build_student(
    base: PreTrainedModel,
    *,
    keep_layers: int | list[int] | None = None,
    hidden_size: int | None = None,
    intermediate_size: int | None = None,
    num_attention_heads: int | None = None,
) -> StudentModel:
    """A new model of ``base``'s class with the chosen layers of ``base`` (weights copied).

    With any width argument the student is initialised fresh from the derived config instead,
    since weights of another width cannot be copied.
    """
    total = num_layers(base)
    if keep_layers is None:
        kept = list(range(total))
    elif isinstance(keep_layers, int):
        kept = spread_layers(keep_layers, total)
    else:
        kept = list(keep_layers)
        if max(kept) >= total:
            raise ValueError(f"layer {max(kept)} does not exist; the model has layers 0..{total - 1}")

    config = copy.deepcopy(base.config)
    config.num_hidden_layers = len(kept)
    narrower = any(v is not None for v in (hidden_size, intermediate_size, num_attention_heads))
    if hidden_size is not None:
        config.hidden_size = hidden_size
    if num_attention_heads is not None:
        config.num_attention_heads = num_attention_heads
    if intermediate_size is not None:
        setattr(config, _INTERMEDIATE_ATTRIBUTE.get(config.model_type, "intermediate_size"), intermediate_size)
    if config.hidden_size % config.num_attention_heads:
        raise ValueError(f"hidden_size {config.hidden_size} is not divisible by num_attention_heads {config.num_attention_heads}")

    student = type(base)._from_config(config)
    if narrower:
        return StudentModel(model=student, kept_layers=None)
    student.load_state_dict(_copy_layers(base.state_dict(), student.state_dict().keys(), kept), strict=True)
    return StudentModel(model=student, kept_layers=kept)


def _copy_layers(base_state: dict[str, torch.Tensor], student_keys, kept: list[int]) -> dict[str, torch.Tensor]:
    state = {}
    for key in student_keys:
        match = _LAYER_KEY.match(key)
        source = f"{match.group(1)}{kept[int(match.group(2))]}{match.group(3)}" if match else key
        state[key] = base_state[source].detach().clone()
    return state
