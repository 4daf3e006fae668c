"""The audit store and writer: schema, queries, feedback, CSV, overflow accounting, URLs."""

from __future__ import annotations

import csv
import dataclasses
import importlib.util
import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path

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
    load_or_create_salt,
    open_audit_reader,
    open_audit_store,
    parse_time,
    redact_url,
    select_sql,
    text_hash,
)


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
    writer = AuditWriter(store, capacity=1000, max_batch=50)
    writer.start()
    acks = Acks()
    for i in range(200):
        assert writer.submit([record(i)], acks)
    writer.close()
    assert store.count() == 200 and writer.committed == 200
    assert acks.statuses == [COMMITTED] * 200
    assert writer.transactions <= 200


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
