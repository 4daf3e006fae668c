"""EdgeSettings refuses a live monitor that could never judge its windows."""

from __future__ import annotations

from pathlib import Path

import pytest

from hybridroute.errors import ConfigError
from hybridroute.monitoring.thresholds import MonitorConfig, MonitorThresholds
from hybridroute.serving.edge_settings import EdgeSettings


def test_a_min_window_larger_than_the_live_windows_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"windows hold 1000 answers, fewer than min_window \(5000\)"):
        EdgeSettings(tmp_path, monitor_thresholds=MonitorThresholds(min_window=5000))
    assert EdgeSettings(tmp_path, monitor_thresholds=MonitorThresholds(min_window=1000)).monitor_thresholds
    timed = MonitorConfig(window_seconds=60.0)  # windows by time hold however many answers came
    assert EdgeSettings(tmp_path, monitor_thresholds=MonitorThresholds(min_window=5000), monitor_config=timed)


def test_an_audit_queue_smaller_than_one_request_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"audit_queue \(--audit-queue\) is 5, fewer than max_texts .* at least 8"):
        EdgeSettings(tmp_path, audit_queue=5, max_texts=8)
    assert EdgeSettings(tmp_path, audit_queue=8, max_texts=8).audit_queue == 8
