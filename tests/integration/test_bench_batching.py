"""``hybridroute bench batching`` on the tiny run's real ONNX bundle, and its refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from hybridroute.cli import main


def test_bench_batching_times_every_size_in_every_order(tiny_run: Path, tmp_path: Path) -> None:
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(f"order {i} is late" + " and broken" * (i % 9) for i in range(40)) + "\n")
    out = tmp_path / "batching.json"
    args = ["bench", "batching", "--run", str(tiny_run), "--texts", str(texts), "--batch-sizes", "4,8"]
    result = CliRunner().invoke(main, [*args, "--limit", "32", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "[7/7] batch 8 (served)" in result.output and "| 8 | arrival |" in result.output
    saved = json.loads(out.read_text())
    assert [(r["batch_size"], r["order"]) for r in saved["rows"]] == [
        (1, "arrival"),
        (4, "arrival"),
        (4, "by_length"),
        (4, "served"),
        (8, "arrival"),
        (8, "by_length"),
        (8, "served"),
    ]
    assert saved["texts"] == 32 and all(r["cpu_ms_per_text"] > 0 for r in saved["rows"])
    by_order = {(r["batch_size"], r["order"]): r["padding_pct"] for r in saved["rows"]}
    assert by_order[(8, "by_length")] < by_order[(8, "arrival")]  # the texts' lengths differ: sorting pads less
    assert by_order[(8, "served")] < by_order[(8, "arrival")]  # and so does grouping each batch by length
    assert saved["model_speedup_ceiling"] == pytest.approx(
        saved["single_cpu_ms_per_text"] / saved["best"]["cpu_ms_per_text"]
    )
    assert saved["served"]["order"] == "served" and saved["served_speedup"] == pytest.approx(
        saved["single_cpu_ms_per_text"] / saved["served"]["cpu_ms_per_text"]
    )
    assert saved["settings"]["texts_source"] == str(texts) and saved["machine"]["cpu_model"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--batch-sizes", "8,x"], "'8,x' is not a comma-separated list of whole numbers"),
        (["--batch-sizes", "0,8"], "give batch sizes of at least 1"),
        (["--limit", "0"], "0 is not in the range x>=1"),
    ],
)
def test_bench_batching_refuses_bad_options(tiny_run: Path, extra: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["bench", "batching", "--run", str(tiny_run), *extra])
    assert result.exit_code == 2 and message in result.output, result.output


def test_bench_batching_needs_an_edge_bundle(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["bench", "batching", "--run", str(tmp_path)])
    assert result.output == f"Error: bundle folder {tmp_path / 'edge'} does not exist\n"
    assert result.exit_code == 1
