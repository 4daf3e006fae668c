"""The edge service's Prometheus metrics over real HTTP on loopback, against what the answers and the audit log say.

Gauges are absent until the live monitor would judge them, the error rate counts HTTP requests, the latency
histogram is the answers' latency (the audit-commit wait apart), and cost is counted by the tier that cost it.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from hybridroute.errors import InferenceError
from hybridroute.monitoring.thresholds import MonitorConfig, MonitorThresholds
from hybridroute.routing.cascade import HybridClassifier
from hybridroute.routing.ledger import CostLedger, PriceConfig
from hybridroute.routing.policies import ConfidencePolicy
from hybridroute.serving.cloud_client import CloudResult
from hybridroute.serving.edge_app import HttpRequestCounter, create_app
from hybridroute.serving.edge_settings import EdgeSettings
from hybridroute.serving.uvicorn_runner import serve_in_thread
from hybridroute.types import Prediction

LABELS = ("negative", "neutral", "positive")
PRICES = PriceConfig(edge_per_query=0.001, cloud_per_query=0.0136)


@dataclass
class FakeEdge:
    """Confident (0.9) on "positive" unless the text says "unsure" (0.4); "broken" makes the model fail."""

    model_version: str = "fake-edge-1"
    labels: tuple[str, ...] = LABELS

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        if any("broken" in t for t in texts):
            raise InferenceError("the fake edge model failed")
        return np.array([[0.3, 0.3, 0.4] if "unsure" in t else [0.05, 0.05, 0.9] for t in texts])


class FakeCloud:
    """Answers "positive" at 0.99, or fails after its model may have run (a timeout: the call is charged)."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail

    def classify(self, texts: Sequence[str]) -> CloudResult:
        if self.fail:
            return CloudResult(False, None, None, "timeout", 1, 40.0)
        prediction = Prediction("positive", 0.99, {"negative": 0.005, "neutral": 0.005, "positive": 0.99})
        return CloudResult(True, [prediction] * len(texts), "fake-cloud-1", None, 1, 40.0)


def fake_hybrid(cloud_fails: bool = False) -> HybridClassifier:
    edge, cloud = FakeEdge(), FakeCloud(cloud_fails)
    return HybridClassifier(edge, ConfidencePolicy(0.6), cloud, CostLedger(PRICES))  # type: ignore[arg-type]


def settings(tmp_path: Path) -> EdgeSettings:
    """The live monitor judges windows of 20 answers or more, accuracy from 5 labels on; windows of 30."""
    return EdgeSettings(
        tmp_path,
        hash_salt="test-salt",
        prices=PRICES,
        monitor_config=MonitorConfig(window_size=30, trend_windows=2),
        monitor_thresholds=MonitorThresholds(min_window=20, min_feedback=5),
    )


@contextmanager
def running(tmp_path: Path, cloud_fails: bool = False) -> Iterator[tuple[str, httpx.Client]]:
    app = create_app(settings(tmp_path), fake_hybrid(cloud_fails))
    with serve_in_thread(app) as url, httpx.Client(timeout=10.0) as client:
        deadline = time.monotonic() + 10.0
        while client.get(f"{url}/readyz").status_code != 200:
            assert time.monotonic() < deadline, "not ready after 10 s"
            time.sleep(0.01)
        yield url, client


def samples(client: httpx.Client, url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``/metrics``, by name and sorted labels."""
    found = {}
    for family in text_string_to_metric_families(client.get(f"{url}/metrics").text):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def value(found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float | None:
    return found.get((name, tuple(sorted(labels.items()))))


def classify(client: httpx.Client, url: str, texts: list[str]) -> httpx.Response:
    return client.post(f"{url}/v1/classify", json={"texts": texts})


@pytest.fixture
def gauges_every_scrape(monkeypatch: pytest.MonkeyPatch) -> None:
    """The monitor's gauges recomputed on every scrape (the service does it at most every 30 s)."""
    monkeypatch.setattr("hybridroute.serving.edge_service.MONITOR_GAUGES_EVERY_S", 0.0)


# ---------------------------------------------------------------- gauges only where the monitor judges


@pytest.mark.usefixtures("gauges_every_scrape")
def test_gauges_appear_only_where_the_monitor_judges_and_go_when_their_data_leaves(tmp_path: Path) -> None:
    with running(tmp_path) as (url, client):
        first = classify(client, url, ["thanks, all good"]).json()["results"][0]
        wrong = client.post(f"{url}/v1/feedback", json={"request_id": first["request_id"], "label": "negative"})
        assert wrong.status_code == 200
        idle = samples(client, url)  # one answer, one wrong label: no share, no accuracy of 0 to fire on
        ids = [r["request_id"] for r in classify(client, url, ["unsure"] * 5 + ["fine"] * 14).json()["results"]]
        below = samples(client, url)  # 20 answers: the edge share is judged; 1 label is not an accuracy
        for request_id in ids[5:9]:
            assert client.post(f"{url}/v1/feedback", json={"request_id": request_id, "label": "positive"}).is_success
        labelled = samples(client, url)
        classify(client, url, ["fine"] * 30)  # the labelled answers leave the 30-answer window
        moved_on = samples(client, url)

    accuracy = "hybridroute_monitor_feedback_accuracy"
    assert value(idle, "hybridroute_edge_share") is None and value(idle, accuracy) is None
    assert value(idle, "hybridroute_monitor_health_score") == 100.0
    assert value(below, "hybridroute_edge_share") == pytest.approx(15 / 20) and value(below, accuracy) is None
    assert value(labelled, accuracy) == pytest.approx(4 / 5)
    assert value(moved_on, accuracy) is None  # not the last value kept forever
    assert value(moved_on, "hybridroute_edge_share") == pytest.approx(45 / 50)


def test_the_monitor_of_a_service_that_answered_nothing_reports_no_data(tmp_path: Path) -> None:
    with running(tmp_path) as (url, client):
        window = client.get(f"{url}/v1/monitor").json()["window"]
    assert window["queries"] == 0
    for name in ("edge_share", "cloud_share", "fallback_rate", "cost_per_query", "latency_p95_ms"):
        assert window[name] is None, name  # not 0.0: nothing was answered, on the edge or anywhere


# ---------------------------------------------------------------- the error rate counts HTTP requests


def test_http_requests_are_counted_once_each_by_route_and_status_class(tmp_path: Path) -> None:
    with running(tmp_path) as (url, client):
        codes = [
            classify(client, url, [f"where is my parcel {i}-{j}" for j in range(64)]).status_code for i in range(5)
        ]
        codes += [classify(client, url, ["ok", ""]).status_code for _ in range(5)]
        codes.append(classify(client, url, ["broken"]).status_code)
        client.get(f"{url}/wp-login.php")
        found = samples(client, url)

    assert codes == [200] * 5 + [422] * 5 + [500]
    count = "hybridroute_http_requests_total"
    assert value(found, count, route="/v1/classify", status="2xx") == 5  # not 320: one per request
    assert value(found, count, route="/v1/classify", status="4xx") == 5
    assert value(found, count, route="/v1/classify", status="5xx") == 1
    assert value(found, count, route="other", status="4xx") == 1  # an unknown path is not a label of its own
    assert not [labels for name, labels in found if name == count and ("route", "/wp-login.php") in labels]
    assert value(found, count, route="/readyz", status="2xx") is not None
    # HybridrouteErrorRateHigh's value: the 5xx share of the API's HTTP requests.
    api = [v for (name, labels), v in found.items() if name == count and dict(labels)["route"].startswith("/v1/")]
    assert (value(found, count, route="/v1/classify", status="5xx") or 0.0) / sum(api) == pytest.approx(1 / 11)


def test_a_request_that_raised_counts_as_a_server_error() -> None:
    counted: list[tuple[str, str]] = []

    async def failing_app(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("a bug")  # the app's last-resort handler answers 500 outside the counter

    counter = HttpRequestCounter(failing_app, lambda route, status: counted.append((route, status)), frozenset({"/x"}))
    with pytest.raises(RuntimeError):
        asyncio.run(counter({"type": "http", "path": "/x"}, None, None))  # type: ignore[arg-type]
    assert counted == [("/x", "5xx")]


# ---------------------------------------------------------------- latency as recorded, the audit wait apart


def hold_audit_lock(database: Path, seconds: float) -> threading.Thread:
    """Hold the audit database's write lock for ``seconds`` from another connection (commits wait for it)."""
    connection = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
    connection.execute("BEGIN EXCLUSIVE")

    def release() -> None:
        time.sleep(seconds)
        connection.execute("COMMIT")
        connection.close()

    thread = threading.Thread(target=release)
    thread.start()
    return thread


def test_request_latency_is_the_answers_latency_and_the_audit_wait_is_its_own(tmp_path: Path) -> None:
    with running(tmp_path) as (url, client):
        before = samples(client, url)
        holder = hold_audit_lock(tmp_path / "audit.sqlite", 0.6)
        response = classify(client, url, ["thanks, all good", "fine"])
        holder.join()
        after = samples(client, url)

    assert response.headers["X-Audit"] == "committed"
    latency_ms = [r["latency_ms"] for r in response.json()["results"]]
    with sqlite3.connect(tmp_path / "audit.sqlite") as db:
        logged = [row[0] for row in db.execute("SELECT latency_ms FROM audit ORDER BY rowid")]
    assert logged == latency_ms

    def moved(name: str) -> float:
        return (value(after, name) or 0.0) - (value(before, name) or 0.0)

    assert moved("hybridroute_request_latency_seconds_count") == 2
    assert moved("hybridroute_request_latency_seconds_sum") == pytest.approx(sum(latency_ms) / 1000.0)
    assert max(latency_ms) < 300.0  # the answers were ready long before the commit
    assert moved("hybridroute_audit_ack_seconds_count") == 1  # one wait per request
    assert moved("hybridroute_audit_ack_seconds_sum") >= 0.3


# ---------------------------------------------------------------- cost by the tier that cost it


def test_cost_is_counted_by_the_tier_that_cost_it_and_adds_up_to_the_answers(tmp_path: Path) -> None:
    with running(tmp_path) as (url, client):
        answers = classify(client, url, ["fine", "fine", "unsure"]).json()["results"]
        found = samples(client, url)
    with running(tmp_path / "cloud_down", cloud_fails=True) as (url, client):
        fallbacks = classify(client, url, ["fine", "unsure"]).json()["results"]
        down = samples(client, url)

    assert [a["tier"] for a in answers] == ["edge", "edge", "cloud"]
    cost = "hybridroute_cost_usd_total"
    assert value(found, cost, tier="edge") == pytest.approx(3 * 0.001)  # the escalated answer ran the edge first
    assert value(found, cost, tier="cloud") == pytest.approx(0.0136)
    by_tier = [value(found, cost, tier=tier) or 0.0 for tier in ("edge", "cloud")]
    assert sum(by_tier) == pytest.approx(sum(a["cost"] for a in answers))
    assert [a["fallback"] for a in fallbacks] == [False, True]  # the cloud timed out: charged, the edge answered
    assert value(down, cost, tier="edge") == pytest.approx(2 * 0.001)
    assert value(down, cost, tier="cloud") == pytest.approx(0.0136)
    assert sum(a["cost"] for a in fallbacks) == pytest.approx(2 * 0.001 + 0.0136)
