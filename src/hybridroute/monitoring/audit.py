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
``failed`` and logged: at the latest when :meth:`AuditWriter.close`'s deadline
passes, every record not committed by then (queued, or in a transaction still
running) is given up, counted and logged, and the writer makes no further
attempt.

A record the database refuses for good is not retried: when a transaction fails with a data or integrity error
(a text holding a NUL character, which PostgreSQL cannot store; a duplicate request id), the batch is written
again with each record under its own savepoint (:meth:`SqlAuditStore.write_each`), still in one transaction:
the records refused again are set aside (counted in ``rejected`` and ``failed``, logged with their request id,
their callbacks answered ``failed``) and the others and the drop counter commit. One bad record never holds up
the ones after it.

The commands that read a log (``hybridroute audit``, ``monitor``, ``report``)
open it with :func:`open_audit_reader`: read-only, creating and changing
nothing, also on read-only storage. The CSV export neutralises cells that a
spreadsheet would run as a formula (see :func:`csv_cell`).

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
import io
import logging
import math
import os
import re
import secrets
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import astuple, dataclass, fields
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

from hybridroute.errors import ConfigError, HybridError
from hybridroute.files import create_bytes_atomic, write_text_atomic

logger = logging.getLogger(__name__)

COMMITTED = "committed"  # the record is a row in a committed transaction
DROPPED = "dropped"  # the queue was full: the record was not written, the committed drop counter holds it
FAILED = "failed"  # given up (the writer stopped while the database still failed): lost, and counted as lost
RETRYING = "retrying"  # a transaction failed (disk full, read-only): kept in memory and retried until it commits

AckCallback = Callable[[str], object]  # its return value is ignored


# ---------------------------------------------------------------- pure helpers


def text_hash(text: str, salt: bytes) -> str:
    """HMAC-SHA256 of a text under a per-deployment salt, as hex (see the module docstring for why).

    Example: text_hash("hi", b"s") == text_hash("hi", b"s") != text_hash("hi", b"t")
    """
    return hmac.new(salt, text.encode("utf-8"), hashlib.sha256).hexdigest()


def load_or_create_salt(path: Path) -> bytes:
    """The salt kept in ``path``, created (32 random bytes, hex, owner-only) on first use.

    Creation is atomic and the first creator wins: the salt is written whole to an owner-only temporary file,
    which is then hard-linked to ``path`` only if ``path`` does not exist yet. A crash leaves no salt or a
    whole one, and processes starting at once all read the one salt that was linked first (two salts would
    make one deployment's text hashes disagree). An empty or undecodable salt file is an error, not replaced.

    Example: load_or_create_salt(Path("RUN/audit.salt")) == load_or_create_salt(Path("RUN/audit.salt"))
    """
    path = Path(path)
    if not path.exists() and _create_salt_file(path):
        logger.info("created the audit salt %s (keep it: hashes made with another salt will not match)", path)
    return _read_salt(path)


def _create_salt_file(path: Path) -> bool:
    """Create a new owner-only salt file at ``path`` unless one is there; False when another process was first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return create_bytes_atomic(path, (secrets.token_hex(32) + "\n").encode("utf-8"), 0o600)


def _read_salt(path: Path) -> bytes:
    try:
        salt = path.read_text(encoding="utf-8").strip()
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: the audit salt file is not text ({exc}); delete it to create a new one") from exc
    if not salt:
        raise ConfigError(f"{path}: the audit salt file is empty; delete it to create a new one")
    return salt.encode("utf-8")


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def iso_time(unix_seconds: float) -> str:
    """Unix seconds as ISO 8601 in UTC, truncated (never rounded up) to the microsecond.

    Truncating keeps a printed time usable as a bound: ``parse_time(iso_time(t)) <= t``, so ``--since`` a
    record's printed time includes that record and ``--until`` it (exclusive) excludes it.

    Example: iso_time(0.0) -> "1970-01-01T00:00:00.000000+00:00"; iso_time(1.9999997) -> "...00:00:01.999999+00:00"
    """
    micros = math.floor(Fraction(unix_seconds) * 1_000_000)  # exact: float arithmetic could round up past the time
    return (_EPOCH + dt.timedelta(microseconds=micros)).isoformat(timespec="microseconds")


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


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # what makes a spreadsheet read a cell as a formula (OWASP)


def csv_cell(value: Any) -> Any:
    """A CSV cell a spreadsheet will not run: text starting with = + - @, a tab or a CR gets a leading quote.

    Raw texts, labels and model versions come from clients and deployments; opened in a spreadsheet, a cell
    like ``=HYPERLINK(...)`` would run (CSV injection). Numbers stay numbers.

    Example: csv_cell("=1+1") -> "'=1+1"; csv_cell("hello") -> "hello"; csv_cell(-0.5) -> -0.5
    """
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _csv_row(record: AuditRecord) -> list[Any]:
    row = [csv_cell(value) for value in astuple(record)]
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

    def write_each(self, records: Sequence[AuditRecord], dropped: int = 0) -> list[tuple[int, Exception]]:
        """Like :meth:`write_many`, but commit what it can: return the records refused for good (index, error)."""
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

    @property
    def database_errors(self) -> tuple[type[Exception], ...]:
        """The exception types by which this store's database driver says a statement failed.

        The DB-API drivers' errors share no base class, so a caller that must tell "the database refused"
        (read-only, full, gone away) from a bug asks the store, which knows its driver.
        """
        ...


PERMANENT_ERRORS = frozenset({"DataError", "IntegrityError"})  # DB-API names, shared by sqlite3 and psycopg


def is_permanent_error(exc: BaseException) -> bool:
    """Whether the database refused a statement for its data, so that retrying the same data cannot succeed.

    A DB-API ``DataError`` (a NUL character in PostgreSQL text, a value out of range) or ``IntegrityError``
    (a duplicate request id, a missing value), their subclasses included; recognised by class name, so
    that psycopg stays optional. A full disk, a lock or a lost connection is not permanent.

    Example: is_permanent_error(sqlite3.IntegrityError("UNIQUE")) -> True; is_permanent_error(OSError()) -> False
    """
    return any(cls.__name__ in PERMANENT_ERRORS for cls in type(exc).__mro__)


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


# Every audit log has these (the row id and the NOT NULL columns); newer, nullable ones may be missing.
REQUIRED_COLUMNS: tuple[str, ...] = ("id", *(n for n in COLUMNS if "NOT NULL" in _COLUMN_TYPES[n]))


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
    mark: str,
    since: float | None,
    until: float | None,
    tier: str | None,
    reason: str | None,
    limit: int | None,
    select_list: str | None = None,
) -> tuple[str, list[Any]]:
    """The SELECT for a query and its parameters; ``mark`` is the driver's placeholder.

    ``select_list`` replaces the column list (a reader of an older log selects NULL for newer columns).

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
    return f"SELECT {select_list or ', '.join(COLUMNS)} FROM audit{where} ORDER BY time, id{tail}", params


class SqlAuditStore:
    """The queries both stores share; subclasses open the connection and name the placeholder and driver errors.

    The defaults are SQLite's (a reader opens a SQLite log with this class itself).
    """

    mark = "?"
    database_errors: tuple[type[Exception], ...] = (sqlite3.Error, sqlite3.Warning)

    def __init__(self, connection: Any) -> None:
        self._connection = connection
        self._lock = threading.Lock()  # one connection, used by the writer thread and feedback requests
        self._insert = f"INSERT INTO audit ({', '.join(COLUMNS)}) VALUES ({', '.join([self.mark] * len(COLUMNS))})"
        self._select_list = ", ".join(COLUMNS)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Any]:
        """A cursor, under the lock; commit when the block ends, roll back when it raises.

        PostgreSQL opens a transaction for every statement, reads included; one left open after an error
        would refuse every later statement on this shared connection ("current transaction is aborted").
        """
        with self._lock:
            cursor = self._connection.cursor()
            try:
                yield cursor
                self._connection.commit()
            except BaseException:
                with contextlib.suppress(
                    Exception
                ):  # a connection gone away cannot roll back: the first error says why
                    self._connection.rollback()
                raise

    def _create_schema(self, id_column: str) -> None:
        with self._transaction() as cursor:
            for statement in schema_statements(id_column):
                cursor.execute(statement)
            for statement in added_column_statements(cursor):
                cursor.execute(statement)

    def use_existing_table(self, source: str) -> None:
        """For a reader: check that the audit table exists and select the columns it has; create or change nothing.

        Columns newer than the log read as None (a writer would add them; a reader leaves the log as it is).

        Raises:
            ConfigError: there is no readable ``audit`` table, or it lacks a column every audit log has
                (:data:`REQUIRED_COLUMNS`); ``source`` names the database in the message.
        """
        try:
            with self._transaction() as cursor:
                cursor.execute("SELECT * FROM audit LIMIT 0")
                existing = {d[0] for d in cursor.description}
        except Exception as exc:  # the driver's own error type: sqlite3, psycopg
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ConfigError(
                f"audit database {source} has no readable audit table ({reason}); pass the database the edge "
                "service writes (--db)"
            ) from exc
        missing = [name for name in REQUIRED_COLUMNS if name not in existing]
        if missing:
            raise ConfigError(
                f"audit database {source}: its audit table is not a hybridroute audit log (missing columns: "
                f"{', '.join(missing)}); pass the database the edge service writes (--db)"
            )
        self._select_list = ", ".join(n if n in existing else f"NULL AS {n}" for n in COLUMNS)

    def write_many(self, records: Sequence[AuditRecord], dropped: int = 0) -> None:
        """Insert records and add ``dropped`` to the drop counter, in one transaction."""
        with self._transaction() as cursor:
            if records:
                self._insert_rows(cursor, records)
            self._add_dropped(cursor, dropped)

    def write_each(self, records: Sequence[AuditRecord], dropped: int = 0) -> list[tuple[int, Exception]]:
        """Like :meth:`write_many`, but set aside the records the database refuses for good; return them.

        Each record is inserted under its own savepoint, in one transaction: a record refused with a permanent
        error (:func:`is_permanent_error`: a NUL character PostgreSQL cannot store, a duplicate request id) is
        rolled back alone and returned as ``(its index, the error)``; the others and ``dropped`` commit.

        Raises:
            Exception: any other (transient) failure; the whole transaction is rolled back.
        """
        refused: list[tuple[int, Exception]] = []
        with self._transaction() as cursor:
            for index, record in enumerate(records):
                cursor.execute("SAVEPOINT audit_record")
                try:
                    self._insert_rows(cursor, [record])
                except Exception as exc:
                    if not is_permanent_error(exc):
                        raise
                    cursor.execute("ROLLBACK TO SAVEPOINT audit_record")
                    refused.append((index, exc))
                cursor.execute("RELEASE SAVEPOINT audit_record")
            self._add_dropped(cursor, dropped)
        return refused

    def _insert_rows(self, cursor: Any, records: Sequence[AuditRecord]) -> None:
        cursor.executemany(self._insert, [astuple(r) for r in records])

    def _add_dropped(self, cursor: Any, dropped: int) -> None:
        if dropped:
            m = self.mark
            cursor.execute(
                f"INSERT INTO audit_meta (key, value) VALUES ('dropped', {m}) "
                f"ON CONFLICT (key) DO UPDATE SET value = audit_meta.value + {m}",
                (dropped, dropped),
            )

    def add_feedback(self, request_id: str, label: str, at: float) -> bool:
        """Store the true label for a request; False when the request id is unknown."""
        m = self.mark
        with self._transaction() as cursor:
            cursor.execute(
                f"UPDATE audit SET feedback_label = {m}, feedback_time = {m} WHERE request_id = {m}",
                (label, at, request_id),
            )
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
        sql, params = select_sql(self.mark, since, until, tier, reason, limit, self._select_list)
        with self._transaction() as cursor:  # its commit ends the read transaction PostgreSQL opens implicitly
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        return [_record_from_row(row) for row in rows]

    def _scalar(self, sql: str) -> int:
        with self._transaction() as cursor:
            cursor.execute(sql)
            row = cursor.fetchone()
        return int(row[0]) if row else 0

    def count(self) -> int:
        """How many records are stored."""
        return self._scalar("SELECT COUNT(*) FROM audit")

    def dropped(self) -> int:
        """How many records were dropped on queue overflow (committed counter)."""
        return self._scalar("SELECT value FROM audit_meta WHERE key = 'dropped'")

    def export_csv(self, path: Path, **filters: Any) -> int:
        """Write the records :meth:`query` selects (same keyword filters) to CSV, times in ISO 8601 UTC.

        Text cells that a spreadsheet would run as a formula get a leading ``'`` (:func:`csv_cell`). The file is
        replaced whole (:func:`write_text_atomic`): an export that fails leaves an earlier one as it was. Missing
        parent folders are created, as a benchmark's JSON result's are.
        """
        records = self.query(**filters)
        buffer = io.StringIO(newline="")
        writer = csv.writer(buffer)
        writer.writerow(COLUMNS)
        writer.writerows(_csv_row(r) for r in records)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(Path(path), buffer.getvalue())
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

    def __init__(self, path: str | Path, synchronous: str = "NORMAL", busy_timeout_s: float = 5.0) -> None:
        if synchronous not in {"NORMAL", "FULL"}:
            raise ConfigError(f"synchronous must be NORMAL or FULL, got {synchronous!r}")
        if not busy_timeout_s >= 0:
            raise ConfigError(f"busy_timeout_s must be >= 0 seconds, got {busy_timeout_s!r}")
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise ConfigError(
                f"cannot create the folder of the audit database {self.path}: {reason}; "
                "pass a path in a folder that exists or can be created"
            ) from exc
        try:  # busy_timeout_s: how long a transaction waits for another connection's lock before it fails
            connection = sqlite3.connect(self.path, check_same_thread=False, timeout=busy_timeout_s)
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

    def __init__(self, url: str, create_schema: bool = True) -> None:
        """Connect; a writer (``create_schema``) creates the tables, a reader only checks that they exist."""
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
            reason = " ".join(line.strip() for line in str(exc).splitlines())  # one line
            raise ConfigError(f"cannot connect to the audit database {redact_url(url)}: {reason}") from exc
        self.database_errors = (psycopg.Error,)
        super().__init__(connection)
        if create_schema:
            self._create_schema("id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY")
        else:
            self.use_existing_table(redact_url(url))


def redact_url(url: str) -> str:
    """A database URL without its password (in ``user:password@`` or a ``password=`` parameter), for messages.

    Example: redact_url("postgresql://u:secret@h/db?password=s&sslmode=require")
        -> "postgresql://u:***@h/db?password=***&sslmode=require"
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    rest = _PASSWORD_PARAMETER.sub(r"\1***", rest)  # first: a password parameter may hold an "@"
    credentials, at, host = rest.rpartition("@")
    if not at or ":" not in credentials:
        return f"{scheme}://{rest}"
    return f"{scheme}://{credentials.split(':', 1)[0]}:***@{host}"


_PASSWORD_PARAMETER = re.compile(r"([?&;]password=)[^&;#]*", re.IGNORECASE)


def sqlite_file(url: str | Path) -> Path | None:
    """The SQLite file of an audit database given as a path or ``sqlite:///PATH``; None for any other URL.

    Example: sqlite_file("sqlite:///a.sqlite") -> Path("a.sqlite"); sqlite_file("postgresql://h/db") -> None
    """
    text = str(url)
    if text.startswith("sqlite:///"):
        return Path(text.removeprefix("sqlite:///"))
    return None if "://" in text else Path(text)


def open_audit_store(url: str | Path) -> SqlAuditStore:
    """A store for a file path, ``sqlite:///path`` or ``postgresql://...`` (``postgres://`` too).

    Raises:
        ConfigError: an unknown scheme, an unopenable database, or PostgreSQL without psycopg.
    """
    text = str(url)
    if text.startswith(("postgresql://", "postgres://")):
        return PostgresAuditStore(text)
    path = sqlite_file(text)
    if path is None:
        raise ConfigError(
            f"audit database {redact_url(text)}: unknown scheme; use a file path, sqlite:///PATH or postgresql://..."
        )
    return SQLiteAuditStore(path)


def open_audit_reader(url: str | Path) -> SqlAuditStore:
    """A read-only store for commands that read an existing log (``audit``, ``monitor``, ``report``).

    The reader creates and changes nothing: a missing SQLite file, any other file, or a PostgreSQL
    database without an ``audit`` table is refused, so a mistyped ``--db`` never gains an audit schema.
    SQLite logs open read-only (un-checkpointed WAL data included), also on read-only storage
    (see :func:`connect_sqlite_read_only`).

    Raises:
        ConfigError: the file is missing, is not SQLite, or there is no ``audit`` table; an unknown scheme.
    """
    text = str(url)
    if text.startswith(("postgresql://", "postgres://")):
        return PostgresAuditStore(text, create_schema=False)
    path = sqlite_file(text)
    if path is None:
        return open_audit_store(text)  # refuses the unknown scheme
    if path.is_dir():
        raise ConfigError(f"audit database {path} is a folder; pass the SQLite file the edge service writes (--db)")
    if not path.is_file():
        raise ConfigError(f"audit database {path} does not exist; pass the file the edge service writes (--db)")
    try:
        connection, tables = connect_sqlite_read_only(path)
    except sqlite3.Error as exc:
        raise ConfigError(f"cannot open the audit database {path}: {exc}") from exc
    if "audit" not in tables:
        connection.close()
        raise ConfigError(f"{path} holds no audit log (no 'audit' table); pass the file the edge service writes")
    store = SqlAuditStore(connection)
    store.use_existing_table(str(path))
    return store


def _open_sqlite_uri(uri: str) -> tuple[sqlite3.Connection, set[str]]:
    """Open a SQLite URI and read its table names (the first read is where a WAL log needs its -shm file)."""
    connection = sqlite3.connect(uri, uri=True, check_same_thread=False)
    try:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.Error:
        connection.close()
        raise
    return connection, tables


def connect_sqlite_read_only(path: Path) -> tuple[sqlite3.Connection, set[str]]:
    """A read-only connection to a SQLite file and its table names.

    ``mode=ro`` reads the write-ahead log too (records not yet checkpointed), but a WAL-mode file needs its
    ``-shm`` (and ``-wal``) file beside it, created when missing. In a folder that is not writable (read-only
    storage, another user's folder) that fails; the file is then opened ``immutable=1``, which reads the main
    file only, and a warning says so when a ``-wal`` file holds records it cannot see.

    Raises:
        sqlite3.Error: the file cannot be opened or is not a database.
    """
    uri = path.resolve().as_uri()
    try:
        return _open_sqlite_uri(f"{uri}?mode=ro")
    except sqlite3.OperationalError:
        if os.access(path.resolve().parent, os.W_OK):
            raise
    wal = path.with_name(path.name + "-wal")
    if wal.is_file() and wal.stat().st_size > 0:
        logger.warning(
            "%s is in a folder that is not writable, so it is read without %s (%d bytes): records written since "
            "its last checkpoint are missing; copy both files to a writable folder to read them all",
            path,
            wal.name,
            wal.stat().st_size,
        )
    return _open_sqlite_uri(f"{uri}?mode=ro&immutable=1")


# ---------------------------------------------------------------- the writer


class WriterClosed(HybridError):
    """The audit writer has stopped."""


@dataclass
class _Entry:
    records: Sequence[AuditRecord]
    done: AckCallback | None


@dataclass
class _Batch:
    """Records taken off the queue together, the drops counted with them, and the callbacks waiting on those."""

    entries: list[_Entry]
    drops: int
    waiters: list[AckCallback]

    @property
    def size(self) -> int:
        """Records in the batch."""
        return sum(len(entry.records) for entry in self.entries)

    def records(self) -> list[AuditRecord]:
        """The records, in submission order."""
        return [r for entry in self.entries for r in entry.records]

    def pending_callbacks(self) -> list[AckCallback]:
        """Callbacks not answered yet (one a retry answered with RETRYING is not asked again); clears them."""
        pending = [entry.done for entry in self.entries if entry.done] + self.waiters
        for entry in self.entries:
            entry.done = None
        self.waiters = []
        return pending


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
        on_failed: called with the number of records given up (submitted after close, or closing while the
            database still fails; a metric).
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
        self._in_flight: _Batch | None = None  # the batch being written; close() may give it up meanwhile
        self._closing = False
        self._deadline: float | None = None  # time.monotonic() by which a closing writer gives up
        self._given_up = False  # everything left was given up: the thread stops
        self._last_error: str | None = None  # set while the database refuses transactions
        self._failing_since: float | None = None
        self._retry_s = retry_s
        lock = threading.RLock()
        self._condition = threading.Condition(lock)  # submit and close -> the writer: there is work
        self._wake = threading.Condition(lock)  # close -> a writer backing off: make the last attempts now
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self.committed = self.dropped = self.failed = self.transactions = self.failed_transactions = 0
        self.rejected = 0  # records the database refused for good (also counted in failed)
        self.min_retry_s, self.max_retry_s, self._clock = retry_s, max_retry_s, clock

    # ------------------------------------------------------------ API

    def start(self) -> None:
        """Start the writer thread."""
        self._thread.start()

    def submit(self, records: Sequence[AuditRecord], done: AckCallback | None = None) -> bool:
        """Queue records; ``done(status)`` runs once they are durable or lost.

        ``done`` runs on the writer thread, except for records refused here (a full queue while the database
        fails, a closed writer) and records given up by :meth:`close`, which are answered on the calling thread.

        Returns:
            False when the records were not queued: no room (dropped and counted) or the writer is closed
            (failed and counted).
        """
        with self._condition:
            if self._closing:
                self.failed += len(records)
                if self._on_failed and records:
                    self._on_failed(len(records))
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
        """Commit everything queued, then stop the thread; give up what is not committed within ``timeout_s``.

        At the deadline every record not committed, queued or in a transaction still running (a database
        locked by another process), is given up: counted in ``failed`` and ``on_failed``, its callback
        answered ``failed``, and the log says how many. The writer makes no attempt after the deadline.
        """
        with self._condition:
            self._closing = True
            self._deadline = time.monotonic() + timeout_s
            self._condition.notify_all()
            self._wake.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        with self._condition:
            left = self._claim_everything()  # nothing when the thread finished its work
        if self._thread.is_alive():
            why = f"the audit writer did not finish within {timeout_s:.1f} s ({self._last_error or 'still writing'})"
        else:
            why = "the audit writer was closed before it could write"
        self._lose(left, why)

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
            "rejected": self.rejected,
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

    def _past_deadline(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline

    def _deadline_reason(self) -> str:
        return f"the audit writer reached its close deadline ({self._last_error or 'records still queued'})"

    def _claim_everything(self) -> _Batch:
        """Take the batch being written, the queue and the unsaved drops off the writer, which stops (lock held).

        The records are counted in ``failed`` here, under the lock, so a batch committed after all can be
        taken back out (see :meth:`_committed`); :meth:`_lose` then tells the metric, the log and the callbacks.
        """
        claimed = self._in_flight or _Batch([], 0, [])
        claimed.entries.extend(self._entries)
        claimed.drops += self._unsaved_drops
        claimed.waiters.extend(self._drop_waiters)
        self._entries.clear()
        self._queued = self._unsaved_drops = 0
        self._drop_waiters = []
        self._in_flight = None
        self._given_up = True
        self.failed += claimed.size
        self._condition.notify_all()
        self._wake.notify_all()
        return claimed

    def _lose(self, batch: _Batch, why: str) -> None:
        """Report a batch given up (already counted in ``failed``): ``on_failed``, the log, callbacks ``failed``."""
        lost = batch.size
        with self._condition:
            callbacks = batch.pending_callbacks()
        if not lost and not batch.drops and not callbacks:
            return
        logger.error("%s: %d records and %d drops lost", why, lost, batch.drops)
        if lost and self._on_failed:
            self._on_failed(lost)
        for done in callbacks:
            done(FAILED)

    def _take(self) -> _Batch | None:
        with self._condition:
            while not self._entries and not self._unsaved_drops and not self._closing:
                self._condition.wait()
            if self._given_up:
                return None
            if self._closing and self._past_deadline():
                left = self._claim_everything()
            elif not self._entries and not self._unsaved_drops:
                return None  # closing and drained
            else:
                entries: list[_Entry] = []
                size = 0
                while self._entries and (not entries or size + len(self._entries[0].records) <= self.max_batch):
                    entry = self._entries.popleft()
                    entries.append(entry)
                    size += len(entry.records)
                self._queued -= size
                self._in_flight = _Batch(entries, self._unsaved_drops, self._drop_waiters)
                self._unsaved_drops, self._drop_waiters = 0, []
                return self._in_flight
        self._lose(left, self._deadline_reason())
        return None

    def _write(self, batch: _Batch) -> tuple[Exception | None, list[tuple[int, Exception]]]:
        """Commit a batch; return the transient error that failed it, or the records set aside (index, error)."""
        records = batch.records()
        try:
            self.store.write_many(records, dropped=batch.drops)
        except Exception as exc:  # a database failure must not kill the writer: keep the records, retry
            if not is_permanent_error(exc):
                return exc, []
        else:
            return None, []
        try:  # a record the database can never take must not hold up the others: commit them, set it aside
            return None, self.store.write_each(records, dropped=batch.drops)
        except Exception as exc:
            return exc, []

    def _committed(self, batch: _Batch, refused: Sequence[tuple[int, Exception]] = ()) -> None:
        records = batch.records()
        for index, exc in refused:
            logger.error(
                "audit record of request %r set aside: the database refuses it for good (%s: %s); "
                "it is counted as lost",
                records[index].request_id,
                type(exc).__name__,
                str(exc).splitlines()[0] if str(exc) else "",
            )
        with self._condition:
            given_up = self._in_flight is not batch  # close() counted it as lost while it was being written
            self._in_flight = None
            recovered = self._last_error is not None
            self._last_error = self._failing_since = None
            self._retry_s = self.min_retry_s
            self.committed += batch.size - len(refused)
            self.rejected += len(refused)
            self.transactions += 1
            # close() counted the whole batch as failed; otherwise only the refused records are lost
            self.failed += -(batch.size - len(refused)) if given_up else len(refused)
            answers = self._answers(batch, {index for index, _ in refused})
            dropped = batch.waiters
        if given_up:
            logger.warning(
                "%d audit records given up at close were committed after all (on_failed counted them)",
                batch.size - len(refused),
            )
            return
        if recovered:
            logger.warning("the audit database accepts transactions again; %d records were waiting", self._queued)
        if refused and self._on_failed:
            self._on_failed(len(refused))
        for done, status in answers:
            done(status)
        for done in dropped:
            done(DROPPED)

    @staticmethod
    def _answers(batch: _Batch, refused: set[int]) -> list[tuple[AckCallback, str]]:
        """Each waiting callback with its status: ``failed`` when a record of its submission was set aside."""
        answers: list[tuple[AckCallback, str]] = []
        start = 0
        for entry in batch.entries:
            end = start + len(entry.records)
            if entry.done:
                lost = any(start <= index < end for index in refused)
                answers.append((entry.done, FAILED if lost else COMMITTED))
            start = end
        return answers

    def _failed(self, batch: _Batch, exc: Exception) -> None:
        """Keep a failed batch at the front of the queue and back off; or, closing, give it up."""
        with self._condition:
            self.failed_transactions += 1
            first = self._last_error is None
            if first:
                self._failing_since = self._clock()
            self._last_error = f"{type(exc).__name__}: {exc}"
            if self._in_flight is not batch:
                return  # close() gave it up while it was being written
            if self._closing and self._past_deadline():
                lost: _Batch | None = self._claim_everything()
                why = self._deadline_reason()
            elif self._closing and self._retry_s >= self.max_retry_s:
                lost, why = batch, "the audit writer stops with the database failing"
                self.failed += batch.size
            else:
                lost, why = None, ""
                self._entries.extendleft(reversed(batch.entries))
                self._queued += batch.size
                self._unsaved_drops += batch.drops
            retrying = batch.pending_callbacks() if lost is None else []
            self._in_flight = None
        if first:  # the traceback once per outage, not once per retry
            logger.error(
                "audit transaction of %d records (+%d dropped) failed; retrying",
                batch.size,
                batch.drops,
                exc_info=exc,
            )
        if lost is not None:
            self._lose(lost, why)
            return
        for done in retrying:
            done(RETRYING)
        self._back_off()

    def _back_off(self) -> None:
        """Wait before the next attempt; only close() (not new submissions) cuts the wait short, once."""
        with self._condition:
            end = time.monotonic() + self._retry_s
            if self._deadline is not None:
                end = min(end, self._deadline)
            was_closing = self._closing
            self._wake.wait_for(
                lambda: self._given_up or self._closing != was_closing, max(0.0, end - time.monotonic())
            )
        self._retry_s = min(2 * self._retry_s, self.max_retry_s)

    def _run(self) -> None:
        while (batch := self._take()) is not None:
            error, refused = self._write(batch)
            if error is None:
                self._committed(batch, refused)
            else:
                self._failed(batch, error)
