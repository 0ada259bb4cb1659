"""Tiny models and a synthetic task, built in memory: the suite needs no network and no real model."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

FILLER = (
    "the a one this that we you they see saw have had make made take took go went very quite "
    "today now then here there some many few more less about over under with without"
).split()
#: class k is decided by which group of keywords the sentence contains
KEYWORDS = [
    "apple pear plum cherry grape".split(),
    "train bus car truck bike".split(),
    "piano violin drum flute harp".split(),
]
LABEL_NAMES = ["fruit", "vehicle", "instrument"]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def synthetic_examples(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    examples = []
    for _ in range(n):
        label = rng.randrange(len(KEYWORDS))
        words = rng.choices(FILLER, k=rng.randint(3, 9))
        words.insert(rng.randrange(len(words) + 1), rng.choice(KEYWORDS[label]))
        examples.append({"text": " ".join(words), "label": LABEL_NAMES[label]})
    return examples


def build_wordpiece_tokenizer():
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = SPECIALS + FILLER + [w for group in KEYWORDS for w in group] + list("abcdefghijklmnopqrstuvwxyz")
    vocab += ["##" + c for c in "abcdefghijklmnopqrstuvwxyz"]
    backend = Tokenizer(models.WordPiece({t: i for i, t in enumerate(dict.fromkeys(vocab))}, unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 2), ("[SEP]", 3)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=64,
    )


def tiny_bert_config(tokenizer, *, layers: int = 4, hidden: int = 32, heads: int = 4, num_labels: int = 3):
    from transformers import BertConfig

    return BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=hidden * 2,
        max_position_embeddings=64,
        num_labels=num_labels,
        id2label=dict(enumerate(LABEL_NAMES[:num_labels])),
        label2id={n: i for i, n in enumerate(LABEL_NAMES[:num_labels])},
        pad_token_id=0,
    )


def train_classifier(model, tokenizer, examples: list[dict], *, max_epochs: int = 30, lr: float = 2e-3, seed: int = 0) -> None:
    """A plain torch loop (independent of polydistill's trainer) to make a competent tiny teacher.

    Tiny BERTs sometimes sit on a plateau for a few epochs before they find the keyword; train
    until the epoch's mean loss is low rather than for a fixed number of epochs.
    """
    torch.manual_seed(seed)
    label2id = model.config.label2id
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    for _ in range(max_epochs):
        order = torch.randperm(len(examples)).tolist()
        losses = []
        for start in range(0, len(order), 32):
            batch = [examples[i] for i in order[start : start + 32]]
            inputs = tokenizer([e["text"] for e in batch], padding=True, return_tensors="pt")
            labels = torch.tensor([label2id[e["label"]] for e in batch])
            loss = model(**inputs, labels=labels).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        if sum(losses) / len(losses) < 0.02:
            break
    model.eval()


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory):
    """Tests never write into the user's cache (offline models, teacher outputs)."""
    import os

    previous = os.environ.get("POLYDISTILL_CACHE")
    os.environ["POLYDISTILL_CACHE"] = str(tmp_path_factory.mktemp("polydistill-cache"))
    yield
    if previous is None:
        os.environ.pop("POLYDISTILL_CACHE", None)
    else:
        os.environ["POLYDISTILL_CACHE"] = previous


@pytest.fixture(scope="session")
def wordpiece_tokenizer():
    return build_wordpiece_tokenizer()


@pytest.fixture(scope="session")
def synthetic_data(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("synthetic")
    return {
        "train": write_jsonl(root / "train.jsonl", synthetic_examples(600, seed=1)),
        "test": write_jsonl(root / "test.jsonl", synthetic_examples(200, seed=2)),
    }


@pytest.fixture(scope="session")
def tiny_teacher_dir(tmp_path_factory, wordpiece_tokenizer, synthetic_data) -> Path:
    """A 4-layer BERT classifier trained on the synthetic task, saved as a model directory."""
    from transformers import BertForSequenceClassification

    torch.manual_seed(0)
    model = BertForSequenceClassification(tiny_bert_config(wordpiece_tokenizer))
    examples = [json.loads(line) for line in synthetic_data["train"].read_text().splitlines()]
    train_classifier(model, wordpiece_tokenizer, examples)
    held_out = [json.loads(line) for line in synthetic_data["test"].read_text().splitlines()]
    with torch.no_grad():
        inputs = wordpiece_tokenizer([e["text"] for e in held_out], padding=True, return_tensors="pt")
        predicted = model(**inputs).logits.argmax(-1).tolist()
    accuracy = sum(LABEL_NAMES[p] == e["label"] for p, e in zip(predicted, held_out, strict=True)) / len(held_out)
    assert accuracy >= 0.95, f"the tiny teacher did not learn the synthetic task (accuracy {accuracy:.2f})"
    directory = tmp_path_factory.mktemp("teacher")
    model.save_pretrained(directory)
    wordpiece_tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory, wordpiece_tokenizer) -> Path:
    """A 2-layer BERT encoder (untrained): a teacher for the embeddings task."""
    from transformers import BertModel

    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("encoder")
    BertModel(tiny_bert_config(wordpiece_tokenizer, layers=2), add_pooling_layer=False).save_pretrained(directory)
    wordpiece_tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def two_language_data(tmp_path_factory) -> dict[str, Path]:
    """The synthetic task in two 'languages' (rows alternately tagged en and de)."""
    root = tmp_path_factory.mktemp("search-data")

    def tagged(rows: list[dict]) -> list[dict]:
        return [row | {"lang": "de" if index % 2 else "en"} for index, row in enumerate(rows)]

    return {
        "train": write_jsonl(root / "train.jsonl", tagged(synthetic_examples(300, seed=1))),
        "test": write_jsonl(root / "test.jsonl", tagged(synthetic_examples(120, seed=2))),
    }
