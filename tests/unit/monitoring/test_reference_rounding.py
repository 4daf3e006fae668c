"""A drift reference saved and read back is the one built: the same PSI for the same traffic on every path."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from hybridroute.monitoring.drift import (
    FEATURES,
    REFERENCE_FILE,
    Reference,
    build_reference,
    drift_scores,
    load_reference,
    psi,
    reference_for_run,
    save_reference,
)


def near_one_reference() -> Reference:
    """Confidences within 1e-6 of 1.0, where rounding to 6 decimals moved the quantile bin edges."""
    rng = np.random.default_rng(7)
    confidence = tuple(float(v) for v in 1.0 - rng.uniform(0.0, 1e-6, size=500))
    unk_rate = tuple(float(v) for v in rng.uniform(0.0, 1e-4, size=500))
    lengths = tuple(float(v) for v in rng.integers(5, 200, size=500))
    return Reference(lengths, unk_rate, confidence, 0.9, "v1", "test")


def test_saved_and_loaded_reference_gives_the_built_ones_psi(tmp_path: Path) -> None:
    built = near_one_reference()
    loaded = load_reference(save_reference(built, tmp_path / REFERENCE_FILE))
    rng = np.random.default_rng(3)
    sample = {
        "confidence": [float(v) for v in 1.0 - rng.uniform(0.0, 1e-6, size=60)],
        "unk_rate": [float(v) for v in rng.uniform(0.0, 1e-4, size=60)],
        "text_length": [float(v) for v in rng.integers(5, 200, size=60)],
    }
    assert psi(loaded.confidence, sample["confidence"]) == psi(built.confidence, sample["confidence"])
    assert drift_scores(loaded, sample) == drift_scores(built, sample)
    assert loaded == built


def test_a_run_serves_the_reference_it_built_and_the_one_it_saved_alike(tiny_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(tiny_run / "edge", run / "edge")
    shutil.copytree(tiny_run / "data", run / "data")
    built = build_reference(run)  # what the first `serve edge` uses, in memory
    saved = reference_for_run(run)  # what `hybridroute monitor --run` and a restarted service read
    assert (run / REFERENCE_FILE).is_file()
    for name in FEATURES:
        assert saved.feature(name) == built.feature(name), name
