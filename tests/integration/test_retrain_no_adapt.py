"""Retraining an adapted run with ``train --no-adapt``: the old adaptation must not outlive it.

Left behind, the old ``RUN/adapted`` is what a later ``finetune`` without ``--encoder`` fine-tunes, and the old
``adapt`` section of run.json is printed as this run's adaptation.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from hybridroute.cli import main
from support.json_files import write_json_file

FAST = {"finetune": {"head_epochs": 1, "batch_size": 16}, "compress": {"max_accuracy_drop": 1.0}}


@pytest.fixture
def adapted_run(tmp_path: Path, tiny_run: Path) -> Path:
    """A copy of the tiny run, which was adapted: it has RUN/adapted and an adapt section."""
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    assert (run / "adapted").is_dir() and "adapt" in _info(run)
    return run


def _info(run: Path) -> dict[str, Any]:
    return dict(json.loads((run / "run.json").read_text(encoding="utf-8")))


def _train_no_adapt(run: Path, data: Path, base: Path, config: Path) -> tuple[int, str]:
    args = ["train", "--data", str(data), "--out", str(run), "--base-model", str(base), "--no-adapt"]
    result = CliRunner().invoke(main, [*args, "--epochs", "1", "--config", str(config)])
    return result.exit_code, result.output


def test_train_no_adapt_drops_the_old_adaptation_and_a_later_finetune_uses_the_base(
    adapted_run: Path, toy_csv: Path, tiny_bert: Path, tmp_path: Path
) -> None:
    config = write_json_file(tmp_path / "fast.json", {**FAST, "adapt": {"epochs": 2}})
    code, output = _train_no_adapt(adapted_run, toy_csv, tiny_bert, config)
    assert code == 0, output
    assert "fine-tuning: validation accuracy" in output
    assert "note: --no-adapt skips adaptation; the config file's adapt section is not used" in output
    assert "adaptation: MLM" not in output  # the old run's MLM loss is not this run's
    info = _info(adapted_run)
    assert "adapt" not in info
    assert info["finetune"]["encoder"] == info["base_model"] == str(tiny_bert)
    assert not (adapted_run / "adapted").exists()
    assert not [p.name for p in adapted_run.iterdir() if p.name.startswith(".adapted")]  # nothing set aside left

    result = CliRunner().invoke(main, ["finetune", "--out", str(adapted_run), "--epochs", "1", "--head-epochs", "1"])
    assert result.exit_code == 0, result.output
    assert _info(adapted_run)["finetune"]["encoder"] == str(tiny_bert)  # not the old RUN/adapted


def test_a_failed_train_no_adapt_keeps_the_old_adaptation(
    adapted_run: Path, toy_csv: Path, tiny_bert: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hybridroute import workflow

    before = sorted(p.name for p in (adapted_run / "adapted").iterdir())
    section = _info(adapted_run)["adapt"]

    def gate_fails(*_: object) -> None:
        raise workflow.ArtifactError("INT8 accuracy gate failed")

    monkeypatch.setattr(workflow, "run_compress", gate_fails)
    code, output = _train_no_adapt(adapted_run, toy_csv, tiny_bert, write_json_file(tmp_path / "fast.json", FAST))
    assert code != 0 and "INT8 accuracy gate failed" in output
    assert sorted(p.name for p in (adapted_run / "adapted").iterdir()) == before
    assert _info(adapted_run)["adapt"] == section
