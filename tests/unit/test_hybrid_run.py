"""Opening and calibrating a run folder whose parts disagree: labels, router calibration, corpus columns.

The bundles here are tiny hand-made ONNX graphs (no torch): logits are a linear function of the token count.
"""

from __future__ import annotations

import json
import logging
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hybridroute.config import AdaptConfig, DataConfig
from hybridroute.data import LabelledTexts, Split
from hybridroute.errors import ArtifactError, DataError
from hybridroute.hybrid import HybridSettings, open_hybrid
from hybridroute.routing.router_config import RouterConfig, load_router, save_router
from hybridroute.runs import RunLayout, save_split
from hybridroute.runtime.bundle import read_manifest, write_manifest
from hybridroute.workflow import prepare_data, run_adapt, run_calibrate
from support.bundles import LABELS, make_bundle


def make_run(root: Path, split_labels: tuple[str, ...] = LABELS, cloud_labels: tuple[str, ...] | None = None) -> Path:
    """A run folder with an edge bundle, a stored split and optionally a cloud bundle."""
    make_bundle(root / "edge")
    if cloud_labels is not None:
        make_bundle(root / "cloud", cloud_labels)
    texts = tuple(f"hello number {i} " + "word " * (i % 7) for i in range(12))
    labels = tuple(split_labels[i % len(split_labels)] for i in range(12))
    data = LabelledTexts(texts, labels)
    save_split(RunLayout(root), Split(data, data, tuple(sorted(set(split_labels)))))
    return root


# ---------------------------------------------------------------- cloud labels (in process)


def test_in_process_cloud_with_other_labels_is_refused_naming_both_sets(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", cloud_labels=("a", "b", "z"))
    with pytest.raises(ArtifactError) as info:
        open_hybrid(HybridSettings(run))
    message = str(info.value)
    assert "predicts ['a', 'b', 'z']" in message
    assert "predicts ['a', 'b', 'c']" in message
    assert "only the cloud has ['z'], only the edge has ['c']" in message
    assert f"hybridroute train --tier cloud --data FILE --out {run}" in message


def test_in_process_cloud_with_the_same_labels_in_another_order_is_used(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", cloud_labels=("c", "a", "b"))
    hybrid = open_hybrid(HybridSettings(run, policy="always-cloud"))
    (answer,) = hybrid.classify(["hello there"])
    assert answer.label in LABELS


def test_calibrate_refuses_a_cloud_with_other_labels(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", cloud_labels=("x", "y", "z"))
    with pytest.raises(ArtifactError, match=r"only the cloud has \['x', 'y', 'z'\]"):
        run_calibrate(RunLayout(run), "confidence", {"cloud_share": 0.2})
    assert not (run / "router.json").exists()


# ---------------------------------------------------------------- split labels the edge lacks


def test_calibrate_refuses_a_split_with_labels_the_edge_bundle_lacks(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", split_labels=("card_lost", "refund", "a"))
    with pytest.raises(ArtifactError) as info:
        run_calibrate(RunLayout(run), "confidence", {"cloud_share": 0.2})
    message = str(info.value)
    assert "the stored split has labels the edge bundle" in message
    assert "lacks: ['card_lost', 'refund']" in message
    assert f"hybridroute compress --run {run}" in message


# ---------------------------------------------------------------- a router calibrated on another edge bundle


def test_calibrate_records_the_edge_model_version_and_a_fresh_router_does_not_warn(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run = make_run(tmp_path / "run", cloud_labels=LABELS)
    router = run_calibrate(RunLayout(run), "confidence", {"cloud_share": 0.2})
    assert router.edge_model_version == read_manifest(run / "edge").model_version
    assert load_router(run / "router.json").edge_model_version == router.edge_model_version
    with caplog.at_level(logging.WARNING, logger="hybridroute.hybrid"):
        open_hybrid(HybridSettings(run))
    assert "calibrate --run" not in caplog.text


def _refit_edge_temperature(run: Path, temperature: float) -> None:
    manifest = read_manifest(run / "edge")
    write_manifest(run / "edge", manifest.with_updates(temperature=temperature))


def test_a_router_calibrated_at_another_temperature_warns_but_serves(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run = make_run(tmp_path / "run", cloud_labels=LABELS)
    run_calibrate(RunLayout(run), "confidence", {"cloud_share": 0.2})
    _refit_edge_temperature(run, 0.8)  # what `compress --auto` does
    with caplog.at_level(logging.WARNING, logger="hybridroute.hybrid"):
        hybrid = open_hybrid(HybridSettings(run))
    assert "at temperature 1, but" in caplog.text
    assert "at temperature 0.8" in caplog.text
    assert f"run `hybridroute calibrate --run {run}`" in caplog.text
    assert len(hybrid.classify(["hello there"])) == 1


def test_a_router_calibrated_for_another_edge_model_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    run = make_run(tmp_path / "run")
    version = read_manifest(run / "edge").model_version
    save_router(run, RouterConfig("confidence", threshold=0.5, edge_model_version="000000000000"))
    with caplog.at_level(logging.WARNING, logger="hybridroute.hybrid"):
        open_hybrid(HybridSettings(run))
    assert f"calibrated for edge model 000000000000 at temperature 1, but {run / 'edge'} is model {version}" in (
        caplog.text
    )


def test_an_older_router_without_a_model_version_is_compared_by_temperature(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run = make_run(tmp_path / "run")
    (run / "router.json").write_text(json.dumps({"policy": "confidence", "threshold": 0.5}), encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="hybridroute.hybrid"):
        open_hybrid(HybridSettings(run))
    assert "calibrate --run" not in caplog.text
    _refit_edge_temperature(run, 1.3)
    with caplog.at_level(logging.WARNING, logger="hybridroute.hybrid"):
        open_hybrid(HybridSettings(run))
    assert "calibrated for edge model (not recorded) at temperature 1, but" in caplog.text


def test_a_policy_without_a_threshold_does_not_warn(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    run = make_run(tmp_path / "run")
    save_router(run, RouterConfig("confidence", threshold=0.5, temperature=0.5))
    with caplog.at_level(logging.WARNING, logger="hybridroute.hybrid"):
        open_hybrid(HybridSettings(run, policy="always-edge"))
    assert "calibrate --run" not in caplog.text


def test_a_run_without_router_file_does_not_warn(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    run = make_run(tmp_path / "run")
    _refit_edge_temperature(run, 0.7)
    with caplog.at_level(logging.WARNING, logger="hybridroute.hybrid"):
        open_hybrid(HybridSettings(run))
    assert "calibrate --run" not in caplog.text


# ---------------------------------------------------------------- run.json records and the MLM corpus


def test_prepare_data_records_the_blank_texts_dropped(tmp_path: Path) -> None:
    data = tmp_path / "d.csv"
    rows = "".join(f"text {i},{'xy'[i % 2]}\n" for i in range(10))
    data.write_text("text,label\n" + rows + '" ",x\n,y\n', encoding="utf-8")
    layout = RunLayout(tmp_path / "run")
    prepare_data(layout, DataConfig(data, val_fraction=0.2))
    assert layout.read_info()["data"]["dropped_blank"] == 2


@dataclass(frozen=True)
class FakeAdaptResult:
    out_dir: Path
    loss_before: float = 2.0
    loss_after: float = 1.0
    train_texts: int = 0
    heldout_texts: int = 0
    steps: int = 1
    seconds: float = 0.0


@pytest.fixture
def adapted_texts(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Replace the masked-LM trainer (torch) by one that records the texts it is given."""
    seen: list[list[str]] = []

    def adapt(texts: list[str], config: AdaptConfig, out_dir: Path, progress: bool) -> FakeAdaptResult:
        seen.append(list(texts))
        return FakeAdaptResult(out_dir, train_texts=len(texts))

    module: Any = types.ModuleType("hybridroute.training.mlm")
    module.adapt = adapt
    monkeypatch.setitem(sys.modules, "hybridroute.training.mlm", module)
    return seen


def test_run_adapt_reads_the_named_corpus_column(tmp_path: Path, adapted_texts: list[list[str]]) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"body": "first text", "id": 1}\n{"body": "second text", "id": 2}\n', encoding="utf-8")
    layout = RunLayout(tmp_path / "run")
    run_adapt(layout, AdaptConfig(), corpus, progress=False, corpus_text_col="body")
    assert adapted_texts == [["first text", "second text"]]
    assert layout.read_info()["adapt"]["corpus_text_col"] == "body"


def test_run_adapt_corpus_column_defaults_to_text(tmp_path: Path, adapted_texts: list[list[str]]) -> None:
    corpus = tmp_path / "corpus.csv"
    corpus.write_text("id,body\n1,hello\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"column 'text' not found; the file has columns \['body', 'id'\]"):
        run_adapt(RunLayout(tmp_path / "run"), AdaptConfig(), corpus, progress=False)
    assert adapted_texts == []


# ---------------------------------------------------------------- redaction and policy on the run-folder path


def test_open_hybrid_redacts_what_it_escalates_by_default(tmp_path: Path) -> None:
    hybrid = open_hybrid(HybridSettings(make_run(tmp_path / "run", cloud_labels=LABELS), policy="always-cloud"))
    assert hybrid.cloud is not None
    sent: list[str] = []
    real = hybrid.cloud.classify
    hybrid.cloud.classify = lambda texts: (sent.extend(texts), real(texts))[1]  # type: ignore[method-assign]

    [answer] = hybrid.classify(["mail me at jane.doe@example.com please"])

    assert "jane.doe@example.com" not in sent[0] and "<EMAIL>" in sent[0]
    assert answer.redactions == {"EMAIL": 1}


def test_open_hybrid_redacts_nothing_only_when_told_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from hybridroute.redaction import RedactionConfig

    run = make_run(tmp_path / "run", cloud_labels=LABELS)
    with caplog.at_level(logging.WARNING):
        hybrid = open_hybrid(HybridSettings(run, policy="always-cloud", redaction=RedactionConfig(enabled=False)))
    assert hybrid.redactor is None and "redaction is OFF" in caplog.text


def test_naming_the_calibrated_policy_keeps_the_calibrated_threshold(tmp_path: Path) -> None:
    from hybridroute.hybrid import router_for

    run = make_run(tmp_path / "run")
    save_router(RunLayout(run).router, RouterConfig("confidence", threshold=0.7))
    assert router_for(RunLayout(run), "confidence").threshold == 0.7  # type: ignore[attr-defined]


def test_an_in_process_cloud_with_an_extra_label_is_refused(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", cloud_labels=(*LABELS, "extra"))
    with pytest.raises(ArtifactError, match="only the cloud has"):
        open_hybrid(HybridSettings(run))
