"""The CLI's error translation: system errors a user can fix are one line, a closed pipe is quiet."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import click
import pytest
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


# ---------------------------------------------------------------- classify


def _run_with_edge(root: Path) -> Path:
    from support.bundles import make_bundle

    make_bundle(root / "edge")
    return root


def test_classify_restores_an_edge_bundle_a_crash_left_aside(tmp_path: Path) -> None:
    from hybridroute.cli import main

    run = _run_with_edge(tmp_path / "run")
    (run / "edge").rename(run / ".edge-aside")  # killed between setting the old bundle aside and installing the new

    result = CliRunner().invoke(main, ["classify", "--run", str(run), "hi"])

    assert result.exit_code == 0, result.output
    assert result.output.endswith("\thi\n")
    assert (run / "edge" / "manifest.json").is_file()
    assert not (run / ".edge-aside").exists()


def test_classify_still_takes_a_bundle_folder(tmp_path: Path) -> None:
    from hybridroute.cli import main

    run = _run_with_edge(tmp_path / "run")

    result = CliRunner().invoke(main, ["classify", "--run", str(run / "edge"), "hi"])

    assert result.exit_code == 0, result.output
    assert result.output.endswith("\thi\n")


@pytest.mark.parametrize("text", ["\u200b", " \u2060 "])
def test_classify_refuses_a_text_of_zero_width_characters_as_blank(tmp_path: Path, text: str) -> None:
    from hybridroute.cli import main

    run = _run_with_edge(tmp_path / "run")

    result = CliRunner().invoke(main, ["classify", "--run", str(run), "fine", text])

    assert result.exit_code == 2
    assert "text 2 is blank" in result.output


def test_classify_refuses_a_manifest_naming_a_file_outside_the_bundle_in_one_line(tmp_path: Path) -> None:
    import json

    from hybridroute.cli import main

    run = _run_with_edge(tmp_path / "run")
    manifest = run / "edge" / "manifest.json"
    data = json.loads(manifest.read_text(encoding="utf-8"))
    data["files"]["/dev/zero"] = "00"
    manifest.write_text(json.dumps(data), encoding="utf-8")

    result = CliRunner().invoke(main, ["classify", "--run", str(run), "hi"])

    assert result.exit_code == 1
    assert result.output.strip() == (
        f"Error: {manifest}: manifest field 'files' names '/dev/zero', which is not a file in the bundle folder; "
        "entries must be plain file names (no '/' or '\\', not '.' or '..')"
    )
