"""The load generator's schedule, latency accounting and request bytes: no services needed."""

from __future__ import annotations

import asyncio
import itertools
import math
import threading
import time
from collections.abc import Callable, Iterator

import orjson
import pytest

from harness.load import DROPPED, BackgroundLoad, LoadRun, LoadSpec, run_in_this_process
from harness.load.http import build_request
from harness.load.schedule import arrival_count, arrival_offsets, due_until

# -- schedule -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rate", "duration", "count", "expected"),
    [
        (100, 10, None, 1000),  # exactly rate x duration, not one more
        (3, 1.5, None, 5),  # 0, 1/3, 2/3, 1, 4/3 are all < 1.5
        (1000, 0.0005, None, 1),  # the first arrival is at t0
        (100, 10, 250, 250),  # count caps
        (0.5, 10, None, 5),
        (None, 0, 10_000, 10_000),  # a burst is exactly its count
    ],
)
def test_arrival_count(rate: float | None, duration: float, count: int | None, expected: int) -> None:
    assert arrival_count(rate, duration, count) == expected


def test_burst_without_count_is_rejected() -> None:
    with pytest.raises(ValueError):
        arrival_count(None, 1.0, None)
    with pytest.raises(ValueError):
        LoadSpec("http://127.0.0.1:1", rate=None)


def test_offsets_are_evenly_spaced_from_zero() -> None:
    offsets = arrival_offsets(200, 1.0)
    assert len(offsets) == 200
    assert offsets[0] == 0.0
    assert offsets[-1] == pytest.approx(199 / 200)
    gaps = {round(b - a, 9) for a, b in itertools.pairwise(offsets)}
    assert gaps == {0.005}
    assert all(offset < 1.0 for offset in offsets)


def test_burst_offsets_are_all_zero() -> None:
    assert list(arrival_offsets(None, 0, 5)) == [0.0] * 5


def test_due_until_releases_every_arrival_whose_time_has_come() -> None:
    offsets = arrival_offsets(10, 1.0)  # 0.0, 0.1, ..., 0.9
    assert due_until(offsets, 0, 0.0) == 1
    assert due_until(offsets, 1, 0.05) == 1  # nothing new due
    # A scheduler that wakes up late launches everything it owes at once; none is skipped.
    assert due_until(offsets, 1, 0.55) == 6
    assert due_until(offsets, 6, 5.0) == 10


# -- latency from the intended send time ----------------------------------------------------------------


CREATED = b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\n{}"


class _SlowServer:
    """HTTP/1.1 stub that answers one request at a time, each after `delay` seconds, with respond(request head)."""

    def __init__(self, delay: float, respond: Callable[[bytes], bytes] = lambda _head: CREATED) -> None:
        self.delay = delay
        self.respond = respond
        self.port = 0
        self.requests = 0
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        lock = asyncio.Lock()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while True:
                    head = await reader.readuntil(b"\r\n\r\n")
                    length = next(
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length")
                    )
                    await reader.readexactly(length)
                    async with lock:  # a single worker: requests queue behind each other
                        await asyncio.sleep(self.delay)
                        self.requests += 1
                    writer.write(self.respond(head))
                    await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError):
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await self._stop.wait()

    def __enter__(self) -> _SlowServer:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


@pytest.fixture
def slow_server() -> Iterator[_SlowServer]:
    with _SlowServer(delay=0.05) as server:
        yield server


def test_latency_counts_from_the_intended_send_time(slow_server: _SlowServer) -> None:
    # 100 arrivals/s for 0.4 s against a server that manages 20/s: the queue grows with every arrival.
    # Timed from when each request was actually written, every latency would look like ~50 ms; timed
    # from the schedule, the last arrival waited for all the ones before it.
    spec = LoadSpec(f"http://127.0.0.1:{slow_server.port}", rate=100, duration=0.4, connections=1, timeout=10)
    result = run_in_this_process(spec)
    assert result.ok == 40 == slow_server.requests
    latencies = list(result.latencies)
    assert latencies[0] >= 0.05
    # Request i is answered no earlier than (i + 1) * 50 ms after t0 and was due at i * 10 ms.
    for i, latency in enumerate(latencies):
        assert latency >= (i + 1) * 0.05 - i * 0.01 - 0.005
    assert max(latencies) > 1.5
    assert result.elapsed >= 2.0
    assert result.ok / result.elapsed < 21  # achieved throughput is the server's, not the offered rate


def test_arrivals_beyond_the_outstanding_limit_are_dropped_and_counted(slow_server: _SlowServer) -> None:
    spec = LoadSpec(
        f"http://127.0.0.1:{slow_server.port}", rate=None, count=10, duration=0, connections=1, max_outstanding=4
    )
    result = run_in_this_process(spec)
    statuses = list(result.statuses)
    assert statuses.count(DROPPED) == 6
    assert statuses.count(201) == 4
    assert result.sent == 4
    assert math.isnan(result.latencies[9])


def test_closed_mode_keeps_each_connection_busy(slow_server: _SlowServer) -> None:
    spec = LoadSpec(f"http://127.0.0.1:{slow_server.port}", mode="closed", duration=0.5, connections=2)
    result = run_in_this_process(spec)
    # One worker on the server side: about 10 answers in 0.5 s, each waiting for the other connection's.
    assert 5 <= result.ok <= 12
    assert all(s == 201 for s in result.statuses)


def test_a_background_load_stops_early_and_keeps_only_the_arrivals_it_made(slow_server: _SlowServer) -> None:
    load = BackgroundLoad(LoadSpec(f"http://127.0.0.1:{slow_server.port}", rate=50, duration=600, connections=2))
    load.start()
    time.sleep(0.5)
    result = load.stop(timeout=10)
    assert 5 <= len(result.statuses) <= 40  # about 25 arrivals in 0.5 s, not the 30,000 scheduled
    assert result.ok == len(result.statuses) == len(result.offsets)
    assert result.stopped_at >= result.started_at


def _header(head: bytes, name: bytes) -> bytes:
    return next(line.split(b":", 1)[1].strip() for line in head.split(b"\r\n") if line.lower().startswith(name))


def _unavailable_once() -> Callable[[bytes], bytes]:
    """503 for the first request with a key, then 201 with an order id as a replay."""
    seen: set[bytes] = set()

    def respond(head: bytes) -> bytes:
        key = _header(head, b"idempotency-key")
        if key not in seen:
            seen.add(key)
            return b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 9\r\n\r\ntry again"
        body = orjson.dumps({"orderId": f"order-{key.decode()}"})
        return b"HTTP/1.1 201 Created\r\nidempotent-replayed: true\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)

    return respond


def test_an_order_is_sent_again_with_its_own_key_until_answered() -> None:
    with _SlowServer(delay=0.0, respond=_unavailable_once()) as server:
        spec = LoadSpec(
            f"http://127.0.0.1:{server.port}", rate=50, duration=0.2, connections=2, idempotent_retries=True
        )
        result = run_in_this_process(spec)
    assert result.ok == 10 == len(result.accepted)
    assert all(a.order_id == f"order-{a.key}" and a.attempts == 2 and a.replayed for a in result.accepted.values())
    assert [f.status for f in result.failures] == [503] * 10
    assert {f.key for f in result.failures} == {a.key for a in result.accepted.values()}
    assert not result.gave_up and not result.conflicts


def test_a_definite_client_error_is_not_retried() -> None:
    refused = b"HTTP/1.1 422 Unprocessable Content\r\ncontent-length: 4\r\n\r\nnope"
    with _SlowServer(delay=0.0, respond=lambda _head: refused) as server:
        spec = LoadSpec(
            f"http://127.0.0.1:{server.port}", rate=50, duration=0.1, connections=2, idempotent_retries=True
        )
        result = run_in_this_process(spec)
    assert len(result.gave_up) == 5 == len(result.failures) == server.requests
    assert {(f.status, f.error, f.attempt) for f in result.failures} == {(422, "nope", 1)}
    assert not result.accepted


def test_request_bytes_and_bodies() -> None:
    body = orjson.loads(LoadRun(LoadSpec("http://127.0.0.1:1", items=2, customers=5, tag="t")).body(7))
    assert body["customerId"] == "t-c2"
    assert len(body["items"]) == 2
    assert all(item["quantity"] >= 1 for item in body["items"])
    request = build_request("127.0.0.1:5001", "/api/orders", b'{"a":1}')
    assert request.startswith(b"POST /api/orders HTTP/1.1\r\nHost: 127.0.0.1:5001\r\n")
    assert b"Content-Length: 7\r\n\r\n" in request
    assert request.endswith(b'{"a":1}')


def test_every_nth_order_carries_a_shipping_address_when_asked() -> None:
    run = LoadRun(LoadSpec("http://127.0.0.1:9", addressed_every=3))
    addressed = [i for i in range(9) if "shippingAddress" in orjson.loads(run.body(i))]
    assert addressed == [0, 3, 6]
    assert orjson.loads(run.body(3))["shippingAddress"]["country"] == "FR"
    assert all("shippingAddress" not in orjson.loads(LoadRun(LoadSpec("http://127.0.0.1:9")).body(i)) for i in range(3))
    with pytest.raises(ValueError, match="addressed_every"):
        LoadSpec("http://127.0.0.1:9", addressed_every=-1)
