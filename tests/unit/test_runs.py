"""Run folders: the command a missing step names must be one the CLI accepts; run.json is replaced whole."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from hybridroute.cli import main
from hybridroute.errors import ArtifactError
from hybridroute.runs import RunLayout, step_command


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        ("compress", "hybridroute compress --run runs/a"),
        ("calibrate", "hybridroute calibrate --run runs/a"),
        ("finetune", "hybridroute finetune --out runs/a"),
        ("adapt", "hybridroute adapt --out runs/a"),
        ("train", "hybridroute train --data FILE --out runs/a"),
    ],
)
def test_each_step_is_named_with_the_flag_its_command_takes(step: str, expected: str) -> None:
    assert step_command(step, Path("runs/a")) == expected


@pytest.mark.parametrize("step", ["compress", "calibrate", "finetune", "adapt", "train"])
def test_the_named_command_parses(step: str) -> None:
    words = step_command(step, Path("runs/a")).split()[1:]
    result = CliRunner().invoke(main, [*words, "--help"])  # --help parses every option given before it
    assert result.exit_code == 0, result.output


def test_a_missing_step_names_its_command(tmp_path: Path) -> None:
    layout = RunLayout(tmp_path)
    with pytest.raises(ArtifactError) as info:
        layout.require(layout.onnx_fp32, "compress")
    assert str(info.value) == f"{tmp_path / 'onnx_fp32'} is missing: run `hybridroute compress --run {tmp_path}` first"


def test_run_json_is_replaced_whole_or_not_at_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    layout = RunLayout(tmp_path)
    layout.update_info(data={"checksum": "abc"})
    mode = layout.info_file.stat().st_mode
    (tmp_path / "plain.json").write_text("{}")
    assert mode == (tmp_path / "plain.json").stat().st_mode  # the permissions a plain write gives

    def crash(*args: object) -> None:
        raise OSError("simulated crash before the rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated crash"):
        layout.update_info(compress={"size_mb": 1.0})
    assert layout.read_info() == {"data": {"checksum": "abc"}}  # the old file, intact and valid JSON
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.json", "run.json"]  # no temporary file left
    monkeypatch.undo()
    layout.update_info(compress={"size_mb": 1.0})
    assert layout.read_info() == {"data": {"checksum": "abc"}, "compress": {"size_mb": 1.0}}


def test_rebuilding_keeps_the_old_folder_until_the_new_one_is_complete(tmp_path: Path) -> None:
    from hybridroute.runs import rebuilding

    target = tmp_path / "students" / "L1"
    target.mkdir(parents=True)
    (target / "run.json").write_text("old")

    with pytest.raises(RuntimeError, match="training failed"), rebuilding(target):
        target.mkdir()
        (target / "run.json").write_text("half")
        raise RuntimeError("training failed")
    assert (target / "run.json").read_text() == "old"

    with rebuilding(target):
        assert not target.exists()  # built from scratch, the old one aside
        target.mkdir()
        (target / "run.json").write_text("new")
    assert (target / "run.json").read_text() == "new"
    assert sorted(p.name for p in target.parent.iterdir()) == ["L1"]


def test_rebuilding_a_folder_that_does_not_exist_yet_leaves_nothing_on_failure(tmp_path: Path) -> None:
    from hybridroute.runs import rebuilding

    target = tmp_path / "classifier"
    with pytest.raises(RuntimeError), rebuilding(target):
        target.mkdir()
        raise RuntimeError("stopped")
    assert list(tmp_path.iterdir()) == []
