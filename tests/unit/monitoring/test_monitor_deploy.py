"""The shipped Prometheus rules and Grafana dashboard parse and name only metrics the service exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from hybridroute.monitoring.metrics import EdgeMetrics
from hybridroute.monitoring.thresholds import MonitorThresholds

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
METRIC = re.compile(r"\bhybridroute_[a-z0-9_]+")
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "gauge": ("",),
    "info": ("_info",),
}


def exported_names() -> set[str]:
    """Every series name the edge metrics can expose (labelled metrics expose none until used)."""
    registry = CollectorRegistry()
    metrics = EdgeMetrics(registry)
    metrics.edge_share.set(1.0)  # these gauges are absent until they have a value
    metrics.monitor_feedback_accuracy.set(1.0)
    return {family.name + suffix for family in registry.collect() for suffix in SUFFIXES[family.type]}


def rules() -> list[dict[str, object]]:
    yaml = pytest.importorskip("yaml")
    data = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text(encoding="utf-8"))
    return [rule for group in data["groups"] for rule in group["rules"]]


def test_alert_rules_use_exported_metrics() -> None:
    found = rules()
    assert len(found) >= 10
    exported = exported_names()
    for rule in found:
        assert {"alert", "expr", "labels", "annotations"} <= set(rule)
        assert rule["labels"]["severity"] in {"warning", "critical"}  # type: ignore[index]
        used = set(METRIC.findall(str(rule["expr"])))
        assert used, rule["alert"]
        assert used <= exported, f"{rule['alert']} names unknown metrics {used - exported}"


def test_alert_rules_share_the_monitor_thresholds() -> None:
    t = MonitorThresholds()
    exprs = {rule["alert"]: str(rule["expr"]) for rule in rules()}
    assert exprs["HybridrouteEdgeShareLow"].endswith(f"< {t.min_edge_share:.2f}")
    assert exprs["HybridrouteEdgeShareCritical"].endswith(f"< {t.critical_edge_share:.2f}")
    assert f"> {t.max_p95_latency_ms / 1000:.3f}" in exprs["HybridrouteLatencyP95High"]
    assert f"> {t.max_cost_per_query}" in exprs["HybridrouteCostPerQueryHigh"]
    assert f"< {t.min_accuracy}" in exprs["HybridrouteEstimatedAccuracyLow"]


def test_grafana_dashboard_uses_exported_metrics() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "hybridroute.json").read_text(encoding="utf-8"))
    exported = exported_names()
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels) >= 10
    used: set[str] = set()
    for panel in panels:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            used |= set(METRIC.findall(target["expr"]))
    assert used <= exported, used - exported
    for needed in (
        "hybridroute_edge_share",
        "hybridroute_request_latency_seconds_bucket",
        "hybridroute_cost_usd_total",
    ):
        assert needed in used


def test_drift_and_feedback_rules_share_the_monitor_thresholds() -> None:
    t = MonitorThresholds()
    exprs = {rule["alert"]: str(rule["expr"]) for rule in rules()}
    assert exprs["HybridrouteDriftModerate"].endswith(f"> {t.psi_warn}")
    assert exprs["HybridrouteDriftMajor"].endswith(f"> {t.psi_alert}")
    for name in ("HybridrouteDriftModerate", "HybridrouteDriftMajor"):  # and past the sampling noise, as the monitor
        assert exprs[name].startswith("hybridroute_monitor_drift_psi > hybridroute_monitor_drift_psi_noise and ")
    assert exprs["HybridrouteFeedbackAccuracyLow"].endswith(f"< {t.min_accuracy}")
    assert exprs["HybridrouteFeedbackAccuracyCritical"].endswith(f"< {t.critical_accuracy}")


def test_error_rate_rule_is_the_server_error_share_of_http_requests() -> None:
    exprs = {rule["alert"]: " ".join(str(rule["expr"]).split()) for rule in rules()}
    error_rate = exprs["HybridrouteErrorRateHigh"]
    numerator, _, denominator = error_rate.partition(" / ")
    # Per HTTP request: answered texts (hybridroute_requests_total) would count a 64-text request 64 times.
    assert set(METRIC.findall(error_rate)) == {"hybridroute_http_requests_total"}
    assert 'status="5xx"' in numerator and "status" not in denominator
    api = 'route=~"/v1/.*|/admin/.*"'  # /readyz answers 503 while loading, by design: not an error of the API
    assert api in numerator and api in denominator
    assert error_rate.endswith("> 0.05")
    assert 'status="4xx"' in exprs["HybridrouteClientErrorRateHigh"]


def test_grafana_dashboard_plots_the_error_rate_of_the_rule() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "hybridroute.json").read_text(encoding="utf-8"))
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    rule = {r["alert"]: " ".join(str(r["expr"]).split()) for r in rules()}["HybridrouteErrorRateHigh"]
    plotted = rule.removesuffix(" > 0.05").replace("[5m]", "[$__rate_interval]")
    assert plotted in exprs
