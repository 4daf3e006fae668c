"""The routing benchmark end to end on a tiny run with a cloud tier, plus its pure helpers and error paths."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hybridroute.bench.output import write_json
from hybridroute.bench.routing import (
    POLICY_ORDER,
    RoutingBenchConfig,
    escalated_alone,
    gap_in_words,
    gap_summary,
    markdown_table,
    max_probability_diff,
    measure_outcomes,
    outage_indices,
    random_line,
    require_routing_run,
    route_all,
    run_routing_bench,
)
from hybridroute.config import DataConfig
from hybridroute.data import load_labelled
from hybridroute.errors import ArtifactError, ConfigError
from hybridroute.routing.curve import cascade_curve
from hybridroute.routing.features import FeatureConfig
from hybridroute.routing.ledger import PriceConfig
from hybridroute.routing.router_config import build_policy, load_router
from hybridroute.runs import RunLayout
from hybridroute.runtime.classifier import EdgeClassifier

POLICY_KEYS = ("accuracy", "edge_share", "cost_per_query", "savings_pct", "savings_pct_measured")
OPERATING_KEYS = ("policy", "accuracy", "edge_share", "savings_pct", "savings_pct_measured")
SLACK_MS = 150.0  # a shared 2-core machine may delay a thread hand-off; the bound under test is the budget


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def cloud_run(tiny_hybrid_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the tiny run with its cloud tier and a router escalating 20% of validation."""
    root = tmp_path_factory.mktemp("routing-bench") / "run"
    shutil.copytree(tiny_hybrid_run, root)
    return root


@pytest.fixture(scope="module")
def bench(
    cloud_run: Path,
    tmp_path_factory: pytest.TempPathFactory,
    toy_csv_writer: Callable[..., Path],
    frozen_startup_heap: None,
) -> tuple[dict[str, Any], Path, list[str]]:
    """The benchmark run once with small samples: (result, JSON path, progress lines).

    On a frozen heap, as a fresh ``bench routing`` process has: full collections of this test process's heap
    took up to 0.24 s in a partial suite (timed with ``gc.callbacks``), the likely cause of one outage query
    that took 450 ms in a full-suite run, 250 ms past its allowance.
    """
    folder = tmp_path_factory.mktemp("routing-bench-out")
    test_csv = toy_csv_writer(folder / "test.csv", per_class=15, seed=11)
    config = RoutingBenchConfig(
        cloud_run, test_csv, http_sample=12, outage_sample=12, cloud_timeout_s=0.1, timing_queries=20, warmup=2
    )
    lines: list[str] = []
    json_path = folder / "routing.json"
    result = run_routing_bench(config, progress=lines.append, json_out=json_path)
    write_json(result, json_path)
    return result, json_path, lines


def test_edge_batch_size_one_sends_each_text_alone(
    cloud_run: Path, tmp_path: Path, toy_csv_writer: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dynamic INT8 answers depend on the batch, so the single-query protocol must really run one text per call."""
    calls: list[tuple[int, int]] = []  # (model, texts in the call)
    real_run = EdgeClassifier.run

    def recording_run(self: EdgeClassifier, input_ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        calls.append((id(self), input_ids.shape[0]))
        return real_run(self, input_ids, mask)

    monkeypatch.setattr(EdgeClassifier, "run", recording_run)
    test_csv = toy_csv_writer(tmp_path / "test.csv", per_class=4, seed=5)
    test = load_labelled(DataConfig(test_csv))
    config = RoutingBenchConfig(cloud_run, test_csv, edge_batch_size=1, timing_queries=2, warmup=0)
    lines: list[str] = []
    outcomes, _, _ = measure_outcomes(RunLayout(cloud_run), test, FeatureConfig(), config, lines.append)

    edge = calls[0][0]
    edge_sizes = [size for model, size in calls if model == edge]
    assert set(edge_sizes) == {1} and len(edge_sizes) >= len(test) + 2  # the test pass, then the timed queries
    assert max(size for model, size in calls if model != edge) > 1  # the cloud pass stays batched
    assert len(outcomes.edge_correct) == len(test) and "1 per call" in lines[0]


def test_outage_sample_is_picked_by_the_decisions_of_texts_routed_alone(
    cloud_run: Path, tmp_path: Path, toy_csv_writer: Callable[..., Path]
) -> None:
    """The outage scenarios route one text at a time: the sample's escalations must be theirs, not a batch's."""
    test_csv = toy_csv_writer(tmp_path / "test.csv", per_class=15, seed=11)  # the bench fixture's test set
    test = load_labelled(DataConfig(test_csv))
    config = RoutingBenchConfig(cloud_run, test_csv, edge_batch_size=1, timing_queries=2, warmup=0)
    layout = RunLayout(cloud_run)
    router = load_router(layout.router)
    outcomes, _, _ = measure_outcomes(layout, test, router.features, config, lambda _: None)
    single_pass = route_all(build_policy(router, np.random.default_rng(config.seed)), outcomes, config.price_modes())

    alone = escalated_alone(layout, router, test.texts, config)

    assert alone.shape == (len(test),) and alone.any() and not alone.all()
    assert alone.tolist() == single_pass.escalated.tolist()  # the hybrid alone == the bench's one-per-call pass


# ---------------------------------------------------------------- end to end


def test_result_holds_every_required_key(bench: tuple[dict[str, Any], Path, list[str]]) -> None:
    result, json_path, lines = bench
    for key in ("edge_only_accuracy", "cloud_only_accuracy", "apgr", "cpt50", "cpt80"):
        assert key in result
    assert list(result["policies"]) == list(POLICY_ORDER)
    for figures in result["policies"].values():
        assert set(POLICY_KEYS) <= set(figures)
    assert set(OPERATING_KEYS) <= set(result["operating_point"])
    assert result["test_rows"] == 45 and result["operating_point"]["policy"] == "confidence"
    assert json.loads(json_path.read_text()) == json.loads(json.dumps(result))  # strict JSON, nothing lost
    assert any(line.startswith("[8/8]") for line in lines)


def test_accuracies_shares_and_honest_costs(bench: tuple[dict[str, Any], Path, list[str]]) -> None:
    result, _, _ = bench
    policies, prices = result["policies"], PriceConfig()
    for figures in policies.values():
        assert 0.0 <= figures["accuracy"] <= 1.0 and 0.0 <= figures["edge_share"] <= 1.0
    assert policies["always-edge"]["edge_share"] == 1.0
    assert policies["always-cloud"]["edge_share"] == 0.0
    assert policies["always-edge"]["accuracy"] == pytest.approx(result["edge_only_accuracy"])
    assert policies["always-cloud"]["accuracy"] == pytest.approx(result["cloud_only_accuracy"])
    assert policies["always-edge"]["savings_pct"] > 0 and policies["always-edge"]["savings_pct_measured"] > 0
    tutorial = policies["tutorial"]  # cloud-first: it pays the cloud on every query, whatever it serves
    assert tutorial["cloud_call_share"] == 1.0
    assert tutorial["cost_per_query"] >= prices.cloud_per_query
    assert tutorial["cost_per_query_measured"] >= prices.cloud_per_query
    assert tutorial["savings_pct"] < 0
    assert result["edge_cost"]["cpu_seconds_per_query"] > 0


def test_operating_point_is_the_calibrated_confidence_policy(bench: tuple[dict[str, Any], Path, list[str]]) -> None:
    result, _, _ = bench
    point, confidence = result["operating_point"], result["policies"]["confidence"]
    assert confidence["threshold_source"] == "router.json"
    assert point["threshold"] == confidence["threshold"]
    assert point["accuracy"] == confidence["accuracy"] and point["edge_share"] == confidence["edge_share"]
    assert point["edge_share"] + point["cloud_share"] == pytest.approx(1.0)
    expected_gap = 100 * (result["cloud_only_accuracy"] - point["accuracy"])
    assert point["accuracy_gap_vs_cloud_points"] == pytest.approx(expected_gap)
    assert point["monthly"]["fixed"]["queries_per_day"] == 10_000
    assert result["policies"]["learned"]["threshold_source"].startswith("calibrated in memory")


def test_curves_run_from_edge_only_to_cloud_only(bench: tuple[dict[str, Any], Path, list[str]]) -> None:
    result, _, _ = bench
    assert set(result["curves"]) == {"confidence", "learned", "random"}
    for curve in result["curves"].values():
        assert len(curve["cloud_share"]) == len(curve["accuracy"]) == result["test_rows"] + 1
        assert curve["cloud_share"][0] == 0.0 and curve["cloud_share"][-1] == 1.0
        assert curve["accuracy"][0] == pytest.approx(result["edge_only_accuracy"])
        assert curve["accuracy"][-1] == pytest.approx(result["cloud_only_accuracy"])
    assert result["curve_policy"] == "confidence"
    if result["cloud_only_accuracy"] > result["edge_only_accuracy"]:
        assert 0.0 <= result["cpt50"] <= result["cpt80"] <= 1.0 and result["gap_note"] is None
    else:  # a tiny random cloud model is often worse than the edge: no gap, no published number
        assert result["apgr"] is None and result["cpt80"] is None and "PGR is undefined" in result["gap_note"]


def test_http_path_agrees_with_in_process(bench: tuple[dict[str, Any], Path, list[str]]) -> None:
    http = bench[0]["http_check"]
    assert http["n"] == 12 and http["agreement"] == 1.0
    assert http["cloud_answered"] == 12 and http["fallbacks"] == 0
    assert http["max_prob_diff"] < 1e-4
    assert 0 < http["p50_ms"] <= http["p95_ms"]


def test_every_query_answered_in_time_when_the_cloud_fails(bench: tuple[dict[str, Any], Path, list[str]]) -> None:
    outage = bench[0]["outage"]
    assert outage["answered_pct"] == 100.0
    assert outage["max_ms"] <= outage["budget_ms"] + SLACK_MS
    assert outage["budget_ms"] >= 200.0  # two attempts of 0.1 s, plus the edge
    scenarios = outage["scenarios"]
    assert set(scenarios) == {"not_listening", "hung", "stopped_mid_run"}
    for name in ("not_listening", "hung"):
        assert scenarios[name]["fallbacks"] == scenarios[name]["escalated"] > 0
    assert any(reason.endswith("timeout") for reason in scenarios["hung"]["fallback_reasons"])
    stopped = scenarios["stopped_mid_run"]
    assert stopped["answered_pct"] == 100.0
    assert stopped["after_stop"]["fallbacks"] == stopped["after_stop"]["escalated"] > 0
    assert stopped["fallbacks"] < stopped["escalated"]  # before the stop, the cloud answered


def test_plot_and_table_are_written(bench: tuple[dict[str, Any], Path, list[str]]) -> None:
    result, json_path, _ = bench
    plot = Path(result["plot"])
    assert plot == json_path.with_suffix(".png")
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 5000
    table = markdown_table(result)
    assert table.count("\n| ") >= len(POLICY_ORDER) and "confidence (calibrated)" in table
    assert "Outages: 100.0% answered" in table


# ---------------------------------------------------------------- missing pieces and config


def test_missing_cloud_and_router_name_the_command_to_run(tiny_run: Path, tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="train --tier cloud"):
        require_routing_run(RunLayout(tiny_run))
    for part in ("edge", "cloud"):
        (tmp_path / part).mkdir()
    with pytest.raises(ArtifactError, match=f"hybridroute calibrate --run {tmp_path}"):
        require_routing_run(RunLayout(tmp_path))


@pytest.mark.parametrize(
    "changes",
    [
        {"cloud_timeout_s": 0.0},
        {"http_sample": -1},
        {"limit": -5},
        {"text_col": "label"},
        {"timing_queries": 0},
        {"edge_batch_size": 0},
        {"prices": {"cloud_per_query": 1}},
    ],
)
def test_bad_settings_are_refused(changes: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        RoutingBenchConfig(tmp_path, tmp_path / "test.csv", **changes)


def test_a_negative_cpu_hour_price_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cpu_hour_price"):  # measured mode's price lives in the prices
        RoutingBenchConfig(tmp_path, tmp_path / "test.csv", prices=PriceConfig(cpu_hour_price=-1.0))


def test_plot_goes_where_asked(tmp_path: Path) -> None:
    config = RoutingBenchConfig(tmp_path, tmp_path / "t.csv", plot=str(tmp_path / "p.png"))
    assert config.plot == tmp_path / "p.png" and config.cloud_budget_s == pytest.approx(0.5)
    assert config.price_modes()["measured"].mode == "measured"


@pytest.mark.parametrize("name", ["plot.csv", "plot.json", "plot.txt"])
def test_a_plot_that_is_no_image_is_refused_before_any_work(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigError, match=r"is not an image format .*accepted suffixes: \.png, \.svg, \.pdf"):
        RoutingBenchConfig(tmp_path, tmp_path / "t.csv", plot=tmp_path / name)


@pytest.mark.parametrize("name", ["p.png", "p.SVG", "p.pdf", "plot"])
def test_the_image_suffixes_are_accepted(tmp_path: Path, name: str) -> None:
    assert RoutingBenchConfig(tmp_path, tmp_path / "t.csv", plot=tmp_path / name).plot == tmp_path / name


# ---------------------------------------------------------------- pure helpers


def test_gap_summary_reports_routellm_numbers_when_the_cloud_is_better() -> None:
    edge = np.ones(100, dtype=bool)
    edge[::5] = False  # the edge is wrong on 20 queries; the cloud is right on all
    scores = np.where(edge, 0.1, 0.9) + np.linspace(0, 0.01, 100)  # a perfect ranking
    shares, accuracies = cascade_curve(scores, edge, np.ones(100, dtype=bool))
    summary = gap_summary(shares, accuracies, 0.8, 1.0)
    assert summary["gap_note"] is None
    assert summary["cpt50"] == pytest.approx(0.10) and summary["cpt80"] == pytest.approx(0.16)
    assert summary["apgr"] == pytest.approx(0.9)  # PGR climbs linearly to 1 at share 0.2, then stays


def test_gap_summary_is_null_with_a_note_when_the_cloud_is_no_better() -> None:
    shares, accuracies = random_line(10, 0.9, 0.8)
    summary = gap_summary(shares, accuracies, 0.9, 0.8)
    assert summary["apgr"] is None and summary["cpt50"] is None and summary["cpt80"] is None
    assert "not above edge accuracy" in summary["gap_note"]


def test_random_line_is_half_the_gap() -> None:
    shares, accuracies = random_line(100, 0.8, 1.0)
    summary = gap_summary(shares, accuracies, 0.8, 1.0)
    assert summary["apgr"] == pytest.approx(0.5)
    assert summary["cpt50"] == pytest.approx(0.5) and summary["cpt80"] == pytest.approx(0.8)


def test_outage_sample_interleaves_escalated_and_kept_queries() -> None:
    escalated = np.array([0, 1, 0, 1, 0, 0], dtype=bool)
    assert outage_indices(escalated, 4) == [1, 0, 3, 2]
    assert outage_indices(escalated, 100) == [0, 1, 2, 4, 3, 5]
    assert outage_indices(np.ones(5, dtype=bool), 3) == [0, 1, 2]
    assert outage_indices(np.zeros(3, dtype=bool), 5) == [0, 1, 2]


def test_few_escalations_are_spread_over_both_halves_of_the_outage_sample() -> None:
    escalated = np.zeros(45, dtype=bool)
    escalated[[3, 17, 40]] = True
    sample = outage_indices(escalated, 45)
    assert sorted(sample) == list(range(45))
    places = [sample.index(i) for i in (3, 17, 40)]
    assert places == sorted(places) and places[0] < 45 // 2 < places[-1]
    assert [i for i in sample if escalated[i]] == [3, 17, 40]


def test_gap_in_words_says_above_for_a_lead_over_cloud_only() -> None:
    assert gap_in_words(0.214) == "0.21 points below cloud only"
    assert gap_in_words(-0.292) == "0.29 points above cloud only"
    assert gap_in_words(0.0) == "0.00 points below cloud only"


def test_max_probability_diff() -> None:
    assert max_probability_diff({"a": 0.6, "b": 0.4}, {"a": 0.5, "b": 0.5}) == pytest.approx(0.1)
    assert max_probability_diff({"a": 1.0}, {"b": 1.0}) == 1.0
