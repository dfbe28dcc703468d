"""The Grafana dashboard and the Prometheus scrape config of docker-compose.yml read what the services export.

* The dashboard (deploy/grafana/dashboards/order-processing.json) is a dashboard Grafana can load: uid, title,
  schemaVersion, panels each with a unique id, a type, a title, a place on the 24-column grid (no two overlap) and
  queries on the provisioned Prometheus data source.
* Every query is PromQL that Prometheus itself accepts (`promtool check rules`, offline) and the scrape config is
  one Prometheus accepts (`promtool check config`).
* Every series a query reads is one the services serve at GET /metrics: both apps are built in-process (databases
  migrated, no broker: the lag families are served empty) and scraped, so a renamed metric fails here. Every `job`
  a query names is a job of the scrape config.

Nothing here runs Docker, Grafana or a Prometheus server.
"""

from __future__ import annotations

import functools
import itertools
import shutil
import subprocess
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from fulfillment_service import bootstrap as fulfillment_bootstrap
from fulfillment_service.app import create_app as create_fulfillment_app
from fulfillment_service.settings import FulfillmentServiceSettings
from harness.dashboard import DASHBOARD, as_sent, dashboard_queries, load_dashboard
from infra.ports import free_port
from infra.prometheus import ensure_installed
from observability.http_metrics import METRICS_PATH
from order_service import bootstrap as order_bootstrap
from order_service.app import create_app as create_order_app
from order_service.settings import OrderServiceSettings
from persistence.engine import make_engine

ROOT = Path(__file__).resolve().parents[2]
DATASOURCES = ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml"
SCRAPE_CONFIG = ROOT / "deploy/prometheus/prometheus.yml"
GRID_COLUMNS = 24
# Panel types of Grafana's core plugins that show query results (a `row` has no queries and is not used).
PANEL_TYPES = {"timeseries", "stat", "gauge", "bargauge", "state-timeline", "status-history", "table", "heatmap"}
# Series Prometheus adds to every scrape itself (Prometheus docs: "Jobs and instances", automatically generated
# time series); the services do not serve them.
PROMETHEUS_SERIES = {
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
}
# How each metric type's samples are named after its family (the Prometheus text format 0.0.4).
SAMPLE_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


# --- reading the files ---------------------------------------------------------------------------


@functools.cache
def dashboard() -> dict[str, Any]:
    return load_dashboard(DASHBOARD)


def panels() -> list[dict[str, Any]]:
    return dashboard()["panels"]


def queries() -> list[tuple[str, str]]:
    """(panel title, PromQL as Grafana sends it) of every query of the dashboard."""
    return dashboard_queries(dashboard())


def selectors(expr: str) -> list[Any]:
    """The vector selectors (metric name and label matchers) of a query."""
    found: list[Any] = []

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            found.append(node)

    promql_parser.walk(promql_parser.parse(as_sent(expr)), visit)
    return found


@functools.cache
def scrape_jobs() -> dict[str, list[str]]:
    """Job name -> its targets (host:port), from the committed scrape config."""
    config = yaml.safe_load(SCRAPE_CONFIG.read_text())
    return {
        job["job_name"]: [target for static in job["static_configs"] for target in static["targets"]]
        for job in config["scrape_configs"]
    }


# --- what the services export ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str]]:
    """Job name -> the sample names the service serves at GET /metrics.

    Each app is built without its lifespan, its databases migrated as the lifespan would; nothing listens on the
    broker and registry ports, so scrape-time sources that read the broker serve their families empty. A family
    without samples (a labelled series nobody observed yet) counts with the sample names its type gives it.
    """
    directory = tmp_path_factory.mktemp("apps")
    common = {
        "kafka_bootstrap_servers": f"127.0.0.1:{free_port()}",
        "schema_registry_url": f"http://127.0.0.1:{free_port()}",
    }
    order = OrderServiceSettings(database_url=f"sqlite:///{directory}/order.db", **common)
    fulfillment = FulfillmentServiceSettings(
        database_url=f"sqlite:///{directory}/fulfillment.db",
        provider_database_url=f"sqlite:///{directory}/provider.db",
        **common,
    )
    order_bootstrap.migrate(make_engine(order.database_url))
    fulfillment_bootstrap.migrate(make_engine(fulfillment.database_url))
    apps = {"order-service": create_order_app(order), "fulfillment-service": create_fulfillment_app(fulfillment)}
    names: dict[str, set[str]] = {}
    for job, app in apps.items():
        response = TestClient(app).get(METRICS_PATH)
        assert response.status_code == 200, f"{job}: GET {METRICS_PATH} answered {response.status_code}"
        names[job] = {
            family.name + suffix
            for family in text_string_to_metric_families(response.text)
            for suffix in SAMPLE_SUFFIXES.get(family.type, ("",))
        }
        # Every scrape-time source answered, so no family is missing because its source failed here.
        assert "orderprocessing_metrics_source_errors_total" in names[job]
        failed = [line for line in response.text.splitlines() if line.startswith("orderprocessing_metrics_source")]
        assert all(line.endswith(" 0.0") for line in failed), f"{job}: a metrics source failed: {failed}"
    return names


# --- the dashboard as Grafana loads it -----------------------------------------------------------


def test_dashboard_has_the_fields_grafana_needs() -> None:
    board = dashboard()
    assert board["uid"] == "order-processing"
    assert isinstance(board["title"], str) and board["title"]
    assert isinstance(board["schemaVersion"], int) and board["schemaVersion"] >= 36, "Grafana 9+ panel model"
    assert panels(), "a dashboard without panels"


def test_panels_have_unique_ids_types_titles_and_queries() -> None:
    ids = [panel["id"] for panel in panels()]
    assert all(isinstance(panel_id, int) for panel_id in ids)
    assert len(ids) == len(set(ids)), f"duplicate panel ids: {sorted(ids)}"
    titles = [panel["title"] for panel in panels()]
    assert len(titles) == len(set(titles)), "two panels with one title cannot be told apart"
    for panel in panels():
        assert panel["type"] in PANEL_TYPES, f"{panel['title']}: unknown panel type {panel['type']}"
        assert panel["title"].strip()
        targets = panel["targets"]
        assert targets, f"{panel['title']}: no query"
        ref_ids = [target["refId"] for target in targets]
        assert len(ref_ids) == len(set(ref_ids)), f"{panel['title']}: duplicate refIds {ref_ids}"
        assert all(target["expr"].strip() for target in targets), f"{panel['title']}: an empty query"


def test_panels_sit_on_the_grid_without_overlapping() -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in panels():
        grid = panel["gridPos"]
        x, y, w, h = (grid[key] for key in ("x", "y", "w", "h"))
        assert all(isinstance(value, int) for value in (x, y, w, h)), f"{panel['title']}: {grid}"
        assert x >= 0 and y >= 0 and w > 0 and h > 0 and x + w <= GRID_COLUMNS, f"{panel['title']}: {grid}"
        for cell in itertools.product(range(x, x + w), range(y, y + h)):
            assert cell not in cells, f"{panel['title']} overlaps {cells[cell]}"
            cells[cell] = panel["title"]


def test_every_query_uses_the_provisioned_prometheus_data_source() -> None:
    provisioned = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    prometheus = [source for source in provisioned if source["type"] == "prometheus"]
    assert len(prometheus) == 1
    expected = {"type": "prometheus", "uid": prometheus[0]["uid"]}
    for panel in panels():
        assert panel["datasource"] == expected, f"{panel['title']}: {panel['datasource']}"
        for target in panel["targets"]:
            assert target.get("datasource", expected) == expected, f"{panel['title']}: {target['datasource']}"


# --- PromQL and the scrape config as Prometheus reads them ---------------------------------------


def promtool() -> str:
    """Debian's promtool (the prometheus package, installed when missing)."""
    ensure_installed()
    found = shutil.which("promtool")
    assert found, "the prometheus package installs promtool beside prometheus"
    return found


def check_expressions(expressions: list[str], directory: Path) -> subprocess.CompletedProcess[str]:
    """`promtool check rules` over one recording rule per expression: Prometheus' own parser, offline."""
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [{"record": f"dashboard:query_{i}", "expr": as_sent(e)} for i, e in enumerate(expressions)],
            }
        ]
    }
    path = directory / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump(rules))
    return subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=60)


def test_every_query_is_promql_prometheus_accepts(tmp_path: Path) -> None:
    result = check_expressions([expr for _, expr in queries()], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "broken",
    ["sum(rate(orderprocessing_orders_created_total[$__rate_interval])", "histogram_quantile(0.5 orderprocessing_x)"],
)
def test_a_query_prometheus_refuses_is_caught(tmp_path: Path, broken: str) -> None:
    assert check_expressions([broken], tmp_path).returncode != 0


def test_scrape_config_is_one_prometheus_accepts() -> None:
    result = subprocess.run(
        [promtool(), "check", "config", str(SCRAPE_CONFIG)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_scrape_config_reads_metrics_of_both_services() -> None:
    config = yaml.safe_load(SCRAPE_CONFIG.read_text())
    assert set(scrape_jobs()) == {"order-service", "fulfillment-service"}
    assert all(job.get("metrics_path", METRICS_PATH) == METRICS_PATH for job in config["scrape_configs"])


# --- the series the dashboard reads are the series the services serve ----------------------------


def test_every_series_a_query_reads_is_served(exported: dict[str, set[str]]) -> None:
    served = set().union(*exported.values()) | PROMETHEUS_SERIES
    read = {(title, selector.name) for title, expr in queries() for selector in selectors(expr)}
    missing = sorted((title, name) for title, name in read if name not in served)
    assert not missing, f"panels read series no service serves: {missing}"


def test_every_job_a_query_names_is_scraped() -> None:
    for title, expr in queries():
        for selector in selectors(expr):
            for matcher in selector.matchers.matchers:
                if matcher.name != "job":
                    continue
                named = matcher.value.split("|") if matcher.op == promql_parser.MatchOp.Re else [matcher.value]
                unknown = set(named) - set(scrape_jobs())
                assert not unknown, f"{title}: job {sorted(unknown)} is not in {SCRAPE_CONFIG.name}"


def test_the_name_check_catches_a_renamed_metric(exported: dict[str, set[str]]) -> None:
    renamed = "sum(rate(orderprocessing_orders_accepted_total[$__rate_interval]))"
    names = {selector.name for selector in selectors(renamed)}
    assert names == {"orderprocessing_orders_accepted_total"}
    assert not names <= set().union(*exported.values())


def test_the_dashboard_shows_what_an_operator_watches() -> None:
    read = {selector.name for _, expr in queries() for selector in selectors(expr)}
    watched = {
        "throughput": {"orderprocessing_orders_created_total", "orderprocessing_fulfillment_outcomes_total"},
        "HTTP latency": {"orderprocessing_http_server_request_duration_seconds_bucket"},
        "consumer lag": {"orderprocessing_consumer_lag_records"},
        "outbox backlog": {
            "orderprocessing_outbox_backlog_events",
            "orderprocessing_outbox_oldest_unpublished_age_seconds",
        },
        "parked rows": {"orderprocessing_outbox_parked_events"},
        "dead letters": {"orderprocessing_dead_lettered_records_total"},
        "breaker": {"orderprocessing_circuit_breaker_state"},
        "retries": {"orderprocessing_fulfillment_retries_scheduled_total"},
        "stuck orders": {"orderprocessing_orders_stale"},
    }
    for what, names in watched.items():
        assert names <= read, f"no panel shows {what}: {sorted(names - read)}"


def test_the_breaker_panels_name_the_state_the_service_serves(tmp_path: Path) -> None:
    # Series as the Fulfillment Service serves them (1 for the breaker's state, 0 for the others), one instance
    # per state; Prometheus evaluates each breaker panel's query over them (`promtool test rules`, offline) and the
    # panel's value mapping must turn the result into that state's name.
    states = ("closed", "half_open", "open")
    series = [
        {
            "series": f'orderprocessing_circuit_breaker_state{{instance="{current}", state="{state}"}}',
            "values": f"{int(state == current)}x3",
        }
        for current in states
        for state in states
    ]
    breaker_panels = [panel for panel in panels() if "circuit_breaker_state" in panel["targets"][0]["expr"]]
    assert breaker_panels
    for panel in breaker_panels:
        mapping = {
            value: shown["text"]
            for entry in panel["fieldConfig"]["defaults"]["mappings"]
            for value, shown in entry["options"].items()
        }
        tests = {
            "rule_files": [],
            "evaluation_interval": "1m",
            "tests": [
                {
                    "interval": "1m",
                    "input_series": series,
                    "promql_expr_test": [
                        {
                            "expr": as_sent(panel["targets"][0]["expr"]),
                            "eval_time": "2m",
                            "exp_samples": [
                                {
                                    "labels": f'{{instance="{state}"}}',
                                    "value": int(
                                        next(v for v, text in mapping.items() if text == state.replace("_", " "))
                                    ),
                                }
                                for state in states
                            ],
                        }
                    ],
                }
            ],
        }
        path = tmp_path / "breaker-test.yml"
        path.write_text(yaml.safe_dump(tests))
        result = subprocess.run([promtool(), "test", "rules", str(path)], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, f"{panel['title']}: {result.stdout}{result.stderr}"
