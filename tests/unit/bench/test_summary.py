"""Medians across saved `bench compression` and `bench load` runs: the arithmetic, the refusals, the published files."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from hybridroute.bench.summary import (
    load_markdown_table,
    load_result,
    markdown_table,
    spread,
    summarise,
    summarise_load_runs,
    summarise_runs,
    variants_markdown_table,
)
from hybridroute.cli import main
from hybridroute.errors import DataError

RESULTS = Path(__file__).resolve().parents[3] / "bench-results"


def _result(p95: float, speedup: float, accuracy: float = 0.9, version: str = "abc") -> dict[str, Any]:
    int8 = {
        "accuracy": accuracy,
        "accuracy_single_query": accuracy,
        "macro_f1": 0.8,
        "latency_ms": {"mean": p95 / 2, "p50": p95 / 2, "p95": p95, "p99": p95 + 1},
        "tutorial_protocol_latency_ms": {"p95": p95 * speedup},
        "speedup_vs_tutorial_p95": speedup,
        "throughput_qps": 400.0,
    }
    return {
        "models": {"onnx_int8": int8},
        "run": {"model_version": version},
        "test_rows": 100,
        "machine": {"cpu_model": "AMD EPYC", "timestamp_utc": "2026-12-05T10:00:00+00:00"},
        "settings": {"repeats": 3, "latency_queries": 300},
    }


def test_spread_gives_the_median_min_max_and_every_value() -> None:
    assert spread([5.0, 3.0, 6.0, 4.0]) == {"median": 4.5, "min": 3.0, "max": 6.0, "runs": [5.0, 3.0, 6.0, 4.0]}


def test_summary_takes_the_median_of_each_runs_own_figure() -> None:
    runs = [_result(5.0, 3.0), _result(3.0, 6.0), _result(6.0, 5.0)]
    found = summarise_runs(runs, ["a", "b", "c"])["models"]["onnx_int8"]
    assert found["timings"]["latency_ms.p95"]["median"] == 5.0
    assert found["timings"]["latency_ms.p99"]["runs"] == [6.0, 4.0, 7.0]
    # the median of the speed-ups (5.0), not the ratio of the median timings (15 / 5 = 3)
    assert found["timings"]["speedup_vs_tutorial_p95"]["median"] == 5.0
    assert found["accuracy"] == 0.9 and found["accuracy_differs"] == []


def test_a_run_with_other_accuracy_is_named() -> None:
    runs = [_result(5.0, 3.0), _result(3.0, 6.0, accuracy=0.8)]
    assert summarise_runs(runs, ["a", "b"])["models"]["onnx_int8"]["accuracy_differs"] == ["b"]


def test_a_run_that_did_not_measure_a_field_does_not_count_as_differing() -> None:
    older = _result(5.0, 3.0)
    del older["models"]["onnx_int8"]["accuracy_single_query"]
    found = summarise_runs([older, _result(3.0, 6.0)], ["old", "new"])["models"]["onnx_int8"]
    assert found["accuracy_single_query"] == 0.9 and found["accuracy_differs"] == []


def test_a_timing_missing_from_one_run_is_left_out_not_invented() -> None:
    partial = _result(5.0, 3.0)
    del partial["models"]["onnx_int8"]["tutorial_protocol_latency_ms"]
    timings = summarise_runs([partial, _result(3.0, 6.0)], ["a", "b"])["models"]["onnx_int8"]["timings"]
    assert "tutorial_protocol_latency_ms.p95" not in timings and "latency_ms.p95" in timings
    assert "| **median** | **2.00** | **4.00** | **5.00** | **—** |" in markdown_table(
        summarise_runs([partial, _result(3.0, 6.0)], ["a", "b"]), "onnx_int8"
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r["run"].update(model_version="other"), "differ in run.model_version"),
        (lambda r: r.update(test_rows=99), "differ in test_rows"),
        (lambda r: r["machine"].update(cpu_model="Intel Xeon"), "differ in machine.cpu_model"),
        (lambda r: r["settings"].update(repeats=5), r"differ in settings.repeats \(a: 3, b: 5\)"),
        (lambda r: r["settings"].update(latency_queries=200), "differ in settings.latency_queries"),
        (lambda r: r["settings"].update(threads=1), r"differ in settings.threads \(a: None, b: 1\)"),
        (lambda r: r["settings"].update(batch_size=8), "differ in settings.batch_size"),
        (lambda r: r["settings"].update(tutorial_length=128), "differ in settings.tutorial_length"),
        (lambda r: r["settings"].update(warmup=0), "differ in settings.warmup"),
        (lambda r: r["settings"].update(limit=50), "differ in settings.limit"),
    ],
)
def test_runs_of_different_experiments_are_refused(change: Any, message: str) -> None:
    other = copy.deepcopy(_result(3.0, 6.0))
    change(other)
    with pytest.raises(DataError, match=message):
        summarise_runs([_result(5.0, 3.0), other], ["a", "b"])


def test_one_run_is_not_a_summary() -> None:
    with pytest.raises(DataError, match="at least two runs, got 1"):
        summarise_runs([_result(5.0, 3.0)], ["a"])


def test_an_unknown_model_names_the_ones_there() -> None:
    summary = summarise_runs([_result(5.0, 3.0), _result(3.0, 6.0)], ["a", "b"])
    with pytest.raises(DataError, match="no model 'onnx_fp16' in every run; the runs share: onnx_int8"):
        markdown_table(summary, "onnx_fp16")


def test_files_that_are_not_compression_results_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        load_result(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(DataError, match="not a readable JSON file"):
        load_result(broken)
    other = tmp_path / "routing.json"
    other.write_text(json.dumps({"policies": {}, "batched": {"throughput_rps": 600}}))
    with pytest.raises(DataError, match="not a `bench compression` result .* nor a `bench load` result"):
        load_result(other)


def test_the_published_banking77_medians_come_from_the_saved_runs(tmp_path: Path) -> None:
    """The README's EPYC banking77 figures (median p95 3.28 ms, 9.13x over 4 runs) are what the command prints."""
    files = sorted(RESULTS.glob("banking77_compression_epyc*.json"))
    assert len(files) == 4, files
    out = tmp_path / "summary.json"
    result = CliRunner().invoke(main, ["bench", "summary", *map(str, files), "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "| **median** | **1.93** | **3.28** | **4.88** | **28.68** | **9.13×** |" in result.output
    assert "the same in every run" in result.output
    saved = json.loads(out.read_text())
    assert saved["models"]["onnx_int8"]["timings"]["latency_ms.p95"]["min"] == pytest.approx(2.15, abs=0.005)
    assert saved["models"]["onnx_int8"]["accuracy_single_query"] == pytest.approx(0.9383, abs=1e-4)
    assert [Path(run["file"]).name for run in saved["runs"]] == [f.name for f in files]


def test_the_published_load_medians_come_from_the_saved_runs() -> None:
    """The README's EPYC load figures (batched / unbatched median 1.35x over 3 runs) are what the summary gives."""
    files = sorted(RESULTS.glob("banking77_load_epyc_s[0-9].json"))
    assert len(files) == 3, files
    found = summarise([load_result(f) for f in files], [f.name for f in files])
    assert "| **median** | **674.2** | **495.1** | **589.4** | **1.35×** | **1.16×** | **81.1** |" in (
        load_markdown_table(found)
    )
    assert found["speedup"]["batched_vs_unbatched"]["max"] < 2.0


def test_the_command_reports_a_bad_file_in_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["bench", "summary", str(tmp_path / "a.json"), str(tmp_path / "b.json")])
    assert result.exit_code == 1
    assert result.output.strip() == f"Error: {tmp_path / 'a.json'}: no such file"


@pytest.mark.parametrize("saved", sorted(RESULTS.glob("summary_*.json")), ids=lambda path: path.name)
def test_the_saved_summaries_regenerate_identically_from_their_runs(saved: Path, tmp_path: Path) -> None:
    expected = json.loads(saved.read_text())
    files = [str(RESULTS.parent / run["file"]) for run in expected["runs"]]
    out = tmp_path / "summary.json"
    result = CliRunner().invoke(main, ["bench", "summary", *files, "--json", str(out)])
    assert result.exit_code == 0, result.output
    regenerated = json.loads(out.read_text())
    for run in regenerated["runs"]:  # the saved summaries name their files relative to the repository
        run["file"] = str(Path(run["file"]).relative_to(RESULTS.parent))
    assert regenerated == expected


# ---------------------------------------------------------------- bench compression --variants


def _variants(fast_p95: float, accuracy: float = 0.84, **settings: Any) -> dict[str, Any]:
    def model(p95: float, paths: tuple[str, ...], recipe: dict[str, Any]) -> dict[str, Any]:
        stats = {"mean": p95 / 2, "p50": p95 / 2, "p95": p95, "p99": p95 + 1}
        latency = {path: stats for path in paths}
        return {"accuracy": accuracy, "latency_ms": latency, "throughput_qps": 1000.0 / p95, "recipe": recipe}

    every_path = ("batch_path_t1", "batch_path_t2", "fast_path_t1", "fast_path_t2")
    return {
        "models": {
            "onnx_fp32": model(3 * fast_p95, every_path, {"quantization": "fp32"}),
            "L4-int8": model(fast_p95, ("fast_path_t1", "fast_path_t2"), {"name": "L4-int8", "layers": 4}),
        },
        "test_rows": 2885,
        "machine": {"cpu_model": "AMD EPYC", "timestamp_utc": "2026-12-04T20:23:55+00:00"},
        "settings": {"repeats": 5, "latency_queries": 300, "warmup": 20, "batch_size": 32} | settings,
    }


def test_variants_results_are_summarised_per_variant_and_path() -> None:
    found = summarise([_variants(2.0), _variants(4.0), _variants(3.0)], ["a", "b", "c"])
    assert found["benchmark"] == "variants"
    l4 = found["models"]["L4-int8"]
    assert l4["timings"]["latency_ms.fast_path_t1.p95"] == spread([2.0, 4.0, 3.0])
    assert "latency_ms.batch_path_t1.p95" not in l4["timings"]  # not timed for a variant: left out, not invented
    assert found["models"]["onnx_fp32"]["timings"]["latency_ms.batch_path_t2.p99"]["median"] == 10.0
    assert l4["accuracy"] == 0.84 and l4["accuracy_differs"] == []
    table = variants_markdown_table(found)
    assert "| L4-int8 | 3.00 | 3.00 | — | — | 333 | 84.00% |" in table
    assert "| onnx_fp32 | 9.00 | 9.00 | 9.00 | 9.00 | 111 | 84.00% |" in table
    assert "| **median** | **3.00** | **3.00** | **—** | **—** | **333** |" in variants_markdown_table(found, "L4-int8")
    with pytest.raises(DataError, match="no variant 'onnx_int8' in every run; the runs share: onnx_fp32, L4-int8"):
        variants_markdown_table(found, "onnx_int8")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r["settings"].update(repeats=3), r"differ in settings.repeats \(a: 5, b: 3\)"),
        (lambda r: r["settings"].update(throughput_threads=1), "differ in settings.throughput_threads"),
        (lambda r: r.update(test_rows=100), "differ in test_rows"),
        (lambda r: r["models"]["L4-int8"]["recipe"].update(layers=3), "built L4-int8 by different recipes"),
    ],
)
def test_variants_runs_of_different_experiments_are_refused(change: Any, message: str) -> None:
    other = _variants(3.0)
    change(other)
    with pytest.raises(DataError, match=message):
        summarise([_variants(2.0), other], ["a", "b"])


def test_the_command_summarises_saved_variants_runs_and_refuses_other_settings() -> None:
    same = [str(RESULTS / f"airline_variants_L4_unfused_{r}.json") for r in ("r2", "r4")]
    result = CliRunner().invoke(main, ["bench", "summary", *same])
    assert result.exit_code == 0, result.output
    assert "| L4-int8 | 3.12 | 2.84 | — | — |" in result.output
    one = CliRunner().invoke(main, ["bench", "summary", *same, "--model", "L4-int8"])
    assert one.exit_code == 0 and "| **median** | **3.12** | **2.84** | **—** | **—** |" in one.output
    other = [str(RESULTS / "airline_variants_L4_unfused.json"), same[0]]
    refused = CliRunner().invoke(main, ["bench", "summary", *other, "--model", "L4-int8"])
    assert refused.exit_code == 1 and "Traceback" not in refused.output
    assert "differ in settings.repeats" in refused.output and len(refused.output.strip().splitlines()) == 1


# ---------------------------------------------------------------- bench load


def _phase(rps: float, p99: float = 50.0, errors: int = 0) -> dict[str, Any]:
    return {"throughput_rps": rps, "latency_ms": {"p50": p99 / 2, "p95": p99 - 5, "p99": p99}, "errors": errors}


def _load(batched: float, unbatched: float | None, plain: float | None = None, **settings: Any) -> dict[str, Any]:
    phases = {"batched": _phase(batched), "unbatched": None, "plain": None}
    speedup: dict[str, float | None] = {"batched_vs_unbatched": None, "batched_vs_plain": None}
    if unbatched is not None:
        phases["unbatched"] = _phase(unbatched)
        speedup["batched_vs_unbatched"] = batched / unbatched
    if plain is not None:
        phases["plain"] = _phase(plain)
        speedup["batched_vs_plain"] = batched / plain
    server = {"run": "runs/b77", "max_batch": 32, "max_wait_ms": 2.0, "workers": 2, "threads": 1, "policy": ""}
    return {
        "benchmark": "load",
        "settings": {"concurrency": 32, "rate_rps": None, "duration_s": 20.0, "processes": 2, "server": server}
        | settings,
        "machine": {"cpu_model": "AMD EPYC", "timestamp_utc": "2026-12-05T10:00:00+00:00"},
        **phases,
        "speedup": speedup,
    }


def test_load_summary_takes_the_median_of_each_runs_ratio() -> None:
    runs = [_load(600.0, 400.0, 500.0), _load(700.0, 350.0, 560.0), _load(660.0, 500.0, 600.0)]
    found = summarise_load_runs(runs, ["a", "b", "c"])
    assert found["configurations"]["batched"]["throughput_rps"]["median"] == 660.0
    assert found["configurations"]["unbatched"]["latency_ms.p99"]["runs"] == [50.0, 50.0, 50.0]
    # ratios 1.5, 2.0, 1.32: their median (1.5), not 660 / 400 = 1.65
    assert found["speedup"]["batched_vs_unbatched"]["median"] == 1.5
    assert found["speedup"]["batched_vs_unbatched"]["max"] == 2.0
    table = load_markdown_table(found)
    assert "| **median** | **660.0** | **400.0** | **560.0** | **1.50×** | **1.20×** | **50.0** |" in table
    assert "errors over all runs: batched 0, unbatched 0, plain 0" in table


def test_load_summary_takes_the_median_server_cpu_and_its_ratio_when_measured() -> None:
    runs = [_load(600.0, 400.0), _load(700.0, 350.0), _load(660.0, 500.0)]
    for run, (batched, unbatched) in zip(runs, [(2.0, 3.0), (2.2, 2.9), (2.1, 3.3)], strict=True):
        run["batched"]["server_cpu_ms_per_request"], run["unbatched"]["server_cpu_ms_per_request"] = batched, unbatched
        run["server_cpu_ratio"] = {"unbatched_vs_batched": unbatched / batched, "plain_vs_batched": None}
    found = summarise_load_runs(runs, ["a", "b", "c"])
    assert found["configurations"]["batched"]["server_cpu_ms_per_request"]["median"] == 2.1
    assert found["server_cpu_ratio"]["unbatched_vs_batched"]["median"] == 1.5  # of 1.5, 1.318, 1.571
    assert "CPU/request unbatched / batched" in load_markdown_table(found) and "**1.50×** | **50.0** |" in (
        load_markdown_table(found)
    )
    assert "server_cpu_ratio" not in summarise_load_runs(runs[:1] + [_load(1.0, 1.0)], ["a", "d"])  # one lacks it


def test_load_summary_takes_the_median_machine_busy_share_when_every_run_measured_it() -> None:
    runs = [_load(600.0, 400.0), _load(700.0, 350.0), _load(660.0, 500.0)]
    for run, (batched, unbatched) in zip(runs, [(78.0, 70.0), (80.0, 75.0), (82.0, 72.0)], strict=True):
        run["batched"]["machine_busy_pct"], run["unbatched"]["machine_busy_pct"] = batched, unbatched
    found = summarise_load_runs(runs, ["a", "b", "c"])
    assert found["configurations"]["unbatched"]["machine_busy_pct"]["median"] == 72.0
    table = load_markdown_table(found)
    assert "batched machine busy % | unbatched machine busy %" in table and "| **80** | **72** |" in table
    older = summarise_load_runs([_load(600.0, 400.0), _load(700.0, 350.0)], ["a", "b"])
    assert "machine_busy_pct" not in older["configurations"]["batched"]
    assert "machine busy" not in load_markdown_table(older)  # runs saved before it was measured


def test_load_summary_leaves_out_configurations_some_runs_did_not_measure() -> None:
    runs = [_load(600.0, 400.0), _load(700.0, None)]
    found = summarise_load_runs(runs, ["a", "b"])
    assert list(found["configurations"]) == ["batched"]
    assert found["speedup"] == {}
    assert "| **median** | **650.0** | **—** | **—** | **50.0** |" in load_markdown_table(found)


def test_load_errors_and_unsent_requests_are_summed_not_hidden() -> None:
    runs = [_load(600.0, 400.0), _load(700.0, 350.0)]
    runs[1]["batched"]["errors"] = 3
    runs[0]["unbatched"]["unsent"], runs[1]["unbatched"]["unsent"] = 5, 7
    found = summarise_load_runs(runs, ["a", "b"])
    assert found["configurations"]["batched"]["errors"] == 3
    assert found["configurations"]["unbatched"]["unsent"] == 12 and found["configurations"]["batched"]["unsent"] == 0
    assert "- requests due but never sent (open loop, clients fell behind): unbatched 12" in load_markdown_table(found)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r["settings"].update(concurrency=64), "differ in settings.concurrency"),
        (lambda r: r["settings"].update(rate_rps=400.0), "differ in settings.rate_rps"),
        (lambda r: r["settings"]["server"].update(workers=1), "differ in settings.server.workers"),
        (lambda r: r["settings"]["server"].update(run="runs/other"), "differ in settings.server.run"),
        (lambda r: r["settings"]["server"].update(replicas=2), r"differ in settings.server.replicas \(a: 1, b: 2\)"),
        (lambda r: r["machine"].update(cpu_model="Intel Xeon"), "differ in machine.cpu_model"),
    ],
)
def test_load_runs_of_different_set_ups_are_refused(change: Any, message: str) -> None:
    other = _load(700.0, 350.0)
    change(other)
    with pytest.raises(DataError, match=message):
        summarise_load_runs([_load(600.0, 400.0), other], ["a", "b"])


def test_a_load_run_saved_before_replicas_existed_counts_as_one_replica() -> None:
    newer = _load(700.0, 350.0)
    newer["settings"]["server"]["replicas"] = 1
    found = summarise_load_runs([_load(600.0, 400.0), newer], ["a", "b"])
    assert found["configurations"]["batched"]["throughput_rps"]["runs"] == [600.0, 700.0]


def test_load_and_compression_results_are_not_summarised_together() -> None:
    with pytest.raises(DataError, match="different benchmarks .*a: compression, b: load"):
        summarise([_result(5.0, 3.0), _load(600.0, 400.0)], ["a", "b"])


def test_the_command_summarises_load_results_and_refuses_a_model_for_them(tmp_path: Path) -> None:
    files = []
    for index, (batched, unbatched) in enumerate([(600.0, 400.0), (700.0, 350.0)]):
        files.append(tmp_path / f"load_{index}.json")
        files[-1].write_text(json.dumps(_load(batched, unbatched)))
    out = tmp_path / "summary.json"
    result = CliRunner().invoke(main, ["bench", "summary", *map(str, files), "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "| **median** | **650.0** | **375.0** | **1.75×** | **—** | **50.0** |" in result.output
    assert json.loads(out.read_text())["speedup"]["batched_vs_unbatched"]["runs"] == [1.5, 2.0]
    refused = CliRunner().invoke(main, ["bench", "summary", *map(str, files), "--model", "onnx_int8"])
    assert refused.exit_code == 2 and "load results have configurations, not models" in refused.output
