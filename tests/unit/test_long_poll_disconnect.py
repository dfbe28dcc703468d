"""A long poll whose client goes away ends then, not at its timeout: the Order Service app on a real uvicorn server
with the service's protocol (httpapi.slow_clients), clients on raw sockets that close (FIN) or reset (RST)."""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from prometheus_client.parser import text_string_to_metric_families

from harness.order_bodies import order_body
from harness.waiting import wait_until
from httpapi.slow_clients import BODY_IDLE_SECONDS, BODY_SECONDS, HEAD_SECONDS, bounded_protocol
from infra.ports import free_port
from observability.metrics import Metrics
from order_service import store
from order_service.app import order_api
from order_service.status_waiter import StatusWaiter
from order_service.unit_of_work import SqlOrderUnitOfWork
from order_service.use_cases import OrderService
from persistence.engine import make_engine

TIMEOUT_S = 30  # the poll's timeout: the longest the API allows


@pytest.fixture
def server(tmp_path) -> Iterator[tuple[str, int]]:
    """The Order Service app served on a free port (SQLite, metrics on); yields its URL and port."""
    engine = make_engine(f"sqlite:///{tmp_path}/orders.db")
    store.metadata.create_all(engine)
    metrics = Metrics(True)
    uow = SqlOrderUnitOfWork(engine, "order-events")
    service = OrderService(uow, StatusWaiter(uow.get_many), 86_400, metrics=metrics)
    app = order_api(service, max_body_bytes=1_048_576, metrics=metrics)
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        lifespan="off",
        ws="none",
        http=bounded_protocol(HEAD_SECONDS, BODY_IDLE_SECONDS, BODY_SECONDS),
    )
    uvicorn_server = uvicorn.Server(config)
    thread = threading.Thread(target=uvicorn_server.run, daemon=True)
    thread.start()
    wait_until(lambda: uvicorn_server.started, 30, message="the server started")
    yield f"http://127.0.0.1:{port}", port
    uvicorn_server.should_exit = True
    thread.join(30)
    engine.dispose()


def _samples(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(url + "/metrics", timeout=5).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _waiting(url: str) -> float:
    return _samples(url)[("orderprocessing_order_long_polls_waiting", ())]


@pytest.mark.parametrize("close", ["fin", "reset"])
def test_a_long_poll_ends_when_its_client_goes_away_and_is_logged_as_499(server, close, caplog):
    url, port = server
    order_id = httpx.post(url + "/api/orders", json=order_body(), timeout=10).json()["orderId"]
    caplog.set_level(logging.INFO, logger="httpapi.access")
    client = socket.create_connection(("127.0.0.1", port))
    client.sendall(
        f"GET /api/orders/{order_id}?waitFor=Fulfilled&timeout={TIMEOUT_S} HTTP/1.1\r\nHost: t\r\n\r\n".encode()
    )
    wait_until(lambda: _waiting(url) == 1, 10, message="the poll waiting")
    if close == "reset":
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    closed = time.monotonic()
    client.close()
    wait_until(lambda: _waiting(url) == 0, 5, message="the poll ended")
    assert time.monotonic() - closed < 5  # not its 30 s timeout
    durations = _samples(url)
    key = (
        "orderprocessing_http_server_request_duration_seconds_count",
        (("method", "GET"), ("route", "/api/orders/{orderId}"), ("status_code", "499")),
    )
    assert durations.get(key) == 1, sorted(k for k in durations if k[0].endswith("_count"))
    lines = [r for r in caplog.records if r.name == "httpapi.access" and getattr(r, "route", "") != "/metrics"]
    assert [r.getMessage() for r in lines if r.getMessage().startswith("GET /api/orders/{orderId}")] == [
        "GET /api/orders/{orderId} 499"
    ]


def test_a_long_poll_whose_client_stays_is_answered_with_the_order(server):
    url, _ = server
    order_id = httpx.post(url + "/api/orders", json=order_body(), timeout=10).json()["orderId"]
    started = time.monotonic()
    response = httpx.get(f"{url}/api/orders/{order_id}", params={"waitFor": "Fulfilled", "timeout": "0.5"}, timeout=10)
    assert response.status_code == 200 and response.json()["orderId"] == order_id
    assert 0.5 <= time.monotonic() - started < 1.5
