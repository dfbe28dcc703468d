"""The load generator's schedule and latency accounting, and the percentile code: no services needed."""

from __future__ import annotations

import asyncio
import itertools
import math
import threading
from collections.abc import Iterator

import pytest

from bench.loadgen import (
    DROPPED,
    LoadSpec,
    arrival_count,
    arrival_offsets,
    build_request,
    due_until,
    order_body,
    run_in_this_process,
)
from bench.metrics import judge_lag, latency_summary, percentile, percentile_series, rate_series, share_within, slope

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


class _SlowServer:
    """HTTP/1.1 stub that answers one request at a time, each after `delay` seconds."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
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
                    writer.write(b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\n{}")
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


def test_request_bytes_and_bodies() -> None:
    body = order_body(7, items=2, customers=5, tag="t")
    assert body["customerId"] == "t-c2"
    assert len(body["items"]) == 2
    assert all(item["quantity"] >= 1 for item in body["items"])
    request = build_request("127.0.0.1:5001", "/api/orders", b'{"a":1}')
    assert request.startswith(b"POST /api/orders HTTP/1.1\r\nHost: 127.0.0.1:5001\r\n")
    assert b"Content-Length: 7\r\n\r\n" in request
    assert request.endswith(b'{"a":1}')


# -- percentiles and series -----------------------------------------------------------------------------


def test_percentile_interpolates_between_closest_ranks() -> None:
    values = [1.0, 2.0, 3.0, 4.0]
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 4.0
    assert percentile(values, 50) == 2.5  # rank 1.5
    assert percentile(values, 95) == pytest.approx(3.85)  # rank 2.85
    ones_to_hundred = [float(i) for i in range(1, 101)]
    assert percentile(ones_to_hundred, 99) == pytest.approx(99.01)
    assert percentile(ones_to_hundred, 50) == pytest.approx(50.5)


def test_percentile_edge_cases() -> None:
    assert math.isnan(percentile([], 50))
    assert percentile([7.0], 99) == 7.0
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_latency_summary_is_in_ms_and_ignores_unanswered() -> None:
    summary = latency_summary([0.001 * i for i in range(1, 101)] + [math.nan])
    assert summary["count"] == 100
    assert summary["p50"] == pytest.approx(50.5)
    assert summary["p95"] == pytest.approx(95.05)
    assert summary["p99"] == pytest.approx(99.01)
    assert summary["max"] == pytest.approx(100.0)
    assert latency_summary([])["p95"] is None


def test_share_within() -> None:
    assert share_within([1.0, 2.0, 6.0, 4.0], 5.0) == 0.75
    assert math.isnan(share_within([], 5.0))


def test_percentile_series_bins_by_time() -> None:
    times = [0.1, 0.2, 1.5, 3.2]
    values = [0.010, 0.030, 0.100, 0.005]
    series = percentile_series(times, values, width=1.0)
    assert series["t"] == [0.0, 1.0, 2.0, 3.0]
    assert series["count"] == [2, 1, 0, 1]
    assert series["p50"][0] == pytest.approx(20.0)
    assert series["p95"][2] is None  # an empty second stays visible as a gap
    assert series["max"][3] == pytest.approx(5.0)


def test_rate_series_counts_per_second() -> None:
    t, per_second = rate_series([0.1, 0.5, 0.9, 2.2])
    assert t == [0.0, 1.0, 2.0]
    assert per_second == [3.0, 0.0, 1.0]


def test_slope_and_lag_verdict() -> None:
    assert slope([(0, 0), (1, 2), (2, 4)]) == pytest.approx(2.0)
    assert slope([(0, 5)]) == 0.0
    flat = [(t / 2, 400.0 + (t % 3)) for t in range(40)]  # ~400 in flight at 1000/s: normal
    assert judge_lag(flat, 0, 20, 1000).bounded
    growing = [(t / 2, 100.0 * t) for t in range(40)]  # +200/s at 1000/s and 3,900 waiting
    verdict = judge_lag(growing, 0, 20, 1000)
    assert not verdict.bounded
    assert "growing" in verdict.reason
    assert not judge_lag([], 0, 20, 1000).bounded
