"""The per-language check of a compressed stage: hand-made outputs with known metrics, thresholds at
their boundary, bad input, and a tiny model that int8 genuinely breaks in one language only."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from polydistill.compress.language_check import compare_classification, compare_embeddings
from polydistill.errors import DataError


def one_hot_logits(predictions, classes: int = 2) -> np.ndarray:
    logits = np.zeros((len(predictions), classes))
    logits[np.arange(len(predictions)), predictions] = 1.0
    return logits


# --- classification against hand-computed numbers ---------------------------------------------


def test_one_broken_language_is_named_with_its_numbers():
    gold = np.array([0, 0, 1, 1] * 3)
    languages = ["de"] * 4 + ["sw"] * 4 + ["fr"] * 4
    reference = one_hot_logits(gold)  # the reference is right everywhere: macro-F1 1.0
    candidate_pred = gold.copy()
    candidate_pred[5] = 1  # sw: [0, 1, 1, 1]
    check = compare_classification(reference, one_hot_logits(candidate_pred), languages, gold=gold)

    assert check.failed == ["sw"]
    assert not check.passed
    sw = check.languages["sw"]
    # class 0: precision 1, recall 1/2, F1 2/3; class 1: precision 2/3, recall 1, F1 4/5
    assert sw["candidate"] == pytest.approx((2 / 3 + 4 / 5) / 2)
    assert sw["reference"] == 1.0
    assert sw["drop"] == pytest.approx(1 - (2 / 3 + 4 / 5) / 2)
    assert sw["agreement"] == 0.75 and sw["n"] == 4
    assert check.languages["de"]["failures"] == [] and check.languages["fr"]["agreement"] == 1.0
    assert len(check.reasons["sw"]) == 2  # the drop and the agreement
    line = check.describe()
    assert line == "int8 drops macro-F1 by 26.7 points in sw (1.00 -> 0.73) and agrees with fp32 on 75.0% of its texts"
    document = check.to_dict()
    assert document["failed"] == ["sw"] and document["passed"] is False
    assert set(document["languages"]) == {"de", "sw", "fr"}
    # the worst slack: the drop limit, 0.01 - 4/15 (agreement's is 0.75 - 0.99 = -0.24)
    assert check.worst_margin() == pytest.approx(0.01 - 4 / 15)


def test_a_drop_exactly_at_the_limit_passes_and_just_above_fails():
    # 100 texts per class; the candidate calls k texts of class 1 class 0:
    # F1(0) = 200 / (200 + k), F1(1) = 2 (100 - k) / (200 - k)
    def candidate_f1(k: int) -> Fraction:
        return (Fraction(200, 200 + k) + Fraction(2 * (100 - k), 200 - k)) / 2

    gold = np.array([0] * 100 + [1] * 100)
    predicted = gold.copy()
    predicted[100:102] = 0  # k = 2: a drop of 0.0100010...
    exact_drop = float(1 - candidate_f1(2))
    assert 0.0100 < exact_drop < 0.0101
    reference, candidate = one_hot_logits(gold), one_hot_logits(predicted)
    languages = ["sw"] * 200

    at_limit = compare_classification(reference, candidate, languages, gold=gold, max_drop=exact_drop, min_agreement=0.99)
    assert at_limit.passed, at_limit.describe()
    above = compare_classification(reference, candidate, languages, gold=gold, max_drop=0.01, min_agreement=0.99)
    assert above.failed == ["sw"] and "macro-F1 drops by 1.0 point" in above.reasons["sw"][0]
    # agreement 198/200 = 0.99 exactly: at the limit passes, a hair above the limit fails
    assert compare_classification(reference, candidate, languages, gold=gold, max_drop=0.02, min_agreement=0.99).passed
    assert compare_classification(reference, candidate, languages, gold=gold, max_drop=0.02, min_agreement=0.9901).failed == ["sw"]


def test_without_gold_labels_only_agreement_is_checked():
    reference = one_hot_logits([0, 1, 0, 1, 1, 0])
    candidate = one_hot_logits([0, 1, 0, 1, 0, 0])
    check = compare_classification(reference, candidate, ["de", "de", "de", "sw", "sw", "sw"])
    assert check.metric is None and check.languages["de"]["drop"] is None
    assert check.failed == ["sw"]
    assert check.languages["sw"]["agreement"] == pytest.approx(2 / 3)
    assert check.describe() == "int8 agrees with fp32 on only 66.7% of sw's texts"


def test_nan_outputs_count_as_wrong_answers():
    reference = one_hot_logits([0, 1, 0, 1])
    candidate = reference.copy()
    candidate[1] = np.nan
    check = compare_classification(reference, candidate, ["sw"] * 4, min_agreement=0.5)
    assert check.languages["sw"]["agreement"] == 0.75 and check.languages["sw"]["non_finite"] == 1


def test_degenerate_classification_input_is_refused():
    logits = one_hot_logits([0, 1])
    with pytest.raises(DataError, match="same shape"):
        compare_classification(logits, one_hot_logits([0, 1, 1]), ["de", "de"])
    with pytest.raises(DataError, match="one language code per row"):
        compare_classification(logits, logits, ["de"])
    with pytest.raises(DataError, match="empty code"):
        compare_classification(logits, logits, ["de", ""])
    with pytest.raises(DataError, match="at least one text"):
        compare_classification(np.zeros((0, 2)), np.zeros((0, 2)), [])
    with pytest.raises(DataError, match="one label per row"):
        compare_classification(logits, logits, ["de", "de"], gold=[0])
    with pytest.raises(DataError, match="reference stage itself"):
        compare_classification(np.full((2, 2), np.nan), logits, ["de", "de"])


# --- embeddings against hand-made vectors -----------------------------------------------------


def test_embeddings_name_the_collapsed_language():
    rng = np.random.default_rng(0)
    english = rng.normal(size=(6, 8))
    # rows 0-5 English, 6-11 de translations, 12-17 sw translations: each translation near its source
    reference = np.vstack([english, english + 0.01 * rng.normal(size=(6, 8)), english + 0.01 * rng.normal(size=(6, 8))])
    candidate = reference.copy()
    candidate[12:18] = english.mean(axis=0) + 1e-6 * rng.normal(size=(6, 8))  # sw collapses to one vector
    pairs = [(i, 6 + i) for i in range(6)] + [(i, 12 + i) for i in range(6)]
    languages = ["de"] * 6 + ["sw"] * 6

    check = compare_embeddings(reference, candidate, pairs, languages)
    assert check.failed == ["sw"]
    de, sw = check.languages["de"], check.languages["sw"]
    assert de["reference"] == 1.0 and de["candidate"] == 1.0 and de["agreement"] == 1.0
    assert de["mean_cosine"] == pytest.approx(1.0)
    assert sw["reference"] == 1.0 and sw["drop"] >= 0.5
    # English rows are unchanged (cosine 1), translations point elsewhere: the mean is well below 1
    assert 0.4 < sw["mean_cosine"] < 0.95
    assert check.describe().startswith("int8 drops top-1")
    assert " in sw (1.00 -> " in check.describe()


def test_min_cosine_makes_the_cosine_a_limit():
    rng = np.random.default_rng(1)
    english = np.eye(4)
    reference = np.vstack([english, english])
    candidate = reference + 0.2 * rng.normal(size=reference.shape)  # rotated a little: retrieval holds
    pairs = [(i, 4 + i) for i in range(4)]
    assert compare_embeddings(reference, candidate, pairs, ["sw"] * 4).passed
    strict = compare_embeddings(reference, candidate, pairs, ["sw"] * 4, min_cosine=0.999)
    assert strict.failed == ["sw"] and "mean cosine" in strict.reasons["sw"][0]


def test_degenerate_embedding_input_is_refused():
    vectors = np.eye(4)
    with pytest.raises(DataError, match="at least 2"):
        compare_embeddings(vectors, vectors, [(0, 2), (0, 3)], ["sw", "sw"])  # one distinct source: one pair
    with pytest.raises(DataError, match="same texts"):
        compare_embeddings(vectors, vectors[:3], [(0, 2), (1, 3)], ["sw", "sw"])
    with pytest.raises(DataError, match="outside"):
        compare_embeddings(vectors, vectors, [(0, 2), (1, 9)], ["sw", "sw"])
    with pytest.raises(DataError, match="one language code per pair"):
        compare_embeddings(vectors, vectors, [(0, 2), (1, 3)], ["sw"])
    with pytest.raises(DataError, match="non-empty list"):
        compare_embeddings(vectors, vectors, [], [])


# --- a model that int8 genuinely breaks in one language --------------------------------------

N_TOKENS = 100
OFFSETS = {"en": 5, "de": 5 + N_TOKENS, "fr": 5 + 2 * N_TOKENS, "sw": 5 + 3 * N_TOKENS}


@pytest.fixture(scope="module")
def fragile_models(tmp_path_factory) -> dict[str, Path]:
    """A tiny BERT whose "sw" token embeddings are the English ones scaled by 1e-3.

    LayerNorm makes that scale invisible in fp32 (position and token-type embeddings are zero), so
    an sw sentence is exactly its English source. onnxruntime quantizes the embedding table per
    tensor: its step (about 1/255 of the range of the other languages' rows, ~0.02) dwarfs the sw
    rows, which all round to zero, so every sw sentence looks alike in int8. de and fr rows are the
    English ones plus small noise and keep their information. This is the mechanism behind real
    single-language collapses: a language whose embedding rows are small next to the table's range.
    """
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    from transformers import BertConfig, BertForSequenceClassification

    from polydistill.compress.quantize import quantize_int8
    from tests.test_quantize import export_module

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=5 + 4 * N_TOKENS,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        num_labels=2,
        max_position_embeddings=64,
    )
    config._attn_implementation = "eager"
    model = BertForSequenceClassification(config).eval()
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        table = model.bert.embeddings.word_embeddings.weight
        english = torch.randn(N_TOKENS, 64, generator=generator)
        table[OFFSETS["en"] : OFFSETS["en"] + N_TOKENS] = english
        for code in ("de", "fr"):
            table[OFFSETS[code] : OFFSETS[code] + N_TOKENS] = english + 0.05 * torch.randn(N_TOKENS, 64, generator=generator)
        table[OFFSETS["sw"] : OFFSETS["sw"] + N_TOKENS] = 1e-3 * english
        model.bert.embeddings.position_embeddings.weight.zero_()
        model.bert.embeddings.token_type_embeddings.weight.zero_()

    class Logits(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).logits

    class MeanPooled(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            hidden = self.inner.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state
            weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
            return (hidden * weights).sum(1) / weights.sum(1)

    directory = tmp_path_factory.mktemp("fragile")
    paths: dict[str, Path] = {}
    for kind, module in (("classifier", Logits(model)), ("encoder", MeanPooled(model))):
        fp32 = directory / f"{kind}.onnx"
        export_module(module, fp32)
        paths[f"{kind}-fp32"] = fp32
        paths[f"{kind}-int8"] = quantize_int8(fp32, directory / f"{kind}-int8.onnx", quantize_embeddings=True).path
        paths[f"{kind}-int8-embeddings-fp32"] = quantize_int8(fp32, directory / f"{kind}-int8-emb.onnx", quantize_embeddings=False).path
    return paths


def sentences(code: str, sources: np.ndarray) -> np.ndarray:
    return sources + OFFSETS[code]


def outputs(path: Path, ids: np.ndarray) -> np.ndarray:
    from tests.test_quantize import run

    return run(path, {"input_ids": ids.astype(np.int64), "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)})


def test_int8_collapses_one_language_of_a_classifier_and_the_check_names_only_it(fragile_models):
    rng = np.random.default_rng(0)
    candidates = rng.integers(0, N_TOKENS, (200, 10))
    # keep sentences the fp32 model decides clearly (rounding noise cannot flip them), both classes
    english = outputs(fragile_models["classifier-fp32"], sentences("en", candidates))
    margin = english[:, 1] - english[:, 0]
    sources = candidates[np.abs(margin) >= 0.3 * np.abs(margin).max()][:30]
    assert len(sources) >= 20
    codes = ["de", "fr", "sw"]
    ids = np.concatenate([sentences(code, sources) for code in codes])
    languages = [code for code in codes for _ in range(len(sources))]
    reference = outputs(fragile_models["classifier-fp32"], ids)
    gold = reference.argmax(axis=1)  # the fp32 answers as labels: its macro-F1 is 1 everywhere
    assert len(set(gold[np.asarray(languages) == "sw"])) == 2

    check = compare_classification(reference, outputs(fragile_models["classifier-int8"], ids), languages, gold=gold)
    assert check.failed == ["sw"], check.describe()
    sw = check.languages["sw"]
    assert sw["agreement"] < 0.9 and sw["drop"] > 0.1
    assert check.describe().startswith("int8 drops macro-F1 by ")
    assert check.languages["de"]["agreement"] == 1.0 and check.languages["fr"]["agreement"] == 1.0

    # the next recipe, embeddings kept fp32, repairs it
    repaired = compare_classification(reference, outputs(fragile_models["classifier-int8-embeddings-fp32"], ids), languages, gold=gold)
    assert repaired.passed, repaired.describe()


def test_int8_collapses_one_language_of_an_encoder_and_the_check_names_only_it(fragile_models):
    rng = np.random.default_rng(1)
    sources = rng.integers(0, N_TOKENS, (30, 10))
    codes = ["de", "fr", "sw"]
    ids = np.concatenate([sentences(code, sources) for code in ["en", *codes]])  # rows: en, then each language
    count = len(sources)
    pairs = [(i, count * (k + 1) + i) for k in range(len(codes)) for i in range(count)]
    languages = [code for code in codes for _ in range(count)]
    reference = outputs(fragile_models["encoder-fp32"], ids)

    check = compare_embeddings(reference, outputs(fragile_models["encoder-int8"], ids), pairs, languages)
    assert check.failed == ["sw"], check.describe()
    assert check.languages["sw"]["reference"] == 1.0  # an sw sentence is its English source in fp32
    assert check.languages["sw"]["candidate"] < 0.5
    assert check.languages["de"]["candidate"] == 1.0 and check.languages["fr"]["candidate"] == 1.0

    repaired = compare_embeddings(reference, outputs(fragile_models["encoder-int8-embeddings-fp32"], ids), pairs, languages)
    assert repaired.passed, repaired.describe()
