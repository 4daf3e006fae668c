"""The offline path end to end with the tiny BERT: adapt, fine-tune, export, parity, quantize, gate, bundle."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from hybridroute.config import AdaptConfig, CompressConfig, DataConfig, FinetuneConfig
from hybridroute.data import LabelledTexts
from hybridroute.errors import ArtifactError, ConfigError
from hybridroute.runs import RunLayout, load_saved_split
from hybridroute.runtime import EdgeClassifier, load_manifest
from hybridroute.training.finetune import EpochLog, _EarlyStopping
from hybridroute.workflow import prepare_data, run_adapt, run_compress, run_finetune


def test_edge_bundle_describes_itself(tiny_run: Path) -> None:
    manifest = load_manifest(tiny_run / "edge")
    info = json.loads((tiny_run / "run.json").read_text())
    assert manifest.labels == ("negative", "neutral", "positive")
    assert set(manifest.files) == {"model.onnx", "tokenizer.json"}
    assert manifest.data_checksum == info["data"]["checksum"] and len(manifest.data_checksum) == 64
    assert manifest.base_model == info["base_model"]
    assert manifest.settings["quantization"]["weight_type"] == "int8"
    validation = load_saved_split(RunLayout(tiny_run)).validation
    for bundle, metric in (("edge", "val_accuracy_int8"), ("onnx_fp32", "val_accuracy_fp32")):
        assert manifest.metrics[metric] == _accuracy_of(tiny_run / bundle, validation), metric
    assert manifest.metrics["parity"]["agreement"] >= 0.99
    assert manifest.temperature > 0


def _accuracy_of(bundle: Path, data: LabelledTexts) -> float:
    """A bundle's accuracy on ``data``, scored as compression scores it (one batch of 64: INT8 scales are per batch)."""
    classifier = EdgeClassifier.from_dir(bundle)
    predicted = np.asarray(classifier.labels)[classifier.logits(data.texts, batch_size=64).argmax(axis=1)]
    return float((predicted == np.asarray(data.labels)).mean())


def _is_int8(model: Path) -> bool:
    return bool(
        {"MatMulInteger", "DynamicQuantizeLinear"} & {node.op_type for node in onnx.load(str(model)).graph.node}
    )


def test_int8_graph_holds_integer_matmuls_and_is_smaller(tiny_run: Path) -> None:
    graph = onnx.load(str(tiny_run / "edge" / "model.onnx")).graph
    ops = [node.op_type for node in graph.node]
    integer_ops = [op for op in ops if op in {"MatMulInteger", "DynamicQuantizeMatMul"}]
    assert len(integer_ops) >= 12  # 2 layers x (q, k, v, out, ffn in, ffn out) at least
    assert "DynamicQuantizeLinear" in ops
    fp32 = (tiny_run / "onnx_fp32" / "model.onnx").stat().st_size
    int8 = (tiny_run / "edge" / "model.onnx").stat().st_size
    assert int8 < 0.4 * fp32


def test_onnx_fp32_matches_pytorch(tiny_run: Path) -> None:
    from hybridroute.training.batching import tokenize
    from hybridroute.training.finetune import predict_logits
    from hybridroute.training.models import load_classifier

    model, tokenizer = load_classifier(tiny_run / "classifier")
    texts = ["great service thanks", "awful broken order", "when do you open", "x " * 200]
    expected = predict_logits(model, tokenize(tokenizer, texts, model.spec.max_length), tokenizer.pad_token_id)
    actual = EdgeClassifier.from_dir(tiny_run / "onnx_fp32").logits(texts)
    np.testing.assert_allclose(actual, expected.numpy(), atol=1e-4)


def test_labels_saved_as_json_and_no_pickles(tiny_run: Path) -> None:
    spec = json.loads((tiny_run / "classifier" / "classifier.json").read_text())
    assert spec["labels"] == ["negative", "neutral", "positive"]
    suspicious = [p for p in tiny_run.rglob("*") if p.suffix in {".pkl", ".pickle", ".bin", ".pt"}]
    assert suspicious == []


def _fresh_run(tmp_path: Path, toy_csv: Path) -> RunLayout:
    layout = RunLayout(tmp_path / "run")
    prepare_data(layout, DataConfig(toy_csv, val_fraction=0.2))
    return layout


def test_adaptation_lowers_heldout_mlm_loss(tmp_path: Path, toy_csv: Path, tiny_bert: Path) -> None:
    layout = _fresh_run(tmp_path, toy_csv)
    result = run_adapt(
        layout, AdaptConfig(base_model=str(tiny_bert), epochs=3, learning_rate=1e-3, batch_size=16), progress=False
    )
    assert result.loss_after < result.loss_before
    assert (layout.adapted / "config.json").is_file()
    assert json.loads(layout.info_file.read_text())["adapt"]["loss_after"] == pytest.approx(result.loss_after)


def _finetune(tmp_path: Path, toy_csv: Path, tiny_bert: Path, **overrides: object) -> tuple[RunLayout, object]:
    layout = _fresh_run(tmp_path, toy_csv)
    config = FinetuneConfig(**({"head_epochs": 2, "epochs": 3, "learning_rate": 1e-3, "batch_size": 16} | overrides))
    return layout, run_finetune(layout, config, str(tiny_bert), progress=False)


def test_finetune_is_reproducible(tmp_path: Path, toy_csv: Path, tiny_bert: Path) -> None:
    from safetensors.numpy import load_file

    first_layout, first = _finetune(tmp_path / "a", toy_csv, tiny_bert)
    second_layout, second = _finetune(tmp_path / "b", toy_csv, tiny_bert)
    assert [h.train_loss for h in first.history] == [h.train_loss for h in second.history]
    a = load_file(first_layout.classifier / "head.safetensors")
    b = load_file(second_layout.classifier / "head.safetensors")
    np.testing.assert_array_equal(a["weight"], b["weight"])


def test_finetune_runs_both_stages_and_restores_best(tmp_path: Path, toy_csv: Path, tiny_bert: Path) -> None:
    _, result = _finetune(tmp_path, toy_csv, tiny_bert, epochs=4)
    stages = [h.stage for h in result.history]
    assert stages == ["head", "head", "full", "full", "full", "full"][: len(stages)] and "full" in stages
    full = [h.val_accuracy for h in result.history if h.stage == "full"]
    warmed = [h.val_accuracy for h in result.history if h.stage == "head"][-1]
    # best_epoch 0 names the warmed-up head, n the n-th full epoch: the saved model scores what that epoch scored
    assert result.val_accuracy == pytest.approx([warmed, *full][result.best_epoch], abs=1e-6)
    assert result.val_accuracy >= max(full) - 1e-6


def _last_progress(full: list[EpochLog], patience: int) -> int:
    """The last full epoch that made progress, replaying the history through the stopping rule itself."""
    rule, model = _EarlyStopping(patience), torch.nn.Linear(1, 1)
    for log in full:
        rule.update(model, log.epoch, log.val_accuracy, log.val_loss)
    return rule.epoch


def test_early_stopping_stops_patience_epochs_after_the_last_progress(
    tmp_path: Path, toy_csv: Path, tiny_bert: Path
) -> None:
    # A learning rate this small barely moves the model, so validation stops improving within a few epochs (one text
    # near the boundary may still flip once, as on one CI machine): training must end one epoch (the patience) after
    # the last epoch that made progress, well before the sixth, with that epoch's weights restored.
    _, result = _finetune(tmp_path, toy_csv, tiny_bert, epochs=6, patience=1, learning_rate=1e-7)
    full = [h for h in result.history if h.stage == "full"]
    assert result.stopped_early and len(full) < 6
    assert len(full) == _last_progress(full, patience=1) + 1
    assert result.best_epoch in (0, _last_progress(full, patience=1))


def test_the_warmed_up_head_wins_when_no_full_epoch_beats_it(tmp_path: Path, toy_csv: Path, tiny_bert: Path) -> None:
    # A learning rate this large wrecks the encoder in the first full epoch: the warmed-up weights must come back.
    _, result = _finetune(tmp_path, toy_csv, tiny_bert, head_epochs=8, epochs=2, learning_rate=0.5)
    warmed = [h.val_accuracy for h in result.history if h.stage == "head"][-1]
    full = [h.val_accuracy for h in result.history if h.stage == "full"]
    assert max(full) < warmed
    assert result.best_epoch == 0
    assert result.val_accuracy == pytest.approx(warmed, abs=1e-6)


def _copy_run(tiny_run: Path, tmp_path: Path) -> RunLayout:
    root = tmp_path / "copy"
    shutil.copytree(tiny_run, root)
    return RunLayout(root)


def test_accuracy_gate_refuses_and_keeps_old_bundle(
    tiny_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hybridroute.compression import pipeline

    layout = _copy_run(tiny_run, tmp_path)
    before = (layout.edge / "manifest.json").read_text()
    real_accuracy, real_open_session = pipeline._accuracy, pipeline.open_session
    model_of: dict[int, Path] = {}  # id(session) -> the model file it was opened on
    scored: list[str] = []

    def recording_open_session(model_path: Path, *args: object) -> object:
        session = real_open_session(model_path, *args)  # type: ignore[arg-type]
        model_of[id(session)] = model_path
        return session

    def worse_int8(classifier: EdgeClassifier, data: LabelledTexts) -> tuple[float, np.ndarray]:
        accuracy, logits = real_accuracy(classifier, data)
        int8 = _is_int8(model_of[id(classifier.session)])
        scored.append("int8" if int8 else "fp32")
        return (accuracy - 0.2 if int8 else accuracy), logits  # only the quantized model gets worse

    monkeypatch.setattr(pipeline, "open_session", recording_open_session)
    monkeypatch.setattr(pipeline, "_accuracy", worse_int8)
    fp32_before = _bundle_state(layout.onnx_fp32)
    with pytest.raises(ArtifactError, match="accuracy gate failed"):
        run_compress(layout, CompressConfig(max_accuracy_drop=0.01))
    assert scored == ["fp32", "int8"]  # the gate compared the exported FP32 model with the quantized one
    assert (layout.edge / "manifest.json").read_text() == before
    # the FP32 bundle stays the one the edge bundle was made from (it is the reference of compress --auto and shrink)
    assert _bundle_state(layout.onnx_fp32) == fp32_before
    assert _leftovers(layout) == []


def _bundle_state(bundle: Path) -> tuple[int, int, str]:
    """The folder's inode, the manifest's mtime and text: a bundle renamed into place changes all three."""
    manifest = bundle / "manifest.json"
    return bundle.stat().st_ino, manifest.stat().st_mtime_ns, manifest.read_text()


def _leftovers(layout: RunLayout) -> list[str]:
    return sorted(p.name for p in layout.root.iterdir() if p.name.startswith("."))


def test_compress_installs_fp32_and_edge_together_or_keeps_both_old(
    tiny_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layout = _copy_run(tiny_run, tmp_path)
    before = {bundle: _bundle_state(bundle) for bundle in (layout.onnx_fp32, layout.edge)}
    real_rename = Path.rename

    def rename(self: Path, target: str | Path) -> Path:
        if self.name == ".edge-staging":  # the FP32 bundle is already in place
            raise OSError("simulated failure renaming the edge bundle in")
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", rename)
    with pytest.raises(OSError, match="simulated failure"):
        run_compress(layout, CompressConfig(max_accuracy_drop=0.5))
    assert {bundle: _bundle_state(bundle) for bundle in before} == before
    EdgeClassifier.from_dir(layout.edge).predict(["where is my order"])
    assert _leftovers(layout) == []
    monkeypatch.undo()
    run_compress(layout, CompressConfig(max_accuracy_drop=0.5))
    assert all(_bundle_state(bundle)[:2] != state[:2] for bundle, state in before.items())
    source = load_manifest(layout.onnx_fp32)
    assert load_manifest(layout.edge).metrics["val_accuracy_fp32"] == source.metrics["val_accuracy"]
    assert _leftovers(layout) == []


def _smooth_muls(model: Path) -> list[str]:
    return [node.name for node in onnx.load(str(model)).graph.node if node.name.endswith("_SmoothMul")]


def test_edge_bundle_is_smoothed_on_training_texts(tiny_run: Path) -> None:
    smoothing = load_manifest(tiny_run / "edge").settings["smoothing"]
    split = load_saved_split(RunLayout(tiny_run))
    texts = min(512, len(split.train.texts))
    assert smoothing["calibration_texts"] == texts and smoothing["calibration_calls"] == texts + -(-texts // 32)
    # 2 layers: embeddings LayerNorm, then per layer attention context, attention LayerNorm, GELU (+ next LayerNorm)
    assert smoothing["activations"] == 8
    assert len(_smooth_muls(tiny_run / "edge" / "model.onnx")) == smoothing["smoothed"]
    assert smoothing["median_relative_error_smoothed"] <= smoothing["median_relative_error_plain"]
    assert _smooth_muls(tiny_run / "onnx_fp32" / "model.onnx") == []  # the FP32 reference is the plain export


def test_compress_without_smoothing(tiny_run: Path, tmp_path: Path) -> None:
    layout = _copy_run(tiny_run, tmp_path)
    run_compress(layout, CompressConfig(max_accuracy_drop=0.5, smoothing=False))
    manifest = load_manifest(layout.edge)
    assert "smoothing" not in manifest.settings and manifest.settings["compress"]["smoothing"] is False
    assert _smooth_muls(layout.edge / "model.onnx") == []
    assert _is_int8(layout.edge / "model.onnx")


def test_parity_failure_is_loud(tiny_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hybridroute.compression import pipeline

    layout = _copy_run(tiny_run, tmp_path)
    real = pipeline._torch_logits
    monkeypatch.setattr(pipeline, "_torch_logits", lambda *args: real(*args) + 0.5)
    with pytest.raises(ArtifactError, match="parity check failed"):
        run_compress(layout, CompressConfig())


def test_compress_without_classifier_names_the_missing_step(tmp_path: Path, toy_csv: Path) -> None:
    layout = _fresh_run(tmp_path, toy_csv)
    with pytest.raises(ArtifactError, match="hybridroute finetune"):
        run_compress(layout, CompressConfig())


def test_saved_split_is_reused(tiny_run: Path) -> None:
    split = load_saved_split(RunLayout(tiny_run))
    assert len(split.train) + len(split.validation) == 120
    assert set(split.validation.labels) == set(split.labels)


def test_teacher_logits_come_in_the_run_label_order(tiny_run: Path) -> None:
    from hybridroute.workflow import teacher_logits

    split = load_saved_split(RunLayout(tiny_run))
    direct = EdgeClassifier.from_dir(tiny_run / "edge").logits(split.train.texts, batch_size=64)
    np.testing.assert_allclose(teacher_logits(tiny_run / "edge", split), direct, atol=1e-4)
    reversed_split = type(split)(split.train, split.validation, split.labels[::-1])
    np.testing.assert_allclose(teacher_logits(tiny_run / "edge", reversed_split), direct[:, ::-1], atol=1e-4)


def test_distilled_student_follows_its_teacher(tmp_path: Path, toy_csv: Path, tiny_bert: Path) -> None:
    from hybridroute.training.finetune import finetune

    layout = _fresh_run(tmp_path, toy_csv)
    split = load_saved_split(layout)
    # A teacher that calls everything "positive": with distill_weight 1 the labels are ignored.
    teacher = np.tile(np.array([-4.0, -4.0, 4.0], dtype=np.float32), (len(split.train), 1))
    config = FinetuneConfig(head_epochs=5, epochs=1, learning_rate=1e-3, batch_size=16, distill_weight=1.0)
    finetune(split, str(tiny_bert), config, layout.classifier, progress=False, teacher_logits=teacher)
    from hybridroute.training.batching import tokenize
    from hybridroute.training.finetune import predict_logits
    from hybridroute.training.models import load_classifier

    model, tokenizer = load_classifier(layout.classifier)
    tokens = tokenize(tokenizer, split.validation.texts, model.spec.max_length)
    predicted = predict_logits(model, tokens, tokenizer.pad_token_id).argmax(dim=1)
    assert float((predicted == 2).float().mean()) == 1.0
    assert set(split.validation.labels) != {"positive"}  # the labels alone would not teach this


def test_finetune_records_its_teacher(tiny_run: Path, tmp_path: Path, tiny_bert: Path) -> None:
    layout = _copy_run(tiny_run, tmp_path)
    config = FinetuneConfig(head_epochs=1, epochs=1, learning_rate=1e-3, batch_size=16)
    run_finetune(layout, config, str(tiny_bert), progress=False, teacher=tiny_run / "edge")
    info = json.loads(layout.info_file.read_text())["finetune"]
    assert info["teacher"] == str(tiny_run / "edge") and info["config"]["distill_weight"] == 0.5


def test_distillation_with_perturbed_copies_trains_on_them_with_the_teachers_labels(
    tiny_run: Path, tmp_path: Path, tiny_bert: Path
) -> None:
    layout = _copy_run(tiny_run, tmp_path)
    train = len(load_saved_split(layout).train)
    config = FinetuneConfig(head_epochs=1, epochs=1, learning_rate=1e-3, batch_size=16, augment_copies=2)
    run_finetune(layout, config, str(tiny_bert), progress=False, teacher=tiny_run / "edge")
    info = json.loads(layout.info_file.read_text())["finetune"]
    assert info["training_texts"] == 3 * train and info["config"]["augment_copies"] == 2
    # the teacher scored the texts and the copies separately: a later run without copies reuses the first file
    logits = sorted(layout.cache.glob("teacher-*.npy"), key=lambda path: len(np.load(path)))
    assert [len(np.load(path)) for path in logits] == [train, 2 * train]


def test_perturbed_copies_without_a_teacher_are_refused(tiny_run: Path, tmp_path: Path, tiny_bert: Path) -> None:
    layout = _copy_run(tiny_run, tmp_path)
    config = FinetuneConfig(head_epochs=1, epochs=1, augment_copies=1)
    with pytest.raises(ConfigError, match="needs a teacher"):
        run_finetune(layout, config, str(tiny_bert), progress=False)


def test_distillation_refuses_a_teacher_with_other_labels(tiny_run: Path) -> None:
    from hybridroute.errors import DataError
    from hybridroute.training.finetune import finetune
    from hybridroute.workflow import teacher_logits

    split = load_saved_split(RunLayout(tiny_run))
    other = type(split)(split.train, split.validation, ("a", "b", "c"))
    with pytest.raises(DataError, match="distill from a model trained on the same labels"):
        teacher_logits(tiny_run / "edge", other)
    with pytest.raises(DataError, match="teacher logits must have shape"):
        finetune(split, "unused", FinetuneConfig(), tiny_run / "never", False, np.zeros((2, 3)))


def test_compress_refuses_a_split_whose_labels_the_classifier_lacks(tiny_run: Path, tmp_path: Path) -> None:
    from hybridroute.data import Split
    from hybridroute.runs import save_split

    layout = _copy_run(tiny_run, tmp_path)
    split = load_saved_split(layout)
    relabelled = LabelledTexts(split.validation.texts, tuple("other" for _ in split.validation.texts))
    save_split(layout, Split(split.train, relabelled, (*split.labels, "other")))
    with pytest.raises(ArtifactError, match=r"stored split has labels .*'other'.* the classifier predicts"):
        run_compress(layout, CompressConfig(max_accuracy_drop=0.5))
    assert not layout.edge.with_name(".edge-aside").exists()


def test_a_failed_adaptation_keeps_the_previous_adapted_encoder(
    tiny_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hybridroute.training import mlm

    layout = _copy_run(tiny_run, tmp_path)
    before = sorted(p.name for p in layout.adapted.iterdir())

    def half_written(texts: object, config: object, out_dir: Path, progress: bool) -> None:
        (out_dir / "config.json").write_text("{}")
        raise RuntimeError("killed")

    monkeypatch.setattr(mlm, "adapt", half_written)
    with pytest.raises(RuntimeError, match="killed"):
        run_adapt(layout, AdaptConfig(base_model=str(tmp_path)))
    assert sorted(p.name for p in layout.adapted.iterdir()) == before
    assert "tokenizer.json" in before and not any(".adapted-staging" in p.name for p in layout.root.iterdir())


def test_adaptation_reports_the_installed_folder(tiny_run: Path, tmp_path: Path, tiny_bert: Path) -> None:
    layout = _copy_run(tiny_run, tmp_path)
    result = run_adapt(layout, AdaptConfig(base_model=str(tiny_bert), epochs=0.1, batch_size=16), progress=False)
    assert result.out_dir == layout.adapted and (layout.adapted / "tokenizer.json").is_file()
    assert json.loads(layout.info_file.read_text())["adapt"]["out_dir"] == str(layout.adapted)
