"""The health report renders in headless Chromium: headings present, every plot decoded, a screenshot taken."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from hybridroute.monitoring.audit import SQLiteAuditStore
from hybridroute.monitoring.replay import Phase, replay
from hybridroute.monitoring.report import render_report

CHROMIUM = next((p for p in ("/usr/bin/chromium", shutil.which("chromium") or "") if p and os.path.exists(p)), None)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install -y chromium chromium-driver)"
)
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
)


def chromium(tmp_path: Path, *args: str) -> str:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    command = [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("browser")
    store = SQLiteAuditStore(root / "audit.db")
    records = replay([Phase(600), Phase(600, accuracy=0.7, edge_share=0.5)], np.random.default_rng(0))
    store.write_many([r.plain() for r in records])
    store.close()
    return render_report(root / "audit.db", root / "report.html")


def test_page_loads_with_every_plot_decoded(page: Path, tmp_path: Path) -> None:
    # The report's inline script marks the body once loaded: images whose naturalWidth > 0, out of all.
    dom = chromium(tmp_path, "--virtual-time-budget=10000", "--dump-dom", page.as_uri())
    marker = re.search(r'data-images-loaded="(\d+)/(\d+)"', dom)
    assert marker, "the page's load script did not run"
    assert marker.group(1) == marker.group(2) == "5"
    for heading in ("Summary", "Alerts", "Trends", "Recommendations", "Cost projection", "Plots"):
        assert f">{heading}</h2>" in dom


def test_screenshot(page: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,2000", page.as_uri())
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 20_000
