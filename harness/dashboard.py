"""The committed Grafana dashboard's queries as Prometheus receives them, for the tests that check them offline
(tests/contract/test_dashboards.py) and against a Prometheus scraping running services
(tests/integration/test_metrics.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "deploy/grafana/dashboards/order-processing.json"
# Grafana's global variables, replaced by a duration before Prometheus sees a query (Grafana docs: "Global
# variables"); $__rate_interval is at least four scrape intervals (5 s in docker-compose.yml).
GRAFANA_DURATIONS = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}


def load_dashboard(path: Path = DASHBOARD) -> dict[str, Any]:
    """The dashboard JSON as Grafana loads it. OSError or json.JSONDecodeError when it cannot be read."""
    dashboard: dict[str, Any] = json.loads(path.read_text())
    return dashboard


def dashboard_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, PromQL with Grafana's variables) of every query of every panel, in panel order."""
    return [(panel["title"], target["expr"]) for panel in dashboard["panels"] for target in panel["targets"]]


def as_sent(expr: str, durations: dict[str, str] | None = None) -> str:
    """expr with Grafana's variables replaced by durations (GRAFANA_DURATIONS by default; a scrape every second
    wants shorter ones), as Prometheus receives it."""
    for variable, duration in (durations or GRAFANA_DURATIONS).items():
        expr = expr.replace(variable, duration)
    return expr
