"""The drift reference built from a real (tiny) run: validation lengths, unknown-token rates, edge confidences."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from hybridroute.monitoring.drift import (
    REFERENCE_FILE,
    build_reference,
    load_reference,
    reference_for_run,
    save_reference,
)
from hybridroute.runs import RunLayout, load_saved_split


def test_build_reference_from_a_run(tiny_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    reference = build_reference(run)
    validation = load_saved_split(RunLayout(run)).validation
    assert len(reference.confidence) == len(reference.text_length) == len(validation.texts)
    assert reference.text_length == tuple(len(t) for t in validation.texts)
    assert all(0.0 <= r <= 1.0 for r in reference.unk_rate)
    assert all(0.0 < c <= 1.0 for c in reference.confidence)
    assert reference.accuracy is not None and 0.0 <= reference.accuracy <= 1.0
    assert reference.model_version
    saved = load_reference(run / REFERENCE_FILE)  # build_reference saved it in the run
    assert saved.text_length == reference.text_length and saved.model_version == reference.model_version
    assert saved.confidence == pytest.approx(reference.confidence, abs=1e-6)  # stored to 6 decimals


def test_reference_for_run_reuses_or_rebuilds(tiny_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    built = reference_for_run(run)
    assert (run / REFERENCE_FILE).is_file()
    stale = dataclasses.replace(load_reference(run), model_version="another", accuracy=-1.0)
    save_reference(stale, run / REFERENCE_FILE)
    assert reference_for_run(run).model_version == built.model_version  # another model's reference is rebuilt
    save_reference(dataclasses.replace(built, accuracy=0.5), run / REFERENCE_FILE)
    assert reference_for_run(run).accuracy == 0.5  # a matching one is reused
