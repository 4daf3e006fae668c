"""The health report: one self-contained HTML page (plots inlined) with PNG copies beside it.

``render_report(db, "report.html")`` reads the audit log, runs the monitor
(:func:`~hybridroute.monitoring.monitor.analyze`) and writes ``report.html``
plus ``report_files/*.png``. The page loads nothing from elsewhere: styles
are inline and each plot is a ``data:`` URL, so it can be mailed or archived
as one file. A few lines of inline script mark the body with
``data-images-loaded="loaded/total"`` once the page has loaded, which lets a
headless browser check that every plot decoded.

Matplotlib is used through :class:`matplotlib.figure.Figure` with the Agg
canvas, never pyplot, so rendering changes no global state.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from hybridroute.errors import ConfigError
from hybridroute.files import check_output_path, write_bytes_atomic, write_text_atomic
from hybridroute.monitoring.audit import open_audit_reader, redact_url
from hybridroute.monitoring.drift import Reference
from hybridroute.monitoring.health import CRITICAL, Alert, evaluate
from hybridroute.monitoring.monitor import MonitorReport, analyze
from hybridroute.monitoring.thresholds import MonitorConfig, MonitorThresholds
from hybridroute.monitoring.window import RecordLike, Window, split_windows, window_stats

PLOT_POINTS = 60  # windows on the time plots: enough to see a shape, few enough to stay readable
STATUS_COLOURS = {"healthy": "#1a7f37", "degraded": "#9a6700", "critical": "#cf222e", "insufficient_data": "#57606a"}
LOADED_SCRIPT = (
    "<script>window.addEventListener('load',function(){var i=document.images,n=0;"
    "for(var k=0;k<i.length;k++){if(i[k].complete&&i[k].naturalWidth>0){n++;}}"
    "document.body.setAttribute('data-images-loaded',n+'/'+i.length);});</script>"
)
STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#1f2328}"
    "table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #d0d7de;padding:4px 8px;text-align:left}"
    ".critical{color:#cf222e}.warning{color:#9a6700}img{max-width:100%;border:1px solid #d0d7de}"
    ".score{font-size:2.5em;font-weight:bold}"
)


@dataclass(frozen=True)
class Plot:
    """One rendered figure: a file stem, a caption and its PNG bytes."""

    name: str
    caption: str
    png: bytes


# ---------------------------------------------------------------- plots


def _times(values: Sequence[float]) -> list[dt.datetime]:
    return [dt.datetime.fromtimestamp(v, tz=dt.timezone.utc) for v in values]


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    return buffer.getvalue()


def _figure(title: str) -> tuple[Figure, Any]:
    figure = Figure(figsize=(8, 3.2))
    axes = figure.add_subplot()
    axes.set_title(title)
    axes.grid(alpha=0.3)
    return figure, axes


def plot_edge_share(series: Sequence[Window], t: MonitorThresholds) -> Plot:
    """Edge share per window over time, with the warning and critical limits."""
    figure, axes = _figure("Edge share over time")
    axes.plot(_times([w.mid for w in series]), [w.edge_share for w in series], marker=".", label="edge share")
    axes.axhline(t.min_edge_share, color="#9a6700", linestyle="--", label=f"warning {t.min_edge_share:.2f}")
    axes.axhline(t.critical_edge_share, color="#cf222e", linestyle=":", label=f"critical {t.critical_edge_share:.2f}")
    axes.set_ylim(0, 1.02)
    axes.legend(loc="lower left", fontsize=8)
    figure.autofmt_xdate()
    return Plot("edge_share", "Share of answers given by the edge, per window.", _png(figure))


def plot_latency(records: Sequence[RecordLike], t: MonitorThresholds) -> Plot:
    """Histogram of server latency on log-spaced bins, with the p95 and its limit."""
    figure, axes = _figure("Latency")
    latency = np.maximum(np.array([r.latency_ms for r in records], dtype=float), 0.01)
    bins = np.geomspace(latency.min(), max(latency.max(), latency.min() * 1.01), 40)
    axes.hist(latency, bins=bins, color="#0969da", alpha=0.8)
    axes.set_xscale("log")
    axes.axvline(float(np.percentile(latency, 95)), color="#1f2328", label="p95 (all traffic)")
    axes.axvline(t.max_p95_latency_ms, color="#cf222e", linestyle="--", label=f"p95 limit {t.max_p95_latency_ms:g} ms")
    axes.set_xlabel("ms")
    axes.legend(fontsize=8)
    return Plot("latency", "Server latency of every answer in the log.", _png(figure))


def plot_cost(records: Sequence[RecordLike], cloud_price: float) -> Plot:
    """Cumulative cost over time against the same traffic sent to the cloud only."""
    figure, axes = _figure("Cost over time")
    ordered = sorted(records, key=lambda r: r.time)
    times = _times([r.time for r in ordered])
    axes.plot(times, np.cumsum([r.cost for r in ordered]), label="hybrid (USD)")
    axes.plot(times, cloud_price * np.arange(1, len(ordered) + 1), linestyle="--", label="cloud only (USD)")
    axes.legend(fontsize=8)
    figure.autofmt_xdate()
    return Plot("cost", "Cumulative cost of the hybrid against cloud-only.", _png(figure))


def plot_confidence(window: Window, reference: Reference | None, history: Sequence[RecordLike]) -> Plot:
    """Edge confidence in the current window against the validation reference (or all history)."""
    figure, axes = _figure("Edge confidence against the reference")
    bins = np.linspace(0, 1, 26)
    axes.hist(window.edge_confidence, bins=bins, density=True, alpha=0.6, label="current window")
    if reference is not None and reference.confidence:
        base, name = reference.confidence, "validation reference"
    else:
        base, name = tuple(r.edge_confidence for r in history), "all traffic (no reference given)"
    axes.hist(base, bins=bins, density=True, histtype="step", linewidth=2, label=name)
    axes.set_xlabel("calibrated top-class confidence")
    axes.legend(fontsize=8, loc="upper left")
    return Plot("confidence", "Distribution of the edge's confidence: now and in the reference.", _png(figure))


def plot_alerts(series: Sequence[Window], series_alerts: Sequence[Sequence[Alert]]) -> Plot:
    """Which alerts fired in which window, coloured by severity."""
    figure, axes = _figure("Alerts over time")
    names = sorted({a.name for alerts in series_alerts for a in alerts})
    for window, alerts in zip(series, series_alerts, strict=True):
        for alert in alerts:
            colour = "#cf222e" if alert.severity == CRITICAL else "#d4a72c"
            axes.scatter(_times([window.mid]), [names.index(alert.name)], color=colour, s=25)
    axes.set_yticks(range(len(names)), names)
    if not names:  # a healthy log: nothing to plot (an empty scatter has no ticks to label)
        axes.text(0.5, 0.5, "no alerts", transform=axes.transAxes, ha="center")
    figure.autofmt_xdate()
    return Plot("alerts", "Alerts per window (red: critical, amber: warning).", _png(figure))


# ---------------------------------------------------------------- html


def _table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.4g}"
    return "n/a" if value is None else str(value)


def _summary(report: MonitorReport, total: int) -> str:
    w, h = report.window.to_dict(), report.health  # a window of no queries: None (n/a), not 0
    colour = STATUS_COLOURS.get(h.status, "#1f2328")
    latency = " / ".join(
        "n/a" if w[k] is None else f"{w[k]:.1f}" for k in ("latency_p50_ms", "latency_p95_ms", "latency_p99_ms")
    )
    rows = [
        ("records in the log", total),
        ("queries in the current window", w["queries"]),
        ("edge share", w["edge_share"]),
        ("estimated accuracy (mean confidence)", w["estimated_accuracy"]),
        ("accuracy from feedback", w["feedback_accuracy"]),
        ("feedback labels", w["feedback_count"]),
        ("estimate − measured on labelled answers", w["estimate_gap"]),
        ("latency p50 / p95 / p99 ms", latency),
        ("fallback rate", w["fallback_rate"]),
        ("cost per query (USD)", w["cost_per_query"]),
        *((f"drift PSI: {k}", v) for k, v in report.drift.items()),
    ]
    return (
        f'<h2 id="summary">Summary</h2><p class="score" style="color:{colour}">{h.score:.0f}/100 '
        f"{html.escape(h.status)}</p>" + _table(rows, ("metric", "value"))
    )


def _alerts(alerts: Sequence[Alert]) -> str:
    if not alerts:
        return '<h2 id="alerts">Alerts</h2><p>No alerts.</p>'
    items = "".join(
        f'<li class="{html.escape(a.severity)}"><b>{html.escape(a.severity)}</b> {html.escape(a.name)}: '
        f"{html.escape(a.message)}</li>"
        for a in alerts
    )
    return f'<h2 id="alerts">Alerts</h2><ul>{items}</ul>'


def _trends(report: MonitorReport) -> str:
    rows = [(k, t.direction, t.slope, t.p_value, t.points) for k, t in report.trends.items()]
    return '<h2 id="trends">Trends</h2>' + _table(rows, ("metric", "direction", "slope per hour", "p-value", "windows"))


def _recommendations(items: Sequence[str]) -> str:
    body = "".join(f"<li>{html.escape(r)}</li>" for r in items)
    return f'<h2 id="recommendations">Recommendations</h2><ol>{body}</ol>'


def _cost(report: MonitorReport) -> str:
    c = report.cost
    rows = [
        ("queries per day", c.queries_per_day, c.queries_per_day),
        ("daily cost (USD)", c.daily_cost, c.daily_cloud_only),
        ("monthly cost, 30 days (USD)", c.monthly_cost, c.monthly_cloud_only),
    ]
    saved = "n/a" if c.savings_pct is None else f"{c.savings_pct:.1f}%"
    note = f"<p>Monthly savings {_fmt(c.monthly_savings)} USD ({saved} of cloud-only).</p>"
    return '<h2 id="cost">Cost projection</h2>' + _table(rows, ("", "hybrid", "cloud only")) + note


def _plots(plots: Sequence[Plot]) -> str:
    figures = "".join(
        f'<figure><img alt="{html.escape(p.caption)}" src="data:image/png;base64,'
        f'{base64.b64encode(p.png).decode("ascii")}"><figcaption>{html.escape(p.caption)}</figcaption></figure>'
        for p in plots
    )
    return f'<h2 id="plots">Plots</h2>{figures}'


def report_html(report: MonitorReport, plots: Sequence[Plot], total: int, source: str) -> str:
    """The page: summary, alerts, trends, recommendations, cost projection, plots."""
    generated = dt.datetime.now(tz=dt.timezone.utc).isoformat(timespec="seconds")
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>hybridroute health report</title><style>{STYLE}</style></head><body>"
        f"<h1>hybridroute health report</h1><p>Audit log {html.escape(source)}; generated {generated}.</p>"
        + _summary(report, total)
        + _alerts(report.alerts)
        + _trends(report)
        + _recommendations(report.recommendations)
        + _cost(report)
        + _plots(plots)
        + LOADED_SCRIPT
        + "</body></html>"
    )


# ---------------------------------------------------------------- orchestration


def plot_series(records: Sequence[RecordLike], t: MonitorThresholds) -> list[Window]:
    """About :data:`PLOT_POINTS` windows over the whole log, each of at least ``min_window`` queries."""
    size = max(t.min_window, math.ceil(len(records) / PLOT_POINTS))
    return [window_stats(w) for w in split_windows(records, MonitorConfig(window_size=size))]


def make_plots(
    records: Sequence[RecordLike],
    report: MonitorReport,
    reference: Reference | None,
    t: MonitorThresholds,
    c: MonitorConfig,
) -> list[Plot]:
    """The five plots of the report."""
    series = plot_series(records, t)
    series_alerts = [evaluate(w, reference, t, c.drift_bins) for w in series]
    return [
        plot_edge_share(series, t),
        plot_latency(records, t),
        plot_cost(records, c.cloud_price),
        plot_confidence(report.window, reference, records),
        plot_alerts(series, series_alerts),
    ]


def read_records(db: str | Path) -> list[Any]:
    """Every record in an audit store (path or URL), oldest first; see :func:`open_audit_reader`."""
    store = open_audit_reader(db)
    try:
        return store.query()
    finally:
        store.close()


def render_report(
    db: str | Path,
    out_html: str | Path,
    reference: Reference | None = None,
    thresholds: MonitorThresholds | None = None,
    config: MonitorConfig | None = None,
) -> Path:
    """Write the HTML health report of an audit log, and its plots as PNG files beside it.

    Args:
        db: the audit store (SQLite path, ``sqlite:///`` or ``postgresql://`` URL).
        out_html: the page to write; plots go to ``<stem>_files/<name>.png`` next to it.
        reference: the validation reference, for drift and the confidence plot.
        thresholds: alert limits.
        config: windowing (the current window is the newest ``window_size`` queries).

    Raises:
        ConfigError: the audit database is missing or holds no records, or ``out_html`` cannot be written
            (checked before anything is written).
    """
    check_report_out(Path(out_html))
    t, c = thresholds or MonitorThresholds(), config or MonitorConfig()
    source = redact_url(str(db))  # the page and messages name the database, never its password
    records = read_records(db)
    if not records:
        raise ConfigError(f"audit database {source} holds no records yet; serve some traffic first")
    report = analyze(records, reference, t, c)
    plots = make_plots(records, report, reference, t, c)
    return write_report_files(Path(out_html), report_html(report, plots, len(records), source), plots)


def report_files_dir(out: Path) -> Path:
    """Where the plots of the page ``out`` go: ``<stem>_files`` beside it."""
    return out.parent / f"{out.stem}_files"


def check_report_out(out: Path, inputs: Mapping[str, Path | None] | None = None) -> None:
    """Refuse a page path before anything is written (:func:`check_output_path`), or whose plots folder is a file.

    That is: no name, a folder, under a file, in a folder this process cannot write, one of ``inputs``.

    Example: check_report_out(Path("reports")) with ``reports/`` a folder -> ConfigError
    """
    check_output_path(out, "the report path", inputs)
    files = report_files_dir(out)
    if files.exists() and not files.is_dir():
        raise ConfigError(
            f"the plots folder {files} of the report {out} is a file; "
            "accepted: a file name such as report.html whose <stem>_files is a folder or not there yet"
        )


def write_report_files(out: Path, page: str, plots: Sequence[Plot]) -> Path:
    """Write ``page`` to ``out`` and each plot to ``<stem>_files/<name>.png`` beside it; return ``out``.

    Each file is replaced whole (:func:`write_text_atomic`), so an interrupted report leaves the earlier
    files readable: the page last, after the PNG copies it mentions.

    Example: write_report_files(Path("r.html"), page, [Plot("cost", "...", png)]) writes r_files/cost.png, r.html
    """
    check_report_out(out)
    files = report_files_dir(out)
    files.mkdir(parents=True, exist_ok=True)
    for plot in plots:
        write_bytes_atomic(files / f"{plot.name}.png", plot.png)
    return write_text_atomic(out, page)
