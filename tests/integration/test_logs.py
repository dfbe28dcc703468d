"""Both services, run as processes on the real broker and registry with LOG_FORMAT=json, write logs an operator's
tools can read: every line a JSON object, and the order's path through both services (its cancellation too) found
by its orderId, in the trace its Kafka records carry."""

from __future__ import annotations

import json
import secrets
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.order_bodies import order_body
from harness.system import System, running_system
from harness.topics import read_topic
from harness.waiting import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def json_system(stack, tmp_path: Path):
    with running_system(stack, tmp_path, LOG_FORMAT="json", LOG_LEVEL="info", PROVIDER_FAILURE_RATE="0") as system:
        yield system


def json_lines(log_file: Path) -> list[dict[str, Any]]:
    """Every line of a service's log, parsed; fails the test on a line that is not one JSON object."""
    lines = []
    for number, text in enumerate(log_file.read_text().splitlines(), 1):
        try:
            line = json.loads(text)
        except json.JSONDecodeError as exc:
            raise AssertionError(f"{log_file.name}:{number} is not JSON: {text[:300]}") from exc
        assert isinstance(line, dict), text
        lines.append(line)
    return lines


def about(log_file: Path, order_id: str) -> list[dict[str, Any]]:
    """The lines naming order_id anywhere; each must carry it as its orderId."""
    lines = [line for line in json_lines(log_file) if order_id in json.dumps(line)]
    assert all(line.get("orderId") == order_id for line in lines), [
        line for line in lines if line.get("orderId") != order_id
    ]
    return lines


def events(lines: list[dict[str, Any]]) -> list[str]:
    return [line["event"] for line in lines]


def record_trace_ids(system: System, order_id: str, count: int = 1) -> list[str]:
    """The trace ids in the traceparent headers of the order's first count records on order-events, in order
    (OrderCreated, then OrderCancelled: one key, one partition)."""
    key = order_id.encode()
    records = read_topic(
        system.bootstrap_servers,
        system.order_topic,
        stop=lambda rs: sum(r.key() == key for r in rs) >= count,
        timeout=30,
    )
    headers = [dict(record.headers() or []) for record in records if record.key() == key][:count]
    assert all("traceparent" in h for h in headers), headers
    return [h["traceparent"].decode().split("-")[1] for h in headers]


def the_line(lines: list[dict[str, Any]], event: str) -> dict[str, Any]:
    (found,) = [candidate for candidate in lines if candidate["event"] == event]
    return found


def test_an_order_is_followed_through_both_services_json_logs_by_its_id(json_system: System) -> None:
    system = json_system
    response = httpx.post(f"{system.orders.url}/api/orders", json=order_body(), timeout=10)
    assert response.status_code == 201, response.text
    order_id = response.json()["orderId"]
    final = httpx.get(
        f"{system.orders.url}/api/orders/{order_id}", params={"waitFor": "Fulfilled,Failed", "timeout": 30}, timeout=40
    ).json()
    assert final["status"] == "Fulfilled"

    orders_log, fulfillment_log = system.orders.log_file, system.fulfillment.log_file
    expected_orders = {"order accepted", "OrderCreated published", "order status applied"}
    wait_until(
        lambda: expected_orders <= set(events(about(orders_log, order_id))),
        timeout=15,
        message="the Order Service's lines about the order",
    )
    wait_until(
        lambda: {"fulfillment picked up", "order shipped"} <= set(events(about(fulfillment_log, order_id))),
        timeout=15,
        message="the Fulfillment Service's lines about the order",
    )

    orders_lines = about(orders_log, order_id)
    assert all(line["service"] == "order-service" for line in json_lines(orders_log))
    assert all(line["service"] == "fulfillment-service" for line in json_lines(fulfillment_log))
    for line in json_lines(orders_log) + json_lines(fulfillment_log):
        assert {"timestamp", "level", "logger", "event"} <= line.keys(), line
        assert line["timestamp"].endswith("Z"), line

    # One INFO line per state change: accepted, published, then the statuses the projection applied.
    info = [line for line in orders_lines if line["level"] == "info" and line["logger"] != "httpapi.access"]
    assert events(info).count("order accepted") == 1
    assert events(info).count("OrderCreated published") == 1
    applied = [line["status"] for line in info if line["event"] == "order status applied"]
    assert applied[-1] == "Fulfilled" and len(applied) == len(set(applied))

    # The access log: the route template (never the raw path), the status, the time taken, the client.
    access = [line for line in orders_lines if line["logger"] == "httpapi.access"]
    (post,) = [line for line in access if line["method"] == "POST"]
    assert (post["route"], post["status"], post["level"]) == ("/api/orders", 201, "info")
    assert post["duration_ms"] > 0 and post["client"].startswith("127.0.0.1:")
    assert any(line["route"] == "/api/orders/{orderId}" and line["status"] == 200 for line in access)
    assert not any(order_id in line["route"] for line in access)

    shipped = [line for line in about(fulfillment_log, order_id) if line["event"] == "order shipped"]
    assert len(shipped) == 1 and shipped[0]["trackingNumber"] == final["trackingNumber"]

    # The lines are in the trace the order's record carries: found from a log line, the trace leads to the record.
    (trace_id,) = record_trace_ids(system, order_id)
    assert the_line(orders_lines, "order accepted")["trace_id"] == trace_id
    fulfillment_lines = about(fulfillment_log, order_id)
    assert the_line(fulfillment_lines, "fulfillment picked up")["trace_id"] == trace_id
    assert shipped[0]["trace_id"] == trace_id


def test_a_cancellation_is_followed_in_both_logs_and_in_the_trace_of_its_request(stack, tmp_path: Path) -> None:
    with running_system(
        stack, tmp_path, LOG_FORMAT="json", LOG_LEVEL="info", PROVIDER_CONTROL_ENABLED="true"
    ) as system:
        # The order stays Pending, its calls failing at once and retried: a cancellation finds no call under way.
        system.set_provider(failureRate=1.0, minLatencyMs=0, maxLatencyMs=0)
        with httpx.Client(base_url=system.orders.url, timeout=40) as client:
            order_id = client.post("/api/orders", json=order_body()).json()["orderId"]
            params = {"waitFor": "Processing", "timeout": 25}
            assert client.get(f"/api/orders/{order_id}", params=params).json()["status"] == "Processing"
            assert client.post(f"/api/orders/{order_id}/cancel", json={"reason": "too slow"}).status_code == 202
            params = {"waitFor": "Cancelled,Fulfilled,Failed", "timeout": 25}
            assert client.get(f"/api/orders/{order_id}", params=params).json()["status"] == "Cancelled"

        orders_log, fulfillment_log = system.orders.log_file, system.fulfillment.log_file
        wanted = {"cancellation requested", "OrderCancelled published"}
        wait_until(lambda: wanted <= set(events(about(orders_log, order_id))), timeout=15, message="order log")
        wait_until(
            lambda: "order cancelled" in events(about(fulfillment_log, order_id)), timeout=15, message="fulfillment log"
        )
        created_trace, cancelled_trace = record_trace_ids(system, order_id, count=2)

    orders_lines = [line for line in about(orders_log, order_id) if line["level"] == "info"]
    requested = the_line(orders_lines, "cancellation requested")
    assert (requested["reason"], requested["status"]) == ("too slow", "Processing")
    # The cancel request's own trace, not the order's: the OrderCancelled record and the fulfillment's answer.
    assert requested["trace_id"] == cancelled_trace != created_trace
    fulfillment_lines = about(fulfillment_log, order_id)
    cancelled = the_line(fulfillment_lines, "order cancelled")
    # Cancelled where the OrderCancelled was processed; or, had it met a call under way, by that call's outcome.
    during_call = "cancellation awaits the provider call" in events(fulfillment_lines)
    assert (cancelled["status"], cancelled["trace_id"]) == (
        "Cancelled",
        created_trace if during_call else cancelled_trace,
    )
    applied = [line["status"] for line in orders_lines if line["event"] == "order status applied"]
    assert applied[-1] == "Cancelled"


def test_every_line_about_an_order_carries_the_trace_of_the_clients_request(json_system: System) -> None:
    system = json_system
    trace_id = secrets.token_hex(16)
    traceparent = {"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"}
    response = httpx.post(f"{system.orders.url}/api/orders", json=order_body(), headers=traceparent, timeout=10)
    assert response.status_code == 201, response.text
    order_id = response.json()["orderId"]
    final = httpx.get(
        f"{system.orders.url}/api/orders/{order_id}",
        params={"waitFor": "Fulfilled,Failed", "timeout": 30},
        headers=traceparent,  # the client's read of the order, in the same trace
        timeout=40,
    ).json()
    assert final["status"] == "Fulfilled"
    orders_log, fulfillment_log = system.orders.log_file, system.fulfillment.log_file
    wait_until(
        lambda: (
            {"OrderCreated published", "order status applied"} <= set(events(about(orders_log, order_id)))
            and "order shipped" in events(about(fulfillment_log, order_id))
        ),
        timeout=15,
        message="the lines about the order in both services",
    )

    lines = about(orders_log, order_id) + about(fulfillment_log, order_id)
    assert len(lines) >= 6
    untraced = [
        (line["service"], line["event"], line.get("trace_id")) for line in lines if line.get("trace_id") != trace_id
    ]
    assert not untraced, untraced
    assert all(len(line["span_id"]) == 16 for line in lines)


def _raw_request(port: int, head: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(head)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def test_headers_a_client_sends_cannot_flood_the_log(json_system: System) -> None:
    system = json_system
    port = int(system.orders.url.rsplit(":", 1)[1])
    before = len(system.orders.log_file.read_text().splitlines())
    hostile = [
        b"baggage: k=" + b"\xff" * 63_000,
        b"baggage: " + b",".join([b"x"] * 4_000),
        b"traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\ntracestate: " + b"Q" * 48_000,
    ]
    for _ in range(5):
        for header in hostile:
            request = b"GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + header + b"\r\n\r\n"
            assert _raw_request(port, request).startswith(b"HTTP/1.1 200")
        too_large = b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 66_000 + b"\r\n\r\n"
        assert _raw_request(port, too_large).startswith(b"HTTP/1.1 431")
    assert httpx.get(f"{system.orders.url}/health/live", timeout=10).status_code == 200
    lines = system.orders.log_file.read_text().splitlines()[before:]
    assert all(len(line) < 16_000 for line in lines), max(map(len, lines))
    assert sum(map(len, lines)) < 200_000  # 20 hostile requests: not megabytes of log
    parsed = [json.loads(line) for line in lines]
    assert not [line for line in parsed if line["logger"].startswith("opentelemetry.baggage")]  # never parsed
    assert not [line for line in parsed if "exception" in line or "Fatal error" in line["event"]]
    warnings: dict[str, int] = {}
    for line in parsed:
        if line["level"] in ("warning", "error"):
            warnings[line["logger"]] = warnings.get(line["logger"], 0) + 1
    assert all(count <= 20 for count in warnings.values()), warnings
