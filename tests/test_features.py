"""Distillation features: what the tokeniser gives, under a fingerprint that follows what they depend on."""

from __future__ import annotations

from datasets import Dataset

from polydistill.training.features import tokenize_for_distillation
from tests.conftest import build_wordpiece_tokenizer

ROWS = {"text": ["the apple now", "many drum here"], "label": [1, -1], "lang": ["en", "de"]}


def test_features_are_the_tokenizers_output_under_a_fingerprint_of_their_inputs():
    rows = Dataset.from_dict(ROWS)
    tokenizer = build_wordpiece_tokenizer()
    features = tokenize_for_distillation(rows, tokenizer, max_length=8)
    expected = tokenizer(ROWS["text"], truncation=True, max_length=8)
    assert features["input_ids"] == expected["input_ids"] and features["attention_mask"] == expected["attention_mask"]
    assert features["labels"] == [1, -100] and features["lang"] == ["en", "de"]

    # another copy of the same tokenizer over the same rows: the same fingerprint (a cached map result is reused) ...
    again = tokenize_for_distillation(Dataset.from_dict(ROWS), build_wordpiece_tokenizer(), max_length=8)
    assert again._fingerprint == features._fingerprint
    # the tokenizer used since (its backend now set to truncate at 6) is still the same tokenizer
    tokenizer(ROWS["text"], truncation=True, max_length=6)
    assert tokenize_for_distillation(rows, tokenizer, max_length=8)._fingerprint == features._fingerprint
    # ... and each thing the features depend on changes it
    other_vocabulary = build_wordpiece_tokenizer()
    other_vocabulary.add_tokens(["drumroll"])
    changed = [
        tokenize_for_distillation(rows, tokenizer, max_length=6),
        tokenize_for_distillation(rows, tokenizer, max_length=8, prefix="query: "),
        tokenize_for_distillation(rows, other_vocabulary, max_length=8),
        tokenize_for_distillation(rows, tokenizer, teacher_tokenizer=other_vocabulary, max_length=8),
        tokenize_for_distillation(Dataset.from_dict(ROWS | {"text": ["the apple", "many drum"]}), tokenizer, max_length=8),
    ]
    fingerprints = [features._fingerprint, *(each._fingerprint for each in changed)]
    assert len(set(fingerprints)) == len(fingerprints)
    assert changed[3]["teacher_input_ids"] == other_vocabulary(ROWS["text"], truncation=True, max_length=8)["input_ids"]
