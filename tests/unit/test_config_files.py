"""Typed configs from JSON files: alert limits (`--thresholds`, with `--min-window` on top) and prices (`--prices`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hybridroute.config import config_from_file
from hybridroute.errors import ConfigError
from hybridroute.monitoring.thresholds import MonitorThresholds
from hybridroute.routing.ledger import PriceConfig
from support.json_files import write_json_file


def test_without_a_file_the_defaults_apply_and_min_window_overrides_them() -> None:
    assert config_from_file(MonitorThresholds, None) == MonitorThresholds()
    assert config_from_file(MonitorThresholds, None, min_window=20) == MonitorThresholds(min_window=20)


def test_the_file_overrides_only_the_keys_it_names(tmp_path: Path) -> None:
    values = {"min_edge_share": 0.9, "critical_edge_share": 0.8, "min_window": 80}
    found = config_from_file(MonitorThresholds, write_json_file(tmp_path / "config.json", values))
    assert (found.min_edge_share, found.critical_edge_share, found.min_window) == (0.9, 0.8, 80)
    assert found.max_p95_latency_ms == MonitorThresholds().max_p95_latency_ms
    flagged = config_from_file(
        MonitorThresholds, write_json_file(tmp_path / "config.json", {"min_window": 80}), min_window=30
    )
    assert flagged.min_window == 30  # the flag wins


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"min_edge_shares": 0.9}, r"unknown MonitorThresholds keys \['min_edge_shares'\]; known keys: \["),
        ({"max_p95_latency_ms": "50"}, r"max_p95_latency_ms must be a finite number, got '50' \(str\)"),
        ({"min_window": 2.5}, r"min_window must be an integer, got 2.5"),
        ({"min_edge_share": 0.5}, r"critical_edge_share \(0.6\) must be <= min_edge_share \(0.5\)"),
        ({"min_accuracy": 1.5}, r"min_accuracy"),
        ([0.9], r"must hold a JSON object, got list"),
    ],
)
def test_a_bad_file_is_refused_naming_what_is_wrong(tmp_path: Path, values: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        config_from_file(MonitorThresholds, write_json_file(tmp_path / "config.json", values))
    assert "config.json" in str(caught.value)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"min_window": "lots"}, r"min_window must be an integer, got 'lots' \(str\)"),
        ({"min_window": 0}, r"min_window must be in \[1, 10000000\], got 0"),
    ],
)
def test_a_bad_file_value_is_refused_even_where_min_window_replaces_it(
    tmp_path: Path, values: dict[str, object], message: str
) -> None:
    path = write_json_file(tmp_path / "limits.json", values)
    with pytest.raises(ConfigError, match=message) as caught:
        config_from_file(MonitorThresholds, path, min_window=50)
    assert str(caught.value).startswith(f"{path}: ")


def test_a_file_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_bytes("\ufeff".encode() + json.dumps({"cloud_per_query": 0.02}).encode())
    assert config_from_file(PriceConfig, path).cloud_per_query == 0.02


def test_a_key_given_twice_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "limits.json"
    path.write_text('{"min_window": 80, "min_window": 5}', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"key 'min_window' appears 2 times in one object"):
        config_from_file(MonitorThresholds, path, min_window=30)


def test_a_folder_is_refused_as_a_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"config file {tmp_path} is a folder; a JSON file is expected"):
        config_from_file(PriceConfig, tmp_path)


def test_a_missing_or_unreadable_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        config_from_file(MonitorThresholds, tmp_path / "none.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match="is not valid JSON"):
        config_from_file(MonitorThresholds, broken)


def test_prices_come_from_the_file_and_bad_ones_are_refused_naming_it(tmp_path: Path) -> None:
    found = config_from_file(
        PriceConfig, write_json_file(tmp_path / "config.json", {"cloud_per_query": 0.02, "mode": "measured"})
    )
    assert (found.cloud_per_query, found.mode, found.edge_per_query) == (0.02, "measured", PriceConfig().edge_per_query)
    for values, message in (
        ({"mode": "metered"}, "mode"),
        ({"cloud_per_query": -1}, "cloud_per_query"),
        ({"cloud_price": 0.02}, r"unknown PriceConfig keys \['cloud_price'\]"),
    ):
        with pytest.raises(ConfigError, match=message) as caught:
            config_from_file(PriceConfig, write_json_file(tmp_path / "config.json", values))
        assert str(caught.value).startswith(f"{tmp_path / 'config.json'}: ")
