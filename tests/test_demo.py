"""`polydistill demo --quick` end to end on the real offline teacher (a few minutes: marked slow)."""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow
def test_quick_demo_writes_report_and_a_student_that_loads_with_pipeline(tmp_path):
    from transformers import pipeline

    from polydistill.cli import main

    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--languages", "de", "--out", str(out)]) == 0

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task"] == "classification" and set(metrics["languages"]) == {"en", "de"}
    assert metrics["student"]["parameters"] <= metrics["teacher"]["parameters"] / 8  # the recipe's 23,500-token budget
    assert "sphinx" in metrics["eval_sets"] and metrics["eval_sets"]["sphinx"]["reference"] == "teacher"  # the held-out domain
    html = (out / "report.html").read_text()
    assert "German" in html and "English" in html and "http" not in html

    classify = pipeline("text-classification", model=str(out / "student"))
    labels = {p["label"] for p in classify(["Enter a valid email address.", "Ungültiges Passwort"])}
    assert labels <= set(metrics["meta"]["label_names"])
    # --quick stops at the distilled student; the full demo's compression runs on it as a command
    assert "compression" not in metrics
    compressed = tmp_path / "compressed"
    assert main(["compress", str(out / "student"), "--out", str(compressed), "--quantize-mode", "dynamic", "--accept-drop", "--quick"]) == 0
    stages = [stage["name"] for stage in json.loads((compressed / "metrics.json").read_text())["compression"]["stages"]]
    assert {"teacher", "student", "student-onnx", "student-int8"} <= set(stages)
    int8 = min(path.stat().st_size for path in compressed.rglob("*int8*.onnx"))
    fp32 = (out / "student" / "model.safetensors").stat().st_size
    assert int8 < 0.7 * fp32  # int8 weights, the embedding table kept fp32 by the careful recipes
    # the run's config is saved and valid, so `polydistill run OUT/config.yaml` reproduces it
    from polydistill.config import load_config

    assert load_config(out / "config.yaml").student.trim_vocabulary.languages == ["en", "de"]
