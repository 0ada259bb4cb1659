"""Width pruning on tiny BERT and XLM-R models built here.

Expected values come from independent computations: a plain-torch BERT forward written here
(for the importance scores), and a reference made from the UNPRUNED model by zeroing the pruned
heads, dims and neurons and normalising only the kept hidden channels (for the slicing), with
the kept index sets chosen in the test by ``torch.topk`` on scores the test draws.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from polydistill.compress.importance import Importance, compute_importance
from polydistill.compress.prune import Widths, kept_indices, prune, prune_model, resolve_widths
from polydistill.errors import ConfigError, DataError
from tests.conftest import build_wordpiece_tokenizer

torch.set_num_threads(1)

VOCAB = 80
TEXTS = {
    "de": ["the apple is here", "we saw a very quite big train today with some bike"],
    "fr": [
        "piano",
        "they had a drum",
        "one bus over the car",
        "few more less",
        "this that we you",
        "go went very",
        "harp flute violin cherry grape",
        "the a one",
        "make made take took",
        "now then here there",
        "some many few more less about over under",
        "with without",
    ],
}


@pytest.fixture(scope="module")
def tokenizer():
    return build_wordpiece_tokenizer()


def tiny(
    kind: str = "bert-cls", *, heads: int = 4, hidden: int = 24, ffn: int = 37, attn: str = "eager", seed: int = 0, vocab: int = VOCAB
):
    """A tiny model with large random weights, and LayerNorm parameters and biases that are not 1 and 0."""
    from transformers import (
        BertConfig,
        BertForMaskedLM,
        BertForSequenceClassification,
        BertModel,
        XLMRobertaConfig,
        XLMRobertaForSequenceClassification,
    )

    torch.manual_seed(seed)
    common = dict(
        vocab_size=vocab,
        hidden_size=hidden,
        num_hidden_layers=2,
        num_attention_heads=heads,
        intermediate_size=ffn,
        max_position_embeddings=70,
        initializer_range=0.3,
        num_labels=3,
        pad_token_id=0,
        attn_implementation=attn,
    )
    cls = {"bert-cls": BertForSequenceClassification, "bert-mlm": BertForMaskedLM, "bert": BertModel}.get(kind)
    model = cls(BertConfig(**common)) if cls else XLMRobertaForSequenceClassification(XLMRobertaConfig(**common))
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("bias"):
                parameter.copy_(torch.randn_like(parameter) * 0.3)
            elif "LayerNorm" in name or "layer_norm" in name:
                parameter.copy_(1 + torch.randn_like(parameter) * 0.3)
    return model.eval()


def batch(seed: int = 1, *, size: int = 3, length: int = 9):
    """Random token ids (>= 3, away from XLM-R's special ids) with right padding in two rows."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, VOCAB, (size, length), generator=generator)
    mask = torch.ones(size, length, dtype=torch.long)
    mask[1, 6:] = 0
    mask[2, 4:] = 0
    ids[mask == 0] = 0
    return {"input_ids": ids, "attention_mask": mask}


# ------------------------------------------------------------------ importance vs a plain-torch BERT


def reference_activations(model, ids: list[int]) -> dict[str, list[torch.Tensor]]:
    """BERT's forward for one unpadded sequence in plain torch ops, recording what importance reads."""
    config = model.config
    state = {k.removeprefix("bert."): v for k, v in model.state_dict().items()}
    heads, hidden = config.num_attention_heads, config.hidden_size
    d = hidden // heads
    eps = config.layer_norm_eps

    def ln(x, name):
        return F.layer_norm(x, (hidden,), state[name + ".weight"], state[name + ".bias"], eps)

    def linear(x, name):
        return x @ state[name + ".weight"].T + state[name + ".bias"]

    n = len(ids)
    x = state["embeddings.word_embeddings.weight"][ids] + state["embeddings.position_embeddings.weight"][:n]
    x = ln(x + state["embeddings.token_type_embeddings.weight"][0], "embeddings.LayerNorm")
    record: dict[str, list[torch.Tensor]] = {"norms": [x], "q": [], "k": [], "context": [], "inter": [], "last": []}
    for i in range(config.num_hidden_layers):
        p = f"encoder.layer.{i}."
        q, k, v = (linear(x, p + f"attention.self.{w}").view(n, heads, d) for w in ("query", "key", "value"))
        probs = torch.softmax(torch.einsum("ihd,jhd->hij", q, k) / math.sqrt(d), dim=-1)
        context = torch.einsum("hij,jhd->ihd", probs, v).reshape(n, hidden)
        attended = ln(linear(context, p + "attention.output.dense") + x, p + "attention.output.LayerNorm")
        inter = F.gelu(linear(attended, p + "intermediate.dense"))
        x = ln(linear(inter, p + "output.dense") + attended, p + "output.LayerNorm")
        record["q"].append(q.reshape(n, hidden))
        record["k"].append(k.reshape(n, hidden))
        record["context"].append(context)
        record["inter"].append(inter)
        record["norms"] += [attended, x]
    record["last"].append(x)
    return record


def expected_importance(model, tokenizer, texts_by_language) -> dict[str, torch.Tensor]:
    config = model.config
    layers, heads, d = config.num_hidden_layers, config.num_attention_heads, config.hidden_size // config.num_attention_heads
    per_language = []
    for texts in texts_by_language.values():
        records = [reference_activations(model, tokenizer(text)["input_ids"]) for text in texts]
        tokens = sum(r["last"][0].shape[0] for r in records)
        pairs = sum(r["last"][0].shape[0] ** 2 for r in records)
        scores = {
            "hidden": sum(sum(n.abs().sum(0) for n in r["norms"]) for r in records) / tokens,
            "heads": torch.stack(
                [sum(r["context"][i].view(-1, heads, d).norm(dim=-1).sum(0) for r in records) / tokens for i in range(layers)]
            ),
            "ffn": torch.stack([sum(r["inter"][i].abs().sum(0) for r in records) / tokens for i in range(layers)]),
            "v_dims": torch.stack([sum(r["context"][i].abs().sum(0) for r in records).view(heads, d) / tokens for i in range(layers)]),
            # every (query token, key token) pair of one sequence, summed explicitly
            "qk_dims": torch.stack(
                [
                    sum(torch.einsum("in,jn->n", r["q"][i].abs(), r["k"][i].abs()) for r in records).view(heads, d) / pairs
                    for i in range(layers)
                ]
            ),
        }
        per_language.append(scores)
    return {name: sum(s[name] for s in per_language) / len(per_language) for name in per_language[0]}


def test_reference_forward_is_berts(tokenizer):
    """The hand-written forward used for the expected importance is BERT's own."""
    model = tiny("bert", vocab=len(tokenizer))
    ids = tokenizer(TEXTS["de"][1])["input_ids"]
    expected = reference_activations(model, ids)["last"][0]
    with torch.no_grad():
        actual = model(input_ids=torch.tensor([ids])).last_hidden_state[0]
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)


def test_importance_matches_a_hand_computation(tokenizer):
    model = tiny("bert", vocab=len(tokenizer))
    # batches of 5 over 12 texts of unequal lengths: padding is there and must be masked out
    importance = compute_importance(model, tokenizer, TEXTS, batch_size=5)
    expected = expected_importance(model, tokenizer, TEXTS)
    for name in ("heads", "ffn", "hidden", "qk_dims", "v_dims"):
        torch.testing.assert_close(getattr(importance, name), expected[name], atol=1e-5, rtol=1e-4, msg=name)
    assert importance.languages == ("de", "fr")
    assert importance.texts == {"de": 2, "fr": 12}
    assert importance.tokens == {lang: sum(len(tokenizer(t)["input_ids"]) for t in texts) for lang, texts in TEXTS.items()}


def test_each_language_weighs_the_same(tokenizer):
    model = tiny("bert", vocab=len(tokenizer))
    few, many = TEXTS["de"], TEXTS["fr"][:3]
    once = compute_importance(model, tokenizer, {"de": few, "fr": many})
    # ten times the French text (the same texts repeated): French's mean, and so the result, is unchanged
    tenfold = compute_importance(model, tokenizer, {"de": few, "fr": many * 10}, batch_size=7)
    pooled = compute_importance(model, tokenizer, {"all": few + many * 10})
    for name in ("heads", "ffn", "hidden"):
        torch.testing.assert_close(getattr(tenfold, name), getattr(once, name), atol=1e-5, rtol=1e-5)
        # pooling all tokens would let French dominate
        assert not torch.allclose(getattr(pooled, name), getattr(once, name), atol=1e-3)


def test_texts_per_language_are_capped_evenly(tokenizer):
    model = tiny("bert", vocab=len(tokenizer))
    texts = TEXTS["fr"][:10]
    capped = compute_importance(model, tokenizer, {"fr": texts}, max_texts_per_language=4)
    # 4 of 10, spread over the list: indices 0, 2, 5, 7
    chosen = compute_importance(model, tokenizer, {"fr": [texts[i] for i in (0, 2, 5, 7)]})
    assert capped.texts == {"fr": 4}
    torch.testing.assert_close(capped.heads, chosen.heads)
    torch.testing.assert_close(capped.hidden, chosen.hidden)


def test_importance_prefix_and_xlmr(tokenizer):
    model = tiny("xlmr", vocab=len(tokenizer))
    importance = compute_importance(model, tokenizer, {"de": TEXTS["de"]}, prefix="the ")
    # the prefix is one more token per text
    assert importance.tokens == {"de": sum(len(tokenizer("the " + t)["input_ids"]) for t in TEXTS["de"])}
    assert importance.heads.shape == (2, 4) and importance.qk_dims.shape == (2, 4, 6) and importance.hidden.shape == (24,)
    assert bool((importance.heads > 0).all())


def test_importance_refuses_empty_input(tokenizer):
    model = tiny("bert", vocab=len(tokenizer))
    with pytest.raises(DataError, match="at least one language"):
        compute_importance(model, tokenizer, {})
    with pytest.raises(DataError, match="'fr' has no non-empty text"):
        compute_importance(model, tokenizer, {"de": TEXTS["de"], "fr": ["  "]})


# ------------------------------------------------------------------ slicing vs zeroing the unpruned model


def random_importance(model, seed: int = 5) -> Importance:
    config = model.config
    layers, heads, d = config.num_hidden_layers, config.num_attention_heads, config.hidden_size // config.num_attention_heads
    generator = torch.Generator().manual_seed(seed)
    rand = lambda *shape: torch.rand(*shape, generator=generator)  # noqa: E731
    return Importance(
        heads=rand(layers, heads),
        ffn=rand(layers, config.intermediate_size),
        hidden=rand(config.hidden_size),
        qk_dims=rand(layers, heads, d),
        v_dims=rand(layers, heads, d),
        languages=("xx",),
        texts={"xx": 1},
        tokens={"xx": 1},
    )


def top(scores: torch.Tensor, k: int) -> list[int]:
    return sorted(torch.topk(scores, k).indices.tolist())


class MaskedLayerNorm(nn.Module):
    """LayerNorm over the kept channels only, zero on the others: what a sliced LayerNorm computes, in place."""

    def __init__(self, norm: nn.LayerNorm, keep: list[int]) -> None:
        super().__init__()
        self.norm, self.keep = norm, torch.tensor(keep)

    def forward(self, x):
        out = torch.zeros_like(x)
        weight, bias = self.norm.weight[self.keep], self.norm.bias[self.keep]
        out[..., self.keep] = F.layer_norm(x[..., self.keep], (len(self.keep),), weight, bias, self.norm.eps)
        return out


def zeroed_reference(model, importance: Importance, widths: Widths):
    """The unpruned model with every pruned unit zeroed and LayerNorms restricted to the kept channels.

    Query dims are NOT rescaled here: the reference keeps the original 1/sqrt(head_dim_old)
    scaling, which is what the pruned model's rescaled queries must reproduce.
    """
    reference = copy.deepcopy(model)
    config = model.config
    d = config.hidden_size // config.num_attention_heads
    hidden_keep = top(importance.hidden, widths.hidden_size)
    hidden_drop = sorted(set(range(config.hidden_size)) - set(hidden_keep))
    with torch.no_grad():
        for i, layer in enumerate(reference.base_model.encoder.layer):
            heads = top(importance.heads[i], widths.num_attention_heads)
            qk_rows = [h * d + j for h in heads for j in top(importance.qk_dims[i, h], widths.head_dim)]
            v_rows = [h * d + j for h in heads for j in top(importance.v_dims[i, h], widths.head_dim)]
            attention = layer.attention.self
            for linear, rows in ((attention.query, qk_rows), (attention.key, qk_rows), (attention.value, v_rows)):
                drop = sorted(set(range(config.hidden_size)) - set(rows))
                linear.weight[drop] = 0
                linear.bias[drop] = 0
            neurons = top(importance.ffn[i], widths.intermediate_size)
            drop = sorted(set(range(config.intermediate_size)) - set(neurons))
            layer.intermediate.dense.weight[drop] = 0
            layer.intermediate.dense.bias[drop] = 0
            layer.output.dense.weight[:, drop] = 0
        # dense layers writing to the hidden width outside the residual stream: pruned outputs zero (tanh(0) = 0)
        for name, module in reference.named_modules():
            if name.endswith("pooler.dense") or name == "classifier.dense":
                module.weight[hidden_drop] = 0
                module.bias[hidden_drop] = 0
    if widths.hidden_size < config.hidden_size:
        norms = [(name, m) for name, m in reference.named_modules() if isinstance(m, nn.LayerNorm)]
        for name, norm in norms:
            parent, _, child = name.rpartition(".")
            setattr(reference.get_submodule(parent), child, MaskedLayerNorm(norm, hidden_keep))
    return reference, hidden_keep


CASES = {
    # kind, attention, model widths (heads, hidden, ffn), prune request
    "ffn-only": ("bert-cls", "eager", (4, 24, 37), dict(ffn=20)),
    "heads-only": ("bert-cls", "sdpa", (4, 24, 37), dict(heads=0.5)),
    "hidden-only-xlmr": ("xlmr", "eager", (4, 24, 37), dict(hidden=12)),
    "all-mlm": ("bert-mlm", "eager", (3, 15, 30), dict(heads=2, hidden=8, ffn=0.5)),
    "all-base": ("bert", "sdpa", (4, 24, 37), dict(heads=3, hidden=0.5, ffn=7)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_sliced_model_equals_zeroed_reference(case):
    kind, attn, (heads, hidden, ffn), request = CASES[case]
    model = tiny(kind, heads=heads, hidden=hidden, ffn=ffn, attn=attn)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    importance = random_importance(model)
    widths = resolve_widths(model.config, **request)
    pruned = prune_model(model, importance, widths)
    reference, hidden_keep = zeroed_reference(model, importance, widths)

    assert type(pruned) is type(model)
    assert (pruned.config.num_attention_heads, pruned.config.hidden_size, pruned.config.intermediate_size) == (
        widths.num_attention_heads,
        widths.hidden_size,
        widths.intermediate_size,
    )
    assert pruned.config._attn_implementation == attn
    inputs = batch()
    with torch.no_grad():
        got = pruned(**inputs, output_hidden_states=True)
        want = reference(**inputs, output_hidden_states=True)
    for layer, (g, w) in enumerate(zip(got.hidden_states, want.hidden_states, strict=True)):
        torch.testing.assert_close(g, w[..., hidden_keep], atol=1e-5, rtol=1e-5, msg=f"hidden state {layer}")
    if hasattr(got, "logits"):
        torch.testing.assert_close(got.logits, want.logits, atol=1e-5, rtol=1e-5)
    if kind == "bert":
        torch.testing.assert_close(got.pooler_output, want.pooler_output[..., hidden_keep], atol=1e-5, rtol=1e-5)
    # the original is untouched
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_kept_indices_are_the_top_scores_sorted():
    model = tiny("bert-cls")
    importance = random_importance(model)
    widths = resolve_widths(model.config, heads=2, hidden=8, ffn=5)
    kept = kept_indices(importance, widths)
    assert kept["hidden"] == top(importance.hidden, 8)
    assert kept["heads"] == [top(importance.heads[i], 2) for i in range(2)]
    assert kept["ffn"] == [top(importance.ffn[i], 5) for i in range(2)]
    assert kept["qk_dims"][1] == [top(importance.qk_dims[1, h], 4) for h in kept["heads"][1]]
    assert kept["v_dims"][0] == [top(importance.v_dims[0, h], 4) for h in kept["heads"][0]]


def test_attention_scores_of_kept_dims_are_preserved():
    """Layer 0's attention probabilities of a head-size-halved model, recomputed by hand from the ORIGINAL weights."""
    model = tiny("bert-cls", attn="eager")
    importance = random_importance(model)
    pruned = prune_model(model, importance, resolve_widths(model.config, hidden=12))  # 4 heads of 3 dims (from 6)
    inputs = batch()
    with torch.no_grad():
        out = pruned(**inputs, output_hidden_states=True, output_attentions=True)
    x = out.hidden_states[0]  # layer 0's input, on the kept channels
    hid = top(importance.hidden, 12)
    original = model.bert.encoder.layer[0].attention.self
    additive_mask = (1 - inputs["attention_mask"][:, None, :].float()) * torch.finfo(torch.float32).min
    for h in range(4):
        rows = [h * 6 + j for j in top(importance.qk_dims[0, h], 3)]
        q = x @ original.query.weight[rows][:, hid].T + original.query.bias[rows]
        k = x @ original.key.weight[rows][:, hid].T + original.key.bias[rows]
        expected = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(6) + additive_mask, dim=-1)
        torch.testing.assert_close(out.attentions[0][:, h], expected, atol=1e-5, rtol=1e-5)
    # and the stored query weights are the original ones times sqrt(3 / 6)
    rows = [0 * 6 + j for j in top(importance.qk_dims[0, 0], 3)]
    torch.testing.assert_close(
        pruned.bert.encoder.layer[0].attention.self.query.weight[:3], original.query.weight[rows][:, hid] * math.sqrt(0.5)
    )


def test_keeping_everything_is_the_original_exactly():
    model = tiny("xlmr")
    pruned = prune_model(model, random_importance(model), resolve_widths(model.config))
    original, new = model.state_dict(), pruned.state_dict()
    assert original.keys() == new.keys()
    assert all(torch.equal(original[k], new[k]) for k in original)
    assert pruned is not model


def test_tied_embeddings_stay_tied():
    model = tiny("bert-mlm", heads=3, hidden=15, ffn=30)
    pruned = prune_model(model, random_importance(model), resolve_widths(model.config, hidden=9))
    assert pruned.get_output_embeddings().weight.data_ptr() == pruned.get_input_embeddings().weight.data_ptr()
    assert pruned.get_input_embeddings().weight.shape == (VOCAB, 9)


@pytest.mark.parametrize("kind", ["bert-cls", "xlmr"])
def test_save_and_load_with_auto_classes(tmp_path, kind):
    from transformers import AutoModel, AutoModelForSequenceClassification

    model = tiny(kind)
    pruned = prune_model(model, random_importance(model), resolve_widths(model.config, heads=0.25, hidden=12, ffn=0.5))
    pruned.save_pretrained(tmp_path)
    # the attention implementation is a loading choice, not part of the saved config: ask for the pruned model's
    attn = {"attn_implementation": pruned.config._attn_implementation}
    classifier, info = AutoModelForSequenceClassification.from_pretrained(tmp_path, output_loading_info=True, **attn)
    assert not info["missing_keys"] and not info["mismatched_keys"] and not info["unexpected_keys"]
    encoder, info = AutoModel.from_pretrained(tmp_path, output_loading_info=True, **attn)
    # XLM-R's classifier has no pooler, so AutoModel initialises one, as it does for the unpruned model
    assert info["missing_keys"] <= {"pooler.dense.weight", "pooler.dense.bias"} and not info["mismatched_keys"]
    assert (classifier.config.num_attention_heads, classifier.config.hidden_size, classifier.config.intermediate_size) == (
        3,
        12,
        19,
    )  # 37 x (1 - 0.5) = 18.5 kept, rounded half up
    inputs = batch()
    with torch.no_grad():
        assert torch.equal(classifier.eval()(**inputs).logits, pruned(**inputs).logits)
        assert torch.equal(encoder.eval()(**inputs).last_hidden_state, pruned.base_model(**inputs).last_hidden_state)


def test_prune_convenience(tokenizer):
    model = tiny("bert-cls", vocab=len(tokenizer))
    result = prune(model, tokenizer, TEXTS, heads=2, ffn=0.5, batch_size=4)
    assert (result.widths.num_attention_heads, result.widths.hidden_size, result.widths.intermediate_size) == (2, 12, 19)
    assert result.widths.notes and "hidden_size shrinks" in result.widths.notes[0]
    assert result.kept["heads"] == [top(result.importance.heads[i], 2) for i in range(2)]
    assert result.model.config.hidden_size == 12
    # a request that cannot work fails before the calibration pass
    with pytest.raises(ConfigError, match="heads"):
        prune(model, tokenizer, {}, heads=1.5)


def test_refuses_mismatched_importance_and_widths():
    model = tiny("bert-cls")
    other = tiny("bert-cls", heads=2)
    with pytest.raises(ConfigError, match="measured on another model"):
        prune_model(model, random_importance(other), resolve_widths(model.config))
    with pytest.raises(ConfigError, match="do not fit"):
        prune_model(model, random_importance(model), Widths(num_attention_heads=2, intermediate_size=37, hidden_size=24))


# ------------------------------------------------------------------ widths


def bert_base():
    from transformers import BertConfig

    return BertConfig(hidden_size=768, num_attention_heads=12, intermediate_size=3072)


def widths_of(w: Widths) -> tuple[int, int, int]:
    return (w.num_attention_heads, w.hidden_size, w.intermediate_size)


def test_resolve_widths_cases():
    config = bert_base()
    assert widths_of(resolve_widths(config)) == (12, 768, 3072) and resolve_widths(config).notes == []
    halved_heads = resolve_widths(config, heads=0.5)  # a float is the fraction REMOVED
    assert widths_of(halved_heads) == (6, 384, 3072) and halved_heads.head_dim == 64
    assert any("hidden_size shrinks" in note for note in halved_heads.notes)
    assert halved_heads.describe() == "6 heads x 64 = hidden 384, FFN 3072"
    assert widths_of(resolve_widths(config, ffn=0.25)) == (12, 768, 2304)
    assert widths_of(resolve_widths(config, ffn=1000)) == (12, 768, 1000)
    narrow_heads = resolve_widths(config, hidden=0.5)
    assert widths_of(narrow_heads) == (12, 384, 3072) and narrow_heads.head_dim == 32
    assert any("head size shrinks from 64 to 32" in note for note in narrow_heads.notes)
    rounded = resolve_widths(config, hidden=500)
    assert widths_of(rounded) == (12, 492, 3072) and any("rounded down from 500 to 492" in note for note in rounded.notes)
    assert widths_of(resolve_widths(config, heads=8, hidden=384, ffn=1536)) == (8, 384, 1536)
    assert widths_of(resolve_widths(config, heads=12, hidden=768)) == (12, 768, 3072)


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (dict(heads=1.0), r"must be in \(0, 1\)"),
        (dict(ffn=0.0), r"must be in \(0, 1\)"),
        (dict(heads=0), "between 1 and the original 12"),
        (dict(heads=13), "between 1 and the original 12"),
        (dict(ffn=3073), "between 1 and the original 3072"),
        (dict(hidden=0.0001), "removes none|removing none"),
        (dict(heads=0.99), "leaves none"),
        (dict(heads=True), "expected a fraction"),
        (dict(heads=2, hidden=256), "keep at most 128 channels with 2 heads, or at least 4 heads"),
        (dict(hidden=5), "keep at least 12"),
        (dict(heads=6, hidden=0.25), "larger than the original 64"),
    ],
)
def test_resolve_widths_errors(request_, message):
    with pytest.raises(ConfigError, match=message):
        resolve_widths(bert_base(), **request_)


def test_unsupported_model_type():
    from transformers import DistilBertConfig

    with pytest.raises(ConfigError, match=r"bert, roberta, xlm-roberta; this model is 'distilbert'"):
        resolve_widths(DistilBertConfig(), heads=0.5)
