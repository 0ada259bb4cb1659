"""Teacher-output cache (issue 7): fingerprinting and reuse, equality with the online teacher,
atomic writes, memory-mapped reading.

Tolerances. Logits are stored in float32, so cached and online logits differ only by float32
noise from a different batch composition (atol 1e-5). Token-level outputs are stored in float16,
whose rounding error is at most 2**-11 (4.9e-4) of a value: compared with rtol 1e-3, atol 1e-5.
Losses computed from cached outputs agree with the online teacher's within rtol 1e-3.
"""

from __future__ import annotations

import copy
import math

import datasets
import numpy as np
import pytest
import torch
from conftest import build_wordpiece_tokenizer, synthetic_examples, tiny_bert_config
from transformers import BertForSequenceClassification, BertModel, TrainingArguments

from polydistill import atomic
from polydistill.models.student import build_student
from polydistill.objectives import (
    AttentionRelations,
    Attentions,
    HiddenStates,
    Objective,
    ObjectiveSet,
    SoftTargets,
)
from polydistill.objectives.base import Outputs
from polydistill.objectives.capture import QKVRecorder
from polydistill.training import cache as cache_module
from polydistill.training.cache import (
    MANIFEST_FILE,
    TeacherCache,
    TeacherCacheError,
    cache_fields,
    cache_fingerprint,
    default_cache_root,
    estimate_cache_bytes,
)
from polydistill.training.features import (
    FEATURE_COLUMNS,
    DistillationCollator,
    tokenize_for_distillation,
)
from polydistill.training.provenance import fingerprint_weights
from polydistill.training.trainer import DistillationTrainer

MAX_LENGTH = 16
FP16_RTOL, FP16_ATOL = 1e-3, 1e-5
FIELDS = ["logits", "hidden_states:0", "hidden_states:2", "attentions:1", "qkv:1:query", "qkv:1:key", "qkv:1:value"]
TEXTS = [example["text"] for example in synthetic_examples(30, seed=5)]


def make_features(texts, tokenizer, max_length=MAX_LENGTH):
    features = tokenize_for_distillation(datasets.Dataset.from_dict({"text": texts}), tokenizer, max_length=max_length)
    return features.add_column("example_index", list(range(len(features))))


def load_teacher(directory):
    return BertForSequenceClassification.from_pretrained(directory, attn_implementation="eager").eval()


def count_forwards(model) -> list[int]:
    calls: list[int] = []
    model.register_forward_pre_hook(lambda module, args, kwargs: calls.append(1), with_kwargs=True)
    return calls


def build(root, teacher, teacher_dir, tokenizer, features, *, fields=FIELDS, max_length=MAX_LENGTH, batch_size=8, **kwargs):
    fingerprint = cache_fingerprint(
        teacher_sha256=fingerprint_weights(teacher_dir), tokenizer=tokenizer, features=features, max_length=max_length, fields=fields
    )
    return TeacherCache.load_or_build(
        root,
        fingerprint=fingerprint,
        teacher=teacher,
        features=features,
        collator=DistillationCollator(tokenizer),
        fields=fields,
        batch_size=batch_size,
        **kwargs,
    )


def model_inputs(batch):
    return {key: batch[key] for key in FEATURE_COLUMNS if key in batch}


def online(teacher, batch, qkv_layers=(1,)) -> Outputs:
    """The teacher run on the batch as the online trainer runs it."""
    recorder = QKVRecorder(teacher, list(qkv_layers))
    with torch.no_grad():
        out = teacher(**model_inputs(batch), output_hidden_states=True, output_attentions=True)
    recorder.remove()
    return Outputs(out.logits, out.hidden_states, out.attentions, recorder.take(), batch["attention_mask"])


def shuffled_batches(features, tokenizer, size=7, seed=0):
    order = np.random.default_rng(seed).permutation(len(features)).tolist()
    collator = DistillationCollator(tokenizer)
    return [collator([features[i] for i in order[s : s + size]]) for s in range(0, len(order), size)]


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory, wordpiece_tokenizer):
    """A randomly initialised 2-layer BERT classifier (hidden 32, 4 heads): its outputs need not be
    good, only far from a student's, so initialised with a wide spread (sharp attention, large logits)."""
    torch.manual_seed(0)
    config = tiny_bert_config(wordpiece_tokenizer, layers=2)
    config.initializer_range = 0.2
    model = BertForSequenceClassification(config)
    directory = tmp_path_factory.mktemp("cache-teacher")
    model.save_pretrained(directory)
    wordpiece_tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def features(wordpiece_tokenizer):
    return make_features(TEXTS, wordpiece_tokenizer)


@pytest.fixture(scope="module")
def built(tmp_path_factory, teacher_dir, wordpiece_tokenizer, features):
    root = tmp_path_factory.mktemp("cache-root")
    return build(root, load_teacher(teacher_dir), teacher_dir, wordpiece_tokenizer, features)


# --------------------------------------------------------------------------- fingerprint and reuse


def test_fingerprint_changes_with_weights_tokenizer_data_max_length_and_fields_only(teacher_dir, wordpiece_tokenizer, features, tmp_path):
    sha = fingerprint_weights(teacher_dir)

    def fingerprint(sha=sha, tokenizer=wordpiece_tokenizer, features=features, max_length=MAX_LENGTH, fields=FIELDS):
        return cache_fingerprint(teacher_sha256=sha, tokenizer=tokenizer, features=features, max_length=max_length, fields=fields)

    base = fingerprint()
    fresh_tokenizer = build_wordpiece_tokenizer()
    assert fingerprint(tokenizer=fresh_tokenizer, features=make_features(TEXTS, fresh_tokenizer), fields=FIELDS[::-1]) == base

    changed_teacher = load_teacher(teacher_dir)
    with torch.no_grad():
        changed_teacher.classifier.bias[0] += 1e-3
    changed_teacher.save_pretrained(tmp_path / "changed")
    grown_tokenizer = build_wordpiece_tokenizer()
    grown_tokenizer.add_tokens(["zebra"])  # the data's token ids stay the same
    variants = {
        "weights": fingerprint(sha=fingerprint_weights(tmp_path / "changed")),
        "tokenizer": fingerprint(tokenizer=grown_tokenizer, features=make_features(TEXTS, grown_tokenizer)),
        "one text": fingerprint(features=make_features([*TEXTS[:-1], TEXTS[-1] + " apple"], wordpiece_tokenizer)),
        "row order": fingerprint(features=make_features(TEXTS[::-1], wordpiece_tokenizer)),
        "max_length, same ids": fingerprint(max_length=32, features=make_features(TEXTS, wordpiece_tokenizer, 32)),
        "max_length, truncated": fingerprint(max_length=8, features=make_features(TEXTS, wordpiece_tokenizer, 8)),
        "fields": fingerprint(fields=FIELDS[:-1]),
    }
    assert make_features(TEXTS, wordpiece_tokenizer, 32)[:]["input_ids"] == features[:]["input_ids"]
    assert len({base, *variants.values()}) == len(variants) + 1, variants


def test_identical_inputs_reuse_the_cache_and_changed_inputs_rebuild_it(teacher_dir, wordpiece_tokenizer, features, tmp_path):
    teacher = load_teacher(teacher_dir)
    calls = count_forwards(teacher)
    first = build(tmp_path, teacher, teacher_dir, wordpiece_tokenizer, features)
    assert len(calls) == first.forward_batches == math.ceil(len(TEXTS) / 8)

    # a new process would load everything afresh: new teacher object, tokenizer and features
    again_teacher = load_teacher(teacher_dir)
    again_calls = count_forwards(again_teacher)
    again_tokenizer = build_wordpiece_tokenizer()
    again = build(tmp_path, again_teacher, teacher_dir, again_tokenizer, make_features(TEXTS, again_tokenizer))
    assert again_calls == [] and again.forward_batches == 0
    assert again.directory == first.directory

    changed_dir = tmp_path / "changed-teacher"
    changed = load_teacher(teacher_dir)
    with torch.no_grad():
        changed.classifier.bias[0] += 0.5
    changed.save_pretrained(changed_dir)
    grown = build_wordpiece_tokenizer()
    grown.add_tokens(["zebra"])
    rebuilt = {
        "weights": build(tmp_path, changed, changed_dir, wordpiece_tokenizer, features),
        "tokenizer": build(tmp_path, teacher, teacher_dir, grown, make_features(TEXTS, grown)),
        "data": build(tmp_path, teacher, teacher_dir, wordpiece_tokenizer, make_features(TEXTS[:-1], wordpiece_tokenizer)),
        "max_length": build(
            tmp_path, teacher, teacher_dir, wordpiece_tokenizer, make_features(TEXTS, wordpiece_tokenizer, 8), max_length=8
        ),
    }
    for name, cache in rebuilt.items():
        assert cache.forward_batches > 0, name
    assert len({first.directory, *(cache.directory for cache in rebuilt.values())}) == 5
    # the changed teacher's cache holds the changed teacher's logits (shifted by 0.5 in class 0)
    shift = rebuilt["weights"].batch(range(len(TEXTS)))["logits"] - first.batch(range(len(TEXTS)))["logits"]
    torch.testing.assert_close(shift, torch.tensor([0.5, 0.0, 0.0]).expand_as(shift), rtol=0, atol=1e-5)


# --------------------------------------------------------------------------- equality with the online teacher


def test_runs_asking_other_fields_share_one_cache_built_for_their_union(teacher_dir, wordpiece_tokenizer, features, tmp_path):
    teacher = load_teacher(teacher_dir)
    calls = count_forwards(teacher)
    everything = list(range(len(TEXTS)))
    batches = math.ceil(len(TEXTS) / 8)
    logits_only = build(tmp_path, teacher, teacher_dir, wordpiece_tokenizer, features, fields=["logits"])
    assert len(calls) == batches and sorted(logits_only.batch(everything)) == ["attention_mask", "logits"]

    # a run that also needs a hidden state builds once, for both runs' fields, and replaces the logits-only cache
    hidden = build(tmp_path, teacher, teacher_dir, wordpiece_tokenizer, features, fields=["hidden_states:2"])
    assert len(calls) == 2 * batches and hidden.fields == ["hidden_states:2"]
    assert sorted(hidden.manifest["fields"]) == ["hidden_states:2", "logits"]
    assert [d.name for d in tmp_path.iterdir() if d.is_dir()] == [hidden.directory.name]

    # from now on both runs, and any run asking a subset, read it without running the teacher
    for fields in (["logits"], ["hidden_states:2"], ["hidden_states:2", "logits"]):
        reused = build(tmp_path, teacher, teacher_dir, wordpiece_tokenizer, features, fields=fields)
        assert reused.directory == hidden.directory and reused.forward_batches == 0 and reused.fields == fields
    assert len(calls) == 2 * batches

    # what it serves is the teacher's own output for each field
    batch = DistillationCollator(wordpiece_tokenizer)([features[i] for i in everything])
    expected = online(teacher, batch)
    served = build(tmp_path, teacher, teacher_dir, wordpiece_tokenizer, features, fields=["logits", "hidden_states:2"]).outputs(batch)
    torch.testing.assert_close(served.logits, expected.logits, rtol=0, atol=1e-5)
    mask = batch["attention_mask"].bool()
    torch.testing.assert_close(served.hidden_states[2][mask], expected.hidden_states[2][mask], rtol=FP16_RTOL, atol=FP16_ATOL)

    # a cache of other inputs is not a sibling: asking its fields builds anew
    other = build(tmp_path, teacher, teacher_dir, wordpiece_tokenizer, make_features(TEXTS[:-1], wordpiece_tokenizer), fields=["logits"])
    assert other.forward_batches > 0 and other.manifest["fields"] == ["logits"] and hidden.directory.is_dir()


def test_cached_outputs_equal_the_online_teacher_for_other_batches(built, teacher_dir, wordpiece_tokenizer, features):
    teacher = load_teacher(teacher_dir)
    for batch in shuffled_batches(features, wordpiece_tokenizer):
        live = online(teacher, batch)
        cached = built.outputs(batch)
        mask = batch["attention_mask"].bool()
        torch.testing.assert_close(cached.logits, live.logits, rtol=0, atol=1e-5)
        assert torch.equal(cached.attention_mask, batch["attention_mask"])
        for index in (0, 2, -1):
            torch.testing.assert_close(cached.hidden_states[index][mask], live.hidden_states[index][mask], rtol=FP16_RTOL, atol=FP16_ATOL)
            assert not cached.hidden_states[index][~mask].any()
        for role in ("query", "key", "value"):
            torch.testing.assert_close(cached.qkv[1][role][mask], live.qkv[1][role][mask], rtol=FP16_RTOL, atol=FP16_ATOL)
        pairs = mask[:, None, :, None] & mask[:, None, None, :]
        pairs = pairs.expand_as(live.attentions[1])
        torch.testing.assert_close(cached.attentions[1][pairs], live.attentions[1][pairs], rtol=FP16_RTOL, atol=FP16_ATOL)
        with pytest.raises(KeyError, match="not in the teacher cache"):
            cached.hidden_states[1]


def test_losses_from_the_cache_equal_losses_from_the_online_teacher(built, teacher_dir, wordpiece_tokenizer, features):
    teacher = load_teacher(teacher_dir)
    torch.manual_seed(1)
    student = build_student(teacher, keep_layers=1, hidden_size=16, num_attention_heads=2, intermediate_size=32).model.eval()
    student.set_attn_implementation("eager")
    objectives = ObjectiveSet(
        {
            "soft_targets": SoftTargets(2.0),
            "hidden_states": HiddenStates({0: 0, 1: 2}, student_width=16, teacher_width=32),
            "attentions": Attentions({0: 1}),
            "attention_relations": AttentionRelations(teacher_layer=1, student_layer=0, relation_heads=4),
        },
        dict.fromkeys(["soft_targets", "hidden_states", "attentions", "attention_relations"], 1.0),
    )
    assert cache_fields(objectives, teacher_layers=2) == sorted(FIELDS) == built.fields
    recorder = QKVRecorder(student, [0])
    for batch in shuffled_batches(features, wordpiece_tokenizer, size=9, seed=1):
        with torch.no_grad():
            out = student(**model_inputs(batch), output_hidden_states=True, output_attentions=True)
        student_out = Outputs(out.logits, out.hidden_states, out.attentions, recorder.take(), batch["attention_mask"])
        _, live_terms = objectives(student_out, online(teacher, batch), batch)
        _, cached_terms = objectives(student_out, built.outputs(batch), batch)
        assert set(cached_terms) == set(live_terms) and len(live_terms) == 6
        for term, value in live_terms.items():
            assert value > 0
            torch.testing.assert_close(cached_terms[term], value, rtol=FP16_RTOL, atol=0, msg=term)


def test_training_from_the_cache_logs_the_losses_of_training_with_the_online_teacher(
    built, teacher_dir, wordpiece_tokenizer, features, tmp_path
):
    teacher = load_teacher(teacher_dir)
    calls = count_forwards(teacher)
    torch.manual_seed(2)
    student = build_student(teacher, keep_layers=1).model
    histories = {}
    for name, teacher_cache in (("online", None), ("cached", built)):
        calls.clear()
        trainer = DistillationTrainer(
            model=copy.deepcopy(student),
            args=TrainingArguments(
                output_dir=str(tmp_path / name),
                report_to="none",
                use_cpu=True,
                remove_unused_columns=False,
                per_device_train_batch_size=8,
                max_steps=4,
                logging_steps=1,
                save_strategy="no",
                seed=3,
            ),
            teacher=teacher,
            objectives=ObjectiveSet(
                {"soft_targets": SoftTargets(2.0), "hidden_states": HiddenStates({0: 0, 1: 2}, student_width=32, teacher_width=32)},
                {"soft_targets": 1.0, "hidden_states": 1.0},
            ),
            train_dataset=features,
            data_collator=DistillationCollator(wordpiece_tokenizer),
            teacher_cache=teacher_cache,
        )
        trainer.train()
        histories[name] = [{k: v for k, v in log.items() if k.startswith("loss")} for log in trainer.state.log_history if "loss" in log]
        assert len(histories[name]) == 4
        assert (len(calls) > 0) == (name == "online")
    for live, cached in zip(histories["online"], histories["cached"], strict=True):
        assert set(live) == set(cached) == {"loss", "loss_soft_targets", "loss_hidden_states"}
        for key in live:
            assert cached[key] == pytest.approx(live[key], rel=FP16_RTOL, abs=1e-5), key


def test_cached_embeddings_are_the_mean_pooled_last_state_of_one_teacher_forward_per_batch(
    teacher_dir, wordpiece_tokenizer, features, tmp_path
):
    teacher = BertModel.from_pretrained(teacher_dir).eval()  # an embedding teacher: the base model
    calls = count_forwards(teacher)
    cache = build(tmp_path, teacher, teacher_dir, wordpiece_tokenizer, features, fields=["embeddings"])
    assert len(calls) == cache.forward_batches == math.ceil(len(TEXTS) / 8)
    embeddings = cache.batch(range(len(TEXTS)))["embeddings"]
    with torch.no_grad():  # one example at a time: no padding, so the mean pool is a plain mean over tokens
        expected = torch.cat([teacher(**wordpiece_tokenizer(text, return_tensors="pt")).last_hidden_state.mean(dim=1) for text in TEXTS])
    assert embeddings.shape == (len(TEXTS), 32)
    torch.testing.assert_close(embeddings, expected, rtol=FP16_RTOL, atol=FP16_ATOL)
    batch = shuffled_batches(features, wordpiece_tokenizer)[0]
    torch.testing.assert_close(cache.outputs(batch).embeddings, embeddings[batch["example_index"]])

    class NeedsEmbeddings(Objective):
        requires = frozenset({"embeddings"})

    assert cache_fields([NeedsEmbeddings()], teacher_layers=2, logits=False) == ["embeddings"]
    # a classifier teacher (relational objectives in classification) pools its final hidden state, the same one
    classifier = load_teacher(teacher_dir)
    pooled = build(tmp_path / "other", classifier, teacher_dir, wordpiece_tokenizer, features, fields=["embeddings"])
    with torch.no_grad():
        final = [
            classifier(**wordpiece_tokenizer(text, return_tensors="pt"), output_hidden_states=True).hidden_states[-1] for text in TEXTS
        ]
    torch.testing.assert_close(
        pooled.batch(range(len(TEXTS)))["embeddings"], torch.cat([h.mean(dim=1) for h in final]), rtol=FP16_RTOL, atol=FP16_ATOL
    )


# --------------------------------------------------------------------------- interrupted writes


def _partials(root):
    return sorted(root.glob(".*.partial-*"))


def test_a_failed_write_leaves_nothing_and_the_next_run_builds(teacher_dir, wordpiece_tokenizer, features, tmp_path, monkeypatch):
    teacher = load_teacher(teacher_dir)

    def interrupted(directory, manifest, name):
        raise KeyboardInterrupt

    monkeypatch.setattr(cache_module, "write_manifest", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build(tmp_path, teacher, teacher_dir, wordpiece_tokenizer, features)
    assert not [p for p in tmp_path.iterdir() if not p.name.endswith(".lock")]
    monkeypatch.undo()
    cache = build(tmp_path, teacher, teacher_dir, wordpiece_tokenizer, features)
    assert cache.forward_batches > 0


def test_a_killed_write_is_removed_and_rebuilt_never_read(built, teacher_dir, wordpiece_tokenizer, features, tmp_path, monkeypatch):
    teacher = load_teacher(teacher_dir)

    # a kill -9 between the data files and the manifest: no cleanup runs, the partial directory stays
    def killed(directory, manifest, name):
        raise SystemExit

    monkeypatch.setattr(cache_module, "write_manifest", killed)
    monkeypatch.setattr(atomic, "_discard", lambda partial: None)
    with pytest.raises(SystemExit):
        build(tmp_path, teacher, teacher_dir, wordpiece_tokenizer, features)
    (partial,) = _partials(tmp_path)
    assert (partial / "logits.npy").is_file() and not (partial / MANIFEST_FILE).exists()
    assert not (tmp_path / built.fingerprint).exists()
    monkeypatch.undo()

    calls = count_forwards(teacher)
    cache = build(tmp_path, teacher, teacher_dir, wordpiece_tokenizer, features)
    assert calls and not _partials(tmp_path)
    torch.testing.assert_close(cache.batch(range(len(TEXTS)))["logits"], built.batch(range(len(TEXTS)))["logits"])


@pytest.mark.parametrize("damage", ["no manifest", "truncated file", "other fingerprint"])
def test_an_incomplete_cache_directory_is_deleted_and_rebuilt_never_read(
    built, teacher_dir, wordpiece_tokenizer, features, tmp_path, damage
):
    import json
    import shutil

    broken = tmp_path / built.fingerprint
    shutil.copytree(built.directory, broken)
    logits = broken / "logits.npy"
    size = logits.stat().st_size
    # garbage logits in every case, so reading them would be caught below
    logits.write_bytes(logits.read_bytes()[:128] + np.full((size - 128) // 4, 1e9, dtype=np.float32).tobytes())
    if damage == "no manifest":
        (broken / MANIFEST_FILE).unlink()
    elif damage == "truncated file":
        logits.write_bytes(logits.read_bytes()[: size // 2])
    else:
        manifest = json.loads((broken / MANIFEST_FILE).read_text())
        (broken / MANIFEST_FILE).write_text(json.dumps(manifest | {"fingerprint": "0" * 64}))
    with pytest.raises(TeacherCacheError):
        TeacherCache.open(broken, fingerprint=built.fingerprint)

    teacher = load_teacher(teacher_dir)
    calls = count_forwards(teacher)
    cache = build(tmp_path, teacher, teacher_dir, wordpiece_tokenizer, features)
    assert calls and cache.directory == broken
    batch = shuffled_batches(features, wordpiece_tokenizer)[0]
    torch.testing.assert_close(cache.outputs(batch).logits, online(teacher, batch).logits, rtol=0, atol=1e-5)


# --------------------------------------------------------------------------- reading


def test_reading_is_memory_mapped_and_places_rows_by_the_attention_mask(built):
    assert all(isinstance(array, np.memmap) and array.mode == "r" for array in built._arrays.values())
    rows = [4, 0, 17]
    lengths = built.lengths[rows]
    right = built.batch(rows)
    assert right["hidden_states:2"].shape == (3, lengths.max(), 32) and right["hidden_states:2"].dtype == torch.float32
    assert right["attention_mask"].sum(1).tolist() == lengths.tolist()
    assert right["logits"].dtype == torch.float32 and right["logits"].shape == (3, 3)
    padded = built.batch(rows, pad_to=int(lengths.max()) + 3)
    torch.testing.assert_close(padded["hidden_states:2"][:, : lengths.max()], right["hidden_states:2"])
    assert not padded["hidden_states:2"][:, lengths.max() :].any()
    with pytest.raises(ValueError, match="pad_to"):
        built.batch(rows, pad_to=int(lengths.max()) - 1)

    width = int(lengths.max()) + 2
    left_mask = torch.tensor([[0] * (width - n) + [1] * n for n in lengths])
    left = built.batch(rows, attention_mask=left_mask)
    right_mask = right["attention_mask"].bool()
    for key in ("hidden_states:0", "qkv:1:key"):
        torch.testing.assert_close(left[key][left_mask.bool()], right[key][right_mask])
    right_pairs = (right_mask[:, None, :, None] & right_mask[:, None, None, :]).expand_as(right["attentions:1"])
    left_pairs = (left_mask.bool()[:, None, :, None] & left_mask.bool()[:, None, None, :]).expand_as(left["attentions:1"])
    torch.testing.assert_close(left["attentions:1"][left_pairs], right["attentions:1"][right_pairs])


def test_rows_that_are_not_the_cached_examples_are_refused(built, wordpiece_tokenizer, features):
    batch = shuffled_batches(features, wordpiece_tokenizer)[0]
    swapped = dict(batch, example_index=batch["example_index"].roll(1))
    with pytest.raises(TeacherCacheError):
        built.outputs(swapped)
    same_lengths = [i for i in range(len(TEXTS)) if built.lengths[i] == built.lengths[0] and i != 0]
    other = DistillationCollator(wordpiece_tokenizer)([dict(features[0], example_index=same_lengths[0])])
    with pytest.raises(TeacherCacheError, match="not the examples"):
        built.outputs(other)
    with pytest.raises(TeacherCacheError, match="out of range"):
        built.batch([len(TEXTS)])


def test_the_size_estimate_shown_before_writing_is_the_size_written(teacher_dir, wordpiece_tokenizer, features, tmp_path, capsys):
    cache = build(tmp_path, load_teacher(teacher_dir), teacher_dir, wordpiece_tokenizer, features)
    shown = capsys.readouterr().err
    assert "writing about" in shown
    written = sum(p.stat().st_size for p in cache.directory.iterdir() if p.name != MANIFEST_FILE)
    estimate = estimate_cache_bytes(
        cache.lengths,
        {
            "logits": 3,
            "hidden_states:0": 32,
            "hidden_states:2": 32,
            "attentions:1": 4,
            "qkv:1:query": 32,
            "qkv:1:key": 32,
            "qkv:1:value": 32,
        },
    )
    tokens = int(cache.lengths.sum())
    independent = (
        len(TEXTS) * 3 * 4  # float32 logits
        + 5 * tokens * 32 * 2  # five float16 token-level fields
        + 4 * int((cache.lengths.astype(np.int64) ** 2).sum()) * 2  # float16 attention maps
        + 3 * (len(TEXTS) + 1) * 8
        - 8  # token offsets, attention offsets, row hashes
    )
    assert written - independent == 10 * 128  # ten .npy headers
    assert estimate == written


def test_the_default_cache_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("POLYDISTILL_CACHE", str(tmp_path / "mine"))
    assert default_cache_root() == tmp_path / "mine" / "teacher-outputs"
    monkeypatch.delenv("POLYDISTILL_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_root() == tmp_path / "xdg" / "polydistill" / "teacher-outputs"
