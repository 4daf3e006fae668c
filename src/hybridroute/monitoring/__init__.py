"""Monitoring (the ``[monitor]`` extra: prometheus-client; sqlite3 from the standard library).

Modules:
    ``audit``: one row per routing decision (SQLite by default, PostgreSQL by URL), written off the request path.
    ``metrics``: the edge service's Prometheus metrics, on a registry the caller owns.
    ``monitor``: windows, alerts, health score, trends, recommendations and cost over audited traffic
        (``analyze``; ``Monitor`` for a running service). Built from ``thresholds`` (limits and windowing),
        ``window`` (statistics of a run of records), ``health`` (alerts and the score), ``trend`` (OLS slope
        and t-test, no scipy) and ``drift`` (PSI against the validation reference).
    ``estimate``: how well the label-free accuracy estimate tracks measured accuracy.
    ``report``: the self-contained HTML health report (matplotlib).
    ``replay``: synthetic audit traffic in phases, for tests and demos.

Nothing is imported here, so importing one module does not pull in the others.
"""
