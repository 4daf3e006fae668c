"""The audit log: one row per routing decision, written off the request path.

Every answered text becomes an :class:`AuditRecord`: when, which request, a
salted hash of the text (the raw text only when configured), the answer, where
it was answered and why, latencies, cost, model versions, the text's length and
unknown-token rate (for the input drift check), and later the true label when
feedback arrives. Logs made before a column existed gain it on open (nullable).

Stores (:class:`AuditStore`): :class:`SQLiteAuditStore` (the default; WAL mode)
and :class:`PostgresAuditStore` (a ``postgresql://`` URL, through psycopg when
it is installed), with the same schema and the same queries.
:func:`open_audit_store` picks one from a path or URL.

:class:`AuditWriter` is the one writer: a background thread drains a bounded
queue and commits many records per transaction (group commit). A record that
does not fit in the queue is not written; it is counted, and that count is
itself committed with the next transaction (the ``dropped`` counter in the
``audit_meta`` table), so after a crash every submitted record is either a row
or part of that counter once its ``done`` callback has said so. The edge
service answers a request only after that callback (see
:mod:`hybridroute.serving.edge_app`).

When a transaction fails (disk full, a read-only disk or file, a database
gone away) nothing is thrown away: the records go back to the front of the
queue and are retried with backoff until the database takes them. Their
requests are answered at once with ``retrying`` (and, while the database keeps
failing, every new request too), because waiting for a disk to be freed would
stop the service from answering. That is the honest state of those records:
held in memory, written as soon as the database recovers, lost only if the
process dies first. The queue bound still holds (beyond it records are dropped
and counted, as always), and the failure is visible: :attr:`AuditWriter.health`
(the edge shows it on ``/readyz`` and as metrics) and the log. Only a writer
closed while the database still fails gives records up; they are counted in
``failed`` and logged.

Why a salted hash: customer messages are short and repetitive, so a plain
sha256 of one can be reversed by hashing likely messages (or enumerating order
numbers). An HMAC with a secret per-deployment salt still lets one deployment
join equal texts (duplicates, repeated complaints) while the audit database
alone, or a copy of it, reveals nothing, and hashes do not link across sites.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import hashlib
import hmac
import logging
import secrets
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import astuple, dataclass, fields
from pathlib import Path
from typing import Any, Protocol

from hybridroute.errors import ConfigError, HybridError

logger = logging.getLogger(__name__)

COMMITTED = "committed"  # the record is a row in a committed transaction
DROPPED = "dropped"  # the queue was full: the record was not written, the committed drop counter holds it
FAILED = "failed"  # given up (the writer stopped while the database still failed): lost, and counted as lost
RETRYING = "retrying"  # a transaction failed (disk full, read-only): kept in memory and retried until it commits

AckCallback = Callable[[str], None]


# ---------------------------------------------------------------- pure helpers


def text_hash(text: str, salt: bytes) -> str:
    """HMAC-SHA256 of a text under a per-deployment salt, as hex (see the module docstring for why).

    Example: text_hash("hi", b"s") == text_hash("hi", b"s") != text_hash("hi", b"t")
    """
    return hmac.new(salt, text.encode("utf-8"), hashlib.sha256).hexdigest()


def load_or_create_salt(path: Path) -> bytes:
    """The salt kept in ``path``, created (32 random bytes, hex, owner-only) on first use."""
    path = Path(path)
    if path.is_file():
        salt = path.read_text(encoding="utf-8").strip()
        if not salt:
            raise ConfigError(f"{path}: the audit salt file is empty; delete it to create a new one")
        return salt.encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    salt = secrets.token_hex(32)
    path.write_text(salt + "\n", encoding="utf-8")
    path.chmod(0o600)
    logger.info("created the audit salt %s (keep it: hashes made with another salt will not match)", path)
    return salt.encode("utf-8")


def iso_time(unix_seconds: float) -> str:
    """Unix seconds as ISO 8601 in UTC.

    Example: iso_time(0.0) -> "1970-01-01T00:00:00.000000+00:00"
    """
    return dt.datetime.fromtimestamp(unix_seconds, tz=dt.timezone.utc).isoformat(timespec="microseconds")


def parse_time(value: str) -> float:
    """ISO 8601 date or time (UTC unless it carries an offset) as unix seconds.

    Example: parse_time("1970-01-02") -> 86400.0
    """
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise ConfigError(f"time {value!r} is not ISO 8601; use e.g. 2024-05-01 or 2024-05-01T13:00:00+02:00") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed.timestamp()


# ---------------------------------------------------------------- the record


@dataclass(frozen=True)
class AuditRecord:
    """One routing decision, as stored.

    Attributes:
        time: unix seconds (UTC) when the answer was made.
        request_id: the id the client received; feedback refers to it.
        text_hash: :func:`text_hash` of the text.
        text: the raw text, only when the deployment stores raw text; else None.
        label: the answer.
        confidence: its calibrated probability.
        tier: "edge" or "cloud", where it was answered.
        reason: why (policy reason, or ``fallback:<cause>``).
        latency_ms: server time from request to answer (queueing and batching included).
        edge_latency_ms: the edge model's share of its batch (None when unknown).
        cloud_latency_ms: the cloud call's time (None when the cloud was not asked).
        cost: USD charged by the ledger.
        model_version: the version of the model that answered.
        edge_model_version: the edge model that ran (differs from ``model_version`` for cloud answers).
        edge_label: the edge's answer.
        edge_confidence: the edge's confidence.
        fallback: the cloud was wanted but failed; the edge answered.
        feedback_label: the true label, once feedback arrives.
        feedback_time: when it arrived.
        redactions: JSON counts of the entities replaced before the text went to the cloud,
            e.g. ``{"EMAIL": 1}`` (None when nothing was replaced); never the replaced values.
        text_length: characters in the text (input drift; None in logs written before it was recorded).
        unk_rate: share of the text's tokens the tokenizer could not place (input drift; None when unknown).
    """

    time: float
    request_id: str
    text_hash: str
    text: str | None
    label: str
    confidence: float
    tier: str
    reason: str
    latency_ms: float
    edge_latency_ms: float | None
    cloud_latency_ms: float | None
    cost: float
    model_version: str
    edge_model_version: str
    edge_label: str
    edge_confidence: float
    fallback: bool = False
    feedback_label: str | None = None
    feedback_time: float | None = None
    redactions: str | None = None
    text_length: int | None = None
    unk_rate: float | None = None


COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(AuditRecord))
TIER_CHOICES = ("edge", "cloud")


def _record_from_row(row: Sequence[Any]) -> AuditRecord:
    values = dict(zip(COLUMNS, row, strict=True))
    values["fallback"] = bool(values["fallback"])
    return AuditRecord(**values)


def _csv_row(record: AuditRecord) -> list[Any]:
    row = list(astuple(record))
    row[0] = iso_time(record.time)
    if record.feedback_time is not None:
        row[COLUMNS.index("feedback_time")] = iso_time(record.feedback_time)
    return row


# ---------------------------------------------------------------- stores


class AuditStore(Protocol):
    """Where audit records live."""

    def write_many(self, records: Sequence[AuditRecord], dropped: int = 0) -> None:
        """Insert records and add ``dropped`` to the drop counter, in one transaction."""
        ...

    def add_feedback(self, request_id: str, label: str, at: float) -> bool:
        """Store the true label for a request; False when the request id is unknown."""
        ...

    def query(
        self,
        since: float | None = None,
        until: float | None = None,
        tier: str | None = None,
        reason: str | None = None,
        limit: int | None = None,
    ) -> list[AuditRecord]:
        """Records in ``[since, until)``, optionally of one tier and reason, oldest first."""
        ...

    def count(self) -> int:
        """How many records are stored."""
        ...

    def dropped(self) -> int:
        """How many records were dropped on queue overflow (committed counter)."""
        ...

    def export_csv(self, path: Path, **filters: Any) -> int:
        """Write the records that :meth:`query` selects to a CSV file; return how many."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...


_COLUMN_TYPES = {
    "time": "DOUBLE PRECISION NOT NULL",
    "request_id": "TEXT NOT NULL UNIQUE",
    "text_hash": "TEXT NOT NULL",
    "text": "TEXT",
    "label": "TEXT NOT NULL",
    "confidence": "DOUBLE PRECISION NOT NULL",
    "tier": "TEXT NOT NULL",
    "reason": "TEXT NOT NULL",
    "latency_ms": "DOUBLE PRECISION NOT NULL",
    "edge_latency_ms": "DOUBLE PRECISION",
    "cloud_latency_ms": "DOUBLE PRECISION",
    "cost": "DOUBLE PRECISION NOT NULL",
    "model_version": "TEXT NOT NULL",
    "edge_model_version": "TEXT NOT NULL",
    "edge_label": "TEXT NOT NULL",
    "edge_confidence": "DOUBLE PRECISION NOT NULL",
    "fallback": "BOOLEAN NOT NULL",
    "feedback_label": "TEXT",
    "feedback_time": "DOUBLE PRECISION",
    "redactions": "TEXT",
    "text_length": "INTEGER",
    "unk_rate": "DOUBLE PRECISION",
}


def schema_statements(id_column: str) -> list[str]:
    """The DDL shared by SQLite and PostgreSQL (``id_column`` differs: rowid alias vs identity)."""
    columns = ",\n  ".join(f"{name} {_COLUMN_TYPES[name]}" for name in COLUMNS)
    return [
        f"CREATE TABLE IF NOT EXISTS audit (\n  {id_column},\n  {columns}\n)",
        "CREATE INDEX IF NOT EXISTS audit_time ON audit (time)",
        "CREATE INDEX IF NOT EXISTS audit_tier ON audit (tier, time)",
        "CREATE INDEX IF NOT EXISTS audit_reason ON audit (reason, time)",
        # request_id is UNIQUE, which indexes it.
        "CREATE TABLE IF NOT EXISTS audit_meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL)",
    ]


def added_column_statements(cursor: Any) -> list[str]:
    """ALTER TABLE statements for columns newer than an existing audit table (nullable ones only).

    Example: a table made before ``redactions`` existed -> ["ALTER TABLE audit ADD COLUMN redactions TEXT"]
    """
    cursor.execute("SELECT * FROM audit LIMIT 0")
    existing = {d[0] for d in cursor.description}
    return [f"ALTER TABLE audit ADD COLUMN {n} {_COLUMN_TYPES[n]}" for n in COLUMNS if n not in existing]


def select_sql(
    mark: str, since: float | None, until: float | None, tier: str | None, reason: str | None, limit: int | None
) -> tuple[str, list[Any]]:
    """The SELECT for a query and its parameters; ``mark`` is the driver's placeholder.

    Example: select_sql("?", 1.0, None, "edge", None, 5)
        -> ("SELECT ... FROM audit WHERE time >= ? AND tier = ? ORDER BY time, id LIMIT 5", [1.0, "edge"])
    """
    if tier is not None and tier not in TIER_CHOICES:
        raise ConfigError(f"tier must be one of {', '.join(TIER_CHOICES)}; got {tier!r}")
    if limit is not None and limit < 1:
        raise ConfigError(f"limit must be >= 1, got {limit!r}")
    conditions, params = [], []
    for clause, value in (("time >= ", since), ("time < ", until), ("tier = ", tier), ("reason = ", reason)):
        if value is not None:
            conditions.append(clause + mark)
            params.append(value)
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    tail = f" LIMIT {int(limit)}" if limit is not None else ""
    return f"SELECT {', '.join(COLUMNS)} FROM audit{where} ORDER BY time, id{tail}", params


class SqlAuditStore:
    """The queries both stores share; subclasses open the connection and name the placeholder."""

    mark = "?"

    def __init__(self, connection: Any) -> None:
        self._connection = connection
        self._lock = threading.Lock()  # one connection, used by the writer thread and feedback requests
        self._insert = f"INSERT INTO audit ({', '.join(COLUMNS)}) VALUES ({', '.join([self.mark] * len(COLUMNS))})"

    def _create_schema(self, id_column: str) -> None:
        with self._lock:
            cursor = self._connection.cursor()
            for statement in schema_statements(id_column):
                cursor.execute(statement)
            for statement in added_column_statements(cursor):
                cursor.execute(statement)
            self._connection.commit()

    def write_many(self, records: Sequence[AuditRecord], dropped: int = 0) -> None:
        """Insert records and add ``dropped`` to the drop counter, in one transaction."""
        m = self.mark
        with self._lock:
            cursor = self._connection.cursor()
            try:
                if records:
                    cursor.executemany(self._insert, [astuple(r) for r in records])
                if dropped:
                    cursor.execute(
                        f"INSERT INTO audit_meta (key, value) VALUES ('dropped', {m}) "
                        f"ON CONFLICT (key) DO UPDATE SET value = audit_meta.value + {m}",
                        (dropped, dropped),
                    )
                self._connection.commit()
            except Exception:
                self._connection.rollback()
                raise

    def add_feedback(self, request_id: str, label: str, at: float) -> bool:
        """Store the true label for a request; False when the request id is unknown."""
        m = self.mark
        with self._lock:
            cursor = self._connection.cursor()
            cursor.execute(
                f"UPDATE audit SET feedback_label = {m}, feedback_time = {m} WHERE request_id = {m}",
                (label, at, request_id),
            )
            self._connection.commit()
            return bool(cursor.rowcount)

    def query(
        self,
        since: float | None = None,
        until: float | None = None,
        tier: str | None = None,
        reason: str | None = None,
        limit: int | None = None,
    ) -> list[AuditRecord]:
        """Records in ``[since, until)``, optionally of one tier and reason, oldest first."""
        sql, params = select_sql(self.mark, since, until, tier, reason, limit)
        with self._lock:
            cursor = self._connection.cursor()
            cursor.execute(sql, params)
            rows = cursor.fetchall()
            self._connection.commit()  # end the read transaction (PostgreSQL opens one implicitly)
        return [_record_from_row(row) for row in rows]

    def _scalar(self, sql: str) -> int:
        with self._lock:
            cursor = self._connection.cursor()
            cursor.execute(sql)
            row = cursor.fetchone()
            self._connection.commit()
        return int(row[0]) if row else 0

    def count(self) -> int:
        """How many records are stored."""
        return self._scalar("SELECT COUNT(*) FROM audit")

    def dropped(self) -> int:
        """How many records were dropped on queue overflow (committed counter)."""
        return self._scalar("SELECT value FROM audit_meta WHERE key = 'dropped'")

    def export_csv(self, path: Path, **filters: Any) -> int:
        """Write the records :meth:`query` selects (same keyword filters) to CSV, times in ISO 8601 UTC."""
        records = self.query(**filters)
        with Path(path).open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(COLUMNS)
            writer.writerows(_csv_row(r) for r in records)
        return len(records)

    def close(self) -> None:
        """Release the connection."""
        with self._lock:
            self._connection.close()


class SQLiteAuditStore(SqlAuditStore):
    """The audit log in one SQLite file, in WAL mode.

    WAL lets readers (``hybridroute audit``, feedback) work while the writer
    commits. ``synchronous=NORMAL`` keeps every commit through a process crash
    (``kill -9``: the WAL is in the OS page cache); ``FULL`` also survives power
    loss, at an fsync per commit.
    """

    def __init__(self, path: str | Path, synchronous: str = "NORMAL") -> None:
        if synchronous not in {"NORMAL", "FULL"}:
            raise ConfigError(f"synchronous must be NORMAL or FULL, got {synchronous!r}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            connection = sqlite3.connect(self.path, check_same_thread=False, timeout=5.0)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute(f"PRAGMA synchronous={synchronous}")
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot open the audit database {self.path}: {exc}") from exc
        super().__init__(connection)
        self._create_schema("id INTEGER PRIMARY KEY")

    def journal_mode(self) -> str:
        """The journal mode in force ("wal")."""
        with self._lock:
            return str(self._connection.execute("PRAGMA journal_mode").fetchone()[0])


class PostgresAuditStore(SqlAuditStore):
    """The audit log in PostgreSQL (a fleet-wide view), same schema and queries, through psycopg 3."""

    mark = "%s"

    def __init__(self, url: str) -> None:
        try:
            import psycopg
        except ImportError as exc:
            raise ConfigError(
                f"audit database {redact_url(url)} is PostgreSQL, which needs psycopg: "
                "pip install 'psycopg[binary]' (or use a SQLite path)"
            ) from exc
        try:
            connection = psycopg.connect(url)
        except psycopg.Error as exc:
            raise ConfigError(f"cannot connect to the audit database {redact_url(url)}: {exc}") from exc
        super().__init__(connection)
        self._create_schema("id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY")


def redact_url(url: str) -> str:
    """A database URL without its password, for messages.

    Example: redact_url("postgresql://u:secret@h/db") -> "postgresql://u:***@h/db"
    """
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in credentials:
        return url
    return f"{scheme}://{credentials.split(':', 1)[0]}:***@{host}"


def open_audit_store(url: str | Path) -> SqlAuditStore:
    """A store for a file path, ``sqlite:///path`` or ``postgresql://...`` (``postgres://`` too).

    Raises:
        ConfigError: an unknown scheme, an unopenable database, or PostgreSQL without psycopg.
    """
    text = str(url)
    if text.startswith(("postgresql://", "postgres://")):
        return PostgresAuditStore(text)
    if text.startswith("sqlite:///"):
        return SQLiteAuditStore(text.removeprefix("sqlite:///"))
    if "://" in text:
        raise ConfigError(
            f"audit database {redact_url(text)}: unknown scheme; use a file path, sqlite:///PATH or postgresql://..."
        )
    return SQLiteAuditStore(text)


def open_audit_reader(url: str | Path) -> SqlAuditStore:
    """:func:`open_audit_store` for commands that read an existing log (``audit``, ``monitor``, ``report``).

    A SQLite path must already hold an audit log: a missing file, or any other file, is refused
    before it is opened for writing, so a mistyped ``--db`` never gains an audit schema.

    Raises:
        ConfigError: the file is missing, is not SQLite, or has no ``audit`` table.
    """
    text = str(url)
    if "://" in text and not text.startswith("sqlite:///"):
        return open_audit_store(text)
    path = Path(text.removeprefix("sqlite:///"))
    if not path.is_file():
        raise ConfigError(f"audit database {path} does not exist; pass the file the edge service writes (--db)")
    try:
        with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as connection:
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.Error as exc:
        raise ConfigError(f"cannot open the audit database {path}: {exc}") from exc
    if "audit" not in tables:
        raise ConfigError(f"{path} holds no audit log (no 'audit' table); pass the file the edge service writes")
    return SQLiteAuditStore(path)


# ---------------------------------------------------------------- the writer


class WriterClosed(HybridError):
    """The audit writer has stopped."""


@dataclass
class _Entry:
    records: Sequence[AuditRecord]
    done: AckCallback | None


class AuditWriter:
    """One background thread that commits queued records in batches (group commit).

    While one transaction commits, new records queue up and go into the next,
    so commits grow with load instead of their count. The queue holds at most
    ``capacity`` records; what does not fit is dropped and counted (see the
    module docstring).

    Args:
        store: where records go; the writer does not close it.
        capacity: most records waiting at once.
        max_batch: most records per transaction (a single larger submission still goes in one).
        on_dropped: called with the number of records each overflow dropped (a metric).
        on_failed: called with the number of records given up (closing while the database still fails; a metric).
        retry_s: pause before retrying a failed transaction, doubled after each failure...
        max_retry_s: ...up to this (a closing writer gives up once it has waited this long between attempts).
        clock: unix seconds, for ``failing_since``.
    """

    def __init__(
        self,
        store: AuditStore,
        capacity: int = 10_000,
        max_batch: int = 512,
        on_dropped: Callable[[int], None] | None = None,
        on_failed: Callable[[int], None] | None = None,
        retry_s: float = 0.05,
        max_retry_s: float = 2.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if capacity < 1 or max_batch < 1:
            raise ConfigError(f"capacity and max_batch must be >= 1, got {capacity!r} and {max_batch!r}")
        self.store, self.capacity, self.max_batch = store, capacity, max_batch
        self._on_dropped, self._on_failed = on_dropped, on_failed
        self._entries: deque[_Entry] = deque()
        self._queued = 0  # records in _entries
        self._unsaved_drops = 0  # dropped records not yet in a committed counter
        self._drop_waiters: list[AckCallback] = []
        self._closing = False
        self._last_error: str | None = None  # set while the database refuses transactions
        self._failing_since: float | None = None
        self._retry_s = retry_s
        self._condition = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self.committed = self.dropped = self.failed = self.transactions = self.failed_transactions = 0
        self.min_retry_s, self.max_retry_s, self._clock = retry_s, max_retry_s, clock

    # ------------------------------------------------------------ API

    def start(self) -> None:
        """Start the writer thread."""
        self._thread.start()

    def submit(self, records: Sequence[AuditRecord], done: AckCallback | None = None) -> bool:
        """Queue records; ``done(status)`` runs on the writer thread once they are durable or lost.

        Returns:
            False when the queue had no room (the records are dropped and counted).
        """
        with self._condition:
            if self._closing:
                self.failed += len(records)
                if done:
                    done(FAILED)
                return False
            if self._queued + len(records) > self.capacity:
                self._drop(records, done)
                return False
            if self._last_error is not None and done is not None:
                done(RETRYING)  # the database is failing: do not hold the request until it recovers
                done = None
            self._entries.append(_Entry(records, done))
            self._queued += len(records)
            self._condition.notify()
            return True

    def close(self, timeout_s: float = 10.0) -> None:
        """Commit everything queued, then stop the thread."""
        with self._condition:
            self._closing = True
            self._condition.notify()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                logger.error("the audit writer did not finish within %.1f s; %d records wait", timeout_s, self._queued)

    @property
    def queued(self) -> int:
        """Records waiting for a transaction (those kept for a retry included)."""
        return self._queued

    @property
    def failing(self) -> bool:
        """Whether the last transaction failed (records are being kept and retried)."""
        return self._last_error is not None

    def health(self) -> dict[str, Any]:
        """The writer's state for a readiness report: ok, the database's error, since when, records waiting."""
        return {
            "ok": self._last_error is None,
            "error": self._last_error,
            "failing_since": self._failing_since,
            "queued": self._queued,
            "failed_transactions": self.failed_transactions,
            "lost": self.failed,
        }

    # ------------------------------------------------------------ steps

    def _drop(self, records: Sequence[AuditRecord], done: AckCallback | None) -> None:
        # Called with the condition held.
        self._unsaved_drops += len(records)
        self.dropped += len(records)
        if done and self._last_error is not None:
            done(RETRYING)  # the drop counter waits for the database like the records do
        elif done:
            self._drop_waiters.append(done)
        if self._on_dropped:
            self._on_dropped(len(records))
        self._condition.notify()

    def _take(self) -> tuple[list[_Entry], int, list[AckCallback]] | None:
        with self._condition:
            while not self._entries and not self._unsaved_drops and not self._closing:
                self._condition.wait()
            if not self._entries and not self._unsaved_drops:
                return None  # closing and drained
            batch: list[_Entry] = []
            size = 0
            while self._entries and (not batch or size + len(self._entries[0].records) <= self.max_batch):
                entry = self._entries.popleft()
                batch.append(entry)
                size += len(entry.records)
            self._queued -= size
            drops, waiters = self._unsaved_drops, self._drop_waiters
            self._unsaved_drops, self._drop_waiters = 0, []
            return batch, drops, waiters

    def _commit(self, batch: list[_Entry], drops: int) -> bool:
        records = [r for entry in batch for r in entry.records]
        try:
            self.store.write_many(records, dropped=drops)
        except Exception as exc:  # a database failure must not kill the writer: keep the records, retry
            self._note_failure(exc, len(records), drops)
            return False
        if self._last_error is not None:
            logger.warning("the audit database accepts transactions again; %d records were waiting", self._queued)
        self._last_error = self._failing_since = None
        self._retry_s = self.min_retry_s
        self.committed += len(records)
        self.transactions += 1
        return True

    def _note_failure(self, exc: Exception, records: int, drops: int) -> None:
        self.failed_transactions += 1
        if self._last_error is None:  # the traceback once per outage, not once per retry
            logger.exception("audit transaction of %d records (+%d dropped) failed; retrying", records, drops)
            self._failing_since = self._clock()
        self._last_error = f"{type(exc).__name__}: {exc}"

    def _keep_for_retry(self, batch: list[_Entry], drops: int, waiters: list[AckCallback]) -> None:
        """Put a failed batch back at the front of the queue; answer its waiting requests with RETRYING."""
        for entry in batch:
            if entry.done:
                entry.done(RETRYING)
                entry.done = None
        for done in waiters:
            done(RETRYING)
        with self._condition:
            self._entries.extendleft(reversed(batch))
            self._queued += sum(len(entry.records) for entry in batch)
            self._unsaved_drops += drops
            self._condition.wait(self._retry_s)  # back off; close() wakes it to make the last attempts
        self._retry_s = min(2 * self._retry_s, self.max_retry_s)

    def _give_up(self, batch: list[_Entry], drops: int, waiters: list[AckCallback]) -> None:
        """Closing while the database still fails: the batch is lost; count it and say so."""
        lost = sum(len(entry.records) for entry in batch)
        logger.error("the audit writer stops with the database failing: %d records and %d drops lost", lost, drops)
        self.failed += lost
        if self._on_failed:
            self._on_failed(lost)
        for done in [*(e.done for e in batch if e.done), *waiters]:
            done(FAILED)

    def _run(self) -> None:
        while (taken := self._take()) is not None:
            batch, drops, waiters = taken
            if self._commit(batch, drops):
                for entry in batch:
                    if entry.done:
                        entry.done(COMMITTED)
                for done in waiters:
                    done(DROPPED)
            elif self._closing and self._retry_s >= self.max_retry_s:
                self._give_up(batch, drops, waiters)
            else:
                self._keep_for_retry(batch, drops, waiters)
