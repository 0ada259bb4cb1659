"""The compression ladder end to end on a tiny classifier: distil -> prune -> re-distil -> ONNX -> int8, in one run."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from conftest import synthetic_examples, tiny_bert_config, write_jsonl
from transformers import AutoModelForSequenceClassification, BertForSequenceClassification

RUN = """\
teacher:
  model: {teacher}
student:
{student}
data:
  train: {{path: train.jsonl, lang_column: lang}}
  eval: {{path: test.jsonl, lang_column: lang}}
  max_length: 32
objectives:
  soft_targets: {{weight: 1.0}}
training:
  max_steps: {steps}
  learning_rate: {learning_rate}
  per_device_train_batch_size: 16
  use_cpu: true
evaluation:
  efficiency: "{efficiency}"
{compress}
"""


def _with_languages(examples: list[dict]) -> list[dict]:
    return [example | {"lang": ("en", "de")[index % 2]} for index, example in enumerate(examples)]


def _write_run(tmp_path, teacher, *, student="  keep_layers: 2", compress="", steps=20, learning_rate=1e-3, efficiency="off"):
    write_jsonl(tmp_path / "train.jsonl", _with_languages(synthetic_examples(160, seed=11)))
    write_jsonl(tmp_path / "test.jsonl", _with_languages(synthetic_examples(60, seed=12)))
    path = tmp_path / "run.yaml"
    path.write_text(
        RUN.format(teacher=teacher, student=student, compress=compress, steps=steps, learning_rate=learning_rate, efficiency=efficiency)
    )
    return path


def test_one_run_goes_from_teacher_to_int8_and_reports_every_stage(tiny_teacher_dir, tmp_path):
    from polydistill.config import load_config
    from polydistill.training.run import run

    compress = "compress:\n  prune: {heads: 0.5, ffn: 0.5}\n  quantize: {accept_drop: true}\n"
    config = load_config(_write_run(tmp_path, tiny_teacher_dir, compress=compress, efficiency="quick"))
    result = run(config, output_dir=tmp_path / "out")

    ladder = json.loads((tmp_path / "out" / "metrics.json").read_text())["compression"]
    stages = {stage["name"]: stage for stage in ladder["stages"]}
    assert list(stages) == ["teacher", "teacher-int8", "student", "pruned", "student-onnx", "student-int8"]
    # the pruned student is a standard, narrower BERT: 2 of 4 heads (hidden shrinks alike), half the FFN
    teacher = BertForSequenceClassification.from_pretrained(tiny_teacher_dir)
    pruned = AutoModelForSequenceClassification.from_pretrained(result.output_dir / "pruned")
    assert pruned.config.num_attention_heads == teacher.config.num_attention_heads // 2
    assert pruned.config.hidden_size == teacher.config.hidden_size // 2
    assert pruned.config.intermediate_size == round(teacher.config.intermediate_size / 2)
    # the shipped files sit beside the safetensors weights, under sentence-transformers' names
    onnx_dir = result.output_dir / "pruned" / "onnx"
    assert (onnx_dir / "model.onnx").is_file() and (onnx_dir / "model_qint8_avx512_vnni.onnx").is_file()
    assert stages["student-int8"]["path"] == "pruned/onnx/model_qint8_avx512_vnni.onnx"
    # the fp32 export predicts what the PyTorch model predicts: same macro-F1 in every language
    assert stages["student-onnx"]["quality"]["languages"] == pytest.approx(stages["pruned"]["quality"]["languages"], abs=1e-9)
    assert stages["student-onnx"]["agreement"]["overall"] == pytest.approx(1.0)
    for name in ("teacher", "student-onnx", "student-int8"):
        efficiency = stages[name]["efficiency"]
        assert efficiency["latency_ms_p50"] > 0 and efficiency["disk_bytes"] > 0
    assert stages["student-int8"]["efficiency"]["disk_bytes"] < stages["student-onnx"]["efficiency"]["disk_bytes"]
    assert [check["stage"] for check in ladder["checks"]] == ["student-int8"]
    report = (tmp_path / "out" / "report.md").read_text()
    assert "Compression" in report and "student, ONNX int8" in report


def test_a_narrower_student_starts_from_the_teachers_channels(tiny_teacher_dir, tmp_path):
    """``student.init`` defaults to pruned: every kept FFN neuron is one of the teacher's, not a random one."""
    from polydistill.config import load_config
    from polydistill.training.run import run

    config = load_config(
        _write_run(tmp_path, tiny_teacher_dir, student="  keep_layers: [0, 3]\n  intermediate_size: 20", learning_rate=0.0, steps=1)
    )
    result = run(config, output_dir=tmp_path / "out")

    teacher = BertForSequenceClassification.from_pretrained(tiny_teacher_dir)
    student = BertForSequenceClassification.from_pretrained(result.student_dir)
    assert student.config.intermediate_size == 20 and student.config.hidden_size == teacher.config.hidden_size
    for student_layer, teacher_index in zip(student.bert.encoder.layer, (0, 3), strict=True):
        rows = teacher.bert.encoder.layer[teacher_index].intermediate.dense.weight
        kept = student_layer.intermediate.dense.weight
        # each student row equals exactly one teacher row, and no teacher row is used twice
        matches = [(rows == row).all(dim=1).nonzero().flatten().tolist() for row in kept]
        assert all(len(found) == 1 for found in matches)
        assert len({found[0] for found in matches}) == 20
        assert torch.equal(student_layer.attention.self.query.weight, teacher.bert.encoder.layer[teacher_index].attention.self.query.weight)


def test_random_init_is_still_available_for_a_narrower_student(tiny_teacher_dir, tmp_path):
    from polydistill.config import load_config
    from polydistill.training.run import run

    student = "  keep_layers: 2\n  intermediate_size: 20\n  init: random"
    result = run(
        load_config(_write_run(tmp_path, tiny_teacher_dir, student=student, learning_rate=0.0, steps=1)), output_dir=tmp_path / "out"
    )
    teacher = BertForSequenceClassification.from_pretrained(tiny_teacher_dir)
    kept = BertForSequenceClassification.from_pretrained(result.student_dir).bert.encoder.layer[0].intermediate.dense.weight
    rows = teacher.bert.encoder.layer[0].intermediate.dense.weight
    assert not any((rows == row).all(dim=1).any() for row in kept)


def test_pruned_init_cannot_widen(tiny_teacher_dir, tmp_path):
    from polydistill.config import load_config
    from polydistill.errors import ConfigError
    from polydistill.training.run import run

    config = load_config(_write_run(tmp_path, tiny_teacher_dir, student="  intermediate_size: 999\n  init: pruned", steps=1))
    with pytest.raises(ConfigError, match=r"student.intermediate_size \(999\) is wider"):
        run(config, output_dir=tmp_path / "out")


def test_a_failed_int8_check_names_the_language_and_fails_the_command(tmp_path):
    from polydistill.compress.pipeline import QualityError, raise_for_failed_checks

    document = {
        "checks": [
            {
                "stage": "student-int8",
                "failed": {"sw": "drops macro-F1 by 3.1 points"},
                "description": "int8 drops macro-F1 in sw",
                "accepted": False,
            }
        ]
    }
    with pytest.raises(QualityError, match="student-int8: int8 drops macro-F1 in sw"):
        raise_for_failed_checks(document)
    document["checks"][0]["accepted"] = True
    raise_for_failed_checks(document)  # accepted: no error


def test_compress_command_on_a_students_directory(tiny_teacher_dir, tmp_path, capsys):
    """``polydistill compress`` of a student from outside a run: export and int8 only, no teacher."""
    from polydistill.cli import main

    write_jsonl(tmp_path / "test.jsonl", _with_languages(synthetic_examples(40, seed=13)))
    code = main(
        [
            "compress",
            str(tiny_teacher_dir),
            "--out",
            str(tmp_path / "shipped"),
            "--eval",
            str(tmp_path / "test.jsonl"),
            "--lang-column",
            "lang",
            "--quick",
            "--accept-drop",
        ]
    )
    assert code == 0
    metrics = json.loads((tmp_path / "shipped" / "metrics.json").read_text())
    assert [stage["name"] for stage in metrics["compression"]["stages"]] == ["student", "student-onnx", "student-int8"]
    assert (tmp_path / "shipped" / "student" / "onnx" / "model_qint8_avx512_vnni.onnx").is_file()
    assert (tmp_path / "shipped" / "report.html").is_file()
    agreement = metrics["compression"]["stages"][-1]["agreement"]
    assert set(agreement["languages"]) == {"en", "de"}
    assert np.isclose(agreement["overall"], np.mean(list(agreement["languages"].values())))  # equal-sized languages
    assert not (tiny_teacher_dir / "onnx").exists()  # the input directory is left as it was
    # a second compress into the same directory refuses instead of overwriting
    assert main(["compress", str(tiny_teacher_dir), "--out", str(tmp_path / "shipped"), "--eval", str(tmp_path / "test.jsonl")]) == 2
    assert "already holds files" in capsys.readouterr().err


def test_bench_times_a_directory_and_its_onnx_export_side_by_side(tiny_teacher_dir, tmp_path):
    from polydistill.cli import main
    from polydistill.compress.onnx_export import export_onnx

    model_dir = tmp_path / "model"
    shutil.copytree(tiny_teacher_dir, model_dir)
    exported = export_onnx(model_dir, task="classification", check_texts=["apple pear", "the bus"])
    write_jsonl(tmp_path / "texts.jsonl", synthetic_examples(20, seed=15))
    out = tmp_path / "bench.json"
    code = main(["bench", str(model_dir), exported.path, "--data", str(tmp_path / "texts.jsonl"), "--quick", "--json", str(out)])
    assert code == 0
    records = json.loads(out.read_text())
    assert [record["runtime"] for record in records.values()] == ["pytorch", "onnxruntime"]
    assert records[exported.path]["disk_bytes"] == (model_dir / "onnx" / "model.onnx").stat().st_size
    assert all(record["latency_ms_p50"] > 0 and record["throughput_per_s"] > 0 for record in records.values())


def test_bench_refuses_what_is_not_a_model(tmp_path, capsys):
    from polydistill.cli import main

    (tmp_path / "notes.txt").write_text("hello")
    assert main(["bench", str(tmp_path / "notes.txt")]) == 2
    assert "expected a model directory or an .onnx file" in capsys.readouterr().err


def test_compress_command_on_a_sentence_encoder(wordpiece_tokenizer, tmp_path):
    """The embeddings task: export keeps the pipeline's vectors, int8 is checked by translation retrieval per language."""
    from sentence_transformers import SentenceTransformer
    from transformers import BertModel

    from polydistill import runtime
    from polydistill.cli import main
    from polydistill.tasks.embeddings import save_sentence_transformer

    torch.manual_seed(9)
    encoder = tmp_path / "encoder"
    save_sentence_transformer(
        BertModel(tiny_bert_config(wordpiece_tokenizer, layers=2)), wordpiece_tokenizer, encoder, prefix="query: ", max_seq_length=32
    )
    rows = [
        {"text": example["text"], "translation": " ".join(reversed(example["text"].split())), "lang": ("de", "fr")[index % 2]}
        for index, example in enumerate(synthetic_examples(40, seed=16))
    ]
    write_jsonl(tmp_path / "pairs.jsonl", rows)
    out = tmp_path / "shipped"
    code = main(
        [
            "compress",
            str(encoder),
            "--out",
            str(out),
            "--eval",
            str(tmp_path / "pairs.jsonl"),
            "--lang-column",
            "lang",
            "--quick",
            "--accept-drop",
        ]
    )
    assert code == 0
    ladder = json.loads((out / "metrics.json").read_text())["compression"]
    assert ladder["primary_metric"] == "top1_en_to_x"
    stages = {stage["name"]: stage for stage in ladder["stages"]}
    assert set(stages["student-int8"]["quality"]["languages"]) == {"de", "fr"}
    assert stages["student-onnx"]["quality"]["languages"] == pytest.approx(stages["student"]["quality"]["languages"], abs=1e-9)
    texts = [row["translation"] for row in rows[:5]]
    expected = SentenceTransformer(str(encoder), device="cpu").encode(texts)
    np.testing.assert_allclose(runtime.load(out / "student").encode(texts), expected, atol=1e-5)
