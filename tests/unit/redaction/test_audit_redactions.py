"""The audit log stores redaction counts, never raw values."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from pathlib import Path

from hybridroute.monitoring.audit import AuditRecord, SQLiteAuditStore


def record(request_id: str, redactions: str | None) -> AuditRecord:
    return AuditRecord(
        1.0, request_id, "hash", None, "refund", 0.9, "cloud", "low_confidence", 12.0, 2.0, 10.0, 0.001,
        "cloud-v1", "edge-v1", "refund", 0.4, redactions=redactions,
    )  # fmt: skip


def test_redaction_counts_round_trip(tmp_path: Path) -> None:
    store = SQLiteAuditStore(tmp_path / "audit.db")
    store.write_many([record("r1", json.dumps({"EMAIL": 1})), record("r2", None)])
    stored = {r.request_id: r for r in store.query()}
    assert json.loads(stored["r1"].redactions) == {"EMAIL": 1}
    assert stored["r2"].redactions is None and stored["r1"].text is None
    store.close()


def test_an_audit_db_from_before_redaction_gains_the_column(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old_columns = [f.name for f in dataclasses.fields(AuditRecord) if f.name != "redactions"]
    with sqlite3.connect(path) as connection:
        connection.execute(f"CREATE TABLE audit (id INTEGER PRIMARY KEY, {', '.join(old_columns)})")
    store = SQLiteAuditStore(path)
    store.write_many([record("r1", json.dumps({"CARD": 2}))])
    assert json.loads(store.query()[0].redactions) == {"CARD": 2}
    store.close()
