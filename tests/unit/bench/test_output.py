from __future__ import annotations

import json
from pathlib import Path

import pytest

from hybridroute.bench.output import write_json
from hybridroute.errors import ConfigError
from support.files import run_with_file_size_limit


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


def test_a_result_cut_off_midway_leaves_the_previous_one(tmp_path: Path) -> None:
    path = write_json({"old": True}, tmp_path / "bench.json")
    result = run_with_file_size_limit(
        "from hybridroute.bench.output import write_json\nfrom hybridroute.errors import ConfigError\n",
        f"""
try:
    write_json({{"rows": list(range(10_000))}}, {str(path)!r})
except ConfigError as exc:
    print(exc)
""",
    )
    assert "File too large" in result.stdout, result.stderr  # the write really was cut off, and named
    assert json.loads(path.read_text(encoding="utf-8")) == {"old": True}
    assert [p.name for p in tmp_path.iterdir()] == ["bench.json"]


ROUTING_RESULT = {
    "curves": {"confidence": {"apgr": 0.5, "cloud_share": [0.0, 0.5, 1.0], "accuracy": [0.8, 0.9, 0.95]}},
    "edge_only_accuracy": 0.8,
    "cloud_only_accuracy": 0.95,
    "operating_point": {"cloud_share": 0.5, "accuracy": 0.9, "policy": "confidence"},
    "policies": {"tutorial": {"cloud_call_share": 1.0, "accuracy": 0.95}},
    "test_rows": 3,
}


def test_a_plot_cut_off_midway_leaves_the_previous_one(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from hybridroute.bench.routing import save_plot

    path = save_plot(ROUTING_RESULT, tmp_path / "routing.png")
    previous = path.read_bytes()
    assert previous.startswith(b"\x89PNG") and len(previous) > 4096
    result = run_with_file_size_limit(
        "from matplotlib.backends.backend_agg import FigureCanvasAgg\nfrom matplotlib.figure import Figure\n"
        "from hybridroute.bench.routing import save_plot\n",
        f"""
result = {ROUTING_RESULT!r}
result["test_rows"] = 4  # another title: a different picture
try:
    save_plot(result, {str(path)!r})
except OSError as exc:
    print(exc.errno)
""",
        limit=4096,
    )
    assert result.stdout.strip() == "27", result.stderr  # EFBIG: the write really was cut off
    assert path.read_bytes() == previous
    assert [p.name for p in tmp_path.iterdir()] == ["routing.png"]


def test_a_plot_takes_its_format_from_the_suffix(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from hybridroute.bench.routing import save_plot

    assert save_plot(ROUTING_RESULT, tmp_path / "deep" / "r.svg").read_text(encoding="utf-8").lstrip().startswith("<")
    assert save_plot(ROUTING_RESULT, tmp_path / "r.png").read_bytes().startswith(b"\x89PNG")
