"""`hybridroute audit`, `report` and `monitor` say clearly what is wrong with the log they are given."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from hybridroute.cli import main
from hybridroute.monitoring.audit import SQLiteAuditStore


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "audit.sqlite"
    SQLiteAuditStore(path).close()
    return path


@pytest.mark.parametrize("option", ["--since", "--until"])
def test_an_empty_time_bound_is_refused_not_ignored(log: Path, option: str) -> None:
    result = CliRunner().invoke(main, ["audit", "--db", str(log), option, ""])
    assert result.exit_code != 0 and "time '' is not ISO 8601" in result.output


def test_a_password_in_the_url_parameters_is_never_printed() -> None:
    url = "postgresql://127.0.0.1:1/db?user=u&password=s3cret"
    result = CliRunner().invoke(main, ["report", "--db", url])
    assert result.exit_code != 0 and "password=***" in result.output and "s3cret" not in result.output


@pytest.mark.parametrize("command", ["audit", "report", "monitor"])
def test_a_foreign_audit_table_is_a_one_line_error(tmp_path: Path, command: str) -> None:
    path = tmp_path / "other.sqlite"
    with contextlib.closing(sqlite3.connect(path)) as connection:
        connection.execute("CREATE TABLE audit (x)")
        connection.commit()
    result = CliRunner().invoke(main, [command, "--db", str(path)])
    assert result.exit_code != 0 and "is not a hybridroute audit log (missing columns: id, time" in result.output
    assert "OperationalError" not in result.output and "Traceback" not in result.output
