"""The compression ladder in the report: tables, check lines, plot, and the compression-only report."""

from __future__ import annotations

import copy
import json
import re

import pytest
from test_report import hand_made_metrics

from polydistill.errors import DataError
from polydistill.evaluation.metrics_file import write_metrics
from polydistill.evaluation.report import (
    check_lines,
    ladder_language_table,
    ladder_table,
    plot_ladder,
    render_ladder_markdown,
    write_report,
)

MIB = 1024**2


def stage(name, runtime, precision, *, p50, disk, overall, languages, parameters=None, made_from=None):
    return {
        "name": name,
        "label": f"{name}, {runtime} {precision}",
        "runtime": runtime,
        "precision": precision,
        "path": name,
        "efficiency": {
            "parameters": parameters,
            "disk_bytes": disk,
            "peak_memory_bytes": 2 * disk,
            "latency_ms_p50": p50,
            "latency_ms_p95": p50 * 1.5,
            "throughput_per_s": 4000.0 / p50,
            "threads": 2,
            "batch_size": 32,
        },
        "quality": {"overall": overall, "languages": languages},
        "agreement": None,
        "made_from": made_from,
    }


def compression_block() -> dict:
    stages = [
        stage(
            "teacher",
            "pytorch",
            "fp32",
            p50=40.0,
            disk=400 * MIB,
            overall=0.80,
            languages={"de": 0.80, "en": 0.90, "sw": 0.65},
            parameters=100_000_000,
        ),
        stage(
            "teacher-int8",
            "onnxruntime",
            "int8",
            p50=20.0,
            disk=100 * MIB,
            overall=0.79,
            languages={"de": 0.84, "en": 0.89, "sw": 0.64},
            made_from="teacher",
        ),
        stage(
            "student",
            "pytorch",
            "fp32",
            p50=10.0,
            disk=80 * MIB,
            overall=0.75,
            languages={"de": 0.80, "en": 0.85, "sw": 0.60},
            parameters=20_000_000,
        ),
        stage(
            "student-onnx",
            "onnxruntime",
            "fp32",
            p50=8.0,
            disk=80 * MIB,
            overall=0.75,
            languages={"de": 0.80, "en": 0.85, "sw": 0.60},
            made_from="student",
        ),
        stage(
            "student-int8",
            "onnxruntime",
            "int8",
            p50=4.0,
            disk=20 * MIB,
            overall=0.72,
            languages={"de": 0.79, "en": 0.80, "sw": 0.57},
            made_from="student-onnx",
        ),
    ]
    checks = [
        {
            "stage": "teacher-int8",
            "against": "teacher",
            "max_drop": 0.01,
            "min_agreement": 0.99,
            "failed": {"de": "macro-F1 drops 1.0 points (0.85 -> 0.84)"},
            "accepted": True,
            "recipe": "dynamic",
        },
        {
            "stage": "student-int8",
            "against": "student-onnx",
            "max_drop": 0.01,
            "min_agreement": 0.99,
            "failed": {"sw": "macro-F1 drops 3.0 points (0.60 -> 0.57)"},
            "accepted": False,
            "recipe": "dynamic-per-channel",
        },
    ]
    return {
        "primary_metric": "macro_f1",
        "reference_stage": "student",
        "stages": stages,
        "checks": checks,
        "settings": {"threads": 2, "latency_batch_size": 1, "throughput_batch_size": 32, "tokenization_included": True},
    }


def compression_only_document() -> dict:
    return {
        "task": "classification",
        "meta": {"polydistill_version": "0.test", "created_at": "2025-01-01T00:00:00+00:00"},
        "compression": compression_block(),
    }


def column(header, rows, name):
    index = header.index(name)
    return [row[index] for row in rows]


def test_ladder_table_values_worked_out_by_hand():
    header, rows = ladder_table(compression_only_document())
    assert len(rows) == 5
    assert column(header, rows, "stage")[0] == "teacher, pytorch fp32"
    assert column(header, rows, "runtime / precision") == [
        "PyTorch fp32",
        "ONNX Runtime int8",
        "PyTorch fp32",
        "ONNX Runtime fp32",
        "ONNX Runtime int8",
    ]
    assert column(header, rows, "parameters") == ["100.0M", "–", "20.0M", "–", "–"]
    assert column(header, rows, "size on disk") == ["400.0 MiB", "100.0 MiB", "80.0 MiB", "80.0 MiB", "20.0 MiB"]
    assert column(header, rows, "peak memory")[4] == "40.0 MiB"
    assert column(header, rows, "latency p50, batch 1") == ["40.00 ms", "20.00 ms", "10.00 ms", "8.00 ms", "4.00 ms"]
    assert column(header, rows, "latency p95, batch 1")[4] == "6.00 ms"
    assert column(header, rows, "throughput, batch 32")[4] == "1,000.0 texts/s"
    # teacher p50 / stage p50: 40/40, 40/20, 40/10, 40/8, 40/4
    assert column(header, rows, "p50 vs teacher (PyTorch)") == ["1.0x faster", "2.0x faster", "4.0x faster", "5.0x faster", "10.0x faster"]
    # the first ONNX Runtime teacher stage is teacher-int8 (20 ms): 20/40 is twice as slow
    assert column(header, rows, "p50 vs teacher (ONNX Runtime)") == [
        "2.0x slower",
        "1.0x faster",
        "2.0x faster",
        "2.5x faster",
        "5.0x faster",
    ]
    assert column(header, rows, "macro-F1") == ["0.800", "0.790", "0.750", "0.750", "0.720"]
    # against the student's 0.75: 0.80/0.75, 0.79/0.75, 1, 1, 0.72/0.75
    assert column(header, rows, "retention vs student") == ["106.7%", "105.3%", "100.0%", "100.0%", "96.0%"]
    assert column(header, rows, "worst language") == [
        "sw (Swahili) 0.650",
        "sw (Swahili) 0.640",
        "sw (Swahili) 0.600",
        "sw (Swahili) 0.600",
        "sw (Swahili) 0.570",
    ]


def test_ladder_table_without_an_onnx_teacher_has_one_speed_column():
    document = compression_only_document()
    document["compression"]["stages"] = [s for s in document["compression"]["stages"] if s["name"] != "teacher-int8"]
    header, rows = ladder_table(document)
    assert [name for name in header if name.startswith("p50 vs")] == ["p50 vs teacher (PyTorch)"]
    assert len(rows) == 4


def test_language_table_puts_failed_checks_first_and_flags_them():
    header, rows, flags = ladder_language_table(compression_only_document())
    assert header == ["language", "teacher", "teacher-int8", "student", "student-onnx", "student-int8", "checks"]
    # sw failed a check that was not accepted, de one that was; en has none but the lower retention (0.80/0.85)
    assert [row[0] for row in rows] == ["sw (Swahili)", "de (German)", "en (English)"]
    assert flags == ["bad", "warn", "none"]
    sw, de, en = rows
    assert sw[header.index("student-int8")] == "0.570 (95.0%) ✗"  # 0.57 / 0.60
    assert sw[header.index("student")] == "0.600"  # the reference has no retention of its own
    assert sw[-1] == "not accepted: student-int8"
    assert de[header.index("teacher-int8")] == "0.840 (105.0%) (accepted)"  # 0.84 / 0.80
    assert de[-1] == "accepted drop: teacher-int8"
    assert en[header.index("student-int8")] == "0.800 (94.1%)"  # 0.80 / 0.85
    assert en[-1] == "–"


def test_check_lines_name_the_stage_the_language_and_the_terms():
    lines = check_lines(compression_only_document())
    assert [line.status for line in lines] == ["bad", "warn"]  # not accepted first
    assert lines[0].text == (
        "student-int8: not accepted: macro-F1 drops 3.0 points (0.60 -> 0.57) in sw (Swahili); "
        "against student-onnx, largest drop allowed 1.0 points, agreement at least 99.0%, recipe dynamic-per-channel"
    )
    assert lines[1].text.startswith(
        "teacher-int8: accepted with drops: macro-F1 drops 1.0 points (0.85 -> 0.84) in de (German); against teacher"
    )
    markdown = render_ladder_markdown(compression_only_document())
    assert "- **student-int8: not accepted: macro-F1 drops 3.0 points (0.60 -> 0.57) in sw (Swahili);" in markdown
    assert "- teacher-int8: accepted with drops:" in markdown and "**teacher-int8" not in markdown


def test_plot_ladder_writes_a_png_with_one_panel_per_axis(tmp_path):
    from matplotlib.image import imread

    path = plot_ladder(compression_only_document(), tmp_path / "plots" / "ladder.png")
    assert path is not None and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert imread(path).shape[1] == round(2 * 5.2 * 110)  # two panels of 5.2 inches at 110 dpi
    document = compression_only_document()
    for entry in document["compression"]["stages"]:
        entry["efficiency"]["disk_bytes"] = None
    one_panel = plot_ladder(document, tmp_path / "one.png")
    assert one_panel is not None and imread(one_panel).shape[1] == round(5.2 * 110)
    for entry in document["compression"]["stages"][1:]:
        entry["efficiency"]["latency_ms_p50"] = None  # one point compares nothing
    assert plot_ladder(document, tmp_path / "none.png") is None and not (tmp_path / "none.png").exists()


def test_run_report_without_compression_has_no_ladder(tmp_path):
    metrics = hand_made_metrics({"de": 0.99, "sw": 0.84})
    write_metrics(tmp_path, metrics)
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "ladder.png").write_bytes(b"stale")
    paths = write_report(tmp_path)
    assert "ladder_plot" not in paths and not (tmp_path / "plots" / "ladder.png").exists()
    assert "Compression" not in paths["markdown"].read_text() and "Compression" not in paths["html"].read_text()
    assert sorted(png.name for png in (tmp_path / "plots").glob("*.png")) == [
        "confusion_student.png",
        "per_language_macro_f1.png",
        "size_vs_quality.png",
    ]


def test_run_report_with_compression_adds_only_the_section(tmp_path):
    plain_dir, ladder_dir = tmp_path / "plain", tmp_path / "ladder"
    metrics = hand_made_metrics({"de": 0.99, "sw": 0.84})
    write_metrics(plain_dir, metrics)
    write_metrics(ladder_dir, copy.deepcopy(metrics) | {"compression": compression_block()})
    plain = write_report(plain_dir)["markdown"].read_text()
    paths = write_report(ladder_dir)
    with_ladder = paths["markdown"].read_text()
    start, end = with_ladder.index("## Compression\n"), with_ladder.index("## All metrics")
    assert with_ladder.index("## Size and speed") < start
    assert with_ladder[:start] + with_ladder[end:] == plain
    assert "![compression ladder](plots/ladder.png)" in with_ladder[start:end]
    html = paths["html"].read_text()
    assert '<div class="verdict v-bad"><strong>student-int8: not accepted</strong>' in html
    assert '<div class="verdict v-warn"><strong>teacher-int8: accepted with drops</strong>' in html
    assert '<tr class="bad"><td>sw (Swahili)</td>' in html
    assert html.count("data:image/png;base64,") == 4  # per language, size vs quality, confusions, ladder


def test_compression_only_document_gets_its_own_report(tmp_path):
    (tmp_path / "metrics.json").write_text(json.dumps(compression_only_document()), encoding="utf-8")
    paths = write_report(tmp_path)
    assert set(paths) == {"ladder_plot", "markdown", "html"}
    markdown = paths["markdown"].read_text()
    assert markdown.startswith("# Compression report: student (classification)\n")
    assert "**student-int8: not accepted: macro-F1 drops 3.0 points (0.60 -> 0.57) in sw (Swahili);" in markdown
    assert "| sw (Swahili) |" in markdown and "Per language (worst first)" not in markdown
    html = paths["html"].read_text()
    assert not re.search(r"https?://", html)
    assert re.findall(r"""src\s*=\s*["']([^"',]*)""", html) == ["data:image/png;base64"]
    assert "polydistill 0.test" in html


def test_a_malformed_compression_block_is_refused(tmp_path):
    document = compression_only_document()
    document["compression"]["stages"] = []
    (tmp_path / "metrics.json").write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(DataError, match=r"compression\.stages"):
        write_report(tmp_path)
    document = compression_only_document()
    document["compression"]["reference_stage"] = "pruned"
    with pytest.raises(DataError, match="'pruned', which names no stage"):
        ladder_table(document)
