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


@pytest.mark.parametrize("command", ["classify", "route"])
def test_texts_with_bytes_that_are_not_utf8_are_refused_naming_the_text(tmp_path: Path, command: str) -> None:
    """``$'\\xff\\xfe bad'`` from a shell reaches Python as lone surrogates; refused before any model loads."""
    from hybridroute.cli import main

    run = _run_with_edge(tmp_path / "run")

    result = CliRunner().invoke(main, [command, "--run", str(run), "fine", "\udcff\udcfe bad bytes"])

    assert result.exit_code == 2
    assert "text 2 is not UTF-8 text (byte 0xFF at character 1); give texts in UTF-8" in result.output
    assert "bug" not in result.output


@pytest.mark.parametrize("text", ["\u200b\u200b", " \u2060 "])
def test_route_refuses_a_text_of_zero_width_characters_as_blank(tmp_path: Path, text: str) -> None:
    from hybridroute.cli import main

    run = _run_with_edge(tmp_path / "run")  # no cloud tier: the refusal comes before anything is opened

    result = CliRunner().invoke(main, ["route", "--run", str(run), "fine", text])

    assert result.exit_code == 2
    assert "text 2 is blank; give non-empty texts" in result.output


def test_classify_on_a_run_without_its_edge_bundle_names_the_step_to_run(tmp_path: Path) -> None:
    from hybridroute.cli import main

    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text("{}", encoding="utf-8")  # a run whose training stopped before compress

    outputs = [CliRunner().invoke(main, [command, "--run", str(run), "hi"]).output for command in ("classify", "route")]

    assert outputs[0] == outputs[1]
    assert (
        outputs[0].strip() == f"Error: {run / 'edge'} is missing: run `hybridroute train --data FILE --out {run}` first"
    )


SIGTERM_CHILD = """
import os, signal, sys, time
from click.testing import CliRunner
import hybridroute.workflow as workflow
from hybridroute.cli import main

def terminated(*_args, **_kwargs):
    os.kill(os.getpid(), signal.SIGTERM)  # as `kill PID` or a container stop would, mid-work
    time.sleep(30)

for name in ("train_all", "run_adapt", "run_finetune", "run_compress", "run_shrink"):
    setattr(workflow, name, terminated)
run = sys.argv[1]
for args in (
    ["train", "--data", "unused.csv", "--out", run],
    ["adapt", "--out", run],
    ["finetune", "--out", run],
    ["compress", "--run", run],
    ["shrink", "--run", run, "--layers", "1"],
):
    result = CliRunner().invoke(main, args)
    print(args[0], result.exit_code, result.output.strip(), flush=True)
"""


def test_sigterm_stops_the_training_commands_as_ctrl_c_does(tmp_path: Path) -> None:
    """Each command exits with "Error: interrupted"; unwrapped, SIGTERM would kill the process silently."""
    done = subprocess.run(
        [sys.executable, "-c", SIGTERM_CHILD, str(tmp_path / "run")], capture_output=True, text=True, timeout=300
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"{command} 1 Error: interrupted" for command in ("train", "adapt", "finetune", "compress", "shrink")
    ]
