"""Run folders: the command a missing step names must be one the CLI accepts."""

from __future__ import annotations

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
