"""The ``search:`` section of a run config: what a study varies, what it optimises, how it samples and prunes.

A search space names run-config fields by their dotted path (``training.learning_rate``,
``objectives.soft_targets.temperature``, ``student.keep_layers``, ``data.train.0.weight``) and
gives each a range or a list of choices::

    search:
      space:
        objectives.soft_targets.temperature: {float: [1, 8], log: true}
        training.learning_rate: {float: [1.0e-5, 1.0e-3], log: true}
        student.keep_layers: {choices: [[0, 6, 11], [0, 4, 8, 11]]}
        training.num_train_epochs: {int: [2, 6]}
      optimize: mean            # or worst, or several: [mean, latency]
      trials: 20

The section itself holds no behaviour; :mod:`polydistill.search.space` turns it into Optuna
distributions and trial configs. It lives beside the run config (``polydistill run`` ignores it)
so that its errors name their line like every other field's.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator, model_validator

#: what a study can optimise: the primary metric's mean over languages or its worst language
#: (maximised), the student's batch-1 latency in ms or its parameter count (minimised)
OBJECTIVE_DIRECTIONS: dict[str, Literal["maximize", "minimize"]] = {
    "mean": "maximize",
    "worst": "maximize",
    "latency": "minimize",
    "size": "minimize",
}
QUALITY_OBJECTIVES = ("mean", "worst")
Objective = Literal["mean", "worst", "latency", "size"]

# the range models name their fields float and int, as the YAML does; their annotations use these
Real = float
Integer = int


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FloatRange(_Section):
    """``{float: [low, high], log: true, step: 0.5}``: a real value in the closed range."""

    float: tuple[Real, Real]
    log: bool = False
    step: Real | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _range(self) -> FloatRange:
        low, high = self.float
        if not low <= high:
            raise ValueError(f"the range [{low}, {high}] is empty; expected [low, high] with low <= high")
        if self.log and low <= 0:
            raise ValueError(f"a log range needs a low bound above 0, got {low}")
        if self.log and self.step is not None:
            raise ValueError("log and step cannot be combined (Optuna samples a stepped range uniformly)")
        return self


class IntRange(_Section):
    """``{int: [low, high], log: false, step: 1}``: an integer in the closed range."""

    int: tuple[Integer, Integer]
    log: bool = False
    step: Integer = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _range(self) -> IntRange:
        low, high = self.int
        if not low <= high:
            raise ValueError(f"the range [{low}, {high}] is empty; expected [low, high] with low <= high")
        if self.log and (low < 1 or self.step != 1):
            raise ValueError("a log range needs a low bound of at least 1 and step 1")
        return self


class Choices(_Section):
    """``{choices: [a, b, c]}``: one of the listed values (any YAML value: numbers, lists, mappings, null)."""

    choices: list[Any] = Field(min_length=1)


def _dimension_kind(value: Any) -> str | None:
    if isinstance(value, BaseModel):
        return {FloatRange: "float", IntRange: "int", Choices: "choices"}.get(type(value))
    kinds = [kind for kind in ("float", "int", "choices") if isinstance(value, dict) and kind in value]
    return kinds[0] if len(kinds) == 1 else None


Dimension = Annotated[
    Annotated[FloatRange, Tag("float")] | Annotated[IntRange, Tag("int")] | Annotated[Choices, Tag("choices")],
    Discriminator(
        _dimension_kind,
        custom_error_type="dimension",
        custom_error_message="expected {float: [low, high]}, {int: [low, high]} or {choices: [a, b, ...]}",
    ),
]


class SearchConfig(_Section):
    space: dict[str, Dimension] = Field(min_length=1, description="dotted config field -> {float|int: [low, high]} or {choices: [...]}")
    optimize: list[Objective] = Field(
        default_factory=lambda: list[Objective](["mean"]),
        description="mean or worst (the primary metric over languages, on the first eval set), latency (batch 1, ms), size "
        "(parameters); several at once: a Pareto front (NSGA-II)",
    )
    sampler: Literal["auto", "tpe", "grid", "random", "nsga2"] = Field(
        default="auto", description="auto: grid when every dimension is a list of choices, NSGA-II for several objectives, else TPE"
    )
    pruner: Literal["median", "successive_halving", "none"] = Field(
        default="median", description="stops trials whose intermediate score falls behind (one objective only)"
    )
    report_every: Literal["epoch"] | int = Field(
        default="epoch", description="when a trial scores its student for the pruner: each epoch, or every N steps"
    )
    trials: int = Field(default=20, ge=1, description="trials with a result (a trial lost with its worker is run again)")
    timeout: float | None = Field(default=None, gt=0, description="seconds after which no new trial starts")
    seed: int = Field(default=0, ge=0, description="the sampler's seed")
    baseline: bool = Field(
        default=True,
        description="run the config's own values first (when it sets every dimension within the space): the hand-set recipe's score",
    )
    keep_students: bool = Field(default=False, description="keep every trial's student directory (default: the best one only)")
    heartbeat: int = Field(
        default=30, ge=1, description="seconds between a worker's heartbeats; a trial silent for 4 of them is marked failed"
    )

    @field_validator("optimize", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("report_every")
    @classmethod
    def _positive(cls, value: Any) -> Any:
        if isinstance(value, int) and value < 1:
            raise ValueError("expected 'epoch' or a number of steps of at least 1")
        return value

    @model_validator(mode="after")
    def _coherent(self) -> SearchConfig:
        if len(set(self.optimize)) != len(self.optimize):
            raise ValueError(f"optimize lists an objective twice: {self.optimize}")
        if not any(name in QUALITY_OBJECTIVES for name in self.optimize):
            raise ValueError("optimize needs a quality objective (mean or worst) beside latency or size")
        if self.sampler == "grid" and not all(isinstance(d, Choices) for d in self.space.values()):
            ranges = [name for name, d in self.space.items() if not isinstance(d, Choices)]
            raise ValueError(f"sampler grid needs a list of choices for every dimension; {', '.join(ranges)} is a range")
        if self.sampler == "nsga2" and len(self.optimize) == 1:
            raise ValueError("sampler nsga2 is for several objectives; optimize lists one")
        return self

    @property
    def directions(self) -> list[Literal["maximize", "minimize"]]:
        return [OBJECTIVE_DIRECTIONS[name] for name in self.optimize]

    @property
    def sampler_name(self) -> Literal["tpe", "grid", "random", "nsga2"]:
        if self.sampler != "auto":
            return self.sampler
        if all(isinstance(d, Choices) for d in self.space.values()):
            return "grid"
        return "nsga2" if len(self.optimize) > 1 else "tpe"
