"""The edge service over real HTTP on loopback: contract, readiness, limits, feedback, metrics, batching, drain."""

from __future__ import annotations

import concurrent.futures
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi import FastAPI

from hybridroute.errors import ArtifactError
from hybridroute.monitoring.audit import open_audit_store
from hybridroute.monitoring.thresholds import MonitorThresholds
from hybridroute.routing.cascade import HybridClassifier
from hybridroute.routing.policies import ConfidencePolicy
from hybridroute.serving.cloud_client import CloudResult, thread_safe_client
from hybridroute.serving.edge_app import create_app
from hybridroute.serving.edge_settings import EdgeSettings
from hybridroute.serving.uvicorn_runner import serve_in_thread
from hybridroute.types import Prediction
from support.raw_http import error_of

LABELS = ("negative", "neutral", "positive")
RESULT_FIELDS = {
    "request_id",
    "label",
    "confidence",
    "tier",
    "reason",
    "latency_ms",
    "cost",
    "model_version",
    "fallback",
}


@dataclass
class FakeEdge:
    """Confident (0.9) unless the text says "unsure" (0.4); the label follows the word count."""

    delay_s: float = 0.0
    model_version: str = "fake-edge-1"
    labels: tuple[str, ...] = LABELS
    batch_sizes: list[int] = field(default_factory=list)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        self.batch_sizes.append(len(texts))
        time.sleep(self.delay_s)
        rows = []
        for text in texts:
            top = 0.4 if "unsure" in text else 0.9
            row = [(1 - top) / 2] * 3
            row[len(text.split()) % 3] = top
            rows.append(row)
        return np.array(rows)


class FakeCloud:
    def classify(self, texts: Sequence[str]) -> CloudResult:
        prediction = Prediction("positive", 0.99, {"negative": 0.005, "neutral": 0.005, "positive": 0.99})
        return CloudResult(True, [prediction] * len(texts), "fake-cloud-1", None, 1, 40.0)


def fake_hybrid(delay_s: float = 0.0) -> HybridClassifier:
    return HybridClassifier(FakeEdge(delay_s), ConfidencePolicy(0.6), FakeCloud())  # type: ignore[arg-type]


def wait_ready(client: httpx.Client, url: str, timeout_s: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        response = client.get(f"{url}/readyz")
        if response.status_code == 200:
            return response.json()
        time.sleep(0.01)
    raise AssertionError(f"not ready after {timeout_s} s: {response.text}")


@contextmanager
def running(app: FastAPI, graceful_s: int = 5) -> Iterator[tuple[str, httpx.Client]]:
    with serve_in_thread(app, graceful_shutdown_s=graceful_s) as url, thread_safe_client(10.0) as client:
        wait_ready(client, url)
        yield url, client


def settings(tmp_path: Path, **changes: Any) -> EdgeSettings:
    return EdgeSettings(tmp_path, hash_salt="test-salt", **changes)


def audit_rows(tmp_path: Path, sql: str = "SELECT COUNT(*) FROM audit") -> Any:
    with sqlite3.connect(tmp_path / "audit.sqlite") as db:
        return db.execute(sql).fetchall()


# ---------------------------------------------------------------- contract


def test_single_and_batch_classify_answer_every_field(tmp_path: Path) -> None:
    with running(create_app(settings(tmp_path), fake_hybrid())) as (url, client):
        single = client.post(f"{url}/v1/classify", json={"text": "where is my order"})
        batch = client.post(f"{url}/v1/classify", json={"texts": ["thanks a lot", "unsure what happened"]})
    assert single.status_code == 200 and batch.status_code == 200
    assert single.headers["x-audit"] == "committed"
    (one,) = single.json()["results"]
    assert set(one) == RESULT_FIELDS
    assert one["tier"] == "edge" and one["reason"] == "confident" and one["model_version"] == "fake-edge-1"
    assert one["label"] == "neutral" and one["confidence"] == pytest.approx(0.9)  # 4 words: 4 % 3 -> neutral
    assert one["cost"] == pytest.approx(0.001) and one["latency_ms"] > 0 and one["fallback"] is False
    edge, cloud = batch.json()["results"]
    assert edge["tier"] == "edge" and cloud["tier"] == "cloud"
    assert cloud["reason"] == "low_confidence" and cloud["model_version"] == "fake-cloud-1"
    assert cloud["cost"] == pytest.approx(0.001 + 0.0136)
    ids = [one["request_id"], edge["request_id"], cloud["request_id"]]
    assert len(set(ids)) == 3 and all(len(i) == 32 for i in ids)
    stored = audit_rows(tmp_path, "SELECT request_id, tier, text, text_hash FROM audit ORDER BY id")
    assert [row[0] for row in stored] == ids
    assert [row[1] for row in stored] == ["edge", "edge", "cloud"]
    assert all(row[2] is None and len(row[3]) == 64 for row in stored)  # no raw text unless configured


def test_raw_text_is_stored_only_when_configured(tmp_path: Path) -> None:
    with running(create_app(settings(tmp_path, store_raw_text=True), fake_hybrid())) as (url, client):
        client.post(f"{url}/v1/classify", json={"text": "keep me"})
    assert audit_rows(tmp_path, "SELECT text FROM audit") == [("keep me",)]


def test_not_ready_until_the_model_is_loaded_and_warmed(tmp_path: Path) -> None:
    release = threading.Event()

    def slow_load(_: EdgeSettings) -> HybridClassifier:
        release.wait(10.0)
        return fake_hybrid()

    app = create_app(settings(tmp_path), load=slow_load)
    with serve_in_thread(app) as url, httpx.Client(timeout=10.0) as client:
        assert client.get(f"{url}/healthz").json() == {"status": "ok"}
        ready = client.get(f"{url}/readyz")
        assert ready.status_code == 503 and error_of(ready)["type"] == "not_ready"
        assert "loading" in error_of(ready)["message"]
        early = client.post(f"{url}/v1/classify", json={"text": "hello"})
        assert early.status_code == 503 and error_of(early)["type"] == "not_ready"
        release.set()
        body = wait_ready(client, url)
        assert body["model_version"] == "fake-edge-1" and body["labels"] == list(LABELS)
        assert app.state.service.holder.current.edge.batch_sizes[:2] == [1, 8]  # warmed before ready
        assert client.post(f"{url}/v1/classify", json={"text": "hello"}).status_code == 200


def test_a_failed_load_leaves_the_service_unready_with_the_reason(tmp_path: Path) -> None:
    def broken(_: EdgeSettings) -> HybridClassifier:
        raise ArtifactError("edge bundle is missing")

    with serve_in_thread(create_app(settings(tmp_path), load=broken)) as url, httpx.Client() as client:
        time.sleep(0.1)
        ready = client.get(f"{url}/readyz")
    assert ready.status_code == 503 and "edge bundle is missing" in error_of(ready)["message"]


def test_text_size_limit_is_413_beyond_the_default(tmp_path: Path) -> None:
    with running(create_app(settings(tmp_path), fake_hybrid())) as (url, client):
        ok = client.post(f"{url}/v1/classify", json={"text": "a" * 10_000})
        too_long = client.post(f"{url}/v1/classify", json={"text": "a" * 10_001})
        too_many = client.post(f"{url}/v1/classify", json={"texts": ["a"] * 65})
    assert ok.status_code == 200
    assert too_long.status_code == 413 and error_of(too_long)["type"] == "payload_too_large"
    assert "10001 characters" in error_of(too_long)["message"]
    assert too_many.status_code == 413 and "65 texts" in error_of(too_many)["message"]


def test_a_413_names_the_field_the_client_sent(tmp_path: Path) -> None:
    with running(create_app(settings(tmp_path, max_chars=20), fake_hybrid())) as (url, client):
        single = client.post(f"{url}/v1/classify", json={"text": "a" * 30})
        listed = client.post(f"{url}/v1/classify", json={"texts": ["ok", "a" * 30]})
    assert single.status_code == listed.status_code == 413
    assert error_of(single)["message"].startswith("text has 30 characters; at most 20 are accepted")
    assert error_of(listed)["message"].startswith("texts[1] has 30 characters; at most 20 are accepted")


UNREADABLE_BODIES = {
    "not UTF-8": ('{"text": "caf\xe9"}'.encode("latin-1"), "body is not valid UTF-8 (byte 0xe9 at position 13"),
    # json.loads on bytes would guess these encodings and accept them
    "UTF-16": ('{"text": "hi"}'.encode("utf-16"), "body is not valid UTF-8 (byte 0xff at position 0"),
    "UTF-16 without BOM": ('{"text": "hi"}'.encode("utf-16-le"), "body is not valid UTF-8 (byte 0x00 at position 1"),
    "UTF-32": ('{"text": "hi"}'.encode("utf-32"), "body is not valid UTF-8 (byte 0xff at position 0"),
    "UTF-32 without BOM": ('{"text": "hi"}'.encode("utf-32-be"), "body is not valid UTF-8 (byte 0x00 at position 0"),
    # 40 KB: under the 64 KiB that feedback bodies may hold (test_edge_body_limits covers larger ones)
    "nested too deeply": (b'{"text": ' + b"[" * 20_000 + b"]" * 20_000 + b"}", "nested too deeply"),
}


@pytest.mark.parametrize("name", list(UNREADABLE_BODIES))
def test_a_body_that_cannot_be_read_says_why_and_what_is_accepted(tmp_path: Path, name: str) -> None:
    body, fragment = UNREADABLE_BODIES[name]
    with running(create_app(settings(tmp_path), fake_hybrid())) as (url, client):
        response = client.post(f"{url}/v1/classify", content=body, headers={"content-type": "application/json"})
        feedback = client.post(f"{url}/v1/feedback", content=body, headers={"content-type": "application/json"})
        after = client.post(f"{url}/v1/classify", json={"text": "still here"})
    assert response.status_code == feedback.status_code == 400
    error = error_of(response)
    assert error["type"] == "invalid_json" and fragment in error["message"]
    assert 'Expected a JSON object {"text": "..."} or {"texts": [...]}' in error["message"]
    assert "encoded as UTF-8" in error["message"] and "routes are" not in error["message"]
    assert "documented fields" in error_of(feedback)["message"] and "routes are" not in error_of(feedback)["message"]
    assert after.status_code == 200


def test_a_utf8_body_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    body = b"\xef\xbb\xbf" + '{"text": "caf\u00e9"}'.encode()
    with running(create_app(settings(tmp_path), fake_hybrid())) as (url, client):
        response = client.post(f"{url}/v1/classify", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text


BAD_BODIES: list[Any] = [
    {"text": "a", "texts": ["b"]},
    {},
    {"text": 5},
    {"texts": "abc"},
    {"texts": [1, "b"]},
    {"texts": []},
    {"text": "a", "extra": 1},
    {"text": "   "},
    {"texts": ["ok", " "]},
    ["a list"],
]


def test_bad_shapes_are_422_in_the_one_error_shape(tmp_path: Path) -> None:
    with running(create_app(settings(tmp_path), fake_hybrid())) as (url, client):
        responses = [client.post(f"{url}/v1/classify", json=body) for body in BAD_BODIES]
        not_json = client.post(f"{url}/v1/classify", content=b"{nope", headers={"content-type": "application/json"})
        metrics = client.get(f"{url}/metrics").text
    for body, response in zip(BAD_BODIES, responses, strict=True):
        assert response.status_code == 422, body
        assert error_of(response)["type"] == "validation_error", body
    assert not_json.status_code == 422 and error_of(not_json)["type"] == "invalid_json"
    assert f'hybridroute_errors_total{{type="validation_error"}} {len(BAD_BODIES)}.0' in metrics
    assert audit_rows(tmp_path) == [(0,)]


# ---------------------------------------------------------------- feedback and metrics


def test_feedback_is_stored_unknown_ids_404_unknown_labels_422(tmp_path: Path) -> None:
    with running(create_app(settings(tmp_path), fake_hybrid())) as (url, client):
        (answer,) = client.post(f"{url}/v1/classify", json={"text": "hello there"}).json()["results"]
        ok = client.post(f"{url}/v1/feedback", json={"request_id": answer["request_id"], "label": "negative"})
        unknown_id = client.post(f"{url}/v1/feedback", json={"request_id": "nope", "label": "negative"})
        unknown_label = client.post(f"{url}/v1/feedback", json={"request_id": answer["request_id"], "label": "meh"})
        missing = client.post(f"{url}/v1/feedback", json={"request_id": answer["request_id"]})
    assert ok.status_code == 200
    assert ok.json() == {"request_id": answer["request_id"], "label": "negative", "status": "recorded"}
    assert unknown_id.status_code == 404 and error_of(unknown_id)["type"] == "not_found"
    assert unknown_label.status_code == 422 and "meh" in error_of(unknown_label)["message"]
    assert missing.status_code == 422
    assert audit_rows(tmp_path, "SELECT request_id, feedback_label FROM audit") == [(answer["request_id"], "negative")]


def test_feedback_for_an_answer_whose_audit_record_is_still_queued_is_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_audit_store(tmp_path / "audit.sqlite")
    write_many = store.write_many

    def slow_write_many(records: Sequence[Any], dropped: int = 0) -> None:
        time.sleep(0.2)  # a slow commit: the answer (X-Audit: queued) goes out long before its record is durable
        write_many(records, dropped)

    monkeypatch.setattr(store, "write_many", slow_write_many)
    try:
        with running(create_app(settings(tmp_path, audit_ack_timeout_s=0), fake_hybrid(), audit=store)) as (
            url,
            client,
        ):
            answered = client.post(f"{url}/v1/classify", json={"text": "hello there"})
            request_id = answered.json()["results"][0]["request_id"]
            feedback = client.post(f"{url}/v1/feedback", json={"request_id": request_id, "label": "negative"})
            unknown = client.post(f"{url}/v1/feedback", json={"request_id": "nope", "label": "negative"})
    finally:
        store.close()
    assert answered.headers["x-audit"] == "queued"
    assert feedback.status_code == 200, feedback.text
    assert unknown.status_code == 404
    assert audit_rows(tmp_path, "SELECT request_id, feedback_label FROM audit") == [(request_id, "negative")]


def metric_value(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not exported")


def test_metrics_are_exported_and_move_with_requests(tmp_path: Path) -> None:
    two_answers_judge = settings(tmp_path, monitor_thresholds=MonitorThresholds(min_window=2))
    with running(create_app(two_answers_judge, fake_hybrid())) as (url, client):
        before = client.get(f"{url}/metrics")
        client.post(f"{url}/v1/classify", json={"texts": ["one two", "unsure three"]})
        after = client.get(f"{url}/metrics").text
    assert before.headers["content-type"].startswith("text/plain")
    for name in (
        "hybridroute_request_latency_seconds_count",
        "hybridroute_edge_latency_seconds_count",
        "hybridroute_confidence_count",
        "hybridroute_batch_size_count",
    ):
        assert metric_value(before.text, name) == 0.0 and metric_value(after, name) >= 1.0, name
    assert metric_value(after, "hybridroute_cloud_latency_seconds_count") == 1.0
    assert 'hybridroute_requests_total{label="positive",reason="low_confidence",tier="cloud"} 1.0' in after
    # each answer's edge cost under edge, the escalated one's cloud charge under cloud (default prices)
    assert metric_value(after, 'hybridroute_cost_usd_total{tier="edge"}') == pytest.approx(0.002)
    assert metric_value(after, 'hybridroute_cost_usd_total{tier="cloud"}') == pytest.approx(0.0136)
    assert metric_value(after, "hybridroute_edge_share") == 0.5
    assert metric_value(after, "hybridroute_audit_dropped_total") == 0.0
    assert 'hybridroute_model_info{model_version="fake-edge-1"} 1.0' in after


# ---------------------------------------------------------------- load and shutdown


@pytest.mark.parametrize("workers", [1, 2])
def test_concurrent_requests_are_batched_answered_and_all_audited(tmp_path: Path, workers: int) -> None:
    app = create_app(settings(tmp_path, max_wait_ms=5.0, workers=workers), fake_hybrid(delay_s=0.005))
    with running(app) as (url, client):

        def post(i: int) -> httpx.Response:
            return client.post(f"{url}/v1/classify", json={"text": f"message number {i}"})

        with concurrent.futures.ThreadPoolExecutor(32) as pool:
            responses = list(pool.map(post, range(64)))
        metrics = client.get(f"{url}/metrics").text
    assert [r.status_code for r in responses] == [200] * 64
    ids = {r.json()["results"][0]["request_id"] for r in responses}
    assert len(ids) == 64
    stats = app.state.service.batcher.stats
    assert stats.texts == 64 and stats.largest > 1 and stats.batches < 64
    assert metric_value(metrics, "hybridroute_batch_size_count") == stats.batches
    assert audit_rows(tmp_path) == [(64,)]  # after shutdown: every answered request is a row
    assert {row[0] for row in audit_rows(tmp_path, "SELECT request_id FROM audit")} == ids


def test_shutdown_finishes_requests_in_flight(tmp_path: Path) -> None:
    app = create_app(settings(tmp_path, max_batch=2, max_wait_ms=1.0), fake_hybrid(delay_s=0.15))
    results: list[int] = []
    with httpx.Client(timeout=10.0) as client:  # outlives the server
        with serve_in_thread(app, graceful_shutdown_s=10) as url:
            wait_ready(client, url)

            def post(i: int) -> None:
                results.append(client.post(f"{url}/v1/classify", json={"text": f"slow {i}"}).status_code)

            threads = [threading.Thread(target=post, args=(i,)) for i in range(6)]
            for t in threads:
                t.start()
            deadline = time.monotonic() + 5
            while app.state.service.batcher.pending < 3 and time.monotonic() < deadline:
                time.sleep(0.005)  # requests are queued behind the running batch
        # Leaving the block told the server to exit; it finished the requests first.
        for t in threads:
            t.join(5)
    assert results == [200] * 6
    assert audit_rows(tmp_path) == [(6,)]


def test_reload_is_404_when_disabled(tmp_path: Path) -> None:
    with running(create_app(settings(tmp_path), fake_hybrid())) as (url, client):
        response = client.post(f"{url}/admin/reload", headers={"Authorization": "Bearer whatever"})
    assert response.status_code == 404 and "disabled" in error_of(response)["message"]


def test_the_watcher_tries_a_bundle_that_changed_while_the_model_loaded(tmp_path: Path) -> None:
    manifest = tmp_path / "edge" / "manifest.json"
    manifest.parent.mkdir()
    manifest.write_text('{"v": 1}')

    def load_during_a_deploy(_settings: EdgeSettings) -> HybridClassifier:
        hybrid = fake_hybrid()  # built from bundle v1 (a fake model carries no manifest to compare)
        manifest.write_text('{"v": 2, "renamed": "into place"}')  # meanwhile a deploy lands v2
        return hybrid

    app_settings = settings(tmp_path, watch=True, watch_interval_s=0.02, monitor_reference=False, warmup_rounds=0)
    with running(create_app(app_settings, load=load_during_a_deploy)) as (url, client):
        deadline = time.monotonic() + 5.0
        # a sample, not the HELP/TYPE lines a labelled counter shows before its first sample
        while "hybridroute_reloads_total{" not in (metrics := client.get(f"{url}/metrics").text):
            assert time.monotonic() < deadline, "the watcher never tried the bundle that landed during startup"
            time.sleep(0.02)
    # v2 was tried (and refused: these fake manifests are not bundles), not taken as the one being served
    assert metric_value(metrics, "hybridroute_reloads_total") == 1.0
