"""CloudClient records, text by text, whether a request reached the cloud (so its model may have run)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from hybridroute.serving.cloud_client import ClientConfig, CloudClient, transport_reason

LABELS = ["negative", "neutral", "positive"]
FAST = {"timeout_s": 0.2, "retries": 1, "backoff_s": 0.0, "budget_s": 1.0}


def good(request: httpx.Request) -> httpx.Response:
    n = len(json.loads(request.content)["texts"])
    prediction = {
        "label": "negative",
        "confidence": 0.7,
        "probabilities": dict(zip(LABELS, [0.7, 0.2, 0.1], strict=True)),
    }
    return httpx.Response(200, json={"model_version": "v1", "labels": LABELS, "predictions": [prediction] * n})


def client(handler: Callable[[httpx.Request], httpx.Response], **config: Any) -> CloudClient:
    http = httpx.Client(transport=httpx.MockTransport(handler))
    return CloudClient(ClientConfig("http://cloud:8000", **(FAST | config)), http_client=http)


def scripted(*steps: Callable[[httpx.Request], httpx.Response]) -> Callable[[httpx.Request], httpx.Response]:
    """Answer the k-th request with ``steps[k]``, and every later one with the last step."""
    calls = iter(range(1_000_000))

    def handle(request: httpx.Request) -> httpx.Response:
        return steps[min(next(calls), len(steps) - 1)](request)

    return handle


def raises(exc: Exception) -> Callable[[httpx.Request], httpx.Response]:
    def handle(request: httpx.Request) -> httpx.Response:
        raise exc

    return handle


def test_answers_of_chunks_before_the_cloud_died_are_kept_and_charged() -> None:
    result = client(scripted(good, raises(httpx.ConnectError("refused"))), max_texts=2).classify(["a", "b", "c", "d"])
    assert not result.ok and result.error == "connect_error"
    assert [p is not None for p in result.partial] == [True, True, False, False]
    assert result.ran == (True, True, False, False)
    assert [result.model_ran(k) for k in range(4)] == [True, True, False, False]


def test_a_request_that_reached_the_cloud_is_charged_even_if_the_retry_was_refused() -> None:
    died = raises(httpx.RemoteProtocolError("server disconnected without sending a response"))
    result = client(scripted(died, raises(httpx.ConnectError("refused")))).classify(["a"])
    assert (result.error, result.attempts) == ("connect_error", 2)
    assert result.model_ran(0)


def test_a_connect_timeout_sent_nothing() -> None:
    assert transport_reason(httpx.ConnectTimeout("slow")) == "connect_error"
    result = client(raises(httpx.ConnectTimeout("slow"))).classify(["a"])
    assert result.error == "connect_error" and not result.model_ran(0)


@pytest.mark.parametrize("status", [307, 404, 413])
def test_a_3xx_or_4xx_answer_did_not_run_the_model(status: int) -> None:
    result = client(lambda request: httpx.Response(status, text="no")).classify(["a"])
    assert result.error == f"http_{status}" and result.ran == (False,) and not result.model_ran(0)


def test_a_5xx_answer_may_have_run_the_model() -> None:
    result = client(lambda request: httpx.Response(503, text="busy")).classify(["a"])
    assert result.error == "http_503" and result.model_ran(0)


class StuckClient(httpx.Client):
    """Reports trace events as a real connection would, then hangs past the attempt's deadline."""

    def __init__(self, events: list[str]) -> None:
        super().__init__()
        self.events = events
        self.release = threading.Event()

    def post(self, url: Any, **kwargs: Any) -> httpx.Response:  # type: ignore[override]
        for event in self.events:
            kwargs["extensions"]["trace"](event, {})
        self.release.wait(2.0)
        raise httpx.ReadTimeout("gave up")


@pytest.mark.parametrize(
    ("events", "reason", "ran"),
    [
        (["connection.connect_tcp.started"], "connect_error", False),
        (["connection.connect_tcp.started", "http11.send_request_headers.started"], "timeout", True),
        ([], "timeout", True),  # nothing known: charged, as the model may have run
    ],
)
def test_a_deadline_tells_a_connection_never_made_from_a_request_unanswered(
    events: list[str], reason: str, ran: bool
) -> None:
    http = StuckClient(events)
    cloud = CloudClient(ClientConfig("http://cloud:8000", timeout_s=0.05, retries=0, budget_s=1.0), http_client=http)
    try:
        result = cloud.classify(["a"])
    finally:
        http.release.set()
    assert (result.error, result.model_ran(0)) == (reason, ran)
