"""End to end: a real cloud service on loopback records every body it receives; no raw PII may be among them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hybridroute.routing.cascade import HybridClassifier

PII = {
    "EMAIL": "jane.doe+bank@mail.example.co.uk",
    "PHONE": "+44 20 7946 0958",
    "CARD": "4111 1111 1111 1111",
    "IBAN": "GB82 WEST 1234 5698 7654 32",
    "SSN": "123-45-6789",
    "ACCOUNT": "12345678",
    "ORDER": "ORD-2024-558812",
    "URL": "https://my-bank-login.net/reset/42",
    "HANDLE": "@jane_doe99",
    "PERSON": "Jane Doe",
}
TEXTS = [
    f"my name is {PII['PERSON']}, mail {PII['EMAIL']} or call {PII['PHONE']} about order {PII['ORDER']}",
    f"card {PII['CARD']} was charged twice, refund to IBAN {PII['IBAN']} please, SSN {PII['SSN']}",
    f"account {PII['ACCOUNT']} locked after I clicked {PII['URL']}, my twitter is {PII['HANDLE']}",
    "terrible service, where is my refund?",  # nothing to redact: goes as typed
]


class RecordingApp:
    """ASGI middleware that keeps the raw body of every HTTP request before the app sees it."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.bodies: list[bytes] = []

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []

        async def recording_receive() -> dict:
            message = await receive()
            if message["type"] == "http.request":
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    self.bodies.append(b"".join(chunks))
            return message

        await self.app(scope, recording_receive, send)


@pytest.fixture()
def recorded_cloud(tiny_run: Path) -> Iterator[tuple[str, RecordingApp, Any]]:
    from hybridroute.runtime.classifier import EdgeClassifier
    from hybridroute.serving.cloud_app import CloudSettings, create_app
    from hybridroute.serving.uvicorn_runner import serve_in_thread

    edge = EdgeClassifier.from_dir(tiny_run / "edge", threads=1)
    recorder = RecordingApp(create_app(CloudSettings(bundle=None, threads=1), classifier=edge))
    with serve_in_thread(recorder) as url:
        yield url, recorder, edge


def test_no_raw_personal_data_reaches_the_cloud(recorded_cloud: tuple[str, RecordingApp, Any]) -> None:
    from hybridroute.redaction import RedactionConfig, Redactor
    from hybridroute.routing.policies import AlwaysCloud
    from hybridroute.serving.cloud_client import ClientConfig, CloudClient

    url, recorder, edge = recorded_cloud
    with CloudClient(ClientConfig(url, timeout_s=10.0, budget_s=20.0), expected_labels=edge.labels) as cloud:
        hybrid = HybridClassifier(edge, AlwaysCloud(), cloud, redactor=Redactor(RedactionConfig()))
        answers = hybrid.classify(TEXTS)

    assert all(a.cloud_called and not a.fallback for a in answers), [a.reason for a in answers]
    posted = [b.decode("utf-8") for b in recorder.bodies if b]
    assert posted, "the cloud received no request"
    sent = [t for body in posted for t in json.loads(body)["texts"]]
    everything = "\n".join(posted + sent)  # JSON-escaped and decoded forms both
    leaks = {entity: value for entity, value in PII.items() if value in everything}
    assert not leaks, f"raw personal data reached the cloud: {leaks}"
    for entity in PII:
        assert f"<{entity}>" in everything, f"placeholder <{entity}> missing from {sent}"
    assert "terrible service, where is my refund?" in sent
    assert answers[0].redactions == {"PERSON": 1, "EMAIL": 1, "PHONE": 1, "ORDER": 1}
    assert answers[3].redactions == {}


def test_explicit_opt_out_sends_texts_as_typed(recorded_cloud: tuple[str, RecordingApp, Any]) -> None:
    from hybridroute.routing.policies import AlwaysCloud
    from hybridroute.serving.cloud_client import ClientConfig, CloudClient

    url, recorder, edge = recorded_cloud
    with CloudClient(ClientConfig(url, timeout_s=10.0, budget_s=20.0), expected_labels=edge.labels) as cloud:
        HybridClassifier(edge, AlwaysCloud(), cloud, redactor=None).classify(TEXTS[:1])
    assert PII["EMAIL"] in b"".join(recorder.bodies).decode("utf-8")
