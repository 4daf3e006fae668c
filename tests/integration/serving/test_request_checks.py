"""Request checks of both services over real HTTP: repeated keys, wrong types, texts with nothing visible.

* A key given twice in one JSON object used to be resolved last-wins, so ``{"texts": ["a"], "texts": ["b", "c"]}``
  was answered for two texts and the first batch dropped without a word: now 422 ``invalid_json``.
* A wrong type of an optional field used to be reported once per member of its union
  (``text.str: ...; text.none: Input should be None``): now once, under the field's own name.
* A text of only invisible characters (U+200B ...) is blank, as ``classify`` and the data loaders say
  (:func:`hybridroute.data.is_blank`): it used to be accepted and routed to the cloud.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from hybridroute.routing.cascade import HybridClassifier
from hybridroute.routing.policies import ConfidencePolicy
from hybridroute.runtime.classifier import EdgeClassifier
from hybridroute.serving.cloud_app import CloudSettings
from hybridroute.serving.cloud_app import create_app as create_cloud_app
from hybridroute.serving.cloud_client import InProcessCloud
from hybridroute.serving.edge_app import create_app as create_edge_app
from hybridroute.serving.edge_settings import EdgeSettings
from hybridroute.serving.schemas import VISIBLE

JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def edge_url(tmp_path_factory: pytest.TempPathFactory, fake_classifier: EdgeClassifier) -> Iterator[str]:
    from hybridroute.serving.uvicorn_runner import serve_in_thread

    settings = EdgeSettings(tmp_path_factory.mktemp("checks"), hash_salt="checks", max_texts=8, max_chars=300)
    hybrid = HybridClassifier(fake_classifier, ConfidencePolicy(0.6), InProcessCloud(fake_classifier))
    with serve_in_thread(create_edge_app(settings, hybrid)) as url, httpx.Client() as client:
        while client.get(f"{url}/readyz").status_code != 200:
            pass
        yield url


@pytest.fixture(scope="module")
def cloud_url(fake_classifier: EdgeClassifier) -> Iterator[str]:
    from hybridroute.serving.uvicorn_runner import serve_in_thread

    with serve_in_thread(create_cloud_app(CloudSettings(None, max_batch=8, max_chars=300), fake_classifier)) as url:
        yield url


def post(url: str, path: str, body: str | dict[str, Any]) -> httpx.Response:
    if isinstance(body, str):
        return httpx.post(f"{url}{path}", content=body.encode(), headers=JSON)
    return httpx.post(f"{url}{path}", json=body)


def refusal(response: httpx.Response) -> tuple[str, str]:
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    return error["type"], error["message"]


@pytest.mark.parametrize(
    ("service", "path", "body", "key"),
    [
        ("edge", "/v1/classify", '{"texts": ["first batch text"], "texts": ["b", "c"]}', "texts"),
        ("edge", "/v1/classify", '{"text": "a", "text": "b"}', "text"),
        ("edge", "/v1/feedback", '{"request_id": "x", "label": "neutral", "label": "positive"}', "label"),
        ("cloud", "/v1/classify", '{"texts": ["a"], "texts": ["b", "c"]}', "texts"),
    ],
)
def test_a_key_given_twice_is_refused_not_resolved_last_wins(
    edge_url: str, cloud_url: str, service: str, path: str, body: str, key: str
) -> None:
    kind, message = refusal(post(edge_url if service == "edge" else cloud_url, path, body))
    assert kind == "invalid_json"
    assert message.startswith(f"body repeats a key: key '{key}' appears 2 times in one object; send each field once.")


def test_the_same_key_in_two_objects_is_not_a_repeat(edge_url: str) -> None:
    response = post(edge_url, "/v1/feedback", '{"request_id": "nowhere", "label": "neutral"}')
    assert response.status_code == 404  # parsed and checked: only the id is unknown
    assert post(edge_url, "/v1/classify", '{"texts": ["a", "b"]}').status_code == 200


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"text": 123}, "text: Input should be a valid string (received 123)"),
        ({"texts": [1, "a"]}, "texts[0]: Input should be a valid string (received 1)"),
        ({"texts": "abc"}, "texts: Input should be a valid list (received 'abc')"),
    ],
)
def test_a_wrong_type_is_reported_once_under_the_field_name(edge_url: str, body: dict[str, Any], expected: str) -> None:
    kind, message = refusal(post(edge_url, "/v1/classify", body))
    assert kind == "validation_error"
    assert message.startswith(expected + ". Expected"), message
    assert "none" not in message.lower().split(". expected")[0] and "list[str]" not in message and ".str" not in message


@pytest.mark.parametrize("blank", ["\u200b", " \u200b\u200d ", "\ufeff", "\u2060\n"])
def test_texts_of_invisible_characters_are_blank_on_both_services(edge_url: str, cloud_url: str, blank: str) -> None:
    _, one = refusal(post(edge_url, "/v1/classify", {"text": blank}))
    assert "text is blank; every text must hold a visible character" in one
    _, some = refusal(post(edge_url, "/v1/classify", {"texts": ["fine", blank]}))
    assert "texts at positions [1] are blank" in some
    _, cloud = refusal(post(cloud_url, "/v1/classify", {"texts": ["fine", blank, "ok"]}))
    assert "texts at positions [1] are blank" in cloud
    assert post(edge_url, "/v1/classify", {"text": blank + "x"}).status_code == 200  # one visible character is enough


def test_the_published_pattern_finds_what_the_validators_call_visible(edge_url: str, cloud_url: str) -> None:
    edge = httpx.get(f"{edge_url}/openapi.json").json()["components"]["schemas"]["ClassifyRequest"]
    cloud = httpx.get(f"{cloud_url}/openapi.json").json()["components"]["schemas"]["CloudClassifyRequest"]
    assert edge["properties"]["text"]["pattern"] == cloud["properties"]["texts"]["items"]["pattern"] == VISIBLE
    assert not re.search(VISIBLE, " \u200b\ufeff\u2060") and re.search(VISIBLE, "\u200bx")
