"""One short real-model smoke test: the packaged MiniLM through every stage on synthetic data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hybridroute.config import AdaptConfig, CompressConfig, DataConfig, FinetuneConfig
from hybridroute.runs import RunLayout
from hybridroute.runtime import EdgeClassifier
from hybridroute.workflow import TrainPlan, train_all


@pytest.mark.smoke
def test_minilm_pipeline_learns_synthetic_sentiment(tmp_path: Path) -> None:
    from hybridroute.synthetic import SyntheticConfig, generate, write_csv

    data = write_csv(generate(SyntheticConfig(n=480, seed=3)), tmp_path / "train.csv")
    plan = TrainPlan(
        DataConfig(data, label_col="sentiment", val_fraction=0.2),
        AdaptConfig(epochs=0.25, max_length=48),
        FinetuneConfig(head_epochs=3, epochs=2, max_length=48),
        # 96 validation texts: one text is a point, so the gate's own tests cover the 1-point default.
        CompressConfig(max_accuracy_drop=0.05),
    )
    info = train_all(RunLayout(tmp_path / "run"), plan, progress=False)
    assert info["adapt"]["loss_after"] < info["adapt"]["loss_before"]
    assert info["finetune"]["val_accuracy"] > 0.6  # three balanced-ish classes: chance is about 0.4
    assert info["compress"]["size_reduction_pct"] > 70
    classifier = EdgeClassifier.from_dir(tmp_path / "run" / "edge")
    manifest = json.loads((tmp_path / "run" / "edge" / "manifest.json").read_text())
    assert classifier.labels == tuple(manifest["labels"])
    predictions = classifier.predict(
        ["Thank you so much, the agent was wonderful!", "This is the worst, still no refund"]
    )
    assert [p.label for p in predictions] == ["positive", "negative"]
