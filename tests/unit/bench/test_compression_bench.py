"""Tests for the compression benchmark: pure helpers, config checks, and one tiny end-to-end run."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hybridroute.bench.compression import (
    MODEL_NAMES,
    CompressionBenchConfig,
    accuracy_retention_pct,
    aggregate_repeats,
    batched_proba,
    cycled,
    kib_to_mb,
    markdown_table,
    pad_to,
    parse_vm_hwm_kib,
    peak_rss_mb,
    quality,
    run_compression_bench,
    size_reduction_pct,
    speedup,
)
from hybridroute.bench.machine import machine_info, machine_summary, parse_cpu_model, parse_mem_total_gb
from hybridroute.errors import ArtifactError, ConfigError, DataError
from hybridroute.metrics import time_each

STATS = ("mean", "p50", "p95", "p99")
TINY_LABELS = {
    "positive": "great service, thank you",
    "negative": "terrible delay again",
    "neutral": "when do you open",
}


# ---------------------------------------------------------------- tiny run fixture


def _write_csv(path: Path, rows: Sequence[tuple[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return path


def _tiny_rows(per_label: int) -> list[tuple[str, str]]:
    return [(f"{text} {i}", label) for label, text in TINY_LABELS.items() for i in range(per_label)]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> dict[str, Path]:
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    encoder = request.getfixturevalue("tiny_bert")  # after the skips: building it needs transformers
    from hybridroute.config import AdaptConfig, CompressConfig, DataConfig, FinetuneConfig
    from hybridroute.runs import RunLayout
    from hybridroute.workflow import TrainPlan, train_all

    root = tmp_path_factory.mktemp("tiny")
    data = _write_csv(root / "train.csv", _tiny_rows(20))
    plan = TrainPlan(
        DataConfig(data),
        AdaptConfig(base_model=str(encoder)),
        FinetuneConfig(head_epochs=1, epochs=1, batch_size=16),
        CompressConfig(max_accuracy_drop=1.0),
        skip_adapt=True,
    )
    train_all(RunLayout(root / "run"), plan, progress=False)
    return {"run": root / "run", "test": _write_csv(root / "test.csv", _tiny_rows(15))}


# ---------------------------------------------------------------- pure helpers


def test_aggregate_repeats_takes_the_median_of_each_statistic() -> None:
    repeats = [{"p50": 1.0, "p95": 9.0}, {"p50": 3.0, "p95": 5.0}, {"p50": 2.0, "p95": 7.0}]
    assert aggregate_repeats(repeats) == {"p50": 2.0, "p95": 7.0}


def test_aggregate_repeats_of_two_averages_the_middle_pair() -> None:
    assert aggregate_repeats([{"p99": 2.0}, {"p99": 4.0}]) == {"p99": 3.0}


def test_aggregate_repeats_refuses_an_empty_list() -> None:
    with pytest.raises(ValueError):
        aggregate_repeats([])


def test_size_reduction_and_accuracy_retention() -> None:
    assert size_reduction_pct(100.0, 25.0) == pytest.approx(75.0)
    assert accuracy_retention_pct(0.80, 0.79) == pytest.approx(98.75)
    assert accuracy_retention_pct(0.0, 0.5) is None
    with pytest.raises(ValueError):
        size_reduction_pct(0.0, 1.0)


def test_speedup() -> None:
    assert speedup(20.0, 5.0) == pytest.approx(4.0)
    assert speedup(20.0, 0.0) is None


def test_cycled_wraps_around() -> None:
    assert cycled(["a", "b", "c"], 4, start=2) == ["c", "a", "b", "c"]
    assert cycled(["a"], 0) == []


def test_pad_to_pads_and_cuts_to_exactly_the_length() -> None:
    ids, mask = pad_to([5, 6], 4, pad_id=0)
    assert ids.tolist() == [[5, 6, 0, 0]] and mask.tolist() == [[1, 1, 0, 0]]
    ids, mask = pad_to([1, 2, 3, 4, 5], 3, pad_id=0)
    assert ids.tolist() == [[1, 2, 3]] and mask.tolist() == [[1, 1, 1]]
    assert ids.dtype == np.int64


def test_peak_memory_reads_vm_hwm(tmp_path: Path) -> None:
    status = tmp_path / "status"
    status.write_text("Name:\tpython\nVmPeak:\t 90000 kB\nVmHWM:\t   1000 kB\n", encoding="utf-8")
    assert parse_vm_hwm_kib(status.read_text()) == 1000
    assert peak_rss_mb(status) == pytest.approx(kib_to_mb(1000)) == pytest.approx(1.024)
    assert parse_vm_hwm_kib("Name:\tpython\n") is None
    assert peak_rss_mb(tmp_path / "missing") > 0  # falls back to ru_maxrss


def test_time_each_uses_the_injected_clock() -> None:
    ticks = iter([0.0, 0.002, 1.0, 1.005])
    assert time_each(lambda _: None, ["a", "b"], clock=lambda: next(ticks)) == pytest.approx([2.0, 5.0])


@dataclass
class FakePredictor:
    labels: tuple[str, ...] = ("no", "yes")
    batch_sizes: list[int] | None = None

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        if self.batch_sizes is not None:
            self.batch_sizes.append(len(texts))
        return np.array([[0.1, 0.9] if "yes" in t else [0.8, 0.2] for t in texts])


def test_batched_proba_and_quality() -> None:
    sizes: list[int] = []
    predictor = FakePredictor(batch_sizes=sizes)
    texts = ["yes a", "no b", "yes c", "no d", "yes e"]
    assert batched_proba(predictor, texts, batch_size=2).shape == (5, 2)
    assert sizes == [2, 2, 1]
    figures = quality(FakePredictor(), texts, ["yes", "no", "yes", "yes", "yes"], batch_size=2)
    assert figures["accuracy"] == pytest.approx(0.8)
    assert 0 < figures["macro_f1"] < 1
    assert figures["accuracy_single_query"] == pytest.approx(0.8) and figures["batch_label_changes"] == 0


@dataclass
class BatchSensitivePredictor(FakePredictor):
    """Like dynamic INT8 at its worst: in a batch of several, every second text's answer flips."""

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        probabilities = super().predict_proba(texts)
        if len(texts) > 1:
            probabilities[1::2] = probabilities[1::2, ::-1]
        return probabilities


def test_quality_counts_labels_that_change_with_the_batch() -> None:
    texts = ["yes a", "no b", "yes c", "no d", "yes e"]
    figures = quality(BatchSensitivePredictor(), texts, ["yes", "no", "yes", "no", "yes"], batch_size=2)
    assert figures["accuracy_single_query"] == pytest.approx(1.0)  # alone, every text is answered right
    assert figures["accuracy"] == pytest.approx(0.6)  # "no b" and "no d" sit second in their batches
    assert figures["batch_label_changes"] == 2


# ---------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("repeats", 0),
        ("latency_queries", 0),
        ("warmup", -1),
        ("batch_size", 0),
        ("threads", -1),
        ("limit", -5),
        ("tutorial_length", 4),
    ],
)
def test_config_rejects_out_of_range_values(field: str, value: int) -> None:
    with pytest.raises(ConfigError, match=rf"{field} must be in \[.*\], got {value}"):
        CompressionBenchConfig(Path("run"), Path("test.csv"), **{field: value})


def test_config_rejects_equal_columns() -> None:
    with pytest.raises(ConfigError, match="must differ"):
        CompressionBenchConfig(Path("run"), Path("test.csv"), text_col="x", label_col="x")


def test_config_turns_strings_into_paths() -> None:
    config = CompressionBenchConfig("run", "test.csv")  # type: ignore[arg-type]
    assert config.run == Path("run") and config.test == Path("test.csv")


# ---------------------------------------------------------------- machine


def test_machine_parsers_and_info(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Test CPU @ 1GHz\n", encoding="utf-8")
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:        2000000 kB\nMemFree: 1 kB\n", encoding="utf-8")
    assert parse_cpu_model(cpuinfo.read_text()) == "Test CPU @ 1GHz"
    assert parse_mem_total_gb(meminfo.read_text()) == pytest.approx(2.048)
    now = datetime(2024, 1, 2, tzinfo=timezone.utc)
    info = machine_info(now=lambda: now, cpuinfo=cpuinfo, meminfo=meminfo)
    assert info["cpu_model"] == "Test CPU @ 1GHz" and info["memory_gb"] == pytest.approx(2.048)
    assert info["timestamp_utc"] == "2024-01-02T00:00:00+00:00"
    assert info["logical_cores"] >= 1 and info["versions"]["numpy"] == np.__version__
    assert "Test CPU" in machine_summary(info)


# ---------------------------------------------------------------- reporting


def _figures(accuracy: float, size: float, onnx: bool) -> dict[str, Any]:
    stats = {"mean": 2.0, "p50": 1.5, "p95": 4.0, "p99": 6.0}
    figures = {
        "accuracy": accuracy,
        "accuracy_single_query": accuracy - 0.002,
        "batch_label_changes": 7 if onnx else 0,
        "macro_f1": accuracy - 0.01,
        "size_mb": size,
        "latency_ms": stats,
        "throughput_qps": 500.0,
        "peak_memory_mb": 120.0,
    }
    if onnx:
        figures["tutorial_protocol_latency_ms"] = {k: 3 * v for k, v in stats.items()}
    return figures


def _fake_result() -> dict[str, Any]:
    models = {
        "pytorch_fp32": _figures(0.9, 90.0, False),
        "onnx_fp32": _figures(0.9, 90.0, True),
        "onnx_int8": _figures(0.89, 23.0, True),
        "tfidf_logreg": _figures(0.85, 12.0, False),
    }
    return {
        "models": models,
        "size_reduction_pct": 74.4,
        "accuracy_retention_pct": 98.9,
        "speedup_vs_tutorial_p95": 3.0,
        "test_rows": 3080,
        "settings": {"repeats": 3, "latency_queries": 300, "batch_size": 32, "tutorial_length": 256},
        "machine": {"cpu_model": "Test CPU", "logical_cores": 2, "versions": {"onnxruntime": "1.0"}},
    }


def test_markdown_table_has_a_row_per_model_and_the_headlines() -> None:
    table = markdown_table(_fake_result())
    for name in MODEL_NAMES:
        assert f"| {name} |" in table
    assert "| 89.00 | 88.80 | 7 |" in table and "12.00" in table  # INT8 accuracy %, tutorial p95 = 3 x 4.0
    assert "74.4%" in table and "98.90%" in table and "3.00×" in table and "Test CPU" in table
    assert table.count("| — |") == 2  # no tutorial protocol for PyTorch and TF-IDF


# ---------------------------------------------------------------- errors


def test_missing_run_pieces_name_the_command(tmp_path: Path) -> None:
    test = _write_csv(tmp_path / "test.csv", _tiny_rows(2))
    with pytest.raises(ArtifactError, match="hybridroute finetune"):
        run_compression_bench(CompressionBenchConfig(tmp_path / "run", test), progress=lambda _: None)
    (tmp_path / "run" / "classifier").mkdir(parents=True)
    with pytest.raises(ArtifactError, match="hybridroute compress"):
        run_compression_bench(CompressionBenchConfig(tmp_path / "run", test), progress=lambda _: None)


def test_unseen_test_labels_raise_data_error(tiny_run: dict[str, Path], tmp_path: Path) -> None:
    test = _write_csv(tmp_path / "test.csv", [*_tiny_rows(1), ("where is my parcel", "shipping")])
    with pytest.raises(DataError, match="shipping"):
        run_compression_bench(CompressionBenchConfig(tiny_run["run"], test), progress=lambda _: None)


# ---------------------------------------------------------------- end to end


def test_whole_bench_on_a_tiny_run(tiny_run: dict[str, Path]) -> None:
    lines: list[str] = []
    config = CompressionBenchConfig(
        tiny_run["run"],
        tiny_run["test"],
        limit=40,
        repeats=1,
        latency_queries=10,
        warmup=2,
    )
    result = run_compression_bench(config, progress=lines.append)

    # the tiny BERT has only 128 positions: the tutorial's 256 tokens cannot go in, so it pads to 128
    assert result["settings"]["tutorial_length"] == 128
    assert "the model has 128 positions: the tutorial protocol pads to them, not 256" in lines
    assert result["test_rows"] == 40
    assert set(result["models"]) == set(MODEL_NAMES)
    for name, figures in result["models"].items():
        assert 0.0 <= figures["accuracy"] <= 1.0 and 0.0 <= figures["macro_f1"] <= 1.0, name
        assert 0.0 <= figures["accuracy_single_query"] <= 1.0 and 0 <= figures["batch_label_changes"] <= 40, name
        assert figures["size_mb"] > 0 and figures["peak_memory_mb"] > 0, name
        assert figures["throughput_qps"] > 0, name
        assert set(figures["latency_ms"]) == set(STATS) and len(figures["latency_ms_repeats"]) == 1, name
    for name in ("onnx_fp32", "onnx_int8"):
        assert set(result["models"][name]["tutorial_protocol_latency_ms"]) == set(STATS)
    assert result["models"]["onnx_int8"]["speedup_vs_tutorial_p95"] > 0
    assert result["models"]["onnx_int8"]["size_mb"] < result["models"]["onnx_fp32"]["size_mb"]
    assert 0 < result["size_reduction_pct"] < 100 and result["accuracy_retention_pct"] is not None
    assert result["settings"]["limit"] == 40 and "cpu_model" in result["machine"]
    assert result["models"]["tfidf_logreg"]["batch_label_changes"] == 0  # a linear model is batch-invariant
    assert any(line.startswith("[3/4] onnx_int8: accuracy on 40 texts (batches of 32") for line in lines)
    assert "| onnx_int8 |" in markdown_table(result)
    json.dumps(result)  # JSON-ready


def test_the_command_times_as_many_single_queries_as_asked(tiny_run: dict[str, Path], tmp_path: Path) -> None:
    from click.testing import CliRunner

    from hybridroute.cli import main

    out = tmp_path / "bench.json"
    args = ["bench", "compression", "--run", str(tiny_run["run"]), "--test", str(tiny_run["test"]), "--limit", "20"]
    result = CliRunner().invoke(main, [*args, "--repeats", "1", "--latency-queries", "7", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "repeats of 7 single queries" in result.output
    assert json.loads(out.read_text())["settings"]["latency_queries"] == 7
