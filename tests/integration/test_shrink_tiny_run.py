"""``hybridroute shrink`` on the tiny run: a 1-layer student, its variants, the gate and the bench."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import onnx
import pytest
from click.testing import CliRunner

from hybridroute.cli import main
from hybridroute.compression.selection import auto_compress
from hybridroute.runs import RunLayout, load_saved_split
from hybridroute.runtime import EdgeClassifier, load_manifest

TEXTS = ["great service, thanks", "awful delay again", "when do you open?"]


@pytest.fixture(scope="module")
def shrunk(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> RunLayout:
    root = tmp_path_factory.mktemp("shrink") / "run"
    shutil.copytree(tiny_run, root, ignore=shutil.ignore_patterns("variants"))
    result = CliRunner().invoke(
        main,
        # a random tiny 1-layer model may lose accuracy in INT8 (CI's CPU lost 4 points); the gate has its own tests
        ["shrink", "--run", str(root), "--layers", "1", "--epochs", "2", "--head-epochs", "2"]
        + ["--max-accuracy-drop", "0.5"],
    )
    assert result.exit_code == 0, result.output
    assert "Variants named L1-... now build from it" in result.output
    return RunLayout(root)


def _layer_norms(folder: Path) -> int:
    return sum(n.op_type == "LayerNormalization" for n in onnx.load(str(folder / "model.onnx")).graph.node)


def test_the_student_is_a_shallower_run_on_the_same_split(shrunk: RunLayout) -> None:
    student = shrunk.student(1)
    assert shrunk.students() == (1,)
    mine, theirs = load_saved_split(student), load_saved_split(shrunk)
    assert (mine.train.texts, mine.validation.labels) == (theirs.train.texts, theirs.validation.labels)
    assert json.loads((student.classifier / "encoder" / "config.json").read_text())["num_hidden_layers"] == 1
    # one layer norm after the embeddings and two per transformer layer
    assert _layer_norms(student.onnx_fp32) == 3 and _layer_norms(shrunk.onnx_fp32) == 5
    info = student.read_info()
    assert info["finetune"]["teacher"] == str(shrunk.onnx_fp32) and info["finetune"]["config"]["layers"] == 1
    assert shrunk.read_info()["students"]["L1"]["val_accuracy"] == info["finetune"]["val_accuracy"]
    assert info["compress"]["config"]["max_accuracy_drop"] == 0.5  # the gate --max-accuracy-drop asked for
    labels = EdgeClassifier.from_dir(student.edge).labels
    assert [p.label in labels for p in EdgeClassifier.from_dir(student.edge).predict(TEXTS)] == [True] * 3


def test_the_gate_considers_the_student_variants(shrunk: RunLayout) -> None:
    names = ["int8-opt", "L1-int8-opt", "L1-pruned-int4-b128-opt"]
    chosen, table = auto_compress(shrunk, names, max_drop=1.0, progress=lambda _: None)
    assert [row["name"] for row in table] == names
    assert chosen.variant.name == "L1-pruned-int4-b128-opt"  # the smallest, as the gate allows anything here
    recipe = load_manifest(shrunk.edge).settings["recipe"]
    assert recipe["layers"] == 1 and recipe["name"] == chosen.variant.name
    ops = [n.op_type for n in onnx.load(str(shrunk.edge / "model.onnx")).graph.node]
    assert ops.count("SkipLayerNormalization") == 2  # the graph optimizer fused one layer's two norms
    EdgeClassifier.from_dir(shrunk.edge).predict(TEXTS)


def test_the_variants_bench_measures_students_against_the_full_model(shrunk: RunLayout) -> None:
    from hybridroute.bench.variants import VariantBenchConfig, bench_variants

    config = VariantBenchConfig(repeats=1, latency_queries=5, warmup=1, throughput_texts=16, max_drop=1.0)
    test = load_saved_split(shrunk).validation
    result = bench_variants(shrunk, test, None, config)
    assert {"L1-int8-opt", "L1-int8", "L1-pruned-int8-opt", "L1-pruned-int4-b128-opt"} <= set(result["models"])
    assert _layer_norms(shrunk.root / "variants" / "L1-int8") == 3  # unfused: the student's own norms, one INT8 graph
    fp32 = result["models"]["onnx_fp32"]
    student = result["models"]["L1-int8-opt"]
    assert student["retention_pct"] == pytest.approx(100 * student["accuracy"] / fp32["accuracy"])
    assert student["size_mb"] < result["models"]["int8-opt"]["size_mb"]
    assert result["headline"]["fastest_p95_speedup_vs_int8_dynamic_fast_path_t1"] > 0


def test_shrink_refuses_impossible_depths_in_one_line(shrunk: RunLayout) -> None:
    result = CliRunner().invoke(main, ["shrink", "--run", str(shrunk.root), "--layers", "7"])
    assert result.exit_code != 0
    assert "between 1 and the encoder's 2 layers, got 7" in result.output
    assert "Traceback" not in result.output


def test_shrink_distills_from_the_teacher_it_is_given(tiny_run: Path, tmp_path: Path) -> None:
    root = tmp_path / "run"
    shutil.copytree(tiny_run, root, ignore=shutil.ignore_patterns("variants", "students"))
    teacher = root / "edge"  # any bundle with the run's labels, e.g. RUN/cloud
    args = ["shrink", "--run", str(root), "--layers", "1", "--epochs", "1", "--head-epochs", "1"]
    args += ["--max-accuracy-drop", "0.5"]
    result = CliRunner().invoke(main, [*args, "--teacher", str(teacher)])
    assert result.exit_code == 0, result.output
    assert RunLayout(root).student(1).read_info()["finetune"]["teacher"] == str(teacher)


def test_a_bad_teacher_leaves_the_existing_student_alone(shrunk: RunLayout, tmp_path: Path) -> None:
    root = tmp_path / "run"
    shutil.copytree(shrunk.root, root, ignore=shutil.ignore_patterns("variants"))
    before = (RunLayout(root).student(1).edge / "manifest.json").read_text()
    not_a_bundle = tmp_path / "empty"
    not_a_bundle.mkdir()
    args = ["shrink", "--run", str(root), "--layers", "1", "--teacher", str(not_a_bundle)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1 and "manifest.json is missing" in result.output
    assert (RunLayout(root).student(1).edge / "manifest.json").read_text() == before


def test_a_failed_shrink_keeps_the_previous_student(
    shrunk: RunLayout, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hybridroute.training.finetune as finetune_module

    root = tmp_path / "run"
    shutil.copytree(shrunk.root, root, ignore=shutil.ignore_patterns("variants"))
    student = RunLayout(root).student(1)
    before = (student.edge / "manifest.json").read_text()

    def stopped(*_args: object, **_kwargs: object) -> None:
        raise KeyboardInterrupt  # Ctrl-C in the middle of training

    monkeypatch.setattr(finetune_module, "finetune", stopped)
    result = CliRunner().invoke(main, ["shrink", "--run", str(root), "--layers", "1", "--epochs", "1"])
    assert result.exit_code == 1 and "interrupted" in result.output
    assert (student.edge / "manifest.json").read_text() == before
    assert EdgeClassifier.from_dir(student.edge).predict(TEXTS[:1])[0].label
    assert sorted(p.name for p in student.root.parent.iterdir()) == ["L1"]


def test_a_failed_finetune_keeps_the_previous_classifier(
    tiny_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hybridroute.training.finetune as finetune_module

    root = tmp_path / "run"
    shutil.copytree(tiny_run, root, ignore=shutil.ignore_patterns("variants", "students"))
    before = sorted((p.name, p.stat().st_size) for p in (root / "classifier").rglob("*"))

    def failing(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("out of memory")

    monkeypatch.setattr(finetune_module, "finetune", failing)
    result = CliRunner().invoke(main, ["finetune", "--out", str(root), "--epochs", "1"])
    assert result.exit_code == 1 and "out of memory" in result.output
    assert sorted((p.name, p.stat().st_size) for p in (root / "classifier").rglob("*")) == before
    assert not (root / ".classifier-aside").exists() and not (root / ".classifier-previous").exists()


def test_teacher_logits_are_scored_once_per_teacher_and_split(
    shrunk: RunLayout, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hybridroute import workflow

    split = load_saved_split(shrunk)
    cache = tmp_path / "cache"
    first = workflow.cached_teacher_logits(cache, shrunk.onnx_fp32, split, progress=False)
    assert first.shape == (len(split.train), len(split.labels)) and len(list(cache.glob("teacher-*.npy"))) == 1

    def must_not_score(*_: object) -> None:
        raise AssertionError("the cached logits should have been reused")

    monkeypatch.setattr(workflow, "teacher_logits", must_not_score)
    again = workflow.cached_teacher_logits(cache, shrunk.onnx_fp32, split, progress=False)
    assert (again == first).all()
    with pytest.raises(AssertionError, match="reused"):  # another teacher is another key
        workflow.cached_teacher_logits(cache, shrunk.edge, split, progress=False)
