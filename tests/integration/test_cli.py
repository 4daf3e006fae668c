"""The CLI through click's runner and as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from hybridroute.cli import main
from support.bundles import make_bundle
from support.json_files import write_json_file


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_train_then_classify(tmp_path: Path, toy_csv: Path, tiny_bert: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {
                "finetune": {"head_epochs": 2, "learning_rate": 1e-3, "batch_size": 16},
                "compress": {"max_accuracy_drop": 0.5},
            }
        )
    )
    code, output = invoke(
        "train",
        "--data",
        str(toy_csv),
        "--out",
        str(tmp_path / "run"),
        "--config",
        str(config),
        "--base-model",
        str(tiny_bert),
        "--epochs",
        "1",
        "--adapt-epochs",
        "0.5",
        "--seed",
        "5",
    )
    assert code == 0, output
    assert "edge bundle" in output and "validation accuracy" in output
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["finetune"]["config"]["epochs"] == 1
    assert info["adapt"]["config"]["epochs"] == 0.5
    assert info["adapt"]["config"]["seed"] == info["finetune"]["config"]["seed"] == 5  # not only the split's
    code, output = invoke("classify", "--run", str(tmp_path / "run"), "--json", "great thanks", "awful broken")
    assert code == 0, output
    rows = json.loads(output)
    assert [r["text"] for r in rows] == ["great thanks", "awful broken"]
    assert all(r["label"] in {"negative", "neutral", "positive"} for r in rows)


def test_steps_as_separate_commands(tmp_path: Path, toy_csv: Path, tiny_bert: Path) -> None:
    run = str(tmp_path / "run")
    code, output = invoke(
        "adapt",
        "--data",
        str(toy_csv),
        "--out",
        run,
        "--base-model",
        str(tiny_bert),
        "--epochs",
        "0.5",
        "--batch-size",
        "16",
    )
    assert code == 0, output
    assert "MLM held-out loss" in output
    code, output = invoke("finetune", "--out", run, "--epochs", "1", "--head-epochs", "1", "--batch-size", "16")
    assert code == 0, output
    code, output = invoke("compress", "--run", run, "--max-accuracy-drop", "0.5")
    assert code == 0, output
    settings = json.loads((tmp_path / "run" / "edge" / "manifest.json").read_text())["settings"]
    assert settings["smoothing"]["smoothed"] > 0
    flags = ("--no-smoothing", "--no-per-channel", "--keep-fp32-embeddings")
    code, output = invoke("compress", "--run", run, "--max-accuracy-drop", "0.5", *flags)
    assert code == 0, output
    settings = json.loads((tmp_path / "run" / "edge" / "manifest.json").read_text())["settings"]
    assert "smoothing" not in settings
    assert settings["quantization"]["per_channel"] is False and settings["quantization"]["op_types"] == ["MatMul"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--data", "missing.csv", "--out", "r"], "does not exist"),
        (["train", "--data", "{toy}", "--out", "r", "--label-col", "category"], "the file has columns"),
        (["train", "--data", "{toy}", "--out", "r", "--val-fraction", "0.9"], "val_fraction must be in"),
        (["train", "--data", "{toy}", "--out", "r", "--config", "{bad_config}"], "unknown FinetuneConfig keys"),
        (["train", "--data", "{toy}", "--out", "r", "--epochs", "-1"], "epochs must be in"),
        (["classify", "--run", "nowhere", "hello"], "does not exist"),
        (["classify", "--run", "{tmp}", "hello"], "manifest.json is missing"),
        (["compress", "--run", "{tmp}"], "hybridroute finetune"),
        # checked before any work: the run here has nothing to compress, yet the names are what fails
        (["compress", "--run", "{tmp}", "--auto", "--variants", "nope"], "unknown variants ['nope']"),
        (["compress", "--run", "{tmp}", "--variants", "int8-opt"], "only apply with --auto"),
        (["compress", "--run", "{tmp}", "--prefer", "speed"], "add --auto"),
        (["finetune", "--out", "{tmp}"], "no stored data split"),
        (["finetune", "--out", "{tmp}", "--augment", "2"], "2 copies need --teacher"),
        (["finetune", "--out", "{tmp}", "--distill-weight", "0.3"], "--distill-weight: only used with --teacher"),
        (
            ["finetune", "--out", "{tmp}", "--distill-weight", "0.3", "--distill-temperature", "3"],
            "--distill-weight, --distill-temperature: only used with --teacher",
        ),
        (["finetune", "--out", "{tmp}", "--distill-temperature", "3"], "--distill-temperature: only used with"),
        (
            ["train", "--data", "{toy}", "--out", "r", "--no-adapt", "--adapt-epochs", "2"],
            "--adapt-epochs: only used by the adaptation step, which --no-adapt skips",
        ),
        (["train", "--data", "{toy}", "--out", "r", "--no-adapt", "--corpus", "{toy}"], "--corpus: only used by the"),
        (
            ["train", "--data", "{toy}", "--out", "r", "--no-adapt", "--corpus", "{toy}", "--corpus-text-col", "b"],
            "--corpus, --corpus-text-col: only used by the adaptation step",
        ),
        (["finetune", "--out", "{tmp}", "--augment", "11", "--teacher", "{run}"], "not in the range 0<=x<=10"),
        (["serve", "cloud", "--run", "{run}"], "has no cloud tier"),
        (["compress", "--run", "{tmp}", "--auto-max-drop", "0.01"], "add --auto"),
        (["finetune", "--out", "{run}", "--val-fraction", "0.2", "--epochs", "0"], "--val-fraction: these describe"),
        (["adapt", "--out", "{run}", "--strict", "--label-col", "y"], "--label-col, --strict: these describe how"),
        (["train", "--data", "{toy}", "--out", "r", "--tier", "cloud", "--corpus", "{toy}"], "--corpus: the cloud"),
        (["train", "--data", "{toy}", "--out", "r", "--tier", "cloud", "--no-adapt"], "--no-adapt: the cloud tier"),
        (
            ["train", "--data", "{toy}", "--out", "r", "--tier", "cloud", "--corpus-text-col", "body"],
            "--corpus-text-col: the cloud tier",
        ),
        (["adapt", "--out", "{tmp}", "--corpus-text-col", "body"], "it names the text column of --corpus"),
        (["train", "--data", "{toy}", "--out", "r", "--corpus-text-col", "body"], "give --corpus FILE"),
        (["train", "--data", "{toy}", "--out", "r", "--seed", "-1"], "-1 is not in the range x>=0"),
        (["calibrate", "--run", "{run}", "--seed", "-3"], "-3 is not in the range x>=0"),
        (["shrink", "--run", "{run}", "--layers", "1", "--seed", "-3"], "-3 is not in the range x>=0"),
        (["bench", "tracking", "--run", "{run}", "--test", "{toy}", "--seed", "-1"], "not in the range x>=0"),
        (["bench", "compression", "--run", "{run}", "--test", "{toy}", "--limit", "-1"], "not in the range x>=0"),
        (["bench", "compression", "--run", "{run}", "--test", "{toy}", "--variant-names", "int8"], "add it or drop"),
        (
            ["bench", "compression", "--run", "{run}", "--test", "{toy}", "--variants", "--threads", "1"],
            "drop --threads",
        ),
    ],
)
def test_bad_input_gets_one_clear_line(
    tmp_path: Path, toy_csv: Path, tiny_run: Path, args: list[str], message: str
) -> None:
    bad_config = tmp_path / "bad.json"
    bad_config.write_text(json.dumps({"finetune": {"epochz": 3}}))
    values = {"toy": str(toy_csv), "bad_config": str(bad_config), "tmp": str(tmp_path), "run": str(tiny_run)}
    code, output = invoke(*[a.format(**values) for a in args])
    assert code != 0
    assert message in output
    assert "Traceback" not in output


@pytest.mark.parametrize("tier", ["edge", "cloud"])
@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("/no/such/model", "base model folder /no/such/model does not exist"),
        ("minlm", "base model minlm does not exist; give a packaged model (minilm, mpnet)"),  # never the network
    ],
)
def test_a_missing_base_model_fails_before_any_work(
    tmp_path: Path, toy_csv: Path, tier: str, name: str, message: str
) -> None:
    out = tmp_path / "run"
    args = ["train", "--data", str(toy_csv), "--out", str(out), "--tier", tier, "--base-model", name]
    code, output = invoke(*args)
    assert code != 0 and message in output and "Traceback" not in output, output
    assert not out.exists()  # the data split was not even written


def test_a_config_files_unknown_base_model_fails_before_the_run_folder_is_made(tmp_path: Path, toy_csv: Path) -> None:
    config = write_json_file(tmp_path / "config.json", {"adapt": {"base_model": "minlm"}})
    out = tmp_path / "run"
    code, output = invoke("train", "--data", str(toy_csv), "--out", str(out), "--config", str(config))
    assert code == 1 and "base model minlm does not exist" in output, output
    assert not out.exists()


def test_a_bug_still_reaches_the_user_as_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hybridroute.monitoring import report

    def broken(*_: object, **__: object) -> None:
        raise ValueError("boom")

    monkeypatch.setattr(report, "render_report", broken)
    args = ["report", "--db", str(tmp_path / "a.db"), "--out", str(tmp_path / "r.html")]
    code, output = invoke(*args)
    assert code == 1 and "Traceback" not in output
    assert output.strip().endswith(
        "Error: unexpected ValueError: boom (a bug in hybridroute: rerun with -v for the traceback and report it)"
    )
    verbose = CliRunner().invoke(main, ["-v", *args])
    assert isinstance(verbose.exception, ValueError)  # -v lets the traceback through


def test_module_entry_point_reports_errors_without_traceback(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "hybridroute", "classify", "--run", str(tmp_path), "hi"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip().startswith("Error:") and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_calibrate_then_route_with_in_process_cloud(tiny_hybrid_run: Path, tmp_path: Path) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_hybrid_run, run)
    code, output = invoke("calibrate", "--run", str(run), "--policy", "learned", "--cloud-share", "0.3")
    assert code == 0, output
    router = json.loads((run / "router.json").read_text())
    assert router["policy"] == "learned"
    edge_files = json.loads((run / "edge" / "manifest.json").read_text())["files"]
    assert router["edge_model_version"] == edge_files["model.onnx"][:12]  # compared with the edge when routing
    assert "router: learned, threshold " in output and "cloud share " in output and "cloud-only " in output
    code, output = invoke("route", "--run", str(run), "--json", "great thanks", "awful broken", "when do you open")
    assert code == 0, output
    rows = json.loads(output)
    assert len(rows) == 3
    assert all(r["tier"] in {"edge", "cloud"} and r["reason"] and r["cost"] >= 0.001 for r in rows)


def test_calibrate_defaults_to_a_five_percent_cloud_budget(tiny_hybrid_run: Path, tmp_path: Path) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_hybrid_run, run)
    code, output = invoke("calibrate", "--run", str(run))
    assert code == 0, output
    router = json.loads((run / "router.json").read_text())
    assert router["target"] == {"max_cloud_share": 0.05, "confidence": 0.9}
    assert router["metrics"]["expected_cloud_share"] < 0.05


def test_route_with_unreachable_cloud_still_answers(tiny_hybrid_run: Path) -> None:
    code, output = invoke(
        "route",
        "--run",
        str(tiny_hybrid_run),
        "--cloud-url",
        "http://127.0.0.1:9",
        "--policy",
        "always-cloud",
        "--json",
        "hello there",
    )
    assert code == 0, output
    (row,) = json.loads(output[output.index("[") :])
    assert row["tier"] == "edge" and row["fallback"] and row["reason"].startswith("fallback:")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["calibrate", "--run", "{run}", "--cloud-share", "1.5"], "share"),
        (
            ["calibrate", "--run", "{run}", "--cloud-share", "0.1", "--target-accuracy", "0.9"],
            "give one of --cloud-share, --max-cloud-share, --target-accuracy; "
            "got ['--cloud-share', '--target-accuracy']",
        ),
        (
            ["calibrate", "--run", "{run}", "--max-cloud-share", "0.1", "--share-confidence", "1"],
            "0.5<=x<=0.999",
        ),
        (
            ["calibrate", "--run", "{run}", "--cloud-share", "0.1", "--share-confidence", "0.6"],
            "--share-confidence: only used with --max-cloud-share (how surely traffic keeps in its budget); "
            "--cloud-share sets none; leave it out",
        ),
        (
            ["calibrate", "--run", "{run}", "--target-accuracy", "0.9", "--share-confidence", "0.6"],
            "--target-accuracy sets none",
        ),
        (["route", "--run", "{run}", "--policy", "learned", "hi"], "needs calibration"),
        (["route", "--run", "{run}", "--policy", "nonsense", "hi"], "unknown routing policy 'nonsense'; available:"),
        (["route", "--run", "{run}", "   "], "blank"),
    ],
)
def test_routing_commands_reject_bad_input(tiny_hybrid_run: Path, args: list[str], message: str) -> None:
    code, output = invoke(*[a.format(run=tiny_hybrid_run) for a in args])
    assert code != 0 and message in output and "Traceback" not in output


def _leaf_commands(command: click.Command, path: tuple[str, ...] = ()) -> list[tuple[str, click.Command]]:
    if isinstance(command, click.Group):
        return [leaf for name, sub in command.commands.items() for leaf in _leaf_commands(sub, (*path, name))]
    return [(" ".join(path), command)]


def test_every_command_and_option_says_what_it_is_for() -> None:
    undocumented = [
        f"{name} {param.opts[0]}" if isinstance(param, click.Option) else name
        for name, command in _leaf_commands(main)
        for param in [*command.params, None]
        if (param is None and not command.help) or (isinstance(param, click.Option) and not param.help)
    ]
    assert undocumented == []


def test_train_cloud_tier_takes_the_seed_and_the_config_file(
    tmp_path: Path, tiny_run: Path, tiny_bert: Path, toy_csv: Path
) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    config = tmp_path / "config.json"
    sections = {
        "adapt": {"epochs": 2},
        "finetune": {"head_epochs": 1, "batch_size": 16},
        "compress": {"parity_samples": 32},
    }
    config.write_text(json.dumps(sections))
    args = ["train", "--tier", "cloud", "--data", str(toy_csv), "--out", str(run), "--base-model", str(tiny_bert)]
    code, output = invoke(*args[:4], "missing.csv", *args[5:])
    assert code != 0 and "data file missing.csv does not exist (this run was trained on" in output
    code, output = invoke(*args, "--config", str(config), "--epochs", "1", "--seed", "9")
    assert code == 0, output
    assert "the config file's adapt section is not used" in output and "cloud tier: validation accuracy" in output
    cloud = json.loads((run / "run.json").read_text())["cloud"]["config"]
    assert (cloud["seed"], cloud["epochs"], cloud["head_epochs"], cloud["batch_size"]) == (9, 1, 1, 16)
    assert cloud["learning_rate"] == 4e-5  # the cloud tier's own default, which the file did not set
    assert json.loads((run / "cloud" / "manifest.json").read_text())["settings"]["export"]["parity_samples"] == 32


def test_a_call_larger_than_the_cloud_takes_is_split_not_refused(tiny_hybrid_run: Path) -> None:
    from hybridroute.hybrid import HybridSettings, open_hybrid
    from hybridroute.serving.cloud_app import CloudSettings, create_app
    from hybridroute.serving.uvicorn_runner import serve_in_thread

    texts = [f"message number {i} about my order" for i in range(10)]
    with serve_in_thread(create_app(CloudSettings(bundle=tiny_hybrid_run / "cloud", max_batch=4))) as url:
        for max_texts in (4, 64):
            settings = HybridSettings(tiny_hybrid_run, url, "always-cloud", cloud_max_texts=max_texts)
            answers = open_hybrid(settings).classify(texts)
            # 4: calls of at most 4 texts; 64: one call of 10, refused with 413, then sent again text by text
            assert {a.tier.value for a in answers} == {"cloud"}, max_texts
            assert not any(a.fallback for a in answers), max_texts


def test_adapt_reads_the_corpus_column_given_by_corpus_text_col(tmp_path: Path, tiny_bert: Path) -> None:
    corpus = tmp_path / "corpus.csv"
    rows = "".join(f"{i},my card number {i} was charged twice\n" for i in range(40))
    corpus.write_text("id,body\n" + rows, encoding="utf-8")
    run = tmp_path / "run"
    adapt = ["adapt", "--out", str(run), "--corpus", str(corpus), "--base-model", str(tiny_bert), "--batch-size", "16"]

    code, output = invoke(*adapt, "--corpus-text-col", "body")
    assert code == 0, output
    info = json.loads((run / "run.json").read_text())["adapt"]
    assert info["corpus_text_col"] == "body" and info["train_texts"] + info["heldout_texts"] == 40

    code, output = invoke(*adapt)
    assert code != 0 and "column 'text' not found; the file has columns ['body', 'id']" in output


# ---------------------------------------------------------------- serve: the body byte limit


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """What ``serve edge|cloud`` hands to the server, kept here instead of served (``port``: the socket's)."""
    from hybridroute.serving import uvicorn_runner

    seen: dict[str, Any] = {}

    def keep(app: Any, sock: Any, **options: Any) -> None:
        seen.update(app=app, port=sock.getsockname()[1], **options)

    monkeypatch.setattr(uvicorn_runner, "serve_foreground", keep)
    monkeypatch.setattr(uvicorn_runner, "freeze_startup_heap", lambda: 0)  # not the test process's heap
    return seen


def served_settings(app: Any) -> Any:
    """The settings an edge or cloud app was built with."""
    return app.state.service.settings if hasattr(app.state, "service") else app.state.settings


SERVE_ARGS = {"edge": ["--policy", "always-edge"], "cloud": []}


@pytest.mark.parametrize("tier", ["edge", "cloud"])
@pytest.mark.parametrize(("flag", "limit"), [([], 7_681_280), (["--max-body-bytes", "5000"], 5000)])
def test_serve_max_body_bytes_reaches_the_settings(
    tmp_path: Path, served: dict[str, Any], tier: str, flag: list[str], limit: int
) -> None:
    run = tmp_path / "run"
    make_bundle(run / "edge")
    cloud_manifest = make_bundle(run / "cloud") / "manifest.json"
    write_json_file(cloud_manifest, json.loads(cloud_manifest.read_text(encoding="utf-8")) | {"kind": "cloud"})
    code, output = invoke("serve", tier, "--run", str(run), "--port", "0", *SERVE_ARGS[tier], *flag)
    assert code == 0, output
    settings = served_settings(served["app"])
    assert settings.max_body_bytes == (int(flag[1]) if flag else None)  # None: derived from the text limits
    assert settings.body_limit == limit


@pytest.mark.parametrize("tier", ["edge", "cloud"])
@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("0", "0 is not in the range 1<=x<=1099511627776."),
        ("-5", "-5 is not in the range 1<=x<=1099511627776."),
        ("1099511627777", "1099511627777 is not in the range 1<=x<=1099511627776."),
        ("4MB", "'4MB' is not a valid integer range."),
    ],
)
def test_serve_refuses_a_bad_max_body_bytes_in_one_line(
    tmp_path: Path, served: dict[str, Any], tier: str, value: str, problem: str
) -> None:
    code, output = invoke("serve", tier, "--run", str(tmp_path), "--max-body-bytes", value)
    assert code == 2 and "Traceback" not in output
    assert output.splitlines()[-1] == f"Error: Invalid value for '--max-body-bytes': {problem}"
    assert served == {}  # refused before anything was loaded or served


@pytest.mark.parametrize("tier", ["edge", "cloud"])
def test_serve_help_says_the_body_limit_is_derived_by_default(tier: str) -> None:
    from hybridroute.serving.schemas import default_body_limit

    code, output = invoke("serve", tier, "--help")
    assert code == 0
    help_text = " ".join(output.split())
    assert "--max-body-bytes INTEGER RANGE Most bytes in a classify body, 413 beyond [default: derived: " in help_text
    assert f"{default_body_limit(64, 10_000)} at the defaults]" in help_text


# ---------------------------------------------------------------- --prices


def test_route_charges_the_prices_file(tiny_hybrid_run: Path, tmp_path: Path) -> None:
    prices = write_json_file(tmp_path / "prices.json", {"edge_per_query": 0.0005, "cloud_per_query": 0.02})
    args = ["--run", str(tiny_hybrid_run), "--json", "great thanks", "awful broken"]
    code, output = invoke("route", *args[:2], "--policy", "always-edge", "--prices", str(prices), *args[2:])
    assert code == 0, output
    assert [row["cost"] for row in json.loads(output)] == [0.0005, 0.0005]  # edge only: the file's edge price
    code, output = invoke("route", *args[:2], "--policy", "always-cloud", "--prices", str(prices), *args[2:])
    assert code == 0, output
    assert [row["cost"] for row in json.loads(output)] == [pytest.approx(0.0205)] * 2  # edge + cloud


def test_bench_routing_prices_costs_and_savings_with_the_prices_file(
    tiny_hybrid_run: Path, tmp_path: Path, toy_csv_writer: Callable[..., Path]
) -> None:
    test_csv = toy_csv_writer(tmp_path / "test.csv", per_class=5, seed=11)
    prices = write_json_file(
        tmp_path / "prices.json", {"edge_per_query": 0.0005, "cloud_per_query": 0.02, "cpu_hour_price": 0.1}
    )
    out = tmp_path / "routing.json"
    common = ["--run", str(tiny_hybrid_run), "--test", str(test_csv), "--http-sample", "0", "--outage-sample", "0"]
    code, output = invoke("bench", "routing", *common, "--prices", str(prices), "--json", str(out))
    assert code == 0, output
    result = json.loads(out.read_text())
    assert result["policies"]["always-edge"]["cost_per_query"] == pytest.approx(0.0005)
    assert result["policies"]["always-cloud"]["cost_per_query"] == pytest.approx(0.0205)
    assert (result["settings"]["prices"]["cloud_per_query"], result["settings"]["prices"]["cpu_hour_price"]) == (
        0.02,
        0.1,
    )


@pytest.mark.parametrize(
    "command",
    [
        ["route", "--run", "{run}", "hi"],
        ["bench", "routing", "--run", "{run}", "--test", "{run}/none.csv"],
        ["serve", "edge", "--run", "{run}"],
        ["monitor", "--db", "{run}/audit.sqlite"],
    ],
)
def test_a_bad_prices_file_is_one_clear_line(command: list[str], tiny_hybrid_run: Path, tmp_path: Path) -> None:
    bad = write_json_file(tmp_path / "prices.json", {"mode": "metered"})
    code, output = invoke(*[a.format(run=tiny_hybrid_run) for a in command], "--prices", str(bad))
    assert code == 1 and "Traceback" not in output
    assert output.strip().startswith(f"Error: {bad}: ") and "mode" in output, output


@pytest.mark.parametrize(
    "command",
    [
        ["finetune", "--out", "{run}", "--data", "{other}", "--encoder", "/no/such/encoder"],
        ["adapt", "--out", "{run}", "--data", "{other}", "--corpus", "{run}/no-such-corpus.txt"],
    ],
)
def test_a_refused_step_keeps_the_stored_split(command: list[str], tiny_run: Path, tmp_path: Path) -> None:
    import shutil

    run = shutil.copytree(tiny_run, tmp_path / "run")
    other = tmp_path / "other.csv"
    other.write_text("text,label\n" + "".join(f"text {i},{'ab'[i % 2]}\n" for i in range(20)), encoding="utf-8")
    before = {p.name: p.read_bytes() for p in (run / "data").iterdir()}
    code, output = invoke(*[a.format(run=run, other=other) for a in command])
    assert code == 2 and "Traceback" not in output and "does not exist" in output, output
    assert {p.name: p.read_bytes() for p in (run / "data").iterdir()} == before


def test_the_cloud_tier_refuses_split_options_the_stored_split_was_not_made_with(
    tiny_run: Path, toy_csv: Path, tiny_bert: Path, tmp_path: Path
) -> None:
    import shutil

    run = shutil.copytree(tiny_run, tmp_path / "run")
    args = ["train", "--tier", "cloud", "--data", str(toy_csv), "--out", str(run), "--base-model", str(tiny_bert)]
    code, output = invoke(*args, "--val-fraction", "0.3", "--label-col", "label", "--text-col", "body")
    assert code == 1 and "Traceback" not in output, output
    expected = (
        f"--text-col body, --val-fraction 0.3: the stored split of {run} was made with text_col text, val_fraction 0.2"
    )
    assert expected in output and "--label-col" not in output  # an option equal to the stored one is fine
    assert not (run / "cloud").exists()
