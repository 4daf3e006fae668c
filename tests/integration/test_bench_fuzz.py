"""``hybridroute bench fuzz`` on the tiny run: both services started for real, every endpoint fuzzed, no 5xx."""

from __future__ import annotations

import json
import random
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from hybridroute.bench.fuzz import FuzzBenchConfig, fuzz_endpoint, shadow_run, summary_table
from hybridroute.bench.fuzz_cases import (
    CLOUD_ENDPOINTS,
    EDGE_ENDPOINTS,
    HOSTILE,
    RANDOM,
    SCHEMATHESIS,
    Context,
    Endpoint,
    FuzzRequest,
    cases_for,
    hostile_cases,
    mutate_bytes,
    nested,
    random_cases,
)
from hybridroute.cli import main
from hybridroute.errors import ConfigError

CONTEXT = Context(8, 300, 8, ("negative", "neutral", "positive"), ("a" * 32,), "t" * 20, "/run/edge")


def test_hostile_cases_cover_the_issue_list() -> None:
    classify, feedback, reload = (hostile_cases(e, CONTEXT) for e in EDGE_ENDPOINTS[:3])
    notes = " | ".join(c.note for c in classify)
    for wanted in ("non-UTF-8", "control character", "one over the limit", "nested", "unknown field", "surrogate"):
        assert wanted in notes, wanted
    feedback_notes = " | ".join(c.note for c in feedback)
    assert "unknown request id" in feedback_notes and "unknown label" in feedback_notes
    assert any("wrong token" in c.note for c in reload) and any(c.method == "PUT" for c in classify)


def test_random_cases_are_reproducible_and_varied() -> None:
    endpoint = EDGE_ENDPOINTS[0]
    first, again = random_cases(endpoint, CONTEXT, 200, seed=3), random_cases(endpoint, CONTEXT, 200, seed=3)
    assert first == again and first != random_cases(endpoint, CONTEXT, 200, seed=4)
    assert len({c.content for c in first}) > 150 and all(c.source == RANDOM for c in first)
    assert mutate_bytes(random.Random(0), b'{"text": "hi"}') != b'{"text": "hi"}'
    assert nested(3) == b"[[[]]]"


def test_cases_for_reaches_the_count_without_schemathesis() -> None:
    for endpoint in (*EDGE_ENDPOINTS, *CLOUD_ENDPOINTS):
        cases = cases_for(endpoint, CONTEXT, 120, 0, None, 0.0)
        assert len(cases) >= 120 and {c.source for c in cases} <= {HOSTILE, RANDOM}


def test_config_checks_its_values(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no edge bundle"):
        FuzzBenchConfig(tmp_path)
    (tmp_path / "edge").mkdir()
    with pytest.raises(ConfigError, match="requests"):
        FuzzBenchConfig(tmp_path, requests=0)


def test_shadow_run_links_everything_but_the_audit_files(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "edge").mkdir(parents=True)
    (run / "cloud").mkdir()
    (run / "audit.sqlite").write_text("x")
    (run / "router.json").write_text("{}")
    shadow = shadow_run(run, tmp_path / "out")
    assert sorted(p.name for p in shadow.iterdir()) == ["cloud", "edge", "router.json"]
    assert (shadow / "edge").is_symlink() and (shadow / "cloud").is_symlink()


def test_a_run_without_a_cloud_tier_gets_its_edge_bundle_standing_in_as_one(tiny_run: Path, tmp_path: Path) -> None:
    from hybridroute.runtime import EdgeClassifier
    from hybridroute.runtime.bundle import read_manifest

    shadow = shadow_run(tiny_run, tmp_path / "out")

    assert read_manifest(shadow / "cloud").kind == "cloud" and read_manifest(tiny_run / "edge").kind == "edge"
    stand_in = EdgeClassifier.from_dir(shadow / "cloud")  # checksums verified: the edge model's own files
    assert stand_in.labels == EdgeClassifier.from_dir(tiny_run / "edge").labels


@pytest.mark.timeout(600)
def test_bench_fuzz_on_the_tiny_run_finds_no_5xx_and_no_crash(tiny_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "fuzz.json"
    args = ["bench", "fuzz", "--run", str(tiny_run), "--requests", "20", "--json", str(out)]
    result = CliRunner().invoke(main, [*args, "--schemathesis-share", "0.3", "--concurrency", "3"])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["targets"]["passed"], summary_table(report)
    assert len(report["endpoints"]) == len(EDGE_ENDPOINTS) + len(CLOUD_ENDPOINTS)
    assert all(e["sent"] >= 20 and e["server_errors"] == 0 for e in report["endpoints"].values())
    classify = report["endpoints"]["edge POST /v1/classify"]
    assert {HOSTILE, SCHEMATHESIS} <= set(classify["sources"])  # the hostile list alone is longer than 20
    assert RANDOM in report["endpoints"]["edge GET /healthz"]["sources"]
    assert {"200", "413", "422"} <= set(classify["statuses"])
    assert report["audit"]["rows"] >= report["audit"]["acknowledged_texts"] > 0
    assert not (tiny_run / "audit.sqlite").exists()  # the run folder is left as it was
    assert "all targets: met" in result.output


class _Healthz(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 (the http.server API)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_cases_the_client_cannot_send_do_not_count_as_reaching_the_server(tmp_path: Path) -> None:
    (tmp_path / "edge").mkdir()
    config = FuzzBenchConfig(tmp_path, requests=2, concurrency=1)
    endpoint = Endpoint("edge", "GET", "/healthz")
    good = FuzzRequest("GET", "/healthz", RANDOM)
    bad = FuzzRequest("GET", "/healthz", SCHEMATHESIS, headers=(("Authorization", "Bearer "),))  # h11 refuses it
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Healthz)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        tally = fuzz_endpoint(endpoint, url, [good, bad], config, lambda _line: None)
        assert tally.sent == 2 and tally.kinds["unsendable"] == 1 and tally.on_the_wire == 1
        fuzz_endpoint(endpoint, url, [good], config, lambda _line: None, tally)  # a top-up counts into the same tally
    finally:
        server.shutdown()
        server.server_close()
    assert tally.on_the_wire == 2 and tally.statuses == {200: 2}
    assert tally.sources == {RANDOM: 2, SCHEMATHESIS: 1}


def test_a_share_too_small_for_one_schemathesis_case_generates_none() -> None:
    endpoint = Endpoint("edge", "GET", "/healthz")
    operation = {"get": {"responses": {"200": {"description": "alive"}}}}
    document = {"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "paths": {"/healthz": operation}}
    assert any(case.source == SCHEMATHESIS for case in cases_for(endpoint, CONTEXT, 1, 0, document, 1.0))
    cases = cases_for(endpoint, CONTEXT, 1, 0, document, 0.05)  # 1 x 5% rounds to zero cases: nothing to ask for
    assert cases and all(case.source != SCHEMATHESIS for case in cases)
