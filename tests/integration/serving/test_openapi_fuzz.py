"""schemathesis against both services' published OpenAPI documents, over real HTTP on loopback.

Every operation of the edge and the cloud app gets generated requests, valid and invalid, and every
built-in check runs on every answer: no 5xx, each status, content type, header and body as the document
says, valid data accepted, invalid data rejected. The one change to schemathesis' defaults is that 413
also counts as rejecting invalid data: the documents publish the size limits (``maxItems``,
``maxLength``) and the services answer a request over them with 413, which the documents list.
After the run each service must still answer ``/healthz`` and a real classify request.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from hybridroute.routing.cascade import HybridClassifier
from hybridroute.routing.policies import ConfidencePolicy
from hybridroute.runtime.classifier import EdgeClassifier
from hybridroute.serving.cloud_app import CloudSettings
from hybridroute.serving.cloud_app import create_app as create_cloud_app
from hybridroute.serving.cloud_client import InProcessCloud
from hybridroute.serving.edge_app import create_app as create_edge_app
from hybridroute.serving.edge_settings import EdgeSettings
from hybridroute.serving.schemas import VISIBLE
from hybridroute.serving.uvicorn_runner import serve_in_thread

pytestmark = pytest.mark.timeout(120)

EXAMPLES = 20  # per operation and phase; each test stays well under 30 s
NEGATIVE_REJECTED = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx"]
CONFIG = {"checks": {"negative_data_rejection": {"expected-statuses": NEGATIVE_REJECTED}}, "cache": {"enabled": False}}
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)
ADMIN_TOKEN = "a-test-admin-token-of-some-length"
LABELS = ("negative", "neutral", "positive")  # the fake classifier's (see conftest.py)


def wait_ready(client: httpx.Client, url: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while client.get(f"{url}/readyz").status_code != 200:
        assert time.monotonic() < deadline, "the edge service did not become ready"
        time.sleep(0.01)


def load_schema(url: str) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{url}/openapi.json", config=schemathesis.Config.from_dict(CONFIG))


@pytest.fixture(scope="module")
def edge_url(tmp_path_factory: pytest.TempPathFactory, fake_classifier: EdgeClassifier) -> Iterator[str]:
    run = tmp_path_factory.mktemp("edge-fuzz")
    limits = EdgeSettings(run, hash_salt="fuzz", max_texts=8, max_chars=300, admin_token=ADMIN_TOKEN)
    hybrid = HybridClassifier(fake_classifier, ConfidencePolicy(0.6), InProcessCloud(fake_classifier))
    with serve_in_thread(create_edge_app(limits, hybrid)) as url, httpx.Client(timeout=10.0) as client:
        wait_ready(client, url)
        yield url


@pytest.fixture(scope="module")
def cloud_url(fake_classifier: EdgeClassifier) -> Iterator[str]:
    with serve_in_thread(create_cloud_app(CloudSettings(None, max_batch=8, max_chars=300), fake_classifier)) as url:
        yield url


@pytest.fixture(scope="module")
def edge_schema(edge_url: str) -> schemathesis.BaseSchema:
    return load_schema(edge_url)


@pytest.fixture(scope="module")
def cloud_schema(cloud_url: str) -> schemathesis.BaseSchema:
    return load_schema(cloud_url)


def test_the_documents_publish_limits_labels_and_errors(edge_url: str, cloud_url: str) -> None:
    edge = httpx.get(f"{edge_url}/openapi.json").json()
    request = edge["components"]["schemas"]["ClassifyRequest"]
    assert request["properties"]["text"] == {"type": "string", "pattern": VISIBLE, "title": "Text", "maxLength": 300}
    assert request["properties"]["texts"]["maxItems"] == 8 and request["oneOf"]
    assert edge["components"]["schemas"]["FeedbackRequest"]["properties"]["label"]["enum"] == list(LABELS)
    assert set(edge["paths"]["/v1/feedback"]["post"]["responses"]) >= {"200", "404", "422"}
    assert set(edge["paths"]["/admin/reload"]["post"]["responses"]) >= {"401", "403", "404", "409", "422"}
    assert edge["paths"]["/admin/reload"]["post"]["security"] == [{"adminToken": []}]
    assert "text/plain" in edge["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    cloud = httpx.get(f"{cloud_url}/openapi.json").json()
    texts = cloud["components"]["schemas"]["CloudClassifyRequest"]["properties"]["texts"]
    assert texts["maxItems"] == 8 and texts["items"]["maxLength"] == 300


def fuzz_every_operation(schema: schemathesis.BaseSchema, base_url: str) -> list[str]:
    """Run generated valid and invalid requests through every operation and every check; the labels run."""
    labels = []
    for result in schema.get_all_operations():
        operation = result.ok()
        cases = st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE)
        )

        @FUZZ_SETTINGS
        @given(case=cases)
        def run(case: schemathesis.Case) -> None:
            case.call_and_validate(base_url=base_url, timeout=10)

        run()
        labels.append(operation.label)
    return labels


def test_the_edge_service_follows_its_document(edge_schema: schemathesis.BaseSchema, edge_url: str) -> None:
    assert len(fuzz_every_operation(edge_schema, edge_url)) == 7


def test_the_cloud_service_follows_its_document(cloud_schema: schemathesis.BaseSchema, cloud_url: str) -> None:
    assert fuzz_every_operation(cloud_schema, cloud_url) == ["POST /v1/classify", "GET /healthz", "GET /readyz"]


def schemathesis_cli(url: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """The schemathesis command line, every check, with the coverage phase (boundaries, wrong methods, ...)."""
    config = tmp_path / "schemathesis.toml"
    statuses = ", ".join(f'"{s}"' for s in NEGATIVE_REJECTED)
    toml = f"[checks.negative_data_rejection]\nexpected-statuses = [{statuses}]\n\n[cache]\nenabled = false\n"
    config.write_text(toml, encoding="utf-8")
    command = [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run", f"{url}/openapi.json"]
    options = ["--checks", "all", "--phases", "coverage", "--workers", "1"]  # fuzzing runs in process above
    return subprocess.run(
        [*command, *options, "--seed", "1", "--request-timeout", "10"],
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
        cwd=tmp_path,  # no schemathesis.toml of the repository's is picked up
    )


@pytest.mark.parametrize("service", ["edge", "cloud"])
def test_the_schemathesis_command_line_finds_no_issue(
    service: str, edge_url: str, cloud_url: str, tmp_path: Path
) -> None:
    result = schemathesis_cli(edge_url if service == "edge" else cloud_url, tmp_path)
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
    assert "passed" in result.stdout and "Coverage" in result.stdout


def test_both_services_keep_serving_after_the_fuzzing(edge_url: str, cloud_url: str, tmp_path: Path) -> None:
    with httpx.Client(timeout=10.0) as client:
        assert client.get(f"{edge_url}/healthz").status_code == 200
        assert client.get(f"{cloud_url}/healthz").status_code == 200
        edge = client.post(f"{edge_url}/v1/classify", json={"text": "still here?"})
        cloud = client.post(f"{cloud_url}/v1/classify", json={"texts": ["still here?"]})
        metrics = client.get(f"{edge_url}/metrics").text
    assert edge.status_code == 200 and edge.json()["results"][0]["label"] in LABELS
    assert cloud.status_code == 200 and cloud.json()["predictions"][0]["label"] in LABELS
    assert 'hybridroute_errors_total{type="internal_error"}' not in metrics
