"""The CLI's error translation: system errors a user can fix are one line, a closed pipe is quiet."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import click
from click.testing import CliRunner

from hybridroute.cli import HybridGroup, _os_error_message


def _group_writing_to(path: Path) -> click.Group:
    @click.group(cls=HybridGroup)
    def group() -> None:
        """A stand-in for ``hybridroute`` with one command."""

    @group.command()
    def write() -> None:
        path.write_text("result")

    return group


def test_writing_into_a_directory_is_one_line_naming_the_path(tmp_path: Path) -> None:
    result = CliRunner().invoke(_group_writing_to(tmp_path), ["write"])

    assert result.exit_code == 1
    assert result.output.strip() == f"Error: Is a directory: {tmp_path}"


def test_writing_below_a_file_is_one_line_and_not_called_a_bug(tmp_path: Path) -> None:
    (tmp_path / "run").write_text("a file, not a folder")

    result = CliRunner().invoke(_group_writing_to(tmp_path / "run" / "out.json"), ["write"])

    assert result.exit_code == 1
    assert result.output.strip() == f"Error: Not a directory: {tmp_path / 'run' / 'out.json'}"
    assert "bug" not in result.output


def test_an_os_error_without_a_path_keeps_its_reason() -> None:
    assert _os_error_message(OSError(28, "No space left on device")) == "No space left on device"
    assert _os_error_message(OSError(1, "Operation not permitted", "a", None, "b")) == "Operation not permitted: a -> b"


def test_a_reader_that_stops_early_gets_no_error_message() -> None:
    # `hybridroute ... | head`: the pipe closes while the command still writes.
    script = textwrap.dedent(
        """
        import click
        from hybridroute.cli import HybridGroup

        @click.group(cls=HybridGroup)
        def group():
            pass

        @group.command()
        def flood():
            for _ in range(100_000):
                click.echo("x" * 100)

        group(["flood"])
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()
    proc.stdout.close()
    stderr = proc.stderr.read()
    proc.wait(timeout=60)

    assert proc.returncode == 128 + signal.SIGPIPE
    assert stderr == ""
