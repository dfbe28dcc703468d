"""A long poll whose client goes away ends then, not at its timeout, and one whose server stops is answered: the
Order Service app on a real uvicorn server with the service's protocol (httpapi.slow_clients) and server class
(httpapi.serve), clients on raw sockets that close (FIN) or reset (RST)."""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn

from harness.exposition import Labels, parse_samples
from harness.order_bodies import order_body
from harness.waiting import wait_until
from httpapi.serve import Server
from httpapi.slow_clients import BODY_IDLE_SECONDS, BODY_SECONDS, bounded_protocol
from infra.ports import free_port
from observability.metrics import Metrics
from order_service import store
from order_service.app import order_api
from order_service.status_waiter import StatusWaiter
from order_service.unit_of_work import SqlOrderUnitOfWork
from order_service.use_cases import OrderService
from persistence.engine import make_engine

TIMEOUT_S = 30  # the poll's timeout: the longest the API allows
HEAD_DEADLINE_S = 1.0  # the server's head deadline here: shorter than a poll, so a poll outlives it


@pytest.fixture
def server(tmp_path) -> Iterator[tuple[str, int, Server]]:
    """The Order Service app served on a free port (SQLite, metrics on); yields its URL, port and server."""
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
        http=bounded_protocol(HEAD_DEADLINE_S, BODY_IDLE_SECONDS, BODY_SECONDS),
    )
    uvicorn_server = Server(config, on_stopping=app.state.on_stopping)
    thread = threading.Thread(target=uvicorn_server.run, daemon=True)
    thread.start()
    wait_until(lambda: uvicorn_server.started, 30, message="the server started")
    yield f"http://127.0.0.1:{port}", port, uvicorn_server
    uvicorn_server.should_exit = True
    thread.join(30)
    engine.dispose()


def _samples(url: str) -> dict[str, dict[Labels, float]]:
    return parse_samples(httpx.get(url + "/metrics", timeout=5).text)


def _waiting(url: str) -> float:
    return _samples(url)["orderprocessing_order_long_polls_waiting"][()]


def _get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode()


def _long_poll(order_id: str, timeout: float) -> bytes:
    return _get(f"/api/orders/{order_id}?waitFor=Fulfilled&timeout={timeout:g}")


def _statuses(client: socket.socket, count: int) -> list[int]:
    """The statuses of the next count responses on client (each with a Content-Length)."""
    received, statuses = b"", []
    while len(statuses) < count:
        head_end = received.find(b"\r\n\r\n")
        if head_end >= 0:
            head = received[:head_end].decode("latin-1").split("\r\n")
            length = next(int(line.split(":")[1]) for line in head if line.lower().startswith("content-length:"))
            if len(received) >= head_end + 4 + length:
                statuses.append(int(head[0].split()[1]))
                received = received[head_end + 4 + length :]
                continue
        data = client.recv(65_536)
        if not data:
            break
        received += data
    return statuses


@pytest.mark.parametrize("close", ["fin", "reset"])
@pytest.mark.parametrize("pipelined", [False, True], ids=["alone", "request-pipelined-behind"])
def test_a_long_poll_ends_when_its_client_goes_away_and_is_logged_as_499(server, close, pipelined, caplog):
    url, port, _ = server
    order_id = httpx.post(url + "/api/orders", json=order_body(), timeout=10).json()["orderId"]
    caplog.set_level(logging.INFO, logger="httpapi.access")
    client = socket.create_connection(("127.0.0.1", port))
    behind = _get(f"/api/orders/{order_id}") if pipelined else b""
    client.sendall(_long_poll(order_id, TIMEOUT_S) + behind)
    wait_until(lambda: _waiting(url) == 1, 10, message="the poll waiting")
    if close == "reset":
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    closed = time.monotonic()
    client.close()
    wait_until(lambda: _waiting(url) == 0, 5, message="the poll ended")
    assert time.monotonic() - closed < 5  # not its 30 s timeout
    counts = _samples(url)["orderprocessing_http_server_request_duration_seconds_count"]
    labels = (("method", "GET"), ("route", "/api/orders/{orderId}"), ("status_code", "499"))
    assert counts.get(labels) == 1, sorted(counts)
    lines = [r for r in caplog.records if r.name == "httpapi.access" and getattr(r, "route", "") != "/metrics"]
    assert [r.getMessage() for r in lines if r.getMessage().startswith("GET /api/orders/{orderId}")] == [
        "GET /api/orders/{orderId} 499"
    ]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_long_poll_pipelined_behind_a_request_outlives_the_head_deadline_and_is_answered(server):
    url, port, _ = server
    order_id = httpx.post(url + "/api/orders", json=order_body(), timeout=10).json()["orderId"]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.sendall(_get(f"/api/orders/{order_id}") + _long_poll(order_id, 2 * HEAD_DEADLINE_S + 0.5))
        assert _statuses(client, 2) == [200, 200]  # not cut at the head deadline: the poll's head had come


def test_a_long_poll_whose_client_stays_is_answered_with_the_order(server):
    url, _, _ = server
    order_id = httpx.post(url + "/api/orders", json=order_body(), timeout=10).json()["orderId"]
    started = time.monotonic()
    response = httpx.get(f"{url}/api/orders/{order_id}", params={"waitFor": "Fulfilled", "timeout": "0.5"}, timeout=10)
    assert response.status_code == 200 and response.json()["orderId"] == order_id
    assert 0.5 <= time.monotonic() - started < 1.5


def test_a_long_poll_with_a_body_over_the_limit_is_refused_with_413(server):
    url, port, _ = server
    order_id = httpx.post(url + "/api/orders", json=order_body(), timeout=10).json()["orderId"]
    chunk = b"x" * 65_536
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.sendall(
            f"GET /api/orders/{order_id}?waitFor=Fulfilled&timeout=5 HTTP/1.1\r\nHost: t\r\n"
            "Transfer-Encoding: chunked\r\n\r\n".encode()
        )
        with contextlib.suppress(OSError):  # the server may answer and stop reading before the last chunk
            for _ in range(18):  # 1.125 MiB, over the service's 1 MiB
                client.sendall(b"10000\r\n" + chunk + b"\r\n")
            client.sendall(b"0\r\n\r\n")
        answer = client.recv(65_536)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert b"application/problem+json" in answer


def test_waiting_long_polls_are_answered_at_once_when_the_server_stops(server, caplog):
    url, port, uvicorn_server = server
    order_id = httpx.post(url + "/api/orders", json=order_body(), timeout=10).json()["orderId"]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.sendall(_long_poll(order_id, TIMEOUT_S))
        wait_until(lambda: _waiting(url) == 1, 10, message="the poll waiting")
        stopping = time.monotonic()
        uvicorn_server.should_exit = True
        assert _statuses(client, 1) == [200]  # the order as last read, as at its timeout
    assert time.monotonic() - stopping < 5  # not its 30 s timeout, nor cancelled after the graceful timeout
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
