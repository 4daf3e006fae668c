"""Where commands write: checked before any work, never over one of their inputs; and the benchmarks' inputs.

The runs here use the hand-made edge bundle of ``support.bundles`` (labels a, b, c): a real ONNX session, no torch.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from hybridroute.cli import main
from hybridroute.monitoring.audit import SQLiteAuditStore
from hybridroute.monitoring.replay import Phase, replay
from support.bundles import make_bundle


def invoke(*args: object) -> tuple[int, str]:
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result.exit_code, result.output


@pytest.fixture
def run(tmp_path: Path) -> Path:
    """A run folder holding only an edge bundle (labels a, b, c)."""
    make_bundle(tmp_path / "run" / "edge")
    return tmp_path / "run"


def write_labelled(path: Path, rows: list[tuple[str, str]], header: tuple[str, str] = ("text", "label")) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


ROWS = [(f"message number {i} {'long ' * (i % 5)}", "abc"[i % 3]) for i in range(60)]


@pytest.fixture
def test_csv(tmp_path: Path) -> Path:
    return write_labelled(tmp_path / "test.csv", ROWS)


@pytest.fixture
def audit_db(tmp_path: Path) -> Path:
    store = SQLiteAuditStore(tmp_path / "audit.sqlite")
    store.write_many([r.plain() for r in replay([Phase(120)], np.random.default_rng(0))])
    store.close()
    return tmp_path / "audit.sqlite"


# ---------------------------------------------------------------- an output that is an input


def test_audit_csv_over_the_audit_database_is_refused_and_the_database_kept(audit_db: Path) -> None:
    before = audit_db.read_bytes()
    for given in (str(audit_db), f"sqlite:///{audit_db}"):
        code, output = invoke("audit", "--db", given, "--csv", audit_db)
        assert code == 1
        assert output == f"Error: --csv {audit_db} is the audit database given with --db; choose another file\n"
    assert audit_db.read_bytes() == before
    code, output = invoke("audit", "--db", audit_db, "--limit", "1")
    assert code == 0 and "\tr0\tedge\t" in output, output  # the database still reads


def test_report_over_the_audit_database_is_refused_even_through_a_link(audit_db: Path, tmp_path: Path) -> None:
    link = tmp_path / "link.html"
    link.symlink_to(audit_db)
    before = audit_db.read_bytes()
    code, output = invoke("report", "--db", audit_db, "--out", link, "--window", "50", "--min-window", "10")
    assert code == 1
    assert f"the report path {link} is the audit database given with --db; choose another file" in output
    assert audit_db.read_bytes() == before and not (tmp_path / "link_files").exists()


def test_bench_tracking_json_over_the_test_file_is_refused(run: Path, test_csv: Path, tmp_path: Path) -> None:
    before = test_csv.read_bytes()
    same = tmp_path / "sub" / ".." / "test.csv"  # another name for the same file
    code, output = invoke("bench", "tracking", "--run", run, "--test", test_csv, "--window", "10", "--json", same)
    assert code == 1
    assert output == f"Error: --json {same} is the test file given with --test; choose another file\n"
    assert test_csv.read_bytes() == before


@pytest.mark.parametrize("which", ["data", "test"])
def test_bench_redaction_json_over_an_input_is_refused(run: Path, test_csv: Path, tmp_path: Path, which: str) -> None:
    data = write_labelled(tmp_path / "data.csv", ROWS)
    target = data if which == "data" else test_csv
    before = target.read_bytes()
    args = ["--data", data, "--bundle", run / "edge", "--test", test_csv, "--n", "20", "--json", target]
    code, output = invoke("bench", "redaction", *args)
    assert code == 1
    what = "data file 1 given with --data" if which == "data" else "the test file given with --test"
    assert output == f"Error: --json {target} is {what}; choose another file\n"
    assert target.read_bytes() == before


def test_bench_summary_json_over_a_result_is_refused(tmp_path: Path) -> None:
    result = tmp_path / "r1.json"
    result.write_text("{}", encoding="utf-8")
    code, output = invoke("bench", "summary", result, "--json", result)
    assert code == 1
    assert output == f"Error: --json {result} is result 1 of RESULTS; choose another file\n"
    assert result.read_text(encoding="utf-8") == "{}"


# ---------------------------------------------------------------- an output that cannot be written


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("afile/out.json", "it lies under {tmp}/afile, which is a file"),
        ("afolder", "it is a folder"),
    ],
)
def test_a_bad_json_path_is_refused_before_the_benchmark_runs(
    run: Path, test_csv: Path, tmp_path: Path, name: str, problem: str
) -> None:
    (tmp_path / "afile").write_text("x", encoding="utf-8")
    (tmp_path / "afolder").mkdir()
    out = tmp_path / name
    code, output = invoke("bench", "tracking", "--run", run, "--test", test_csv, "--window", "10", "--json", out)
    assert code == 1
    # the one line is all: the estimate (printed after the work) never ran
    assert output == (
        f"Error: --json {out} cannot be written: {problem.format(tmp=tmp_path)}; give a file name in a folder "
        "this process may write (missing folders are created)\n"
    )


def test_bench_routing_refuses_a_plot_over_its_json_and_a_plot_that_is_no_image(tmp_path: Path) -> None:
    test = write_labelled(tmp_path / "t.csv", ROWS)
    base = ["bench", "routing", "--run", tmp_path / "no-run", "--test", test]  # no run: the refusal comes first
    code, output = invoke(*base, "--json", tmp_path / "r.png")  # the plot defaults to r.png beside the JSON
    assert code == 1
    assert f"Error: the plot {tmp_path / 'r.png'} is the output of --json; choose another file" in output
    code, output = invoke(*base, "--plot", tmp_path / "plot.csv")
    assert code == 1
    assert f"plot {tmp_path / 'plot.csv'}: '.csv' is not an image format" in output
    assert "accepted suffixes: .png, .svg, .pdf" in output
    assert not (tmp_path / "plot.csv").exists() and not (tmp_path / "r.png").exists()


def test_audit_csv_into_new_folders_creates_them(audit_db: Path, tmp_path: Path) -> None:
    out = tmp_path / "new" / "sub" / "x.csv"
    code, output = invoke("audit", "--db", audit_db, "--csv", out)
    assert code == 0, output
    assert output == f"wrote 120 records to {out}\n"
    assert out.read_text(encoding="utf-8").startswith("time,")


# ---------------------------------------------------------------- bench tracking


def test_bench_tracking_refuses_labels_the_model_never_saw(run: Path, tmp_path: Path) -> None:
    test = write_labelled(tmp_path / "t.csv", [*ROWS, ("one more", "zebra")])
    code, output = invoke("bench", "tracking", "--run", run, "--test", test, "--window", "10")
    assert code == 1
    assert output == f"Error: {test}: labels never seen in training: ['zebra']; the model knows ['a', 'b', 'c']\n"


def test_bench_tracking_without_a_full_window_says_n_a_not_zero(run: Path, test_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "tracking.json"
    code, output = invoke("bench", "tracking", "--run", run, "--test", test_csv, "--window", "100", "--json", out)
    assert code == 0, output
    assert "0 windows of 100: mean |gap| n/a, max |gap| n/a points (sampling alone would give a mean |gap| of n/a)" in (
        output
    )
    tracking = json.loads(out.read_text(encoding="utf-8"))["tracking"]
    assert tracking["window_gaps"] == []
    assert tracking["mean_abs_window_gap"] is None and tracking["max_abs_window_gap"] is None
    assert tracking["sampling_abs_window_gap"] is None


# ---------------------------------------------------------------- bench redaction reads files as training does


def test_bench_redaction_refuses_a_latin1_file_in_one_line(tmp_path: Path) -> None:
    data = tmp_path / "latin1.csv"
    data.write_bytes("text,label\ncaf\u00e9 au lait please,a\n".encode("latin-1"))
    code, output = invoke("bench", "redaction", "--data", data, "--n", "10")
    assert code == 1
    assert output == f"Error: {data}: not UTF-8 text (invalid continuation byte at byte 14)\n"


def test_bench_redaction_refuses_a_repeated_column(tmp_path: Path) -> None:
    data = tmp_path / "twice.csv"
    data.write_text("text,text\nhello there,again\n", encoding="utf-8")
    code, output = invoke("bench", "redaction", "--data", data, "--n", "10")
    assert code == 1
    assert "the header names column 'text' 2 times" in output


def test_bench_redaction_names_its_own_option_for_a_missing_text_column(tmp_path: Path) -> None:
    data = tmp_path / "body.csv"
    data.write_text("body\nhello there\n", encoding="utf-8")
    code, output = invoke("bench", "redaction", "--data", data, "--n", "10")
    assert code == 1
    assert output == f"Error: {data}: column 'text' not found; the file has columns ['body'] (choose with --text-col)\n"


@pytest.mark.parametrize("name", ["bom.csv", "texts.jsonl", "texts.txt"])
def test_bench_redaction_reads_a_bom_csv_jsonl_and_txt(tmp_path: Path, name: str) -> None:
    texts = [f"please help me with order {i} today" for i in range(20)]
    data = tmp_path / name
    if name == "bom.csv":
        data.write_text("\ufefftext,label\n" + "".join(f"{t},a\n" for t in texts), encoding="utf-8")
    elif name == "texts.jsonl":
        data.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    else:
        data.write_text("\n".join(texts) + "\n", encoding="utf-8")
    out = tmp_path / "red.json"
    code, output = invoke("bench", "redaction", "--data", data, "--n", "10", "--json", out)
    assert code == 0, output
    assert json.loads(out.read_text(encoding="utf-8"))["sources"][str(data)] == {"texts": 20, "usable": 20}


def test_bench_redaction_refuses_test_labels_the_bundle_lacks_before_scoring(run: Path, tmp_path: Path) -> None:
    data = write_labelled(tmp_path / "data.csv", ROWS)
    test = write_labelled(tmp_path / "test.csv", [("hello there", "x"), ("bye now", "y")], ("text", "category"))
    code, output = invoke("bench", "redaction", "--data", data, "--n", "10", "--bundle", run / "edge", "--test", test)
    assert code == 1
    assert output == f"Error: {test}: labels never seen in training: ['x', 'y']; the model knows ['a', 'b', 'c']\n"


def test_bench_redaction_reads_the_category_column_of_a_test_file(run: Path, tmp_path: Path) -> None:
    data = write_labelled(tmp_path / "data.csv", ROWS)
    test = write_labelled(tmp_path / "test.csv", ROWS, ("text", "category"))
    out = tmp_path / "red.json"
    args = ["--data", data, "--n", "10", "--bundle", run / "edge", "--test", test, "--max-eval", "30", "--json", out]
    code, output = invoke("bench", "redaction", *args)
    assert code == 0, output
    assert json.loads(out.read_text(encoding="utf-8"))["accuracy_effect"]["n"] == 30


@pytest.mark.parametrize(("given", "missing"), [("--bundle", "--test"), ("--test", "--bundle")])
def test_bench_redaction_names_the_flag_a_bundle_or_test_needs(tmp_path: Path, given: str, missing: str) -> None:
    data = write_labelled(tmp_path / "data.csv", ROWS)
    code, output = invoke("bench", "redaction", "--data", data, given, tmp_path)
    assert code == 2
    assert f"Invalid value for {given}: needs {missing}" in output
    assert "RedactionBenchConfig" not in output


def test_bench_redaction_label_col_needs_a_test_file(tmp_path: Path) -> None:
    data = write_labelled(tmp_path / "data.csv", ROWS)
    code, output = invoke("bench", "redaction", "--data", data, "--label-col", "category")
    assert code == 2
    assert "Invalid value for --label-col: it names the label column of --test" in output
