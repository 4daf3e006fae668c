"""The requests ``hybridroute bench fuzz`` sends: hand-written hostile ones, random mutations, schemathesis cases.

Three sources per endpoint:

* ``hostile``: a fixed list of the inputs a contact centre's integrations get wrong (non-UTF-8 bytes,
  control characters, lone surrogates, huge texts, deep nesting, wrong types, a batch over the limit,
  unknown fields, feedback for an unknown id or label, wrong methods and content types, bad tokens).
* ``random``: a seeded generator that mixes those ingredients at random (fast: it fills most of the count).
* ``schemathesis``: valid and invalid requests generated from the service's published OpenAPI document.

Every request is a :class:`FuzzRequest` (method, path, headers, raw body): what is sent is exactly what
was generated, byte for byte, whatever its source.
"""

from __future__ import annotations

import contextlib
import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

HOSTILE, RANDOM, SCHEMATHESIS = "hostile", "random", "schemathesis"
JSON_TYPE = "application/json"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD")

# Characters that break naive text handling, by kind (picked from when building random text).
ALPHABETS: dict[str, str] = {
    "ascii": "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 .,;:!?'\"-_()[]{}@#$%&*+/=<>",
    "whitespace": " \t\n\r\x0b\x0c\x85\xa0\u1680\u2000\u2007\u2028\u2029\u202f\u205f\u3000",
    "control": "".join(map(chr, range(0x20))) + "\x7f" + "".join(map(chr, range(0x80, 0xA0))),
    "invisible": "\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufeff\u00ad",
    "combining": "".join(map(chr, range(0x300, 0x370))),
    "wide": "漢字かなカナ한국어العربيةעבריתΣελλάδαКириллица",
    "emoji": "😀🙃🔥💳📞✉️👍🏽👨‍👩‍👧‍👦🏳️‍🌈",
    "astral": "𝔘𝔫𝔦𝔠𝔬𝔡𝔢𐍈𓀀",
    "pii": "john.doe@example.com +1 (415) 555-0132 4111 1111 1111 1111 GB82 WEST 1234 5698 7654 32 123-45-6789 ",
}


@dataclass(frozen=True)
class Endpoint:
    """One operation of one service."""

    service: str  # "edge" or "cloud"
    method: str
    path: str

    @property
    def label(self) -> str:
        """How reports name it, e.g. "edge POST /v1/classify"."""
        return f"{self.service} {self.method} {self.path}"

    @property
    def kind(self) -> str:
        """Which body it takes: edge_classify, cloud_classify, feedback, reload, or none (a GET)."""
        if self.path == "/v1/classify":
            return f"{self.service}_classify"
        return {"/v1/feedback": "feedback", "/admin/reload": "reload"}.get(self.path, "none")


EDGE_ENDPOINTS = tuple(
    Endpoint("edge", m, p)
    for m, p in (
        ("POST", "/v1/classify"),
        ("POST", "/v1/feedback"),
        ("POST", "/admin/reload"),
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/metrics"),
        ("GET", "/v1/monitor"),
    )
)
CLOUD_ENDPOINTS = tuple(
    Endpoint("cloud", m, p) for m, p in (("POST", "/v1/classify"), ("GET", "/healthz"), ("GET", "/readyz"))
)


@dataclass(frozen=True)
class FuzzRequest:
    """One request exactly as it goes on the wire (the body is raw bytes)."""

    method: str
    path: str
    source: str
    headers: tuple[tuple[str, str], ...] = ()
    content: bytes | None = None
    query: str = ""  # raw query string, sent as is (it may be malformed on purpose)
    note: str = ""  # what a hostile case is, for reports

    def describe(self, limit: int = 300) -> dict[str, Any]:
        """A short, JSON-safe description for reports (the body cut to ``limit`` bytes)."""
        body = None if self.content is None else self.content[:limit].decode("utf-8", "backslashreplace")
        return {
            "method": self.method,
            "path": self.path + (f"?{self.query[:limit]}" if self.query else ""),
            "source": self.source,
            "note": self.note,
            "headers": dict(self.headers),
            "body": body,
            "body_bytes": None if self.content is None else len(self.content),
        }


@dataclass(frozen=True)
class Context:
    """What the generators know about the services under test.

    Attributes:
        max_texts: most texts per edge request (from the published document).
        max_chars: most characters per text.
        cloud_max_batch: most texts per cloud request.
        labels: the model's labels.
        known_ids: request ids that exist in the audit log (feedback for them is valid).
        admin_token: the edge's admin token.
        edge_dir: the run's edge bundle folder (a valid reload target).
        real_reload_share: share of random reload requests that really reload (each costs a model load).
    """

    max_texts: int
    max_chars: int
    cloud_max_batch: int
    labels: tuple[str, ...]
    known_ids: tuple[str, ...]
    admin_token: str
    edge_dir: str
    real_reload_share: float = 0.002


# ---------------------------------------------------------------- pure helpers


def json_bytes(value: Any) -> bytes:
    r"""JSON as UTF-8 bytes, lone surrogates written as ``\\udXXX`` escapes, NaN allowed (Python's dialect).

    Example: json_bytes({"text": "\\ud800"}) -> b'{"text": "\\\\ud800"}'
    """
    return json.dumps(value, ensure_ascii=True).encode("ascii")


def json_request(endpoint: Endpoint, value: Any, note: str, source: str = HOSTILE, **headers: str) -> FuzzRequest:
    """A POST of ``value`` as JSON to ``endpoint`` (extra headers by keyword, ``_`` for ``-``)."""
    pairs = (("content-type", JSON_TYPE), *((k.replace("_", "-"), v) for k, v in headers.items()))
    return FuzzRequest(endpoint.method, endpoint.path, source, pairs, json_bytes(value), note=note)


def raw_request(endpoint: Endpoint, body: bytes, note: str, content_type: str = JSON_TYPE) -> FuzzRequest:
    """A request to ``endpoint`` with a raw body."""
    return FuzzRequest(endpoint.method, endpoint.path, HOSTILE, (("content-type", content_type),), body, note=note)


def nested(depth: int, opener: str = "[") -> bytes:
    """JSON nested ``depth`` levels deep.

    Example: nested(2) -> b"[[]]"; nested(2, "{") -> b'{"a":{"a":{}}}'
    """
    if opener == "[":
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"{}" + b"}" * depth


def random_text(rng: random.Random, max_len: int) -> str:
    """Text of up to ``max_len`` characters mixed from :data:`ALPHABETS` (and now and then a lone surrogate)."""
    length = min(max_len, int(rng.expovariate(1 / 40)) + 1) if rng.random() < 0.9 else rng.randint(1, max_len)
    kinds = rng.sample(sorted(ALPHABETS), k=rng.randint(1, 3))
    text = "".join(rng.choice(ALPHABETS[rng.choice(kinds)]) for _ in range(length))
    if rng.random() < 0.02:
        at = rng.randint(0, len(text))
        text = text[:at] + chr(rng.randint(0xD800, 0xDFFF)) + text[at:]
    return text[:max_len] if max_len else text


def random_json(rng: random.Random, depth: int = 0) -> Any:
    """Any JSON value (Python's dialect: NaN and Infinity too), nested a few levels at most."""
    pick = rng.randrange(9 if depth < 3 else 6)
    scalars: list[Callable[[], Any]] = [
        lambda: None,
        lambda: rng.random() < 0.5,
        lambda: rng.choice([0, -1, 1, 2**31, 2**63, 10**40, -(10**40)]),
        lambda: rng.choice([0.5, -0.0, 1e308, float("nan"), float("inf"), float("-inf")]),
        lambda: random_text(rng, 50),
        lambda: "",
    ]
    if pick < len(scalars):
        return scalars[pick]()
    if pick == 6:
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {random_text(rng, 12): random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def mutate_bytes(rng: random.Random, body: bytes) -> bytes:
    r"""``body`` with a few random byte-level edits: flips, cuts, invalid UTF-8, duplicated pieces.

    Example: mutate_bytes(rng, b'{"text": "hi"}') -> b'{"te\\xffxt": "hi"' (one possible result)
    """
    data = bytearray(body)
    for _ in range(rng.randint(1, 4)):
        at = rng.randint(0, len(data))
        edit = rng.randrange(5)
        if edit == 0 and data:
            data[min(at, len(data) - 1)] = rng.randrange(256)
        elif edit == 1:
            del data[at:]
        elif edit == 2:
            data[at:at] = rng.choice([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x00", b"\xf0\x9f"])
        elif edit == 3:
            data[at:at] = data[rng.randint(0, len(data)) :][:64]
        else:
            data[at:at] = rng.choice([b",", b"}", b"]", b'"', b"\\", b"\\u", b"NaN", b"1e99999"])
    return bytes(data)


# ---------------------------------------------------------------- hostile, hand-written


def body_hostiles(endpoint: Endpoint, valid: dict[str, Any]) -> list[FuzzRequest]:
    """Malformed bodies that any JSON endpoint meets: bytes, nesting, types, shapes, content types."""
    cases = [
        raw_request(endpoint, b"", "empty body"),
        raw_request(endpoint, b"\xff\xfe\xfd", "non-UTF-8 bytes"),
        raw_request(endpoint, b'{"text": "caf\xe9"}', "Latin-1 byte inside a JSON string"),
        raw_request(endpoint, b'{"text": "\xed\xa0\x80"}', "UTF-8-encoded surrogate"),
        raw_request(endpoint, b'\xef\xbb\xbf{"text": "bom"}', "UTF-8 byte order mark"),
        raw_request(endpoint, json.dumps(valid).encode("utf-16"), "UTF-16 body"),
        raw_request(endpoint, b"{nope", "broken JSON"),
        raw_request(endpoint, b'{"text": "unterminated', "unterminated string"),
        raw_request(endpoint, nested(100_000), "arrays nested 100000 deep"),
        raw_request(endpoint, nested(5_000, "{"), "objects nested 5000 deep"),
        raw_request(endpoint, b'{"a": ' + nested(900) + b"}", "arrays nested 900 deep inside a field"),
        raw_request(endpoint, b"null", "null body"),
        raw_request(endpoint, b'"a string"', "a string body"),
        raw_request(endpoint, b"12345678901234567890123456789", "a number body"),
        raw_request(endpoint, b"[]", "an array body"),
        raw_request(endpoint, b"{}", "an empty object"),
        raw_request(endpoint, b'{"x": NaN, "y": Infinity, "z": -Infinity}', "NaN and Infinity"),
        raw_request(endpoint, b'{"x": 1e999999}', "a number out of range"),
        raw_request(endpoint, json.dumps(valid).encode(), "valid body sent as text/plain", "text/plain"),
        raw_request(endpoint, b"text=hello", "a form body", "application/x-www-form-urlencoded"),
        raw_request(endpoint, b"--b\r\n\r\nhi\r\n--b--", "multipart without a boundary", "multipart/form-data"),
        raw_request(endpoint, json.dumps(valid).encode(), "no content type at all", ""),
        json_request(endpoint, valid | {"unknown_field": 1}, "an unknown field"),
        json_request(endpoint, valid | {"\ud800": 1}, "an unknown field whose name is a lone surrogate"),
        json_request(endpoint, {("k" * 10_000): 1}, "a 10000-character field name"),
        json_request(endpoint, [valid], "the valid body wrapped in a list"),
    ]
    duplicate = b"{" + b", ".join(json.dumps(valid).encode()[1:-1] for _ in range(2)) + b"}"
    cases.append(raw_request(endpoint, duplicate, "every key twice"))
    return cases


def classify_hostiles(endpoint: Endpoint, max_texts: int, max_chars: int) -> list[FuzzRequest]:
    """Text-level hostiles for a classify endpoint (edge: text or texts; cloud: texts only)."""
    many = "texts"
    single = "text" if endpoint.service == "edge" else "texts"

    def one(text: Any) -> dict[str, Any]:
        return {single: text if single == "text" else [text]}

    texts = [
        ("", "empty text"),
        ("   \t\n", "blank text"),
        ("\u3000\u2028\xa0", "Unicode blank text"),
        ("".join(map(chr, range(1, 32))), "every ASCII control character"),
        ("a\x00b", "a NUL character"),
        ("\u202eevil\u202c text", "bidirectional overrides"),
        ("\ud800 lone surrogate", "a lone high surrogate"),
        ("\udfff", "a lone low surrogate"),
        ("e\u0301" * 2000, "4000 combining characters"),
        ("👨‍👩‍👧‍👦" * 500, "2500 emoji joins"),
        ("a" * max_chars, "a text exactly at the character limit"),
        ("a" * (max_chars + 1), "a text one character over the limit"),
        ("word " * (max_chars // 5), "many short words at the limit"),
        ("x" * 1_000_000, "a one-million-character text"),
        ("DE89" + "é" * 18, "an IBAN-shaped run of non-ASCII letters"),
        ("mail john.doe@example.com or call +1 415 555 0132, card 4111 1111 1111 1111", "personal data"),
    ]
    cases = [json_request(endpoint, one(text), note) for text, note in texts]
    wrong_types: list[Any] = [None, 5, 1.5, True, [], {}, ["a"], {"a": "b"}]
    cases += [json_request(endpoint, {single: value}, f"{single} as {type(value).__name__}") for value in wrong_types]
    cases += [
        json_request(endpoint, {many: []}, "an empty batch"),
        json_request(endpoint, {many: ["ok"] * max_texts}, "a batch exactly at the limit"),
        json_request(endpoint, {many: ["ok"] * (max_texts + 1)}, "a batch one over the limit"),
        json_request(endpoint, {many: ["ok"] * 100_000}, "a batch of 100000 texts"),
        json_request(endpoint, {many: ["ok", None, 3]}, "a batch with non-strings"),
        json_request(endpoint, {many: "not a list"}, "texts as a string"),
        json_request(endpoint, {many: [["nested"]]}, "a batch of lists"),
    ]
    if endpoint.service == "edge":
        cases += [
            json_request(endpoint, {"text": "a", "texts": ["b"]}, "both text and texts"),
            json_request(endpoint, {"text": None, "texts": ["b"]}, "text null beside texts"),
            json_request(endpoint, {"text": "a", "texts": None}, "texts null beside text"),
        ]
    return cases


def feedback_hostiles(endpoint: Endpoint, context: Context) -> list[FuzzRequest]:
    """Feedback for unknown ids and labels, and every field of the wrong type."""
    known = context.known_ids[0] if context.known_ids else "0" * 32
    label = context.labels[0]
    bodies: list[tuple[Any, str]] = [
        ({"request_id": known, "label": label}, "valid feedback for a known id"),
        ({"request_id": "f" * 32, "label": label}, "an unknown request id"),
        ({"request_id": known, "label": "no-such-label"}, "an unknown label"),
        ({"request_id": known, "label": label.upper() + " "}, "a label differing only in case and space"),
        ({"request_id": "", "label": label}, "an empty request id"),
        ({"request_id": "x" * 201, "label": label}, "a request id over 200 characters"),
        ({"request_id": "' OR 1=1 --", "label": label}, "SQL in the request id"),
        ({"request_id": "\ud800", "label": label}, "a lone surrogate as request id"),
        ({"request_id": known, "label": ""}, "an empty label"),
        ({"request_id": 5, "label": label}, "a numeric request id"),
        ({"request_id": known, "label": ["a"]}, "a list as label"),
        ({"request_id": known}, "no label"),
        ({"label": label}, "no request id"),
    ]
    return [json_request(endpoint, body, note) for body, note in bodies]


def reload_hostiles(endpoint: Endpoint, context: Context) -> list[FuzzRequest]:
    """Reloads without, with wrong and with malformed tokens, and of bundles that are not bundles."""
    token = context.admin_token
    auth = {"authorization": f"Bearer {token}"}
    headers = [
        ((), "no token, no body"),
        ((("authorization", "Bearer wrong"),), "wrong token"),
        ((("authorization", "Bearer"),), "empty bearer"),
        ((("authorization", f"Basic {token}"),), "basic auth"),
        ((("authorization", "Bearer " + "x" * 8000),), "8 KB token"),
    ]
    cases = [FuzzRequest(endpoint.method, endpoint.path, HOSTILE, h, note=note) for h, note in headers]
    bundles: list[tuple[Any, str]] = [
        ("/nonexistent/bundle", "a missing folder"),
        ("/", "the root folder"),
        ("/etc/passwd", "a file, not a folder"),
        ("\x00", "a NUL path"),
        ("../" * 50, "a path climbing out"),
        ("a" * 5000, "a 5000-character path"),
        (5, "a number as bundle"),
        ("", "an empty bundle"),
        (None, "a null bundle"),
    ]
    cases += [json_request(endpoint, {"bundle": b}, note, **auth) for b, note in bundles]
    cases.append(json_request(endpoint, {"bundle": context.edge_dir}, "a real reload of the run's edge bundle", **auth))
    return cases


def method_and_query_hostiles(endpoint: Endpoint) -> list[FuzzRequest]:
    """Wrong methods, junk query strings and odd headers: every endpoint meets them."""
    others = [m for m in METHODS if m not in (endpoint.method, "HEAD", "OPTIONS")][:3]
    cases = [FuzzRequest(m, endpoint.path, HOSTILE, note=f"wrong method {m}") for m in others]
    for query in ("a=%ff%fe", "%", "a=1&a=2&" + "b=" * 500, "x=" + "y" * 6000, "\u00e9=\u00e9"):
        cases.append(FuzzRequest(endpoint.method, endpoint.path, HOSTILE, query=query, note="junk query string"))
    odd_headers = (("accept", "application/xml"), ("x-forwarded-for", "' OR 1=1"), ("content-length-x", "-1"))
    cases.append(FuzzRequest(endpoint.method, endpoint.path, HOSTILE, odd_headers, note="odd headers"))
    return cases


def hostile_cases(endpoint: Endpoint, context: Context) -> list[FuzzRequest]:
    """Every hand-written hostile request for one endpoint."""
    cases = method_and_query_hostiles(endpoint)
    if endpoint.kind in ("edge_classify", "cloud_classify"):
        valid = {"text": "hello"} if endpoint.kind == "edge_classify" else {"texts": ["hello"]}
        limit = context.max_texts if endpoint.service == "edge" else context.cloud_max_batch
        cases += body_hostiles(endpoint, valid) + classify_hostiles(endpoint, limit, context.max_chars)
    elif endpoint.kind == "feedback":
        cases += body_hostiles(endpoint, {"request_id": "x", "label": context.labels[0]})
        cases += feedback_hostiles(endpoint, context)
    elif endpoint.kind == "reload":
        cases += reload_hostiles(endpoint, context)
    return cases


# ---------------------------------------------------------------- random


def random_classify_body(rng: random.Random, endpoint: Endpoint, context: Context) -> Any:
    """A classify body: mostly well-formed, with sizes around the limits and now and then a wrong shape."""
    limit = context.max_texts if endpoint.service == "edge" else context.cloud_max_batch
    count = rng.choice([1, 1, 2, rng.randint(1, limit), limit, limit + 1])
    texts = [random_text(rng, context.max_chars + 2 if rng.random() < 0.05 else 200) for _ in range(count)]
    if endpoint.service == "edge" and count == 1 and rng.random() < 0.5:
        body: dict[str, Any] = {"text": texts[0]}
    else:
        body = {"texts": texts}
    if rng.random() < 0.15:
        body[rng.choice(["text", "texts", random_text(rng, 8)])] = random_json(rng)
    return body


def random_feedback_body(rng: random.Random, context: Context) -> Any:
    """A feedback body: known or made-up ids, real or made-up labels, sometimes wrong types."""
    ids = [*context.known_ids[:50], "f" * 32, random_text(rng, 40), random_json(rng)]
    labels = [*context.labels, random_text(rng, 20), random_json(rng)]
    body = {"request_id": rng.choice(ids), "label": rng.choice(labels)}
    if rng.random() < 0.1:
        body.pop(rng.choice(sorted(body)))
    return body


def random_reload(rng: random.Random, endpoint: Endpoint, context: Context) -> FuzzRequest:
    """A reload with a random token and bundle; a real reload only at ``real_reload_share``."""
    if rng.random() < context.real_reload_share:
        token, body = context.admin_token, {"bundle": context.edge_dir}
    else:
        junk = "".join(rng.choice(ALPHABETS["ascii"]) for _ in range(rng.randint(1, 40)))  # headers are ASCII
        token = rng.choice([context.admin_token, context.admin_token[:-1], "", junk])
        body = rng.choice([{}, {"bundle": random_text(rng, 60)}, {"bundle": "/nonexistent"}, random_json(rng)])
    header = (("authorization", f"Bearer {token}".strip()),) if rng.random() < 0.8 else ()
    return FuzzRequest(endpoint.method, endpoint.path, RANDOM, (("content-type", JSON_TYPE), *header), json_bytes(body))


def random_case(rng: random.Random, endpoint: Endpoint, context: Context) -> FuzzRequest:
    """One random request for ``endpoint``: a body of its kind (maybe byte-mutated), or junk for a GET."""
    if endpoint.kind == "reload":
        return random_reload(rng, endpoint, context)
    if endpoint.kind == "none":
        method = endpoint.method if rng.random() < 0.8 else rng.choice(METHODS)
        query = "&".join(f"{random_text(rng, 5)}={random_text(rng, 20)}" for _ in range(rng.randint(0, 3)))
        return FuzzRequest(method, endpoint.path, RANDOM, query=quote(query, safe="=&", errors="surrogatepass"))
    value = (
        random_feedback_body(rng, context)
        if endpoint.kind == "feedback"
        else random_classify_body(rng, endpoint, context)
    )
    body = json_bytes(value)
    if rng.random() < 0.2:
        body = mutate_bytes(rng, body)
    return FuzzRequest(endpoint.method, endpoint.path, RANDOM, (("content-type", JSON_TYPE),), body)


def random_cases(endpoint: Endpoint, context: Context, n: int, seed: int) -> list[FuzzRequest]:
    """``n`` random requests for ``endpoint``, the same ones for the same seed."""
    rng = random.Random(f"{seed}:{endpoint.label}")
    return [random_case(rng, endpoint, context) for _ in range(n)]


# ---------------------------------------------------------------- schemathesis


def schemathesis_cases(document: dict[str, Any], endpoint: Endpoint, n: int, seed: int) -> list[FuzzRequest]:
    """Up to ``n`` requests schemathesis generates for ``endpoint`` from its OpenAPI document, valid and invalid.

    Fewer when the operation has fewer distinct inputs (a GET without parameters has one).
    """
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hypothesis_seed
    from hypothesis import strategies as st
    from hypothesis.errors import HypothesisException

    operation = schemathesis.openapi.from_dict(document).find_operation_by_label(f"{endpoint.method} {endpoint.path}")
    if operation is None:
        return []
    modes = (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)
    strategy = st.one_of(*(operation.as_strategy(mode) for mode in modes))
    found: list[FuzzRequest] = []

    @hypothesis_seed(seed)
    @settings(
        max_examples=n, phases=[Phase.generate], database=None, deadline=None, suppress_health_check=list(HealthCheck)
    )
    @given(case=strategy)
    def collect(case: Any) -> None:
        found.append(from_case(case))

    with contextlib.suppress(HypothesisException):  # fewer distinct inputs than asked for: keep those found
        collect()
    return found[:n]


def from_case(case: Any) -> FuzzRequest:
    """A schemathesis case as a :class:`FuzzRequest` (its body serialized the way schemathesis sends it)."""
    kwargs = case.as_transport_kwargs(base_url="http://fuzz")
    headers = tuple(
        (k, str(v)) for k, v in kwargs.get("headers", {}).items() if k.lower() not in ("user-agent", "connection")
    )
    content: bytes | None = None
    if "json" in kwargs:
        content = json_bytes(kwargs["json"])
        if not any(k.lower() == "content-type" for k, _ in headers):
            headers += (("content-type", JSON_TYPE),)
    elif kwargs.get("data") is not None:
        data = kwargs["data"]
        content = data if isinstance(data, bytes) else str(data).encode("utf-8", "surrogatepass")
    params = kwargs.get("params") or {}
    query = urlencode(params, doseq=True) if params else ""
    return FuzzRequest(kwargs["method"], urlsplit(kwargs["url"]).path, SCHEMATHESIS, headers, content, query)


def cases_for(
    endpoint: Endpoint, context: Context, n: int, seed: int, document: dict[str, Any] | None, share: float
) -> list[FuzzRequest]:
    """At least ``n`` requests: the hostile ones, up to ``share`` of ``n`` from schemathesis, random for the rest."""
    hostile = hostile_cases(endpoint, context)
    wanted = int(n * share)  # schemathesis refuses to generate zero examples
    generated = schemathesis_cases(document, endpoint, wanted, seed) if document and wanted > 0 else []
    rest = max(0, n - len(hostile) - len(generated))
    return hostile + generated + random_cases(endpoint, context, rest, seed)


def counts_by_source(cases: Sequence[FuzzRequest]) -> dict[str, int]:
    """How many requests came from each source.

    Example: counts_by_source([FuzzRequest("GET", "/", "random")]) -> {"random": 1}
    """
    counts: dict[str, int] = {}
    for case in cases:
        counts[case.source] = counts.get(case.source, 0) + 1
    return counts
