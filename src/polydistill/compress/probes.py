"""What one compression stage kept, per language: the same question asked of every stage.

A stage is a model in the runtime it ships in (PyTorch, onnxruntime fp32, onnxruntime int8). A
probe holds a task's evaluation data and turns any stage's outputs on it (logits, or sentence
vectors) into the primary metric per language, and compares a stage with the one it was made from
(:mod:`polydistill.compress.language_check`). Outputs are plain numpy arrays, so PyTorch and the
torch-free runtime are scored by the same code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from polydistill.data.sampling import texts_by_language
from polydistill.evaluation.metrics import PRIMARY_METRIC_BY_TASK, classification_metrics

#: texts -> outputs (logits in the data's label order, or L2-normalised sentence vectors)
Predict = Callable[[list[str]], np.ndarray]


@dataclass
class StageQuality:
    """The primary metric over all examples and per language."""

    overall: float | None
    languages: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {"overall": self.overall, "languages": dict(self.languages)}


@dataclass
class ClassificationProbe:
    """Macro-F1 per language of predicted classes against the gold labels."""

    texts: list[str]
    teacher_texts: list[str]
    gold: np.ndarray
    languages: list[str]
    label_names: list[str] | None
    max_length: int = 128
    batch_size: int = 64
    primary_metric: str = PRIMARY_METRIC_BY_TASK["classification"]

    def texts_for(self, role: str) -> list[str]:
        return self.teacher_texts if role == "teacher" else self.texts

    def torch_predict(self, model: Any, tokenizer: Any, *, prefix: str = "") -> Predict:
        """Logits of a PyTorch classifier, columns in the data's label order (matched by name)."""
        from polydistill.evaluation.evaluate import label_alignment, predict_logits

        return self._in_data_order(
            lambda texts: predict_logits(model, tokenizer, texts, batch_size=self.batch_size, max_length=self.max_length),
            label_alignment(self.label_names, model),
        )

    def runtime_predict(self, served: Any) -> Predict:
        """Logits of a :class:`polydistill.runtime.Classifier`, columns in the data's label order."""
        from types import SimpleNamespace

        from polydistill.evaluation.evaluate import label_alignment

        stand_in = SimpleNamespace(config=SimpleNamespace(id2label=dict(enumerate(served.label_names)), num_labels=len(served.label_names)))
        return self._in_data_order(
            lambda texts: served.logits(texts, batch_size=self.batch_size), label_alignment(self.label_names, stand_in)
        )

    @staticmethod
    def _in_data_order(logits: Predict, alignment: np.ndarray) -> Predict:
        def predict(texts: list[str]) -> np.ndarray:
            raw = logits(texts)
            ordered = np.full((raw.shape[0], int(alignment.max()) + 1), -np.inf, dtype=np.float32)
            ordered[:, alignment] = raw
            return ordered

        return predict

    def outputs(self, predict: Predict, role: str) -> np.ndarray:
        return np.asarray(predict(self.texts_for(role)), dtype=np.float32)

    def quality(self, outputs: np.ndarray) -> StageQuality:
        predicted = outputs.argmax(-1)
        codes = np.asarray(self.languages, dtype=object)
        per_language = {
            str(code): classification_metrics(self.gold[codes == code], predicted[codes == code])[self.primary_metric]
            for code in sorted(set(self.languages))
        }
        return StageQuality(classification_metrics(self.gold, predicted)[self.primary_metric], per_language)

    def compare(self, reference: np.ndarray, candidate: np.ndarray, *, max_drop: float, min_agreement: float):
        from polydistill.compress.language_check import compare_classification

        return compare_classification(reference, candidate, self.languages, gold=self.gold, max_drop=max_drop, min_agreement=min_agreement)

    def balanced_texts(self, per_language: int) -> dict[str, list[str]]:
        return texts_by_language(self.texts, self.languages, per_language)


@dataclass
class EmbeddingsProbe:
    """Top-1 translation retrieval (English -> language) per language among held-out pairs."""

    sources: list[str]
    translations: list[str]
    languages: list[str]
    max_length: int = 128
    batch_size: int = 64
    primary_metric: str = PRIMARY_METRIC_BY_TASK["embeddings"]
    #: the distinct strings every stage embeds once (sources and translations)
    texts: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.texts = sorted(set(self.sources) | set(self.translations))
        self._row = {text: index for index, text in enumerate(self.texts)}

    def texts_for(self, role: str) -> list[str]:
        return self.texts

    def torch_predict(self, model: Any, tokenizer: Any, *, prefix: str = "") -> Predict:
        """L2-normalised mean-pooled vectors, as the saved sentence-transformers directory computes them."""
        from polydistill.models.pooling import encoder_function

        return encoder_function(model, tokenizer, prefix=prefix, max_length=self.max_length, batch_size=self.batch_size)

    def runtime_predict(self, served: Any) -> Predict:
        return lambda texts: served.encode(texts, batch_size=self.batch_size)

    def outputs(self, predict: Predict, role: str) -> np.ndarray:
        vectors = np.asarray(predict(self.texts), dtype=np.float32)
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)

    def quality(self, outputs: np.ndarray) -> StageQuality:
        from polydistill.evaluation.retrieval import evaluate_embeddings

        quality = evaluate_embeddings(self._lookup(outputs), self._pairs())
        per_language = {code: entry["student"][self.primary_metric] for code, entry in quality["languages"].items()}
        return StageQuality(quality["overall"]["student"][self.primary_metric], per_language)

    def compare(self, reference: np.ndarray, candidate: np.ndarray, *, max_drop: float, min_agreement: float):
        from polydistill.compress.language_check import compare_embeddings

        pairs = [(self._row[source], self._row[target]) for source, target in zip(self.sources, self.translations, strict=True)]
        return compare_embeddings(reference, candidate, pairs, self.languages, max_drop=max_drop, min_agreement=min_agreement)

    def balanced_texts(self, per_language: int) -> dict[str, list[str]]:
        return texts_by_language(self.translations, self.languages, per_language)

    def _lookup(self, outputs: np.ndarray) -> Predict:
        def encode(texts: list[str]) -> np.ndarray:
            return outputs[[self._row[text] for text in texts]]

        return encode

    def _pairs(self) -> Any:
        from datasets import Dataset

        return Dataset.from_dict({"text": self.sources, "translation": self.translations, "lang": self.languages})


QualityProbe = ClassificationProbe | EmbeddingsProbe
