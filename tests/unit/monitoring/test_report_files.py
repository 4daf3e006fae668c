"""The health report's files are replaced whole: a report cut off midway leaves the previous one readable."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

from hybridroute.errors import ConfigError  # noqa: E402
from hybridroute.monitoring.report import Plot, render_report, write_report_files  # noqa: E402
from support.files import run_with_file_size_limit  # noqa: E402


def test_the_page_and_plots_are_written_beside_each_other(tmp_path: Path) -> None:
    out = write_report_files(tmp_path / "report.html", "<html></html>", [Plot("cost", "Cost", b"\x89PNG old")])
    assert out.read_text(encoding="utf-8") == "<html></html>"
    assert (tmp_path / "report_files" / "cost.png").read_bytes() == b"\x89PNG old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html", "report_files"]


@pytest.mark.parametrize(("page", "png"), [("'x' * 10_000", "b'small'"), ("'small'", "b'x' * 10_000")])
def test_a_report_cut_off_midway_leaves_the_previous_files(tmp_path: Path, page: str, png: str) -> None:
    out = write_report_files(tmp_path / "report.html", "<html>old</html>", [Plot("cost", "Cost", b"\x89PNG old")])
    result = run_with_file_size_limit(
        "from pathlib import Path\nfrom hybridroute.monitoring.report import Plot, write_report_files\n",
        f"""
try:
    write_report_files(Path({str(out)!r}), {page}, [Plot("cost", "Cost", {png})])
except OSError as exc:
    print(exc.errno)
""",
    )
    assert result.stdout.strip() == "27", result.stderr  # EFBIG: a write really was cut off
    assert out.read_text(encoding="utf-8") == "<html>old</html>"  # the page is written last, after its plots
    assert (tmp_path / "report_files" / "cost.png").read_bytes() in {b"\x89PNG old", b"small"}  # each file whole
    assert sorted(p.name for p in (tmp_path / "report_files").iterdir()) == ["cost.png"]


@pytest.mark.parametrize("name", ["adir", "", "afile/report.html", "clash.html"])
def test_a_bad_report_path_is_refused_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("x", encoding="utf-8")
    (tmp_path / "clash_files").write_text("x", encoding="utf-8")
    before = sorted(p.name for p in tmp_path.iterdir())
    refused = "report path|plots folder"
    with pytest.raises(ConfigError, match=refused) as caught:
        write_report_files(Path(name), "<html></html>", [Plot("cost", "Cost", b"\\x89PNG")])
    assert "\\n" not in str(caught.value)
    with pytest.raises(ConfigError, match=refused):
        render_report(tmp_path / "no-such.sqlite", Path(name))  # refused before the database is even read
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert list((tmp_path / "adir").iterdir()) == []


def test_a_report_in_a_new_folder_is_written(tmp_path: Path) -> None:
    out = write_report_files(tmp_path / "new" / "r.html", "<html></html>", [Plot("cost", "Cost", b"\\x89PNG")])
    assert out.is_file() and (tmp_path / "new" / "r_files" / "cost.png").is_file()
