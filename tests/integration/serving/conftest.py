"""Fixtures for the serving tests: a fast fake-session classifier and apps served on loopback."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import pytest

from hybridroute.runtime.classifier import EdgeClassifier
from hybridroute.serving.cloud_app import CloudSettings, create_app
from hybridroute.serving.uvicorn_runner import serve_in_thread

LABELS = ("negative", "neutral", "positive")
EXPLODE_ID = 999  # the fake session fails on this token: the model-failure path
NAN_ID = 998  # the fake session returns NaN logits for this token: the invalid-output path
SPECIAL_WORDS = {"explode": EXPLODE_ID, "nan": NAN_ID}


@pytest.fixture(autouse=True, scope="module")
def _serving_tests_run_on_a_frozen_heap(frozen_startup_heap: None) -> None:
    """Every serving test module runs as a served process does: its startup heap frozen (see tests/conftest.py)."""


@dataclass(frozen=True)
class FakeEncoding:
    ids: list[int]


class FakeTokenizer:
    """One id per whitespace-separated word (its length), plus ids for the special words."""

    def encode_batch(self, inputs: list[str]) -> list[FakeEncoding]:
        return [FakeEncoding([SPECIAL_WORDS.get(w, len(w) + 1) for w in text.split()] or [1]) for text in inputs]


@dataclass(frozen=True)
class FakeInput:
    name: str


class FakeSession:
    """Logits from the number of words: few words lean negative, many lean positive."""

    def get_inputs(self) -> list[FakeInput]:
        return [FakeInput("input_ids"), FakeInput("attention_mask")]

    def run(self, output_names: Sequence[str] | None, input_feed: dict[str, np.ndarray]) -> list[Any]:
        ids = input_feed["input_ids"]
        if (ids == EXPLODE_ID).any():
            raise RuntimeError("fake session exploded")
        words = input_feed["attention_mask"].sum(axis=1).astype(np.float32)
        logits = np.stack([3.0 - words, np.full_like(words, 0.5), words - 3.0], axis=1)
        logits[(ids == NAN_ID).any(axis=1)] = np.nan
        return [logits]


def make_fake_classifier() -> EdgeClassifier:
    return EdgeClassifier(FakeSession(), FakeTokenizer(), LABELS, max_length=32)


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    """One HTTP client per module: building one per request costs more than the request."""
    with httpx.Client(timeout=5.0) as client:
        yield client


@pytest.fixture(scope="module")
def fake_classifier() -> EdgeClassifier:
    return make_fake_classifier()


# Small text limits; a byte limit above what they derive (2240) for the 200 KB bodies of the bad-request tests.
SMALL_LIMITS = CloudSettings(bundle=None, max_batch=4, max_chars=50, max_body_bytes=1_000_000)


@pytest.fixture(scope="module")
def fake_cloud_url(fake_classifier: EdgeClassifier) -> Iterator[str]:
    """The real cloud app around the fake classifier, with small limits, on loopback."""
    with serve_in_thread(create_app(SMALL_LIMITS, fake_classifier)) as url:
        yield url


ResettingServer = Callable[..., AbstractContextManager[str]]


@contextmanager
def _resetting_server(read_first: bool = False) -> Iterator[str]:
    """A raw TCP server that accepts each connection and resets it, at once or after reading the request."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.02)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            if read_first:
                conn.settimeout(1.0)
                conn.recv(65536)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST, not FIN
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        listener.close()


@pytest.fixture
def resetting_server() -> ResettingServer:
    """Starts a raw TCP server that resets every connection (``read_first``: after reading the request)."""
    return _resetting_server
