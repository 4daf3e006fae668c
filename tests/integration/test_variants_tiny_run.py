"""Compression variants on the tiny run: build, load, predict, select, benchmark."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from tokenizers import Tokenizer

from hybridroute.compression.selection import select_variant
from hybridroute.compression.variants import Variant, build_variant, variants_by_name
from hybridroute.errors import ArtifactError
from hybridroute.runs import RunLayout, load_saved_split
from hybridroute.runtime import EdgeClassifier, load_manifest
from hybridroute.runtime.bundle import sha256_file
from hybridroute.runtime.fastpath import FastClassifier, SessionTuning

TEXTS = ["great service, thanks", "awful delay again", "when do you open?", "zyxwvq floccinaucinihilipilification"]


BUILT = (
    "pruned-int8-opt",
    "smooth-pruned-int8-opt",
    "pruned-static-int8-opt",
    "pruned-int4-b32-opt",
    "pruned-int4-b32-int4emb-opt",
)


@pytest.fixture(scope="module")
def built(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("variants")
    return {v.name: build_variant(RunLayout(tiny_run), v, out / v.name) for v in variants_by_name(list(BUILT))}


def _ops(folder: Path) -> list[str]:
    return [n.op_type for n in onnx.load(str(folder / "model.onnx")).graph.node]


def _tokenizer(path: Path) -> Tokenizer:
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_truncation()
    return tokenizer


def test_every_variant_loads_predicts_and_records_its_recipe(built: dict[str, Path]) -> None:
    for variant in variants_by_name(list(BUILT)):
        classifier = EdgeClassifier.from_dir(built[variant.name])
        predictions = classifier.predict(TEXTS)
        assert [p.label in classifier.labels for p in predictions] == [True] * len(TEXTS)
        assert load_manifest(built[variant.name]).settings["recipe"] == variant.to_dict()


def test_pruned_variants_are_smaller(tiny_run: Path, built: dict[str, Path]) -> None:
    fp32 = (tiny_run / "onnx_fp32" / "model.onnx").stat().st_size
    assert (built["pruned-int8-opt"] / "model.onnx").stat().st_size < 0.3 * fp32
    smallest = min(built.values(), key=lambda p: (p / "model.onnx").stat().st_size)
    assert smallest.name == "pruned-int4-b32-int4emb-opt"


def test_int4_graph_holds_matmulnbits(built: dict[str, Path]) -> None:
    ops = _ops(built["pruned-int4-b32-opt"])
    assert ops.count("MatMulNBits") >= 12  # 2 layers x (q, k, v, out, ffn in, ffn out)
    assert "MultiHeadAttention" in ops
    graph = onnx.load(str(built["pruned-int4-b32-int4emb-opt"] / "model.onnx")).graph
    four_bit = [n.input[0] for n in graph.node if n.op_type == "GatherBlockQuantized"]
    # the word embeddings only: 4-bit position and token-type rows cost accuracy and save almost nothing
    assert len(four_bit) == 1 and "word_embeddings" in four_bit[0]


def test_smoothed_int8_keeps_the_attention_fusion_and_records_its_choices(built: dict[str, Path]) -> None:
    plain, smoothed = _ops(built["pruned-int8-opt"]), _ops(built["smooth-pruned-int8-opt"])
    assert smoothed.count("QAttention") == plain.count("QAttention") == 2  # smoothed after the fusion, not before
    record = load_manifest(built["smooth-pruned-int8-opt"]).settings["steps"]["smoothing"]
    # per layer: attention input, attention output, feed-forward in and out; the calibration used training texts
    assert record["method"] == "smoothquant" and record["activations"] >= 8 and record["calibration_texts"] > 0
    assert smoothed.count("Mul") - plain.count("Mul") == record["smoothed"]
    assert load_manifest(built["pruned-int8-opt"]).settings["steps"]["smoothing"] == {}


def test_static_int8_quantizes_weight_matmuls_and_keeps_sensitive_ops_float(built: dict[str, Path]) -> None:
    graph = onnx.load(str(built["pruned-static-int8-opt"] / "model.onnx")).graph
    ops = [n.op_type for n in graph.node]
    assert ops.count("QuantizeLinear") >= 8 and "DequantizeLinear" in ops
    dequantized = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    for node in graph.node:
        if node.op_type in {"Gemm", "Softmax", "SkipLayerNormalization", "LayerNormalization", "MultiHeadAttention"}:
            assert not dequantized & set(node.input), f"{node.op_type} {node.name} reads quantized values"


def test_pruned_tokenizer_round_trips_every_training_text(tiny_run: Path, built: dict[str, Path]) -> None:
    before = _tokenizer(tiny_run / "onnx_fp32" / "tokenizer.json")
    after = _tokenizer(built["pruned-int8-opt"] / "tokenizer.json")
    texts = list(load_saved_split(RunLayout(tiny_run)).train.texts)
    old, new = before.encode_batch(texts), after.encode_batch(texts)
    assert [e.tokens for e in old] == [e.tokens for e in new]
    assert any(o.ids != n.ids for o, n in zip(old, new, strict=True))
    assert after.get_vocab_size() < before.get_vocab_size() / 5


def test_unseen_word_is_spelled_out_not_unknown(built: dict[str, Path]) -> None:
    tokens = _tokenizer(built["pruned-int8-opt"] / "tokenizer.json").encode("floccinaucinihilipilification").tokens
    assert "[UNK]" not in tokens
    assert "".join(t.removeprefix("##") for t in tokens[1:-1]) == "floccinaucinihilipilification"


def test_fast_path_matches_the_batch_path(built: dict[str, Path]) -> None:
    folder = built["pruned-int4-b32-opt"]
    batch = EdgeClassifier.from_dir(folder).predict_proba(TEXTS)
    for buckets in ((), (8, 16, 32, 64)):
        fast = FastClassifier.from_dir(folder, SessionTuning(threads=1), buckets=buckets)
        assert np.allclose(fast.predict_proba(TEXTS), batch, atol=1e-5)
        assert fast.predict_one(TEXTS[0]).label == EdgeClassifier.from_dir(folder).predict(TEXTS[:1])[0].label


@pytest.fixture
def run_copy(tiny_run: Path, tmp_path: Path) -> RunLayout:
    root = tmp_path / "run"
    shutil.copytree(tiny_run, root, ignore=shutil.ignore_patterns("variants"))
    return RunLayout(root)


SMALL = (Variant("int8"), Variant("pruned-int4", "int4-block", "int8", vocab_pruning=True))


def test_selection_installs_the_smallest_qualifying_variant(run_copy: RunLayout) -> None:
    validation = load_saved_split(run_copy).validation
    chosen, table = select_variant(run_copy, SMALL, validation, max_drop=1.0)
    assert chosen.variant.name == "pruned-int4" and [row["name"] for row in table] == ["int8", "pruned-int4"]
    manifest = load_manifest(run_copy.edge)
    assert manifest.settings["recipe"]["name"] == "pruned-int4"
    assert manifest.settings["selection"]["candidates"] == table
    assert manifest.settings["selection"]["max_drop"] == 1.0
    EdgeClassifier.from_dir(run_copy.edge).predict(TEXTS)


def test_selection_by_speed_times_the_qualifying_variants_and_installs_the_fastest(run_copy: RunLayout) -> None:
    validation = load_saved_split(run_copy).validation
    chosen, table = select_variant(run_copy, SMALL, validation, max_drop=1.0, prefer="speed")
    p95 = {row["name"]: row["p95_ms"] for row in table}
    assert all(value is not None and value > 0 for value in p95.values())
    assert chosen.variant.name == min(p95, key=lambda name: p95[name])
    selection = load_manifest(run_copy.edge).settings["selection"]
    assert selection["prefer"] == "speed" and selection["chosen"] == chosen.variant.name


def test_selection_refuses_when_none_qualifies_and_keeps_the_old_edge(run_copy: RunLayout) -> None:
    before = sha256_file(run_copy.edge / "model.onnx")
    with pytest.raises(ArtifactError, match="no compression variant"):
        select_variant(run_copy, SMALL[:1], load_saved_split(run_copy).validation, max_drop=-1.0)
    assert sha256_file(run_copy.edge / "model.onnx") == before
    load_manifest(run_copy.edge)


def test_selection_that_cannot_rename_its_bundle_in_keeps_the_old_edge(
    run_copy: RunLayout, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = load_manifest(run_copy.edge)
    real_rename = Path.rename

    def rename(self: Path, target: str | Path) -> Path:
        if self.name == ".edge-staging":  # the old bundle has just been set aside
            raise OSError("simulated failure renaming the chosen bundle in")
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", rename)
    with pytest.raises(OSError, match="simulated failure"):
        select_variant(run_copy, SMALL[:1], load_saved_split(run_copy).validation, max_drop=1.0)
    assert load_manifest(run_copy.edge) == before
    EdgeClassifier.from_dir(run_copy.edge).predict(TEXTS)
    assert [p.name for p in run_copy.root.iterdir() if p.name.startswith(".")] == []
    monkeypatch.undo()
    select_variant(run_copy, SMALL[:1], load_saved_split(run_copy).validation, max_drop=1.0)
    assert load_manifest(run_copy.edge).settings["selection"]["chosen"] == "int8"
    assert [p.name for p in run_copy.root.iterdir() if p.name.startswith(".")] == []


def test_bench_variants_reports_one_table(tiny_run: Path, built: dict[str, Path]) -> None:
    from hybridroute.bench.variants import VariantBenchConfig, bench_variants, markdown_table

    config = VariantBenchConfig(repeats=1, latency_queries=5, warmup=1, throughput_texts=16, max_drop=1.0)
    test = load_saved_split(RunLayout(tiny_run)).validation
    names = ["pruned-int8-opt", "pruned-int4-b32-int4emb-opt"]
    work_dir = built[names[0]].parent  # reuses the bundles built above; builds only the INT8 baseline
    result = bench_variants(RunLayout(tiny_run), test, variants_by_name(names), config, work_dir=work_dir)
    assert set(result["models"]) == {"onnx_fp32", "int8_dynamic", *names}
    assert result["models"][names[1]]["latency_ms"]["fast_path_t2"]["p95"] > 0
    assert "batch_path_t1" in result["models"]["int8_dynamic"]["latency_ms"]
    assert result["headline"]["smallest"] == names[1]
    assert result["models"]["onnx_fp32"]["retention_pct"] == 100.0
    for name, figures in result["models"].items():
        assert 0.0 <= figures["accuracy_single_query"] <= 1.0, name
        assert 0 <= figures["batch_label_changes"] <= len(test), name
    table = markdown_table(result)
    assert f"| {names[1]} |" in table and "Smallest qualifying" in table


def test_a_built_variant_is_reused_only_for_the_same_recipe_and_source(
    tiny_run: Path, built: dict[str, Path], tmp_path: Path
) -> None:
    from hybridroute.bench.variants import built_from_current_source
    from hybridroute.runtime.bundle import write_manifest

    variant = variants_by_name(["pruned-int8-opt"])[0]
    folder = built[variant.name]
    assert built_from_current_source(RunLayout(tiny_run), variant, folder)
    assert not built_from_current_source(RunLayout(tiny_run), Variant(variant.name, "int4-block"), folder)
    retrained = tmp_path / variant.name  # as if the run's model had been trained again since
    shutil.copytree(folder, retrained)
    manifest = load_manifest(retrained)
    write_manifest(retrained, manifest.with_updates(settings=manifest.settings | {"source": {"onnx_fp32": "older"}}))
    assert not built_from_current_source(RunLayout(tiny_run), variant, retrained)
    assert not built_from_current_source(RunLayout(tiny_run), variant, tmp_path / "never-built")


def test_static_int8_calibrates_on_the_tokens_the_runtime_feeds(
    run_copy: RunLayout, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A saved tokenizer.json may carry fixed padding (MiniLM's pads to 128): calibration must not see [PAD] rows.
    from hybridroute.compression import variants as variants_module
    from hybridroute.compression.static import TextCalibrationReader
    from hybridroute.runtime.bundle import read_manifest, write_manifest

    fp32 = run_copy.onnx_fp32
    padded = Tokenizer.from_file(str(fp32 / "tokenizer.json"))
    padded.enable_padding(length=48)
    padded.save(str(fp32 / "tokenizer.json"))
    write_manifest(fp32, read_manifest(fp32))
    feeds: list[dict[str, np.ndarray]] = []

    def capture(source: Path, target: Path, tokenizer: Tokenizer, texts: list[str], max_length: int, settings: object):
        reader = TextCalibrationReader(tokenizer, TEXTS, max_length)
        while (feed := reader.get_next()) is not None:
            feeds.append(feed)
        raise RuntimeError("captured")

    monkeypatch.setattr(variants_module, "quantize_static_int8", capture)
    with pytest.raises(RuntimeError, match="captured"):
        build_variant(run_copy, Variant("static", "int8-static"), tmp_path / "static")

    runtime = EdgeClassifier.from_dir(fp32)
    expected = runtime.token_ids(TEXTS)
    assert [list(feed["input_ids"][0]) for feed in feeds] == [list(ids) for ids in expected]
    assert all(feed["attention_mask"].all() for feed in feeds)
