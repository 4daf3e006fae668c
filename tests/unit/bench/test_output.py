from __future__ import annotations

import json
from pathlib import Path

import pytest

from hybridroute.bench.output import write_json
from hybridroute.errors import ConfigError


def test_a_result_round_trips_into_new_folders(tmp_path: Path) -> None:
    result = {"models": {"int8": {"accuracy": 0.9, "p95_ms": 4.1}}, "rows": [1, 2], "note": None}
    path = write_json(result, tmp_path / "deep" / "bench.json")
    assert json.loads(path.read_text(encoding="utf-8")) == result


def test_paths_are_written_as_text(tmp_path: Path) -> None:
    assert json.loads(write_json({"run": tmp_path}, tmp_path / "p.json").read_text()) == {"run": str(tmp_path)}


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_non_finite_number_is_a_bug_not_a_file(tmp_path: Path, value: float) -> None:
    with pytest.raises(ValueError, match="not JSON compliant"):
        write_json({"p95_ms": value}, tmp_path / "nan.json")
    assert not (tmp_path / "nan.json").exists()


def test_an_unwritable_path_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")
    with pytest.raises(ConfigError, match=f"cannot write the result to {blocker / 'out.json'}"):
        write_json({"a": 1}, blocker / "out.json")
