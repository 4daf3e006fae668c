"""The audit writer sets aside a record the database refuses for good, and keeps the others flowing.

PostgreSQL refuses a text holding a NUL character (psycopg's ``DataError``) however often it is retried; before,
the writer retried that batch forever at the head of the queue and no record was written again.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import sqlite3
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from hybridroute.monitoring.audit import (
    COMMITTED,
    DROPPED,
    FAILED,
    RETRYING,
    AuditRecord,
    AuditWriter,
    SQLiteAuditStore,
    is_permanent_error,
    text_hash,
)


def record(i: int, text: str | None = None) -> AuditRecord:
    return AuditRecord(
        time=1_700_000_000.0 + i,
        request_id=f"req-{i}",
        text_hash=text_hash(f"text {i}", b"salt"),
        text=text,
        label="positive",
        confidence=0.9,
        tier="edge",
        reason="confident",
        latency_ms=3.0,
        edge_latency_ms=1.0,
        cloud_latency_ms=None,
        cost=0.001,
        model_version="m1",
        edge_model_version="m1",
        edge_label="positive",
        edge_confidence=0.9,
    )


class Acks:
    def __init__(self) -> None:
        self.statuses: list[str] = []

    def __call__(self, status: str) -> None:
        self.statuses.append(status)


class DataError(Exception):
    """Named like psycopg's ``DataError`` (which derives from no sqlite3 class)."""


class NulRefusingStore(SQLiteAuditStore):
    """A SQLite log that refuses NUL characters in texts the way PostgreSQL does (``DataError``)."""

    def _insert_rows(self, cursor: Any, records: Sequence[AuditRecord]) -> None:
        if any(r.text and "\x00" in r.text for r in records):
            raise DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes")
        super()._insert_rows(cursor, records)


@pytest.fixture
def nul_store(tmp_path: Path) -> Iterator[NulRefusingStore]:
    store = NulRefusingStore(tmp_path / "audit.sqlite")
    yield store
    store.close()


def test_permanent_errors_are_told_from_transient_ones_by_class_name() -> None:
    assert is_permanent_error(sqlite3.IntegrityError("UNIQUE constraint failed"))
    assert is_permanent_error(DataError("NUL"))
    assert is_permanent_error(type("UniqueViolation", (type("IntegrityError", (Exception,), {}),), {})())
    assert not is_permanent_error(sqlite3.OperationalError("database is locked"))
    assert not is_permanent_error(OSError(errno.ENOSPC, "No space left on device"))


def test_a_record_the_database_refuses_for_good_is_set_aside_and_the_rest_keep_flowing(
    nul_store: NulRefusingStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, "hybridroute.monitoring.audit")
    failed: list[int] = []
    writer = AuditWriter(nul_store, capacity=4, on_failed=failed.append, retry_s=0.01, max_retry_s=0.05)
    good, bad, later, overflow = Acks(), Acks(), Acks(), Acks()
    # Queued before the writer starts: one transaction holds the bad record between good ones, and the count
    # of the records dropped on overflow rides with it.
    writer.submit([record(0)], good)
    writer.submit([record(1, "a\x00b"), record(2, "fine")], bad)
    writer.submit([record(3, "fine")], later)
    assert not writer.submit([record(4), record(5)], overflow)
    writer.start()
    writer.close()
    assert overflow.statuses == [DROPPED]
    assert sorted(r.request_id for r in nul_store.query()) == ["req-0", "req-2", "req-3"]
    assert nul_store.dropped() == 2  # the drop counter is committed, not lost with the bad record
    assert good.statuses == later.statuses == [COMMITTED]
    assert bad.statuses == [FAILED]  # its submission lost a record: not reported committed
    assert writer.rejected == 1 and writer.failed == 1 and failed == [1] and writer.committed == 3
    assert writer.health()["ok"] and writer.health()["rejected"] == 1 and not writer.failing
    assert any("req-1" in m and "DataError" in m and "set aside" in m for m in caplog.messages)
    assert not any("a\x00b" in m for m in caplog.messages)  # the raw text is never logged


def test_after_a_refused_record_later_requests_are_committed_not_retrying(nul_store: NulRefusingStore) -> None:
    writer = AuditWriter(nul_store, retry_s=0.01, max_retry_s=0.05)
    writer.start()
    bad = Acks()
    writer.submit([record(0, "\x00")], bad)
    deadline = time.monotonic() + 5.0
    while not bad.statuses and time.monotonic() < deadline:
        time.sleep(0.005)
    assert bad.statuses == [FAILED]
    after = [Acks() for _ in range(3)]
    for i, acks in enumerate(after, start=1):
        writer.submit([record(i, "fine")], acks)
    writer.close()
    assert [a.statuses for a in after] == [[COMMITTED]] * 3
    assert nul_store.count() == 3 and writer.failed_transactions == 0


def test_a_transient_failure_while_setting_aside_keeps_every_record_for_the_retry(
    nul_store: NulRefusingStore,
) -> None:
    """The records are not committed one by one: a full disk during the second pass loses and duplicates none."""
    calls: list[str] = []
    write_each = nul_store.write_each

    def full_disk_once(records: Sequence[AuditRecord], dropped: int = 0) -> list[tuple[int, Exception]]:
        calls.append("write_each")
        if calls.count("write_each") == 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return write_each(records, dropped)

    nul_store.write_each = full_disk_once  # type: ignore[method-assign]
    writer = AuditWriter(nul_store, retry_s=0.01, max_retry_s=0.05)
    writer.start()
    acks = Acks()
    writer.submit([record(0, "ok"), record(1, "\x00"), record(2, "ok")], acks)
    writer.close()
    assert calls == ["write_each", "write_each"] and writer.failed_transactions == 1
    assert sorted(r.request_id for r in nul_store.query()) == ["req-0", "req-2"]
    assert acks.statuses == [RETRYING] and writer.rejected == 1 and writer.committed == 2


def test_real_sqlite_refusals_are_set_aside_too(tmp_path: Path) -> None:
    """With the stock SQLite store: a duplicate request id and a missing label can never be written."""
    store = SQLiteAuditStore(tmp_path / "audit.sqlite")
    try:
        store.write_many([record(0)])
        writer = AuditWriter(store, retry_s=0.01, max_retry_s=0.05)
        writer.start()
        acks = Acks()
        writer.submit([record(1)], acks)
        writer.submit([record(0)], acks)  # its request id is already a row
        writer.submit([dataclasses.replace(record(2), label=None)], acks)  # type: ignore[arg-type]
        writer.submit([record(3)], acks)
        writer.close()
        assert sorted(r.request_id for r in store.query()) == ["req-0", "req-1", "req-3"]
        assert acks.statuses == [COMMITTED, FAILED, FAILED, COMMITTED]
        assert writer.rejected == 2 == writer.failed and writer.failed_transactions == 0
    finally:
        store.close()
