"""The run config: one YAML file that describes a whole distillation run.

Every section is a pydantic model with ``extra="forbid"``, so a misspelt key is refused instead of
silently ignored. :func:`load_config` turns pydantic's errors into one message that names the
file, the line and the field, and what was expected. Checks that need the teacher (a layer index it
does not have) live in :func:`check_against_teacher`, which runs before any weights are loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from polydistill.config_yaml import config_location, parse_config_yaml, read_config_text, source_location
from polydistill.data.languages import normalize_language
from polydistill.data.sources import CATALOGS_PREFIX, DEFAULT_CORPUS, is_builtin
from polydistill.errors import ConfigError
from polydistill.models.general_vocabulary import DEFAULT_GENERAL, DEFAULT_TOKENS_PER_LANGUAGE
from polydistill.objectives.registry import ObjectiveConfig, registered
from polydistill.search.config import SearchConfig
from polydistill.tasks import get_task, task_names
from polydistill.training.arguments import check_training_sections


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class FieldValueError(ValueError):
    """A problem a model validator finds with one of its fields: the error then points at that field's line."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


# --------------------------------------------------------------------------- models


class FinetuneConfig(Section):
    """Teach the teacher the task first (gold labels, cross-entropy), on the same Trainer machinery."""

    data: DataSourceConfig
    training: dict[str, Any] = Field(default_factory=dict)
    freeze_word_embeddings: bool = Field(
        default=True,
        description="keep the word-embedding matrix fixed: in a multilingual encoder it holds most "
        "parameters (cheap to skip in the optimizer), and updating only the rows of the task "
        "language's tokens would pull that language away from the others",
    )


class TeacherConfig(Section):
    model: str = Field(description="local directory, Hugging Face id, or offline:<name>")
    revision: str | None = None
    trust_remote_code: bool = False
    finetune: FinetuneConfig | None = None
    prefix: str = Field(default="", description="text put before every input of this model, e.g. 'query: ' for e5 models")
    cache: bool = Field(
        default=True,
        description="run the teacher once over the training data and train from its stored outputs; "
        "turn off for data augmentation (inputs that change every epoch) or when disk is short",
    )
    cache_dir: str | None = Field(default=None, description="default: teacher-outputs in $POLYDISTILL_CACHE (else ~/.cache/polydistill)")


class TrimVocabularyConfig(Section):
    """Keep only the tokens that the served languages use (see ``polydistill trim``).

    The tokens are chosen for each language in general (``general``: word-frequency lists and
    the tokenizer's piece scores) and for the user's ``corpus`` on top, so text outside the
    corpus does not fall apart into characters; ``max_vocab`` is the budget.
    """

    languages: list[str] = Field(min_length=1)
    corpus: list[str] = Field(default_factory=lambda: list(DEFAULT_CORPUS))
    general: list[Literal["wordfreq", "piece_scores"]] = Field(
        default_factory=lambda: list(DEFAULT_GENERAL),
        description="general-text sources of each language's token frequencies: wordfreq's word lists, the tokenizer's "
        "piece scores (SentencePiece log-probabilities); [] chooses from the corpus alone",
    )
    min_count: int = Field(default=1, ge=1, description="corpus tokens seen fewer times are left out")
    max_vocab: int | float | None = Field(
        default=None,
        gt=0,
        description="the budget: exactly this many tokens (an integer), or this share of the original vocabulary (0.25); "
        "default: every corpus token plus each language's tokens_per_language most likely tokens",
    )
    tokens_per_language: int = Field(
        default=DEFAULT_TOKENS_PER_LANGUAGE, ge=1, description="without max_vocab: each language's most likely tokens kept"
    )
    keep_characters: Literal["scripts", "corpus", "all", "none"] = Field(
        default="scripts",
        description="single-character pieces kept so unseen text re-segments instead of becoming <unk>: "
        "those of every script the corpus uses, only those seen in the corpus, all, or none",
    )
    heldout: list[str] = Field(
        default_factory=list,
        description="text not used for the choice (a catalog or file, as in corpus): the trim report says per language "
        "how much of it the kept tokens tokenise unchanged",
    )

    @field_validator("max_vocab")
    @classmethod
    def _rows_or_share(cls, value: int | float | None) -> int | float | None:
        if isinstance(value, float) and value >= 1:
            if value.is_integer():
                return int(value)
            raise ValueError(f"a share of the vocabulary is below 1 (0.25), a number of tokens a whole number; got {value}")
        return value


class StudentConfig(Section):
    model: str | None = Field(
        default=None,
        description="start from this model instead of the teacher (e.g. a multilingual student "
        "for an English teacher); layer selection and trimming then apply to it",
    )
    keep_layers: int | list[int] | None = Field(
        default=None,
        description="how many layers to keep (spread evenly), or which teacher layers (0-based)",
    )
    hidden_size: int | None = Field(default=None, ge=1)
    intermediate_size: int | None = Field(default=None, ge=1)
    num_attention_heads: int | None = Field(default=None, ge=1)
    init: Literal["pruned", "random"] | None = Field(
        default=None,
        description="how a narrower student starts: 'pruned' keeps the base model's most important heads, "
        "neurons and channels on the training text (Minitron; the default when widths shrink), 'random' starts fresh",
    )
    trim_vocabulary: TrimVocabularyConfig | None = None
    prefix: str | None = Field(default=None, description="input prefix of the student (default: the teacher's)")

    @field_validator("keep_layers")
    @classmethod
    def _keep_layers_valid(cls, value: int | list[int] | None) -> int | list[int] | None:
        if isinstance(value, int) and value < 1:
            raise ValueError("expected at least 1 layer")
        if isinstance(value, list):
            if not value:
                raise ValueError("expected a non-empty list of teacher layer indices")
            if any(index < 0 for index in value):
                raise ValueError("expected layer indices >= 0")
            if len(set(value)) != len(value) or value != sorted(value):
                raise ValueError("expected distinct layer indices in increasing order")
        return value

    @model_validator(mode="after")
    def _width_consistent(self) -> StudentConfig:
        if self.hidden_size and self.num_attention_heads and self.hidden_size % self.num_attention_heads:
            raise FieldValueError(
                "hidden_size", f"hidden_size ({self.hidden_size}) must be divisible by num_attention_heads ({self.num_attention_heads})"
            )
        return self

    @model_validator(mode="after")
    def _init_needs_widths(self) -> StudentConfig:
        if self.init is not None and not self.is_narrower:
            raise FieldValueError(
                "init", f"'{self.init}' applies to a narrower student; set hidden_size, intermediate_size or num_attention_heads"
            )
        return self

    @property
    def is_narrower(self) -> bool:
        return any(v is not None for v in (self.hidden_size, self.intermediate_size, self.num_attention_heads))


class DataSourceConfig(Section):
    """A data file (JSONL, CSV/TSV, Parquet, a saved ``datasets`` directory, plain text) or a built-in source.

    A plain text file (``.txt``, one text a line) is unlabelled monolingual text, which the teacher
    labels: what compressing a multilingual teacher needs, no translation or gold label, only text
    in the languages served. ``language`` tags it (or any file without a language column).
    """

    path: str = Field(
        description="a data file (.jsonl, .csv, .tsv, .parquet, or .txt: one text a line, unlabelled), "
        "a saved datasets directory, or a built-in catalogs:<name>"
    )
    text_column: str = "text"
    label_column: str | None = Field(
        default="label",
        description="column of gold labels; read when the file has it (a .txt file never has): rows without "
        "are distilled from the teacher only",
    )
    lang_column: str | None = None
    language: str | None = Field(
        default=None,
        description="the language of every row of a file without a lang_column (e.g. de for texts.de.txt), "
        "a BCP 47 tag; default 'und' (undetermined)",
    )
    teacher_text_column: str | None = Field(
        default=None,
        description="column the teacher reads instead of text (e.g. the English source of a translation)",
    )
    source_as_input: bool = Field(
        default=True,
        description="training data with a teacher_text_column: its texts are student inputs too, once per distinct text, "
        "so the student learns the source language from the teacher as well as the translations",
    )
    source_language: str | None = Field(
        default=None, description="the language of teacher_text_column's texts (e.g. en), for those rows' lang; default 'und'"
    )
    translation_column: str | None = Field(
        default=None,
        description="embeddings task: the column holding the translation of text; without it (a .txt file has none) "
        "the source is monolingual, the student matching the teacher's embedding of the same text (training only)",
    )
    split: str | None = Field(
        default=None, description="split of a built-in source: train, dev or test (default: every row, e.g. a held-out domain)"
    )
    languages: list[str] | None = None
    overlong: Literal["refuse", "truncate"] = "truncate"
    weight: float | None = Field(
        default=None,
        gt=0,
        description="when data.train lists several sources: this source's share of the training examples drawn, "
        "relative to the other sources' weights (default: sources are pooled, each row as likely as any other)",
    )
    name: str | None = Field(
        default=None,
        min_length=1,
        description="what reports call this source (data.eval: its set in metrics.json and the report); "
        "default: a built-in's name (catalogs:sphinx -> sphinx), a file's stem (data/legal.jsonl -> legal)",
    )

    @field_validator("language")
    @classmethod
    def _language_known(cls, value: str | None) -> str | None:
        return None if value is None else normalize_language(value)  # its ValueError names the code

    @model_validator(mode="after")
    def _one_language_source(self) -> DataSourceConfig:
        if self.language is not None and self.lang_column is not None:
            raise FieldValueError(
                "language", f"give language (one for every row) or lang_column (one per row, from '{self.lang_column}'), not both"
            )
        if self.language is not None and is_builtin(self.path):
            raise FieldValueError("language", f"'{self.path}' tags its rows' languages itself; language is for a file")
        if self.language is not None and self.languages and self.language not in {normalize_language(code) for code in self.languages}:
            raise FieldValueError("languages", f"the source's language '{self.language}' is not among them: it would give no rows")
        return self

    @property
    def report_name(self) -> str:
        """``name``, or the one derived from ``path`` when it is not given."""
        if self.name:
            return self.name
        if is_builtin(self.path):
            return self.path.removeprefix(CATALOGS_PREFIX)
        return Path(self.path).stem or self.path


def _one_or_many(value: Any) -> str:
    return "many" if isinstance(value, list) else "one"


#: one source, or a list of them (see DataConfig); the tags keep pydantic's errors to the branch
#: the YAML wrote (``data.train.path``, ``data.train.1.path``) instead of one error per branch
DataSources = Annotated[
    Annotated[DataSourceConfig, Tag("one")] | Annotated[list[DataSourceConfig], Field(min_length=1), Tag("many")],
    Discriminator(_one_or_many),
]


class DataConfig(Section):
    """Training and evaluation data: each one source or a list of sources.

    Several training sources are pooled into one training set (each keeps its own columns,
    language filter and teacher column): labelled data beside unlabelled translations, or beside
    text in the target languages that only the teacher labels. With ``weight`` on every source,
    each epoch draws that share of its examples from each source, and the language-balanced
    sampler (``balance_alpha``) balances the languages within each source; without weights every
    row is as likely as any other.

    Several evaluation sources are evaluated and reported separately, each under its ``name``
    (``eval_sets`` of metrics.json, "Evaluation sets" of the report): an in-domain test set beside
    held-out domains. The first is the primary test set: the top-level figures, the verdict, noise
    robustness, efficiency, the compression checks and the model card's table use it alone.
    """

    train: DataSources
    eval: DataSources | None = None
    max_length: int = Field(default=128, ge=8)
    balance_alpha: float | None = Field(default=None, ge=0, le=1, description="language-balanced sampling, p ~ n_lang^alpha")

    @model_validator(mode="after")
    def _weights_for_all_or_none(self) -> DataConfig:
        weighted = [field for field, source in self.train_sources if source.weight is not None]
        if weighted and len(weighted) != len(self.train_sources):
            missing = next(field for field, source in self.train_sources if source.weight is None)
            raise FieldValueError(
                missing.removeprefix("data.") + ".weight",
                "give every training source a weight, or none (weights are shares relative to each other)",
            )
        for field, source in self.eval_sources:
            if source.weight is not None:
                raise FieldValueError(
                    field.removeprefix("data.") + ".weight", "weight is a share of training examples; evaluation reads every row"
                )
        return self

    @model_validator(mode="after")
    def _eval_names_distinct(self) -> DataConfig:
        named: dict[str, str] = {}
        for field, name, _ in self.named_eval_sources:
            if name in named:
                raise FieldValueError(
                    field.removeprefix("data.") + ".name",
                    f"'{name}' already names {named[name]}; give each evaluation source its own name (reports keep them apart by it)",
                )
            named[name] = field
        return self

    @property
    def train_sources(self) -> list[tuple[str, DataSourceConfig]]:
        """The training sources with the config field that names each (``data.train`` or ``data.train.<i>``)."""
        return _numbered("data.train", self.train)

    @property
    def eval_sources(self) -> list[tuple[str, DataSourceConfig]]:
        return _numbered("data.eval", self.eval)

    @property
    def named_eval_sources(self) -> list[tuple[str, str, DataSourceConfig]]:
        """(config field, report name, source) of every evaluation source; the first is the primary test set."""
        return [(field, source.report_name, source) for field, source in self.eval_sources]

    @property
    def source_shares(self) -> list[float] | None:
        """Each training source's share of the examples drawn (summing to 1), or None when the rows are pooled."""
        weights = [source.weight for _, source in self.train_sources]
        if any(weight is None for weight in weights):
            return None
        total = sum(weight for weight in weights if weight is not None)
        return [weight / total for weight in weights if weight is not None]


def _numbered(field: str, sources: DataSourceConfig | list[DataSourceConfig] | None) -> list[tuple[str, DataSourceConfig]]:
    if sources is None:
        return []
    if isinstance(sources, DataSourceConfig):
        return [(field, sources)]
    return [(f"{field}.{index}", source) for index, source in enumerate(sources)]


class ObjectivesSection(Section):
    """What every ``objectives`` section has; its fields, one per registered objective, are added
    by :data:`ObjectivesConfig`."""

    @model_validator(mode="after")
    def _at_least_one(self) -> ObjectivesSection:
        if not any(cfg is not None and cfg.weight > 0 for _, cfg in self.enabled()):
            raise ValueError("expected at least one objective with a weight above 0")
        return self

    def enabled(self) -> list[tuple[str, ObjectiveConfig]]:
        return [(name, cfg) for name in type(self).model_fields if (cfg := getattr(self, name)) is not None]

    @property
    def needs_attention_weights(self) -> bool:
        specs = registered()
        return any(specs[name].needs_attention_weights for name, _ in self.enabled())


if TYPE_CHECKING:  # a type checker cannot see fields made at import time; it sees the common part
    ObjectivesConfig = ObjectivesSection
else:
    #: the ``objectives`` section: one optional field per registered objective, in the registry's order
    ObjectivesConfig = create_model(
        "ObjectivesConfig",
        __base__=ObjectivesSection,
        __module__=__name__,
        **{name: (spec.config | None, None) for name, spec in registered().items()},
    )


def _width(value: float) -> float | int:
    if 0 < value < 1:
        return value
    if value >= 1 and float(value).is_integer():
        return int(value)
    raise ValueError("expected a share to remove (between 0 and 1, e.g. 0.5) or a whole number of channels to keep (e.g. 6)")


#: a share of a width to remove (0 < x < 1), or the number of heads, neurons or channels to keep (>= 1)
Width = Annotated[float, AfterValidator(_width)]


class PruneConfig(Section):
    """Width pruning of the distilled student (Minitron): keep its most important heads, FFN neurons and
    hidden channels on the training text, then re-distil from the teacher to recover what pruning took."""

    heads: Width | None = Field(default=None, description="share of attention heads to remove (0.5), or how many to keep (6)")
    ffn: Width | None = Field(default=None, description="share of feed-forward neurons to remove, or how many to keep")
    hidden: Width | None = Field(default=None, description="share of hidden channels to remove, or how many to keep")
    texts_per_language: int = Field(default=256, ge=1, description="training texts per language that rank the channels")
    redistil: bool = Field(default=True, description="train the pruned student against the teacher again, with the run's objectives")
    training: dict[str, Any] = Field(default_factory=dict, description="training arguments of the re-distillation (default: the run's)")

    @model_validator(mode="after")
    def _something_to_prune(self) -> PruneConfig:
        if self.heads is None and self.ffn is None and self.hidden is None:
            raise ValueError("expected at least one of heads, ffn, hidden")
        return self


class QuantizeConfig(Section):
    """int8 with a per-language check against the fp32 ONNX student."""

    mode: Literal["auto", "dynamic", "static"] = Field(
        default="auto", description="auto: try recipes from smallest to most careful and keep the first that passes"
    )
    max_drop: float = Field(default=0.01, ge=0, le=1, description="largest drop of the primary metric allowed in any language")
    min_agreement: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="smallest share of a language's texts on which int8 must answer as the fp32 student does "
        "(0: agreement is reported, not checked; with a few dozen texts per language, 0.99 allows no change at all)",
    )
    accept_drop: bool = Field(default=False, description="keep the int8 student even when a language fails the check")
    calibration_texts_per_language: int = Field(default=64, ge=1, description="static mode: calibration texts per language")


class CompressConfig(Section):
    """After distillation: prune -> re-distil -> export -> quantize, each stage measured per language."""

    prune: PruneConfig | None = None
    export: Literal["onnx"] | None = "onnx"
    quantize: QuantizeConfig | None = Field(default_factory=QuantizeConfig)
    teacher_onnx: bool = Field(
        default=True, description="also export and quantize the teacher the plain way, for a like-for-like runtime comparison"
    )

    @model_validator(mode="after")
    def _quantize_needs_export(self) -> CompressConfig:
        if self.quantize is not None and self.export is None:
            raise FieldValueError("quantize", "quantize needs export: onnx (int8 runs in onnxruntime)")
        return self


class NoiseConfig(Section):
    """Seeded noise of the robustness scores (see :mod:`polydistill.evaluation.noise`): teacher and
    student are scored again per language on noisy copies of the test texts."""

    typo_rate: float = Field(default=0.05, ge=0.0, le=1.0, description="share of words (of two or more letters) given one typo")
    diacritics_rate: float = Field(default=0.3, ge=0.0, le=1.0, description="share of texts whose optional diacritics are dropped")
    case_rate: float = Field(default=0.2, ge=0.0, le=1.0, description="share of texts whose case is changed")
    seed: int = Field(default=0, ge=0, description="picks which words and texts get noise")


class EvaluationConfig(Section):
    """The per-language evaluation every run ends with, when it has ``data.eval``."""

    efficiency: Literal["full", "quick", "off"] = Field(
        default="full", description="measure size, memory, latency and throughput (quick: fewer repeats)"
    )
    batch_size: int = Field(default=64, ge=1)
    noise: NoiseConfig | None = Field(
        default_factory=NoiseConfig,
        description="robustness to noisy text: teacher and student scored again on noisy test texts; null turns it off",
    )


class RunConfig(Section):
    task: str = Field(default="classification", description="classification or embeddings (see polydistill.tasks)")
    teacher: TeacherConfig
    student: StudentConfig = Field(default_factory=StudentConfig)
    data: DataConfig
    if TYPE_CHECKING:  # never None once validated: _objectives_fit_the_task fills a missing (or empty) section
        objectives: ObjectivesConfig
    else:
        objectives: ObjectivesConfig | None = Field(
            default=None, description="default: the task's (soft_targets for classification, embedding_mse for embeddings)"
        )
    training: dict[str, Any] = Field(default_factory=dict, description="passed through to transformers.TrainingArguments")
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    compress: CompressConfig | None = None
    output_dir: str = Field(
        default="runs/polydistill", min_length=1, description="where the run writes (relative to the working directory)"
    )
    seed: int = Field(default=42, ge=0, le=2**32 - 1, description="numpy takes seeds 0..2**32-1")
    #: what ``polydistill search`` varies (``polydistill run`` ignores it; never part of a saved config)
    search: SearchConfig | None = Field(default=None, exclude=True, description="the space and objectives of `polydistill search`")

    #: the YAML file this config came from (not a config key)
    source_file: Path | None = Field(default=None, exclude=True)
    #: its text, kept so that checks made after validation (against the teacher, at training time)
    #: can name the line of the field they refuse; see :func:`config_location`
    _source_text: str | None = PrivateAttr(default=None)

    @property
    def source_text(self) -> str | None:
        """The YAML text this config came from (None for a config built in code)."""
        return self._source_text

    @field_validator("task")
    @classmethod
    def _task_known(cls, value: str) -> str:
        if value not in task_names():
            raise ValueError(f"unknown task; expected one of: {', '.join(task_names())}")
        return value

    @model_validator(mode="after")
    def _objectives_fit_the_task(self) -> RunConfig:
        task = get_task(self.task)
        if self.objectives is None:
            self.objectives = ObjectivesConfig(**task.default_objectives)
        specs = registered()
        wrong = {name for name, _ in self.objectives.enabled() if self.task not in specs[name].tasks}
        if wrong:
            raise FieldValueError("objectives", f"objectives {sorted(wrong)} do not apply to task '{self.task}'")
        if getattr(self.objectives, "labels", None) is not None and all(s.label_column is None for _, s in self.data.train_sources):
            raise FieldValueError("objectives.labels", "objectives.labels needs gold labels: set data.train.label_column")
        return self

    @model_validator(mode="after")
    def _compress_needs_eval(self) -> RunConfig:
        if self.compress is not None and self.data.eval is None:
            raise FieldValueError("compress", "compress measures every stage per language: set data.eval")
        return self

    @property
    def student_prefix(self) -> str:
        return self.teacher.prefix if self.student.prefix is None else self.student.prefix

    def resolve_path(self, path: str) -> Path:
        """Input paths in a config are relative to the config file's directory."""
        candidate = _expand_user(Path(path))
        if candidate.is_absolute() or self.source_file is None:
            return candidate
        return (self.source_file.parent / candidate).resolve()

    def corpus_file(self, spec: str) -> tuple[str | None, Path]:
        """(language tag or None, file) of a trimming corpus entry that is a file (``PATH`` or ``LANG=PATH``),
        the file resolved like every path of the config."""
        tag, separator, rest = spec.partition("=")
        if separator and tag and "/" not in tag and not self.resolve_path(spec).exists():
            return tag, self.resolve_path(rest)
        return None, self.resolve_path(spec)

    def resolve_corpus(self, spec: str) -> str:
        """A trimming corpus entry as :func:`~polydistill.data.sources.corpus_texts_by_language` reads it."""
        if is_builtin(spec):
            return spec
        tag, path = self.corpus_file(spec)
        return f"{tag}={path}" if tag else str(path)

    def resolve_model(self, ref: str) -> str:
        """The model reference to look up: a directory beside the config file wins over a Hub id.

        Paths in a config are relative to the config file, as data paths are, so ``./teacher`` or
        a bare ``my-teacher`` finds the directory next to the config from any working directory.
        A directory relative to the working directory (what a bare path meant before) still
        counts, second; both come back absolute, so a saved copy of the config runs from anywhere.
        Anything else (a Hub id, ``offline:<name>``) comes back unchanged.
        """
        path = _expand_user(Path(ref))
        if path.is_absolute() or ref.startswith("offline:"):
            return ref
        bases = [self.source_file.parent] if self.source_file is not None else []
        for base in [*bases, Path.cwd()]:
            if (base / path).is_dir():
                return str((base / path).resolve())
        return ref


def _expand_user(path: Path) -> Path:
    """``~/x`` as the home directory's ``x``; ``~nobody/x`` (no such user) stays as written and is then not found."""
    try:
        return path.expanduser()
    except RuntimeError:
        return path


FinetuneConfig.model_rebuild()

# --------------------------------------------------------------------------- loading


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Read and validate a run config; errors name the file, the line and the field."""
    path = Path(path)
    text = read_config_text(path)
    raw = parse_config_yaml(path, text)
    if raw is None:
        raise ConfigError(f"{path}: the config file is empty; expected a mapping of sections (teacher, student, data, ...)")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}:1: expected a mapping of sections (teacher, student, data, ...), got {_yaml_kind(raw)}")
    raw.update(overrides or {})
    return validate_config(raw, source_file=path, source_text=text)


def validate_config(raw: dict[str, Any], *, source_file: Path | None = None, source_text: str | None = None) -> RunConfig:
    try:
        config = RunConfig.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(_describe_validation_error(error, source_file, source_text)) from None
    config.source_file = source_file.resolve() if source_file else None
    config._source_text = source_text
    _check_task(config)
    check_training_sections(config)
    _check_files_exist(config)
    _check_model_paths(config)
    return config


def _check_task(config: RunConfig) -> None:
    """What the config's task cannot honour, each at the line of the field it concerns."""
    lines = [f"{config_location(config, field)}: {field}: {problem}" for field, problem in get_task(config.task).check_config(config)]
    if lines:
        raise ConfigError("invalid run config\n  " + "\n  ".join(lines))


def _yaml_kind(value: Any) -> str:
    kinds: dict[type, str] = {list: "a list", str: "text"}
    return kinds.get(type(value), f"a {type(value).__name__}")


def _describe_validation_error(error: ValidationError, source_file: Path | None, source_text: str | None) -> str:
    lines = []
    for item in error.errors():
        location = [part for part in item["loc"] if not _is_union_branch(part)]
        raised = item.get("ctx", {}).get("error")
        if isinstance(raised, FieldValueError):  # a model validator's problem with one field: point at that field
            location += raised.field.split(".")
        field = ".".join(str(part) for part in location) or "(top level)"
        where = source_location(source_file, source_text, location)
        if item["type"] == "extra_forbidden":
            message = f"unknown key '{location[-1]}'{_allowed_keys_hint(location)}"
        elif item["type"] == "missing":
            message = "required field is missing"
        elif isinstance(raised, FieldValueError):
            message = str(raised)
        else:
            got = item.get("input")
            message = f"{item['msg']} (got {got!r})" if not isinstance(got, dict | BaseModel) else item["msg"]
        lines.append(f"{where}: {field}: {message}")
    return "invalid run config\n  " + "\n  ".join(dict.fromkeys(lines))


def _is_union_branch(part: Any) -> bool:
    # pydantic puts the tried union member in the location, e.g. ('keep_layers', 'int'); drop it.
    return isinstance(part, str) and part in {"int", "list[int]", "str", "float", "dict[int,int]", "one", "many"}


def _allowed_keys_hint(location: list[Any]) -> str:
    model: type[BaseModel] | None = RunConfig
    for part in location[:-1]:
        if isinstance(part, int) and model is not None:
            continue  # an item of a list of sections (data.train.1)
        if model is None or not isinstance(part, str) or part not in model.model_fields:
            return ""
        model = next(iter(_sections_in(model.model_fields[part].annotation)), None)
    if model is None:
        return ""
    keys = [k for k, f in model.model_fields.items() if not f.exclude]
    return f"; expected one of: {', '.join(keys)}"


def _sections_in(annotation: Any) -> list[type[BaseModel]]:
    """The section models an annotation may hold: through unions, ``Annotated`` and lists."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for argument in get_args(annotation) for model in _sections_in(argument)]


def _check_files_exist(config: RunConfig) -> None:
    sources = [*config.data.train_sources, *config.data.eval_sources]
    if config.teacher.finetune:
        sources.append(("teacher.finetune.data", config.teacher.finetune.data))
    paths = [(f"{field}.path", source.path, config.resolve_path(source.path)) for field, source in sources if not is_builtin(source.path)]
    trim = config.student.trim_vocabulary
    for key in ("corpus", "heldout"):
        for index, spec in enumerate(getattr(trim, key) if trim else []):
            if not is_builtin(spec):
                paths.append((f"student.trim_vocabulary.{key}.{index}", spec, config.corpus_file(spec)[1]))
    for field, written, resolved in paths:
        if not resolved.exists():
            raise ConfigError(f"{config_location(config, field)}: {field}: file '{written}' does not exist (looked for {resolved})")


def _check_model_paths(config: RunConfig) -> None:
    """A model given as a path (``./teacher``, ``../models/x``, ``~/x``, ``/x``) must be a directory
    beside the config (or, as before, in the working directory); a bare name may be a Hub id."""
    for field, ref in (("teacher.model", config.teacher.model), ("student.model", config.student.model)):
        if ref is None or not ref.startswith((".", "/", "~")):
            continue
        resolved = config.resolve_model(ref)
        if not Path(resolved).is_dir():
            beside = config.resolve_path(ref)
            raise ConfigError(f"{config_location(config, field)}: {field}: model directory '{ref}' does not exist (looked for {beside})")


def check_against_teacher(config: RunConfig, teacher_layers: int, student_layers: int, base_layers: int | None = None) -> None:
    """Refuse layer indices the teacher (or the student being built) does not have.

    ``base_layers``: layers of the model the student is built from, when ``student.model`` names
    one other than the teacher (``keep_layers`` then indexes that model's layers).
    """

    def fail(field: str, message: str) -> None:
        raise ConfigError(f"{config_location(config, field)}: {field}: {message}")

    keep = config.student.keep_layers
    base_layers = teacher_layers if base_layers is None else base_layers
    base = "the teacher" if config.student.model is None else f"'{config.student.model}'"
    if isinstance(keep, int) and keep > base_layers:
        fail("student.keep_layers", f"asks for {keep} layers but {base} has {base_layers}")
    if isinstance(keep, list) and max(keep) >= base_layers:
        fail(
            "student.keep_layers",
            f"layer {max(keep)} does not exist; {base} has layers 0..{base_layers - 1}",
        )
    specs = registered()
    for name, section in config.objectives.enabled():
        check = specs[name].check_layers
        for field, problem in check(section, teacher_layers, student_layers) if check else ():
            fail(f"objectives.{name}.{field}", problem)
