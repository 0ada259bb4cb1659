"""Bad model directories give one clear error naming the file; pickle weights are never unpickled
unless the user opts in (and then only through torch's weights_only loader)."""

from __future__ import annotations

import json
import pickle
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from polydistill.errors import ModelFileError
from polydistill.models.checks import PICKLE_OPT_IN_ENV, check_model_dir
from polydistill.models.loading import load_classifier, load_encoder
from polydistill.models.zoo import resolve_model_path
from tests.conftest import build_wordpiece_tokenizer, tiny_bert_config

LFS_POINTER = (
    "version https://git-lfs.github.com/spec/v1\n"
    "oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
    "size 470637416\n"
)
PROBE = "the apple"


class WritesMarker:
    """A pickle payload that creates a file when it is unpickled: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').close()",))


@pytest.fixture(scope="module")
def saved_classifier(tmp_path_factory) -> tuple[Path, torch.Tensor]:
    """An untrained tiny BERT classifier saved as save_pretrained writes it, and its logits on PROBE."""
    from transformers import BertForSequenceClassification

    tokenizer = build_wordpiece_tokenizer()
    torch.manual_seed(0)
    model = BertForSequenceClassification(tiny_bert_config(tokenizer, layers=1, hidden=16, heads=2)).eval()
    directory = tmp_path_factory.mktemp("classifier")
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    with torch.no_grad():
        logits = model(**tokenizer(PROBE, return_tensors="pt")).logits
    return directory, logits


@pytest.fixture
def model_dir(saved_classifier, tmp_path) -> Path:
    """A fresh copy of the saved classifier that a test may break."""
    return Path(shutil.copytree(saved_classifier[0], tmp_path / "model"))


@pytest.fixture(autouse=True)
def no_pickle_opt_in(monkeypatch):
    monkeypatch.delenv(PICKLE_OPT_IN_ENV, raising=False)


def logits_of(directory: Path) -> torch.Tensor:
    from polydistill.models.loading import load_tokenizer

    model, _ = load_classifier(directory)
    with torch.no_grad():
        return model.eval()(**load_tokenizer(directory)(PROBE, return_tensors="pt")).logits


def pickle_only(directory: Path) -> Path:
    """``directory`` with its weights moved from model.safetensors into a torch pickle."""
    from safetensors.torch import load_file

    torch.save(load_file(directory / "model.safetensors"), directory / "pytorch_model.bin")
    (directory / "model.safetensors").unlink()
    return directory


def test_a_saved_model_passes_and_loads(model_dir, saved_classifier):
    assert resolve_model_path(str(model_dir)) == model_dir
    torch.testing.assert_close(logits_of(model_dir), saved_classifier[1])


# --- pickle -----------------------------------------------------------------------------------


def test_pickle_only_weights_are_refused_with_the_reason_and_the_opt_in(model_dir):
    pickle_only(model_dir)
    with pytest.raises(ModelFileError) as error:
        resolve_model_path(str(model_dir))
    message = str(error.value)
    assert "pytorch_model.bin" in message and "arbitrary code" in message
    assert f"{PICKLE_OPT_IN_ENV}=1" in message and "weights_only=True" in message


def test_pickle_only_weights_load_with_the_opt_in(model_dir, saved_classifier, monkeypatch):
    pickle_only(model_dir)
    monkeypatch.setenv(PICKLE_OPT_IN_ENV, "1")
    assert resolve_model_path(str(model_dir)) == model_dir
    torch.testing.assert_close(logits_of(model_dir), saved_classifier[1])


def test_the_conversion_the_refusal_prints_gives_the_same_model(model_dir, saved_classifier):
    pickle_only(model_dir)
    with pytest.raises(ModelFileError) as error:
        check_model_dir(model_dir, reference=str(model_dir))
    command = next(line.strip() for line in str(error.value).splitlines() if line.strip().startswith("python -c"))
    arguments = shlex.split(command)
    subprocess.run([sys.executable, *arguments[1:]], check=True, timeout=120)
    check_model_dir(model_dir, reference=str(model_dir))
    torch.testing.assert_close(logits_of(model_dir), saved_classifier[1])


def test_a_malicious_pickle_is_never_unpickled(model_dir, saved_classifier, tmp_path, monkeypatch):
    from polydistill.training.provenance import fingerprint_weights

    marker = tmp_path / "code-ran"
    payload = pickle.dumps(WritesMarker(marker))
    pickle.loads(payload)  # the payload works: unpickling it does create the marker
    assert marker.exists()
    marker.unlink()

    (model_dir / "pytorch_model.bin").write_bytes(payload)  # beside model.safetensors
    torch.testing.assert_close(logits_of(model_dir), saved_classifier[1])
    load_encoder(model_dir)
    fingerprint_weights(model_dir)
    assert not marker.exists()

    (model_dir / "model.safetensors").unlink()  # now the pickle is all there is
    with pytest.raises(ModelFileError, match="arbitrary code"):
        load_classifier(model_dir)
    monkeypatch.setenv(PICKLE_OPT_IN_ENV, "1")  # even opted in, torch's weights_only loader refuses it
    with pytest.raises(ModelFileError, match="weights_only"):
        load_classifier(model_dir)
    assert not marker.exists()


# --- broken files -----------------------------------------------------------------------------


def test_an_lfs_pointer_instead_of_the_weights_is_named(model_dir):
    (model_dir / "model.safetensors").write_text(LFS_POINTER)
    with pytest.raises(ModelFileError) as error:
        resolve_model_path(str(model_dir))
    message = str(error.value)
    assert str(model_dir / "model.safetensors") in message
    assert "Git LFS pointer" in message and "git lfs pull" in message and "470,637,416-byte" in message


def test_a_truncated_safetensors_file_gives_expected_and_actual_bytes(model_dir):
    weights = model_dir / "model.safetensors"
    complete = weights.stat().st_size
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(ModelFileError) as error:
        resolve_model_path(str(model_dir))
    message = str(error.value)
    assert str(weights) in message and "truncated" in message
    assert f"{complete} bytes" in message and f"has {complete - 100}" in message


def test_a_safetensors_file_cut_inside_its_header_is_truncated(model_dir):
    weights = model_dir / "model.safetensors"
    header_length = int.from_bytes(weights.read_bytes()[:8], "little")
    weights.write_bytes(weights.read_bytes()[:50])
    with pytest.raises(ModelFileError, match=rf"truncated: its header alone needs {8 + header_length} bytes, the file has 50"):
        check_model_dir(model_dir, reference="m")


def test_a_safetensors_file_with_extra_bytes_or_no_header_is_corrupt(model_dir):
    weights = model_dir / "model.safetensors"
    complete = weights.read_bytes()
    weights.write_bytes(complete + b"\0" * 7)
    with pytest.raises(ModelFileError, match=r"corrupt: its header says \d+ bytes, the file has \d+ \(7 too many\)"):
        check_model_dir(model_dir, reference="m")
    weights.write_bytes(b"<!DOCTYPE html><html>" + b" " * 200)  # an error page saved under the weights' name
    with pytest.raises(ModelFileError, match="not a safetensors file"):
        check_model_dir(model_dir, reference="m")


def test_an_invalid_config_json_gives_its_line_and_column(model_dir):
    (model_dir / "config.json").write_text('{\n  "model_type": "bert",\n  "hidden_size": \n}\n')
    with pytest.raises(ModelFileError) as error:
        resolve_model_path(str(model_dir))
    assert str(model_dir / "config.json") in str(error.value) and "line 4, column 1" in str(error.value)


def test_a_broken_tokenizer_file_is_named_with_its_line(model_dir):
    from polydistill.models.loading import load_tokenizer

    (model_dir / "tokenizer.json").write_text('{"version": "1.0",\n "model": {,}}')
    with pytest.raises(ModelFileError, match=r"tokenizer\.json is not valid JSON: .* at line 2, column 12"):
        load_tokenizer(model_dir)


def test_a_directory_without_weights_says_what_it_expected(model_dir):
    (model_dir / "model.safetensors").unlink()
    (model_dir / "tf_model.h5").write_bytes(b"\x89HDF")
    with pytest.raises(
        ModelFileError, match=r"has no weight file in .*tf_model\.h5, a format polydistill does not load.*model\.safetensors"
    ):
        resolve_model_path(str(model_dir))


def test_a_sharded_checkpoint_passes_and_a_missing_shard_is_named(saved_classifier, tmp_path):
    from transformers import AutoModelForSequenceClassification

    directory = tmp_path / "sharded"
    AutoModelForSequenceClassification.from_pretrained(saved_classifier[0]).save_pretrained(directory, max_shard_size="20KB")
    shutil.copy(saved_classifier[0] / "tokenizer.json", directory)
    shutil.copy(saved_classifier[0] / "tokenizer_config.json", directory)
    index = json.loads((directory / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) > 1
    torch.testing.assert_close(logits_of(directory), saved_classifier[1])

    (directory / shards[1]).unlink()
    with pytest.raises(ModelFileError, match=rf"{len(shards)} shard files but 1 are missing .*: {shards[1]};"):
        resolve_model_path(str(directory))


# --- sentence-transformers layouts -------------------------------------------------------------


def _modules(directory: Path, transformer_path: str) -> None:
    modules = [
        {"idx": 0, "name": "0", "path": transformer_path, "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    (directory / "modules.json").write_text(json.dumps(modules))
    (directory / "1_Pooling").mkdir()
    (directory / "1_Pooling" / "config.json").write_text('{"word_embedding_dimension": 16, "pooling_mode_mean_tokens": true}')


def test_sentence_transformers_layouts_pass(model_dir, tmp_path):
    _modules(model_dir, "")  # the transformer in the directory itself, as polydistill saves it
    check_model_dir(model_dir, reference="root layout")
    load_encoder(model_dir)

    legacy = tmp_path / "legacy"  # the older layout: config and weights in 0_Transformer/
    legacy.mkdir()
    shutil.copytree(model_dir, legacy / "0_Transformer", ignore=shutil.ignore_patterns("modules.json", "1_Pooling"))
    _modules(legacy, "0_Transformer")
    check_model_dir(legacy, reference="legacy layout")

    (legacy / "0_Transformer" / "model.safetensors").write_text(LFS_POINTER)
    with pytest.raises(ModelFileError, match=r"0_Transformer/model\.safetensors is a Git LFS pointer"):
        check_model_dir(legacy, reference="legacy layout")


# --- the command line ---------------------------------------------------------------------------


def _break_weights(directory: Path) -> str:
    weights = directory / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])
    return str(weights)


def _break_config(directory: Path) -> str:
    (directory / "config.json").write_text('{"model_type": "bert",}')
    return str(directory / "config.json")


def _only_pickle(directory: Path) -> str:
    pickle_only(directory)
    return str(directory / "pytorch_model.bin")


@pytest.mark.parametrize("breakage", [_break_weights, _break_config, _only_pickle])
def test_eval_on_a_broken_model_exits_2_naming_the_file(breakage, model_dir, synthetic_data, tmp_path, capsys):
    from polydistill.cli import main

    named = breakage(model_dir)
    out = tmp_path / "out"
    assert main(["eval", str(model_dir), "--data", str(synthetic_data["test"]), "--out", str(out), "--no-efficiency"]) == 2
    error = capsys.readouterr().err
    assert named in error and "Traceback" not in error
    assert not out.exists()


# --- the torch-free runtime ---------------------------------------------------------------------


def _tiny_onnx_graph() -> bytes:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    node = helper.make_node("Identity", ["x"], ["y"])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    return onnx.helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString()


def test_the_runtime_names_an_lfs_pointer_or_a_truncated_onnx_file(tmp_path):
    pytest.importorskip("onnxruntime")
    from polydistill.runtime import inference_session

    path = tmp_path / "model.onnx"
    graph = _tiny_onnx_graph()
    path.write_bytes(graph)
    inference_session(path)  # the complete graph loads

    path.write_text(LFS_POINTER)
    with pytest.raises(ModelFileError, match=rf"{path} is a Git LFS pointer"):
        inference_session(path)
    path.write_bytes(graph[: len(graph) // 2])
    with pytest.raises(ModelFileError, match=rf"{path} cannot be loaded as an ONNX model .*truncated or corrupt"):
        inference_session(path)


def test_weights_that_do_not_fit_the_config_are_named(model_dir):
    """config.json edited (or from another model): transformers' RuntimeError becomes an error naming the directory."""
    config = json.loads((model_dir / "config.json").read_text())
    (model_dir / "config.json").write_text(json.dumps(config | {"hidden_size": 64, "intermediate_size": 128}))
    with pytest.raises(ModelFileError, match=rf"{model_dir}: its weights do not fit its config.json"):
        load_classifier(model_dir)


def test_a_config_transformers_cannot_read_is_named(model_dir):
    from polydistill.models.loading import load_model_config

    config = json.loads((model_dir / "config.json").read_text())
    (model_dir / "config.json").write_text(json.dumps(config | {"model_type": "nonsense"}))
    with pytest.raises(ModelFileError, match=rf"{model_dir / 'config.json'}: transformers .* cannot read this model config .*nonsense"):
        load_model_config(model_dir)
