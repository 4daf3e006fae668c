"""Monitoring (the ``[monitor]`` extra: prometheus-client; sqlite3 from the standard library).

Modules:
    ``audit``: one row per routing decision (SQLite by default, PostgreSQL by URL), written off the request path.
    ``metrics``: the edge service's Prometheus metrics, on a registry the caller owns.

Nothing is imported here, so importing one module does not pull in the others.
"""
