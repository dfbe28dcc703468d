"""A real Prometheus scrapes both services, running on the real broker and registry, while orders go through:
what it stores is what an operator's dashboards and alerts would read, and every panel of the committed Grafana
dashboard (deploy/grafana/dashboards/) gets an answer from it."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from harness.dashboard import as_sent, dashboard_queries, load_dashboard
from harness.order_bodies import order_body
from harness.orders import post_orders, wait_all_terminal
from harness.system import System
from harness.waiting import wait_until
from infra.ports import free_port
from infra.prometheus import Prometheus

pytestmark = pytest.mark.integration

ORDERS = 20
DEADLINE = 60.0  # seconds for Prometheus to show a figure (it scrapes every second)
# Grafana's variables for a scrape every second; the window spans the whole run of this Prometheus.
DURATIONS = {"$__rate_interval": "1m", "$__interval": "1s", "$__range": "5m"}
# Panels with series only once something went wrong: no record was dead-lettered, no scrape-time source failed.
ONLY_AFTER_FAILURES = {"Dead-lettered records /s by error type", "Metrics left out of a scrape /s"}


def test_prometheus_scrapes_orders_outcomes_request_durations_and_consumer_lag(system: System, tmp_path: Path) -> None:
    order_ids = post_orders(system.orders.url, ORDERS)
    wait_all_terminal(system.orders.url, order_ids, timeout=120)
    targets = {"order-service": system.orders.url, "fulfillment-service": system.fulfillment.url}
    with Prometheus(tmp_path / "prometheus", free_port(), targets, scrape_interval=1.0) as prometheus:

        def reaches(promql: str, check: Callable[[float], bool]) -> None:
            def seen() -> bool:
                value = prometheus.value(promql)
                return value is not None and check(value)

            wait_until(seen, DEADLINE, interval=0.5, message=promql)

        for job in targets:
            reaches(f'up{{job="{job}"}}', lambda v: v == 1)
        reaches('orderprocessing_orders_created_total{job="order-service"}', lambda v: v == ORDERS)
        reaches(
            'sum(orderprocessing_fulfillment_outcomes_total{job="fulfillment-service", status=~"Shipped|Failed"})',
            lambda v: v == ORDERS,
        )
        reaches(
            'sum(orderprocessing_http_server_request_duration_seconds_count{job="order-service", method="POST", '
            'route="/api/orders", status_code="201"})',
            lambda v: v >= ORDERS,
        )
        # Every OrderCreated was confirmed by the broker, and consumed by the Fulfillment Service.
        reaches('sum(orderprocessing_outbox_publish_latency_seconds_count{job="order-service"})', lambda v: v >= ORDERS)
        reaches(
            "orderprocessing_consumer_records_processed_total"
            f'{{job="fulfillment-service", topic="{system.order_topic}"}}',
            lambda v: v >= ORDERS,
        )
        lag = wait_until(
            lambda: prometheus.query('orderprocessing_consumer_lag_records{job="fulfillment-service"}'),
            DEADLINE,
            interval=0.5,
            message="consumer lag series",
        )
        assert {series["metric"]["topic"] for series in lag} == {system.order_topic}
        assert {series["metric"]["partition"] for series in lag} == {"0"}
        reaches('sum(orderprocessing_consumer_lag_records{job="fulfillment-service"})', lambda v: v == 0)
        reaches('orderprocessing_circuit_breaker_state{job="fulfillment-service", state="closed"}', lambda v: v == 1)
        reaches('orderprocessing_outbox_backlog_events{job="order-service"}', lambda v: v == 0)
        # Route templates, never raw paths: one series for every order read.
        routes = prometheus.query('orderprocessing_http_server_request_duration_seconds_count{job="order-service"}')
        assert not any(order_id in series["metric"]["route"] for series in routes for order_id in order_ids)

        # Every query of the dashboard is one Prometheus answers, and every panel but those of failures has data:
        # once each service was scraped twice, as a rate over a window needs two samples in it.
        for job in targets:
            reaches(f'count_over_time(up{{job="{job}"}}[5m])', lambda v: v >= 2)
        answered: dict[str, list[dict[str, object]]] = {}
        for title, expr in dashboard_queries(load_dashboard()):
            answered.setdefault(title, []).extend(prometheus.query(as_sent(expr, DURATIONS)))
        empty = {title for title, series in answered.items() if not series}
        assert empty <= ONLY_AFTER_FAILURES, f"panels without data: {sorted(empty - ONLY_AFTER_FAILURES)}"


SCRAPERS = 20


def _post_latencies(url: str, count: int) -> list[float]:
    seconds = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for _ in range(count):
            started = time.perf_counter()
            response = client.post("/api/orders", json=order_body())
            seconds.append(time.perf_counter() - started)
            assert response.status_code == 201, response.text
    return seconds


def _p50_beside(url: str, path: str, clients: int) -> tuple[float, int]:
    """The median latency of POST /api/orders while clients threads GET path in a loop; and the bytes of path."""
    stop = threading.Event()
    done = [0]
    size = [0]

    def hammer() -> None:
        with httpx.Client(base_url=url, timeout=30) as client:
            while not stop.is_set():
                response = client.get(path)
                assert response.status_code == 200
                size[0] = len(response.content)
                done[0] += 1

    threads = [threading.Thread(target=hammer) for _ in range(clients)]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: done[0] >= clients, 30, message=f"every client of {path} under way")
        return statistics.median(_post_latencies(url, 30)), size[0]
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)


def test_concurrent_scrapes_do_not_stall_the_api(system: System) -> None:
    url = system.orders.url
    _post_latencies(url, 5)  # warm up
    alone = statistics.median(_post_latencies(url, 30))
    # The baseline: as many clients asking for the cheapest answer the service has; then as many scrapers.
    beside_probes, _ = _p50_beside(url, "/health/live", SCRAPERS)
    beside_scrapes, size = _p50_beside(url, "/metrics", SCRAPERS)
    print(
        f"POST /api/orders p50: {alone * 1000:.1f} ms alone, {beside_probes * 1000:.1f} ms beside {SCRAPERS} "
        f"clients of /health/live, {beside_scrapes * 1000:.1f} ms beside {SCRAPERS} scrapers ({size} bytes)"
    )
    assert beside_scrapes < 2 * beside_probes, (alone, beside_probes, beside_scrapes)
