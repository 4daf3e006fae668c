from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[3] / "src"
HEAVY = ("torch", "transformers", "fastapi")


def _run(code: str) -> dict[str, object]:
    env = os.environ | {"PYTHONPATH": str(SRC)}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


REPORT = "import json, sys; print(json.dumps({{'heavy': [m for m in {heavy!r} if m in sys.modules], {extra}}}))"


def test_light_modules_import_without_heavy_dependencies() -> None:
    code = (
        "import hybridroute.runtime, hybridroute.config, hybridroute.data, hybridroute.calibration, "
        "hybridroute.metrics, hybridroute.cli\n" + REPORT.format(heavy=HEAVY, extra="'ok': True")
    )
    report = _run(code)
    assert report == {"heavy": [], "ok": True}


def test_the_check_itself_sees_heavy_imports() -> None:
    report = _run("import fastapi\n" + REPORT.format(heavy=HEAVY, extra="'ok': True"))
    assert report["heavy"] == ["fastapi"]


@pytest.mark.parametrize("bundle", ["edge", "onnx_fp32"])
def test_edge_inference_loads_no_torch(tiny_run: Path, bundle: str) -> None:
    code = (
        "import hybridroute.runtime\n"
        f"c = hybridroute.runtime.EdgeClassifier.from_dir({str(tiny_run / bundle)!r}, threads=1)\n"
        "labels = [p.label for p in c.predict(['great thanks', 'awful broken refund'])]\n"
        + REPORT.format(heavy=HEAVY, extra="'labels': labels")
    )
    report = _run(code)
    assert report["heavy"] == []
    assert len(report["labels"]) == 2  # type: ignore[arg-type]
    assert set(report["labels"]) <= {"negative", "neutral", "positive"}  # type: ignore[arg-type]
