"""``hybridroute demo`` end to end on the tiny BERT: data, training, the gate, the benchmark, the summary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hybridroute.demo import DemoConfig, run_demo
from hybridroute.errors import ConfigError


def test_the_demo_runs_the_whole_pipeline_and_summarizes_it(tiny_bert: Path, tmp_path: Path) -> None:
    # a random 2-layer model may lose anything in INT8; the demo's own 3-point gate is for the real MiniLM
    config = DemoConfig(tmp_path / "demo", rows=200, quick=True, max_accuracy_drop=0.5, base_model=str(tiny_bert))
    summary = run_demo(config)
    info = json.loads((tmp_path / "demo" / "run" / "run.json").read_text())
    assert info["data"]["validation"] == 40  # val_fraction 0.2 of 200 rows
    assert info["compress"]["config"]["max_accuracy_drop"] == 0.5
    bench = json.loads((tmp_path / "demo" / "bench_compression.json").read_text())
    assert bench["test_rows"] == 200 and "onnx_int8" in bench["models"]
    assert "hybridroute demo finished" in summary and "| onnx_int8 |" in summary
    assert "allowed loss 50.0 points (the demo's setting; default 1)" in summary
    assert summary.count("  ") >= 3 and "ORD-2024-558812" in summary  # the three example answers


def test_the_demo_refuses_settings_out_of_range(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"val_fraction must be in \[0.05, 0.5\], got 0.9"):
        DemoConfig(tmp_path, val_fraction=0.9)
