"""The metrics mechanism: series declared once per process registry, GET /metrics in the text format 0.0.4,
request durations labelled by route template, figures read at scrape time, and a failing source that costs only
its own series."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient

from contract_models.order_api import Problem
from fulfillment_service.metrics import report_breaker, report_in_flight
from fulfillment_service.resilience import CircuitBreaker
from harness.exposition import parse_samples
from httpapi.app import contract_app
from httpapi.problems import PROBLEM_JSON
from messaging.group_lag import LagReading, PartitionLag
from messaging.group_progress import GroupProgress
from messaging.metrics import report_group_progress
from observability.http_metrics import RequestDurations
from observability.metrics import Metrics, family

DURATION = "http_server_request_duration_seconds_count"


def scrape(client: TestClient) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """GET /metrics parsed: sample name -> {sorted label pairs: value}; asserts the exposition's content type."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    return parse_samples(response.text)


def app_with(metrics: Metrics) -> FastAPI:
    """The shared app of both services, with two routes of its own."""
    app = contract_app(
        "Order Service", "order-service", None, max_body_bytes=1000, metrics=metrics, problem_model=Problem
    )
    router = APIRouter()

    @router.get("/api/things/{thingId}")
    async def thing(thingId: str) -> dict[str, Any]:
        return {"id": thingId}

    @router.post("/api/things")
    async def fail() -> None:
        raise RuntimeError("boom")

    app.include_router(router)
    return app


def test_a_series_is_declared_once_per_registry_and_named_by_the_conventions() -> None:
    metrics = Metrics()
    first = metrics.counter("things_total", "Things.", ["kind"])
    assert metrics.counter("things_total", "Things.", ["kind"]) is first  # a shared component built twice
    with pytest.raises(ValueError, match="_total"):
        metrics.counter("things", "A counter without _total.")
    with pytest.raises(ValueError, match="declared already"):
        metrics.gauge("things_total", "Another kind under the same name.")
    with pytest.raises(ValueError, match="declared already"):
        metrics.counter("things_total", "Other labels.", ["colour"])
    first.labels("a").inc(2)
    assert metrics.sample("things_total", kind="a") == 2
    assert Metrics().sample("things_total", kind="a") is None  # another process registry shares nothing
    text = metrics.exposition().decode()
    assert "# TYPE orderprocessing_things_total counter" in text
    assert "_created" not in text  # no creation-time series beside the counters


def test_request_durations_are_labelled_by_route_template_method_and_status_never_by_raw_path() -> None:
    metrics = Metrics()
    client = TestClient(app_with(metrics), raise_server_exceptions=False)
    for i in range(25):
        assert client.get(f"/api/things/{i}").status_code == 200
    assert client.get("/no/such/path/12345").status_code == 404
    assert client.post("/api/things/7").status_code == 405
    assert client.post("/api/things").status_code == 500
    assert client.request("BREW", "/api/things/1").status_code == 405
    samples = scrape(client)[f"orderprocessing_{DURATION}"]
    assert samples == {
        (("method", "GET"), ("route", "/api/things/{thingId}"), ("status_code", "200")): 25,
        (("method", "GET"), ("route", "unmatched"), ("status_code", "404")): 1,
        (("method", "POST"), ("route", "/api/things/{thingId}"), ("status_code", "405")): 1,
        (("method", "POST"), ("route", "/api/things"), ("status_code", "500")): 1,
        (("method", "other"), ("route", "/api/things/{thingId}"), ("status_code", "405")): 1,
    }
    # The scrape itself is a request too, seen by the next scrape under its route.
    assert metrics.sample(DURATION, method="GET", route="/metrics", status_code="200") == 1


def test_a_label_set_is_looked_up_once_then_reused() -> None:
    metrics = Metrics()
    app = app_with(metrics)
    client = TestClient(app)
    for i in range(10):
        client.get(f"/api/things/{i}")
    middleware = next(m for m in app.user_middleware if m.cls is RequestDurations)
    assert middleware.kwargs["metrics"] is metrics
    stack: Any = app.middleware_stack
    while not isinstance(stack, RequestDurations):
        stack = stack.app
    assert list(stack._children) == [("GET", "/api/things/{thingId}", 200)]


def test_with_metrics_disabled_the_route_is_a_404_problem_and_requests_are_not_timed() -> None:
    metrics = Metrics(enabled=False)
    client = TestClient(app_with(metrics))
    client.get("/api/things/1")
    response = client.get("/metrics")
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM_JSON
    assert "METRICS_ENABLED" in response.json()["detail"]
    assert metrics.sample(DURATION, method="GET", route="/api/things/{thingId}", status_code="200") is None


def test_figures_are_read_at_each_scrape_and_a_failing_source_costs_only_its_own_series() -> None:
    metrics = Metrics(scrape_cache_seconds=0)  # every scrape reads the sources anew
    state = {"reads": 0, "fail": False}

    def collect() -> list[Any]:
        state["reads"] += 1
        if state["fail"]:
            raise ConnectionError("database away")
        gauge = family("gauge", "widgets", "Widgets now.")
        gauge.add_metric([], 3.0)
        return [gauge]

    queue = metrics.gauge("queue_length", "Queue length.")

    async def refresh() -> None:
        if state["fail"]:
            raise ConnectionError("database away")
        queue.set(10)

    metrics.collect_at_scrape("widgets", collect)
    metrics.refresh_at_scrape("queue", refresh)
    client = TestClient(app_with(metrics))
    assert state["reads"] == 0  # nothing is read before a scrape
    first = scrape(client)
    assert (first["orderprocessing_widgets"][()], state["reads"]) == (3.0, 1)
    assert first["orderprocessing_queue_length"][()] == 10.0
    state["fail"] = True
    second = scrape(client)
    assert "orderprocessing_widgets" not in second
    assert second["orderprocessing_queue_length"][()] == 10.0  # the last value it had
    errors = second["orderprocessing_metrics_source_errors_total"]
    assert errors == {(("source", "queue"),): 1.0, (("source", "widgets"),): 1.0}
    assert f"orderprocessing_{DURATION}" in second  # the rest is served


def test_the_breaker_and_the_orders_in_flight_are_read_when_scraped() -> None:
    metrics = Metrics()
    breaker = CircuitBreaker(failure_threshold=1, reset_seconds=3600)
    in_flight = [4]
    report_breaker(metrics, breaker)
    report_in_flight(metrics, lambda: in_flight[0])

    def states() -> dict[str, float | None]:
        return {s: metrics.sample("circuit_breaker_state", state=s) for s in ("closed", "open", "half_open")}

    assert states() == {"closed": 1.0, "open": 0.0, "half_open": 0.0}
    assert metrics.sample("fulfillment_orders_in_flight") == 4
    breaker.record_failure()
    in_flight[0] = 0
    assert states() == {"closed": 0.0, "open": 1.0, "half_open": 0.0}
    assert metrics.sample("circuit_breaker_opened_total") == 1
    assert metrics.sample("fulfillment_orders_in_flight") == 0


def test_consumer_lag_per_partition_comes_from_the_groups_progress_and_vanishes_while_unknown() -> None:
    broker = {"down": False}

    def read() -> LagReading:
        if broker["down"]:
            raise RuntimeError("broker unreachable")
        return LagReading("order-events", {0: PartitionLag(0, 40, 40, 100), 1: PartitionLag(1, 7, 7, 7)})

    clock = [1000.0]
    progress = GroupProgress(read, "order-events", "fulfillment", 30, max_age=1.0, clock=lambda: clock[0])
    metrics = Metrics()
    report_group_progress(metrics, progress)
    labels = {"topic": "order-events", "group": "fulfillment"}
    assert metrics.sample("consumer_lag_records", partition="0", **labels) == 60
    assert metrics.sample("consumer_lag_records", partition="1", **labels) == 0
    assert metrics.sample("consumer_stalled_partitions", **labels) == 0
    broker["down"] = True
    clock[0] += 2  # past the reading's max age: read again
    assert metrics.sample("consumer_lag_records", partition="0", **labels) is None


def test_concurrent_and_close_scrapes_share_one_rendering_off_the_event_loop() -> None:
    metrics = Metrics(scrape_cache_seconds=60)
    counter = metrics.counter("things_total", "Things.")
    threads: list[str] = []
    release = threading.Event()

    def collect() -> list[Any]:  # a slow source: every scrape that arrives meanwhile waits for this rendering
        threads.append(threading.current_thread().name)
        release.wait(10)
        return []

    metrics.collect_at_scrape("slow", collect)

    async def main() -> list[bytes]:
        loop_thread = threading.current_thread().name
        scrapes = [asyncio.ensure_future(metrics.scrape()) for _ in range(20)]
        deadline = time.monotonic() + 10
        while not threads:
            assert time.monotonic() < deadline, "the rendering never read its source"
            await asyncio.sleep(0.01)
        # The source holds the rendering up on a worker thread while the event loop goes on with the lines below.
        scrapes[0].cancel()  # a scraper that left does not cancel the others' rendering
        release.set()
        bodies = await asyncio.gather(*scrapes[1:])
        assert threads[0] != loop_thread
        counter.inc()
        bodies.append(await metrics.scrape())  # within the cache time: the same rendering again
        return bodies

    bodies = asyncio.run(main())
    assert metrics.renderings == 1 and len(threads) == 1
    assert len(set(bodies)) == 1 and b"orderprocessing_things_total 0.0" in bodies[0]
