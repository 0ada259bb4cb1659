"""The objective registry: every objective declares itself once, beside its module.

A module in :mod:`polydistill.objectives` that defines an objective ends with
``register(ObjectiveSpec(...))``: its name (the key under ``objectives:`` in a run config), its
pydantic config section, the tasks it applies to, how it is built from its section and the two
models, and what it needs from the run (layer checks, eager attention, a layer map). Everything
that used to list the objectives by hand is derived from :func:`registered`: the run config's
``objectives`` section and its task check (:mod:`polydistill.config`), :func:`build_objectives`,
and the teacher cache's fields (each built module's :meth:`Objective.teacher_fields`). A new
objective is one new file in this package; :func:`registered` finds it.

This module imports neither torch nor the config, so the config can import it without a cycle.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from polydistill.objectives.base import Objective

#: the order the objectives had before the registry. It is the order their terms are summed in
#: (so the loss stays bit-identical) and the order a config error lists them in; objectives
#: added since follow, by name.
_FIRST = (
    "soft_targets",
    "hard_targets",
    "labels",
    "hidden_states",
    "attentions",
    "attention_relations",
    "embedding_mse",
    "embedding_cosine",
    "embedding_similarity",
)


class ObjectiveConfig(BaseModel):
    """The section of one objective; every objective has a weight (0 turns it off)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    weight: float = Field(default=1.0, ge=0)


#: builds the module from its section: ``build(section, teacher_config=, student_config=, layer_maps=)``
Build = Callable[..., "Objective"]
#: ``check_layers(section, teacher_layers, student_layers)`` -> (field in the section, problem) pairs
CheckLayers = Callable[[Any, int, int], Iterable[tuple[str, str]]]


@dataclass(frozen=True)
class ObjectiveSpec:
    """What the rest of polydistill needs to know about one objective.

    ``check_layers`` refuses layer indices the teacher or the student does not have, before any
    weights are loaded (the run raises the first problem as a ``ConfigError`` naming
    ``objectives.<name>.<field>``). ``needs_attention_weights``: the models must run with eager
    attention (SDPA returns no weights). ``needs_layer_map(section)``: the objective reads the
    student -> teacher layer map the run builds, so a student that cannot have one is refused.
    The teacher-cache fields are not here: they depend on the built module (its mapped layers),
    which answers them itself (:meth:`Objective.teacher_fields`).
    """

    name: str
    config: type[ObjectiveConfig]
    tasks: frozenset[str]
    build: Build
    check_layers: CheckLayers | None = None
    needs_attention_weights: bool = False
    needs_layer_map: Callable[[Any], bool] | None = None

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"objective name {self.name!r} is not a valid config key")
        if not self.tasks:
            raise ValueError(f"objective {self.name!r}: name at least one task it applies to")


_SPECS: dict[str, ObjectiveSpec] = {}


def register(spec: ObjectiveSpec) -> ObjectiveSpec:
    """Add an objective; two modules may not claim the same name."""
    existing = _SPECS.get(spec.name)
    if existing is not None and existing is not spec:
        raise ValueError(f"objective {spec.name!r} is registered twice")
    _SPECS[spec.name] = spec
    return spec


@cache
def _import_all() -> None:
    import polydistill.objectives as package

    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{module.name}")


def registered() -> dict[str, ObjectiveSpec]:
    """Every objective of the package, by name, in a stable order (see ``_FIRST``)."""
    _import_all()

    def position(name: str) -> tuple[int, str]:
        return (_FIRST.index(name), "") if name in _FIRST else (len(_FIRST), name)

    return {name: _SPECS[name] for name in sorted(_SPECS, key=position)}
