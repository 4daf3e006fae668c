"""The edge service on the tiny real run: real model answers, hot reload by HTTP and by watched folder."""

from __future__ import annotations

import dataclasses
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import onnx
import pytest

from hybridroute.errors import ArtifactError, InferenceError
from hybridroute.routing.cascade import HybridClassifier
from hybridroute.routing.policies import ConfidencePolicy
from hybridroute.routing.router_config import RouterConfig, save_router
from hybridroute.runs import RunLayout
from hybridroute.runtime.bundle import MODEL_NAME, read_manifest, write_manifest
from hybridroute.runtime.classifier import EdgeClassifier
from hybridroute.serving.edge_app import create_app
from hybridroute.serving.edge_service import open_hybrid_for
from hybridroute.serving.edge_settings import EdgeSettings
from hybridroute.serving.reload import ModelHolder, ServedRouter, reload_edge
from hybridroute.serving.uvicorn_runner import serve_in_thread

TOKEN = "s3cret-admin-token-0123"


@pytest.fixture
def run_copy(tiny_run: Path, tmp_path: Path) -> Path:
    root = tmp_path / "run"
    shutil.copytree(tiny_run / "edge", root / "edge")
    shutil.copytree(tiny_run / "onnx_fp32", root / "onnx_fp32")  # another valid bundle, another version
    return root


def wait_version(client: httpx.Client, url: str, version: str | None = None, timeout_s: float = 15.0) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ready = client.get(f"{url}/readyz")
        if ready.status_code == 200 and (version is None or ready.json()["model_version"] == version):
            return str(ready.json()["model_version"])
        time.sleep(0.02)
    raise AssertionError(f"model version {version} not served within {timeout_s} s")


def wait_metrics(client: httpx.Client, url: str, line: str, timeout_s: float = 5.0) -> str:
    """The /metrics text once it holds ``line``."""
    deadline, metrics = time.monotonic() + timeout_s, ""
    while time.monotonic() < deadline:
        metrics = client.get(f"{url}/metrics").text
        if line in metrics:
            return metrics
        time.sleep(0.02)
    raise AssertionError(f"{line!r} not in /metrics within {timeout_s} s:\n{metrics}")


def served_version(client: httpx.Client, url: str) -> str:
    response = client.post(f"{url}/v1/classify", json={"text": "my card was charged twice"})
    assert response.status_code == 200
    return str(response.json()["results"][0]["model_version"])


def test_real_model_serves_and_reloads_good_bundles_and_refuses_bad_ones(run_copy: Path, tmp_path: Path) -> None:
    old = EdgeClassifier.from_dir(run_copy / "edge").model_version
    new = EdgeClassifier.from_dir(run_copy / "onnx_fp32").model_version
    bad = tmp_path / "bad"
    shutil.copytree(run_copy / "onnx_fp32", bad)
    with (bad / "model.onnx").open("ab") as handle:
        handle.write(b"corrupt")
    auth = {"Authorization": f"Bearer {TOKEN}"}
    app = create_app(EdgeSettings(run_copy, admin_token=TOKEN, threads=1))
    with serve_in_thread(app) as url, httpx.Client(timeout=10.0) as client:
        assert wait_version(client, url) == old
        body = client.post(f"{url}/v1/classify", json={"texts": ["where is my parcel", "great, thanks"]}).json()
        assert [r["label"] in {"negative", "neutral", "positive"} for r in body["results"]] == [True, True]
        assert served_version(client, url) == old

        missing = client.post(f"{url}/admin/reload")
        wrong = client.post(f"{url}/admin/reload", headers={"Authorization": "Bearer not-the-token-at-all"})
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
        assert wrong.status_code == 403
        assert served_version(client, url) == old

        refused = client.post(f"{url}/admin/reload", headers=auth, json={"bundle": str(bad)})
        assert refused.status_code == 422 and refused.json()["error"]["type"] == "invalid_bundle"
        assert "checksum mismatch" in refused.json()["error"]["message"]
        nowhere = client.post(f"{url}/admin/reload", headers=auth, json={"bundle": str(tmp_path / "nowhere")})
        assert nowhere.status_code == 422
        assert served_version(client, url) == old  # the old model keeps serving

        swapped = client.post(f"{url}/admin/reload", headers=auth, json={"bundle": str(run_copy / "onnx_fp32")})
        assert swapped.status_code == 200
        assert swapped.json()["model_version"] == new and swapped.json()["previous_version"] == old
        assert served_version(client, url) == new
        metrics = client.get(f"{url}/metrics").text
    assert 'hybridroute_reloads_total{outcome="ok"} 1.0' in metrics
    assert 'hybridroute_reloads_total{outcome="refused"} 2.0' in metrics
    assert f'hybridroute_model_info{{model_version="{new}"}} 1.0' in metrics


def relabel(source: Path, folder: Path) -> Path:
    """A copy of ``source`` whose manifest lists its labels in reverse order (checksums rewritten, so it verifies)."""
    shutil.copytree(source, folder)
    manifest = read_manifest(folder)
    write_manifest(folder, manifest.with_updates(labels=tuple(reversed(manifest.labels))))
    return folder


def fix_batch_to_one(source: Path, folder: Path) -> Path:
    """A copy of ``source`` exported with a static batch size of 1: it loads and answers one text, never a batch."""
    shutil.copytree(source, folder)
    model = onnx.load(folder / MODEL_NAME)
    for graph_input in model.graph.input:
        graph_input.type.tensor_type.shape.dim[0].dim_value = 1  # replaces the symbolic batch dimension
    onnx.save(model, folder / MODEL_NAME)
    write_manifest(folder, read_manifest(folder))
    return folder


def test_a_bundle_with_other_labels_is_a_conflict_and_the_old_model_keeps_serving(
    run_copy: Path, tmp_path: Path
) -> None:
    old = EdgeClassifier.from_dir(run_copy / "edge")
    other_labels = relabel(run_copy / "onnx_fp32", tmp_path / "other-labels")
    relabelled = EdgeClassifier.from_dir(other_labels)  # verifies: checksums hold, the model answers
    assert relabelled.labels != old.labels and relabelled.model_version != old.model_version
    auth = {"Authorization": f"Bearer {TOKEN}"}
    app = create_app(EdgeSettings(run_copy, admin_token=TOKEN, threads=1))
    with serve_in_thread(app) as url, httpx.Client(timeout=10.0) as client:
        assert wait_version(client, url) == old.model_version
        conflict = client.post(f"{url}/admin/reload", headers=auth, json={"bundle": str(other_labels)})
        assert conflict.status_code == 409 and conflict.json()["error"]["type"] == "conflict", conflict.text
        assert "needs a new router" in conflict.json()["error"]["message"]
        assert served_version(client, url) == old.model_version == wait_version(client, url)
        metrics = client.get(f"{url}/metrics").text
    assert 'hybridroute_reloads_total{outcome="refused"} 1.0' in metrics
    assert f'hybridroute_model_info{{model_version="{old.model_version}"}} 1.0' in metrics


def test_a_bundle_that_loads_but_cannot_predict_is_refused_and_the_old_model_keeps_serving(
    run_copy: Path, tmp_path: Path
) -> None:
    old = EdgeClassifier.from_dir(run_copy / "edge").model_version
    one_text_only = fix_batch_to_one(run_copy / "onnx_fp32", tmp_path / "one-text-only")
    loaded = EdgeClassifier.from_dir(one_text_only)  # verifies: checksums hold, one text gets an answer
    assert loaded.model_version != old and loaded.labels == EdgeClassifier.from_dir(run_copy / "edge").labels
    with pytest.raises(InferenceError, match="Got invalid dimensions"):
        loaded.predict_proba(["two texts", "in one batch"])
    auth = {"Authorization": f"Bearer {TOKEN}"}
    app = create_app(EdgeSettings(run_copy, admin_token=TOKEN, threads=1))
    with serve_in_thread(app) as url, httpx.Client(timeout=10.0) as client:
        assert wait_version(client, url) == old
        broken = client.post(f"{url}/admin/reload", headers=auth, json={"bundle": str(one_text_only)})
        assert broken.status_code == 422 and broken.json()["error"]["type"] == "invalid_bundle", broken.text
        assert "ONNX Runtime failed on a batch" in broken.json()["error"]["message"]  # the warm-up's batch
        assert served_version(client, url) == old == wait_version(client, url)
        texts = ["where is my parcel", "great, thanks", "my card was charged twice"]
        batch = client.post(f"{url}/v1/classify", json={"texts": texts})
        assert batch.status_code == 200 and {r["model_version"] for r in batch.json()["results"]} == {old}
        metrics = client.get(f"{url}/metrics").text
    assert 'hybridroute_reloads_total{outcome="refused"} 1.0' in metrics
    assert f'hybridroute_model_info{{model_version="{old}"}} 1.0' in metrics


def deploy(run: Path) -> None:
    """Put the run's other bundle into its edge folder, the manifest last (it triggers the watcher)."""
    for name in ("model.onnx", "tokenizer.json", "manifest.json"):
        shutil.copy(run / "onnx_fp32" / name, run / "edge" / name)


def test_watched_folder_reloads_when_the_manifest_changes(run_copy: Path) -> None:
    new = EdgeClassifier.from_dir(run_copy / "onnx_fp32").model_version
    app = create_app(EdgeSettings(run_copy, watch=True, watch_interval_s=0.05, threads=1))
    with serve_in_thread(app) as url, httpx.Client(timeout=10.0) as client:
        old = wait_version(client, url)
        deploy(run_copy)
        assert wait_version(client, url, new) == new != old
        assert served_version(client, url) == new


@pytest.mark.parametrize("when", ["while the service loads", "after the caller loaded, before the app starts"])
def test_watched_folder_reloads_a_bundle_deployed_during_startup(run_copy: Path, when: str) -> None:
    old = EdgeClassifier.from_dir(run_copy / "edge").model_version
    new = EdgeClassifier.from_dir(run_copy / "onnx_fp32").model_version
    app_settings = EdgeSettings(run_copy, watch=True, watch_interval_s=0.05, threads=1)

    def load_then_deploy(settings: EdgeSettings) -> HybridClassifier:
        hybrid = open_hybrid_for(settings)
        deploy(run_copy)
        return hybrid

    if when == "while the service loads":
        app = create_app(app_settings, load=load_then_deploy)
    else:  # the CLI loads first, to fail fast
        app = create_app(app_settings, load_then_deploy(app_settings))
    with serve_in_thread(app) as url, httpx.Client(timeout=10.0) as client:
        assert wait_version(client, url, new) == new != old
        assert served_version(client, url) == new


def test_watched_folder_retries_a_change_that_met_another_reload(run_copy: Path) -> None:
    new = EdgeClassifier.from_dir(run_copy / "onnx_fp32").model_version
    app = create_app(EdgeSettings(run_copy, watch=True, watch_interval_s=0.05, threads=1))
    with serve_in_thread(app) as url, httpx.Client(timeout=10.0) as client:
        old = wait_version(client, url)
        holder = app.state.service.holder
        assert holder.try_begin_reload()  # an admin reload is running
        try:
            deploy(run_copy)
            time.sleep(0.3)  # several checks meet the busy slot
            assert served_version(client, url) == old
        finally:
            holder.end_reload()
        assert wait_version(client, url, new) == new  # retried once the slot was free
        # /readyz shows the new model as soon as it is swapped in; the watcher counts the reload a moment later
        wait_metrics(client, url, 'hybridroute_reloads_total{outcome="ok"} 1.0')  # raises when it never shows


class WarmsSlowly:
    """The loaded edge model, holding its warm-up until released (an admin reload lands meanwhile)."""

    def __init__(self, edge: EdgeClassifier, release: threading.Event) -> None:
        self._edge, self._release = edge, release

    def __getattr__(self, name: str) -> Any:
        return getattr(self._edge, name)

    def predict_proba(self, texts: list[str]) -> Any:
        self._release.wait(10.0)
        return self._edge.predict_proba(texts)


def test_a_reload_during_the_warm_up_is_the_version_published(run_copy: Path) -> None:
    new = EdgeClassifier.from_dir(run_copy / "onnx_fp32").model_version
    release = threading.Event()

    def load(settings: EdgeSettings) -> HybridClassifier:
        hybrid = open_hybrid_for(settings)
        return dataclasses.replace(hybrid, edge=WarmsSlowly(hybrid.edge, release))  # type: ignore[arg-type]

    app = create_app(EdgeSettings(run_copy, admin_token=TOKEN, threads=1), load=load)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with serve_in_thread(app) as url, httpx.Client(timeout=10.0) as client:
        deadline = time.monotonic() + 15.0
        while app.state.service.state != "warming":
            assert time.monotonic() < deadline, app.state.service.state
            time.sleep(0.01)
        swapped = client.post(f"{url}/admin/reload", headers=auth, json={"bundle": str(run_copy / "onnx_fp32")})
        assert swapped.status_code == 200, swapped.text
        release.set()  # the warm-up of the replaced model finishes after the reload
        assert wait_version(client, url) == new
        metrics = client.get(f"{url}/metrics").text
    assert f'hybridroute_model_info{{model_version="{new}"}} 1.0' in metrics


def with_max_length(source: Path, folder: Path, max_length: int) -> Path:
    """A copy of ``source`` whose manifest claims another ``max_length`` (checksums rewritten, so it verifies)."""
    shutil.copytree(source, folder)
    write_manifest(folder, read_manifest(folder).with_updates(max_length=max_length))
    return folder


def test_a_bundle_longer_than_the_model_positions_is_refused_and_the_old_model_serves(
    run_copy: Path, tmp_path: Path
) -> None:
    too_long = with_max_length(run_copy / "onnx_fp32", tmp_path / "too_long", 1024)  # the tiny BERT has 128
    auth = {"Authorization": f"Bearer {TOKEN}"}
    app = create_app(EdgeSettings(run_copy, admin_token=TOKEN, threads=1))
    with serve_in_thread(app) as url, httpx.Client(timeout=10.0) as client:
        old = wait_version(client, url)
        refused = client.post(f"{url}/admin/reload", headers=auth, json={"bundle": str(too_long)})
        long_text = client.post(f"{url}/v1/classify", json={"text": "word " * 2000})
        metrics = client.get(f"{url}/metrics").text
    assert refused.status_code == 422 and refused.json()["error"]["type"] == "invalid_bundle"
    assert "max_length=1024" in refused.json()["error"]["message"]
    assert long_text.status_code == 200 and long_text.json()["results"][0]["model_version"] == old
    assert 'hybridroute_reloads_total{outcome="refused"} 1.0' in metrics


def test_a_run_whose_bundle_is_longer_than_the_model_positions_does_not_load(run_copy: Path) -> None:
    shutil.rmtree(run_copy / "edge")
    with_max_length(run_copy / "onnx_fp32", run_copy / "edge", 1024)
    with pytest.raises(ArtifactError, match="max_length=1024"):
        open_hybrid_for(EdgeSettings(run_copy, threads=1))


# ---------------------------------------------------------------- the bundle's kind, the router's calibration


def test_reload_refuses_a_bundle_whose_manifest_is_of_kind_cloud(run_copy: Path, tmp_path: Path) -> None:
    cloud = tmp_path / "cloud"
    shutil.copytree(run_copy / "onnx_fp32", cloud)  # a valid model with the served labels, but the cloud tier's
    write_manifest(cloud, read_manifest(cloud).with_updates(kind="cloud"))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    app = create_app(EdgeSettings(run_copy, admin_token=TOKEN, threads=1))
    with serve_in_thread(app) as url, httpx.Client(timeout=10.0) as client:
        old = wait_version(client, url)
        refused = client.post(f"{url}/admin/reload", json={"bundle": str(cloud)}, headers=auth)
        assert refused.status_code == 422, refused.text
        error = refused.json()["error"]
        assert error["type"] == "invalid_bundle"
        assert "kind 'cloud'" in error["message"] and "only bundles of kind 'edge' or 'onnx_fp32'" in error["message"]
        assert served_version(client, url) == old


def test_reload_reports_a_router_calibrated_for_another_model(run_copy: Path, caplog: pytest.LogCaptureFixture) -> None:
    edge = EdgeClassifier.from_dir(run_copy / "edge", threads=1)
    new_bundle = run_copy / "onnx_fp32"
    new = EdgeClassifier.from_dir(new_bundle, threads=1).model_version
    calibrated = RouterConfig(
        "confidence", threshold=0.5, temperature=edge.temperature, edge_model_version=edge.model_version
    )
    router = ServedRouter(calibrated, RunLayout(run_copy))
    holder = ModelHolder(HybridClassifier(edge, ConfidencePolicy(0.5)))

    same = reload_edge(holder, run_copy / "edge", threads=1, router=router)
    assert same.warnings == ()  # the model the router was calibrated for: nothing to say
    with caplog.at_level("WARNING", logger="hybridroute.serving.reload"):
        swapped = reload_edge(holder, new_bundle, threads=1, router=router)
    assert swapped.model_version == new != edge.model_version
    (warning,) = swapped.warnings
    assert f"calibrated for edge model {edge.model_version}" in warning
    assert f"{new_bundle} is model {new}" in warning and "hybridroute calibrate" in warning
    assert warning in caplog.text


def test_a_reload_over_http_answers_with_the_stale_router_warning(run_copy: Path) -> None:
    edge = EdgeClassifier.from_dir(run_copy / "edge", threads=1)
    save_router(
        RunLayout(run_copy).router,
        RouterConfig("confidence", threshold=0.5, temperature=edge.temperature, edge_model_version=edge.model_version),
    )
    auth = {"Authorization": f"Bearer {TOKEN}"}
    app = create_app(EdgeSettings(run_copy, admin_token=TOKEN, threads=1, monitor_reference=False))
    with serve_in_thread(app) as url, httpx.Client(timeout=10.0) as client:
        wait_version(client, url, edge.model_version)
        same = client.post(f"{url}/admin/reload", headers=auth)
        other = client.post(f"{url}/admin/reload", headers=auth, json={"bundle": str(run_copy / "onnx_fp32")})
    assert same.status_code == 200 and same.json()["warnings"] == []  # the model it was calibrated for
    assert other.status_code == 200, other.text
    (warning,) = other.json()["warnings"]
    assert f"calibrated for edge model {edge.model_version}" in warning and "hybridroute calibrate" in warning
