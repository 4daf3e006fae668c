"""The cloud app over real HTTP on loopback (uvicorn on a background thread)."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from hybridroute.errors import ArtifactError, HybridError
from hybridroute.runtime.bundle import read_manifest, write_manifest
from hybridroute.runtime.classifier import EdgeClassifier
from hybridroute.serving.cloud_app import (
    CloudSettings,
    ModelNotReady,
    create_app,
    get_classifier,
    get_settings,
    load_classifier,
)
from hybridroute.serving.uvicorn_runner import serve_in_thread
from support.raw_http import error_of

SMALL_LIMITS = CloudSettings(bundle=None, max_batch=4, max_chars=50)  # the fake_cloud_url fixture's text limits
GOOD = {"texts": ["fine", "where is my order please"]}


def _post(http: httpx.Client, url: str, **kwargs: Any) -> httpx.Response:
    return http.post(f"{url}/v1/classify", **kwargs)


# ---------------------------------------------------------------- the real model


def as_cloud_bundle(edge_bundle: Path, folder: Path) -> Path:
    """A copy of an edge bundle that says it is a cloud bundle (its manifest's kind; the checksums still hold)."""
    shutil.copytree(edge_bundle, folder)
    write_manifest(folder, read_manifest(folder).with_updates(kind="cloud"))
    return folder


def test_classify_over_http_matches_the_model_in_process(http: httpx.Client, tiny_run: Path, tmp_path: Path) -> None:
    bundle = as_cloud_bundle(tiny_run / "edge", tmp_path / "cloud")
    local = EdgeClassifier.from_dir(bundle, threads=1)
    texts = ["my card was charged twice", "thanks, great service!", "when does the shop open?"]
    app = create_app(CloudSettings(bundle=bundle, threads=1))  # the lifespan loads the bundle
    with serve_in_thread(app) as url:
        assert http.get(f"{url}/readyz").json()["model_version"] == local.model_version
        response = _post(http, url, json={"texts": texts})
    assert response.status_code == 200
    body = response.json()
    assert body["labels"] == list(local.labels) == ["negative", "neutral", "positive"]
    assert body["model_version"] == local.model_version
    for remote, expected in zip(body["predictions"], local.predict(texts), strict=True):
        assert remote["label"] == expected.label
        assert remote["confidence"] == pytest.approx(expected.confidence, abs=1e-6)
        assert remote["probabilities"].keys() == expected.probabilities.keys()
        for label, p in expected.probabilities.items():
            assert remote["probabilities"][label] == pytest.approx(p, abs=1e-6)


# ---------------------------------------------------------------- health and readiness


def test_health_and_readiness(http: httpx.Client, fake_cloud_url: str) -> None:
    assert http.get(f"{fake_cloud_url}/healthz").json() == {"status": "ok"}
    ready = http.get(f"{fake_cloud_url}/readyz")
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ready",
        "model_version": "unversioned",
        "labels": ["negative", "neutral", "positive"],
    }


def test_not_ready_before_the_model_is_loaded(http: httpx.Client, tmp_path: Path) -> None:
    app = create_app(CloudSettings(bundle=tmp_path / "cloud"))
    with serve_in_thread(app, lifespan="off") as url:  # no lifespan: the model is never loaded
        assert http.get(f"{url}/healthz").status_code == 200
        ready = http.get(f"{url}/readyz")
        assert ready.status_code == 503
        assert error_of(ready)["type"] == "not_ready"
        classify = _post(http, url, json=GOOD)
        assert classify.status_code == 503
        assert "retry when GET /readyz answers 200" in error_of(classify)["message"]


def test_readiness_follows_the_classifier_dependency(http: httpx.Client, fake_classifier: EdgeClassifier) -> None:
    def not_ready() -> EdgeClassifier:
        raise ModelNotReady("swapping models")

    app = create_app(SMALL_LIMITS, fake_classifier)
    with serve_in_thread(app) as url:
        assert http.get(f"{url}/readyz").status_code == 200
        app.dependency_overrides[get_classifier] = not_ready
        assert http.get(f"{url}/readyz").status_code == 503
        assert error_of(_post(http, url, json=GOOD)) == {"type": "not_ready", "message": "swapping models"}
        app.dependency_overrides.clear()
        assert _post(http, url, json=GOOD).status_code == 200


def test_an_edge_bundle_is_not_served_as_the_cloud_tier(tiny_run: Path) -> None:
    with pytest.raises(ArtifactError) as refused:
        load_classifier(CloudSettings(bundle=tiny_run / "edge", threads=1))
    message = str(refused.value)
    assert "holds a bundle of kind 'edge'" in message and "serves only bundles of kind 'cloud'" in message
    assert "\n" not in message


def test_a_bundle_that_does_not_load_stops_startup(tmp_path: Path) -> None:
    app = create_app(CloudSettings(bundle=tmp_path / "missing"))
    with pytest.raises(HybridError, match="stopped during startup"), serve_in_thread(app):
        pass


# ---------------------------------------------------------------- bad requests


BAD_REQUESTS = [
    pytest.param({"json": {}}, 422, "validation_error", ["texts: Field required", "received {}"], id="missing"),
    pytest.param(
        {"json": {"texts": "hello"}}, 422, "validation_error", ["valid list", "received 'hello'"], id="not-a-list"
    ),
    pytest.param(
        {"json": {"texts": ["ok", 7]}}, 422, "validation_error", ["texts[1]", "valid string"], id="wrong-item-type"
    ),
    pytest.param({"json": {"texts": []}}, 422, "validation_error", ["at least 1 item", "received []"], id="empty-list"),
    pytest.param(
        {"json": {"texts": ["ok", "   "]}}, 422, "validation_error", ["positions [1] are blank"], id="blank-text"
    ),
    pytest.param(
        {"json": {"texts": ["ok"], "priority": "high"}},
        422,
        "validation_error",
        ["priority: Extra inputs are not permitted", "received 'high'"],
        id="unknown-field",
    ),
    pytest.param({"json": ["ok"]}, 422, "validation_error", ["valid dictionary"], id="not-an-object"),
    pytest.param(
        {"content": b"{texts: nope", "headers": {"content-type": "application/json"}},
        422,
        "invalid_json",
        ["body is not valid JSON"],
        id="broken-json",
    ),
    pytest.param(
        {"content": b"hello", "headers": {"content-type": "text/plain"}},
        422,
        "invalid_json",
        ["body is not JSON", "Content-Type: application/json"],
        id="not-json",
    ),
    pytest.param(
        {"content": '{"texts": ["caf\xe9"]}'.encode("latin-1"), "headers": {"content-type": "application/json"}},
        400,
        "invalid_json",
        ["body is not valid UTF-8 (byte 0xe9 at position 15", "encoded as UTF-8"],
        id="not-utf8",
    ),
    pytest.param(
        {
            "content": b'{"texts": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
            "headers": {"content-type": "application/json"},
        },
        400,
        "invalid_json",
        ["nested too deeply", "encoded as UTF-8"],
        id="nested-too-deeply",
    ),
    pytest.param(
        {"json": {"texts": ["ok", "x" * 51]}},
        413,
        "payload_too_large",
        ["texts[1] has 51 characters; at most 50"],
        id="text-too-long",
    ),
    pytest.param(
        {"json": {"texts": ["ok"] * 5}},
        413,
        "payload_too_large",
        ["batch has 5 texts; at most 4"],
        id="batch-too-large",
    ),
    pytest.param({"json": {"texts": ["explode"]}}, 500, "inference_error", ["fake session exploded"], id="model-fails"),
    pytest.param(
        {"json": {"texts": ["nan"]}},
        500,
        "inference_error",
        ["invalid prediction", "predictions[0].confidence"],
        id="model-returns-nan",
    ),
]


@pytest.mark.parametrize(("request_kwargs", "status", "kind", "fragments"), BAD_REQUESTS)
def test_bad_requests_get_clear_errors_and_the_service_keeps_serving(
    http: httpx.Client,
    fake_cloud_url: str,
    request_kwargs: dict[str, Any],
    status: int,
    kind: str,
    fragments: list[str],
) -> None:
    response = _post(http, fake_cloud_url, **request_kwargs)
    assert response.status_code == status
    error = error_of(response)
    assert error["type"] == kind
    for fragment in fragments:
        assert fragment in error["message"]
    if status in (400, 422):  # says what would be accepted, not which routes exist
        assert 'Expected a JSON object {"texts": [...]} holding 1 to 4 non-blank strings' in error["message"]
        assert "routes are" not in error["message"]
    assert _post(http, fake_cloud_url, json=GOOD).status_code == 200


def test_unknown_routes_and_methods_use_the_error_shape(http: httpx.Client, fake_cloud_url: str) -> None:
    missing = http.get(f"{fake_cloud_url}/v2/classify")
    assert missing.status_code == 404
    assert "routes are POST /v1/classify" in error_of(missing)["message"]
    assert error_of(http.get(f"{fake_cloud_url}/v1/classify"))["type"] == "http_405"


# ---------------------------------------------------------------- concurrency


def test_inference_runs_off_the_event_loop(http: httpx.Client, fake_classifier: EdgeClassifier) -> None:
    class SlowClassifier:
        labels = fake_classifier.labels
        model_version = "slow"

        def predict(self, texts: list[str]) -> Any:
            time.sleep(0.5)
            return fake_classifier.predict(texts)

    app = create_app(SMALL_LIMITS, SlowClassifier())  # type: ignore[arg-type]
    with serve_in_thread(app) as url:
        slow = threading.Thread(target=_post, args=(http, url), kwargs={"json": GOOD})
        slow.start()
        time.sleep(0.05)
        started = time.perf_counter()
        assert http.get(f"{url}/healthz").status_code == 200
        assert time.perf_counter() - started < 0.3  # answered while the slow batch is still running
        slow.join()


def test_a_model_bug_is_a_clean_500(http: httpx.Client, fake_classifier: EdgeClassifier) -> None:
    class BuggyClassifier:
        labels = fake_classifier.labels
        model_version = "buggy"

        def predict(self, texts: list[str]) -> Any:
            raise KeyError("bug")

    with serve_in_thread(create_app(SMALL_LIMITS, BuggyClassifier())) as url:  # type: ignore[arg-type]
        response = _post(http, url, json=GOOD)
        assert response.status_code == 500
        assert error_of(response) == {
            "type": "inference_error",
            "message": "the model failed unexpectedly (KeyError: 'bug')",
        }
        assert http.get(f"{url}/healthz").status_code == 200  # same keep-alive connection, still open


def test_any_other_bug_is_a_500_in_our_shape(fake_classifier: EdgeClassifier) -> None:
    def broken_settings() -> CloudSettings:
        raise KeyError("bug")

    app = create_app(SMALL_LIMITS, fake_classifier)
    app.dependency_overrides[get_settings] = broken_settings
    with serve_in_thread(app) as url:
        response = httpx.post(f"{url}/v1/classify", json=GOOD)  # its own connection: the server closes it
        assert response.status_code == 500
        assert error_of(response)["message"] == "unexpected KeyError; see the server log"
        assert httpx.get(f"{url}/healthz").status_code == 200


def test_the_contract_is_published_as_openapi(http: httpx.Client, fake_cloud_url: str) -> None:
    spec = http.get(f"{fake_cloud_url}/openapi.json").json()
    classify = spec["paths"]["/v1/classify"]["post"]
    assert {"200", "413", "422", "503"} <= set(classify["responses"])
    assert "CloudClassifyRequest" in json.dumps(classify["requestBody"])
