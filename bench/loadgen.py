"""Open-loop HTTP load generator: POST orders on a fixed arrival schedule, whatever the server answers.

Request i is due at ``t0 + i / rate`` and its latency is measured from that intended time, not from the
moment it was written to a socket. A server that stalls therefore shows up as a latency spike for every
request that arrived during the stall, instead of silently slowing the generator down (coordinated
omission). Requests wait for a free keep-alive connection from a bounded pool; that wait counts too.

It runs in its own process (``python -m bench.loadgen``) on uvloop with a minimal HTTP/1.1 client over
httptools, so its CPU cost is small and measurable and it never competes with the harness for the GIL.
The parent starts it with :class:`LoadProcess` and reads the pickled :class:`LoadResult`.

Besides the open mode there is a closed mode (every connection sends back to back for a fixed time) to
measure the maximum throughput of an endpoint.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import os
import pickle
import resource
import subprocess
import sys
import time
from array import array
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httptools
import orjson

# Status codes recorded for requests that got no HTTP answer.
NOT_DONE = 0
TIMEOUT = -1
CONNECTION_ERROR = -2
DROPPED = -3  # not sent: too many requests were already outstanding

ERROR_NAMES = {NOT_DONE: "not-done", TIMEOUT: "timeout", CONNECTION_ERROR: "connection-error", DROPPED: "dropped"}


@dataclass(frozen=True)
class LoadSpec:
    """What to send, how fast and for how long."""

    url: str  # base URL, e.g. http://127.0.0.1:5001
    path: str = "/api/orders"
    mode: str = "open"  # "open": fixed arrival schedule; "closed": each connection sends back to back
    rate: float | None = 100.0  # arrivals per second; None sends `count` requests at once (a burst)
    duration: float = 10.0  # open: length of the schedule; closed: run time (s)
    count: int | None = None  # upper bound on requests
    connections: int = 128  # keep-alive connections (open: pool size, all opened before t0)
    items: int = 1  # lines per order
    customers: int = 1000  # distinct customer ids
    tag: str = "bench"  # customerId prefix: tells this run's orders apart from warm-up ones
    timeout: float = 30.0  # per request, counted from its intended send time
    max_outstanding: int = 20_000  # arrivals beyond this many unanswered requests are dropped (and counted)

    def __post_init__(self) -> None:
        if self.mode not in ("open", "closed"):
            raise ValueError(f"mode must be open or closed, not {self.mode!r}")
        if self.rate is None and self.count is None:
            raise ValueError("a burst (rate None) needs a count")
        if self.rate is not None and self.rate <= 0:
            raise ValueError("rate must be positive")
        if self.connections < 1:
            raise ValueError("connections must be at least 1")


@dataclass
class LoadResult:
    """Per-request records (parallel arrays, index = arrival number) and the generator's own cost."""

    spec: LoadSpec
    started_at: float = 0.0  # epoch s of t0 (the first intended send)
    offsets: array = field(default_factory=lambda: array("d"))  # intended send time - t0 (s)
    latencies: array = field(default_factory=lambda: array("d"))  # answer time - intended send time (s); NaN if none
    statuses: array = field(default_factory=lambda: array("h"))  # HTTP status or one of the negative codes above
    lateness: array = field(default_factory=lambda: array("f"))  # how late the scheduler launched it (s)
    elapsed: float = 0.0  # t0 to the last answer (s)
    cpu_seconds: float = 0.0  # user + system CPU of the generator process over its whole life
    wall_seconds: float = 0.0  # generator process lifetime
    run_cpu_seconds: float = 0.0  # the same from t0 to the end of the run (start-up excluded)
    run_wall_seconds: float = 0.0
    connections_opened: int = 0
    peak_outstanding: int = 0

    @property
    def sent(self) -> int:
        return sum(1 for s in self.statuses if s != DROPPED)

    @property
    def ok(self) -> int:
        return sum(1 for s in self.statuses if 200 <= s < 300)

    def status_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for status in self.statuses:
            label = ERROR_NAMES.get(status, str(status))
            counts[label] = counts.get(label, 0) + 1
        return counts

    def ok_latencies(self) -> list[float]:
        return [lat for lat, s in zip(self.latencies, self.statuses, strict=True) if 200 <= s < 300]

    def cpu_percent(self) -> float:
        """Generator CPU as % of one core while it ran the load (start-up excluded)."""
        return 100.0 * self.run_cpu_seconds / self.run_wall_seconds if self.run_wall_seconds > 0 else 0.0


def _now() -> float:
    # Not loop.time(): uvloop's clock has millisecond resolution and is cached per loop iteration.
    return time.perf_counter()


# -- schedule math -----------------------------------------------------------------------------------


def arrival_count(rate: float | None, duration: float, count: int | None) -> int:
    """Arrivals in [0, duration) at `rate` per second, capped by count; a burst is exactly `count`."""
    if rate is None:
        if count is None:
            raise ValueError("a burst needs a count")
        return count
    # i / rate < duration  <=>  i < rate * duration; the epsilon keeps 100/s * 10 s at 1000, not 1001.
    n = max(0, math.ceil(rate * duration - 1e-9))
    return n if count is None else min(n, count)


def arrival_offsets(rate: float | None, duration: float, count: int | None = None) -> array:
    """Intended send time of every arrival relative to t0: i / rate (all 0 for a burst)."""
    n = arrival_count(rate, duration, count)
    if rate is None:
        return array("d", bytes(8 * n))
    return array("d", (i / rate for i in range(n)))


def due_until(offsets: array, start: int, elapsed: float) -> int:
    """Index one past the last arrival due at `elapsed` seconds after t0, scanning from `start`."""
    i = start
    n = len(offsets)
    while i < n and offsets[i] <= elapsed:
        i += 1
    return i


# -- request bodies ----------------------------------------------------------------------------------


def order_body(index: int, items: int, customers: int, tag: str) -> dict[str, Any]:
    """A valid CreateOrderRequest; a few shapes rotate so no two consecutive bodies are identical."""
    return {
        "customerId": f"{tag}-c{index % customers}",
        "customerName": "Bench Customer",
        "items": [
            {
                "productId": f"p-{(index + line) % 500}",
                "productName": f"Product {(index + line) % 500}",
                "quantity": 1 + (index + line) % 5,
                "price": 9.99 + (line % 3),
            }
            for line in range(items)
        ],
    }


def build_request(host: str, path: str, body: bytes) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


# -- a minimal keep-alive HTTP/1.1 client --------------------------------------------------------------


class _Connection(asyncio.Protocol):
    """One keep-alive connection with at most one request outstanding (no pipelining)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[int] | None = None
        self._keep_alive = True

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionError(f"bad response: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(ConnectionError(str(exc) if exc else "connection closed"))

    # httptools callback
    def on_message_complete(self) -> None:
        self._keep_alive = self._parser.should_keep_alive()
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(self._parser.get_status_code())
        if not self._keep_alive:
            self.close()

    def send(self, request: bytes) -> asyncio.Future[int]:
        """Write a request; the future gets the response status."""
        assert self.transport is not None and self._waiter is None
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return self._waiter

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _fail(self, exc: Exception) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)


class _Pool:
    """Up to `size` connections; requests beyond that wait in arrival order for one to come free."""

    def __init__(self, host: str, port: int, size: int) -> None:
        self._host = host
        self._port = port
        self._size = size
        self._idle: list[_Connection] = []
        self._waiters: deque[asyncio.Future[_Connection | None]] = deque()
        self.open = 0
        self.opened_total = 0

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(_Connection, self._host, self._port)
        self.opened_total += 1
        return conn

    async def prewarm(self, count: int) -> None:
        count = min(count, self._size)
        # In slices, so a burst pool does not hit the server's accept backlog all at once.
        for start in range(0, count, 200):
            batch = min(200, count - start)
            self.open += batch
            results = await asyncio.gather(*(self._connect() for _ in range(batch)), return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException):
                    self.open -= 1
                else:
                    self._idle.append(result)

    async def acquire(self) -> _Connection:
        while True:
            while self._idle:
                conn = self._idle.pop()
                if not conn.closed:
                    return conn
                self.open -= 1
            if self.open < self._size:
                self.open += 1
                try:
                    return await self._connect()
                except BaseException:
                    self.open -= 1
                    self._hand_over(None)
                    raise
            waiter: asyncio.Future[_Connection | None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                conn = await waiter
            except asyncio.CancelledError:
                # Timed out in the queue; a connection handed over in the same tick must not leak.
                if waiter.done() and not waiter.cancelled() and waiter.result() is not None:
                    self.release(waiter.result())  # type: ignore[arg-type]
                raise
            if conn is not None:
                return conn
            # None: a slot came free (a connection died); loop round and open one.

    def release(self, conn: _Connection) -> None:
        if conn.closed:
            self.open -= 1
            self._hand_over(None)
        else:
            self._hand_over(conn)

    def _hand_over(self, conn: _Connection | None) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        if conn is not None:
            self._idle.append(conn)

    def close(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()


# -- the run --------------------------------------------------------------------------------------------


class _Run:
    def __init__(self, spec: LoadSpec) -> None:
        self.spec = spec
        parts = urlsplit(spec.url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.host_header = f"{self.host}:{self.port}"
        self.pool = _Pool(self.host, self.port, spec.connections)
        self.result = LoadResult(spec)
        self.outstanding = 0
        self.last_answer = 0.0
        self.t0 = 0.0
        self._cpu_at_t0 = 0.0

    def payload(self, index: int) -> bytes:
        body = orjson.dumps(order_body(index, self.spec.items, self.spec.customers, self.spec.tag))
        return build_request(self.host_header, self.spec.path, body)

    async def run(self) -> LoadResult:
        loop = asyncio.get_running_loop()
        if self.spec.mode == "open":
            await self._open(loop)
        else:
            await self._closed()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        self.result.run_cpu_seconds = usage.ru_utime + usage.ru_stime - self._cpu_at_t0
        self.result.run_wall_seconds = _now() - self.t0
        self.pool.close()
        self.result.elapsed = max(0.0, self.last_answer - self.t0)
        self.result.connections_opened = self.pool.opened_total
        return self.result

    def _start_clock(self) -> None:
        # Both clocks read back to back, so run times map onto epoch times for the caller.
        self.t0 = _now() + 0.05
        self.result.started_at = time.time() + 0.05
        usage = resource.getrusage(resource.RUSAGE_SELF)
        self._cpu_at_t0 = usage.ru_utime + usage.ru_stime

    async def _open(self, loop: asyncio.AbstractEventLoop) -> None:
        spec = self.spec
        offsets = arrival_offsets(spec.rate, spec.duration, spec.count)
        n = len(offsets)
        res = self.result
        res.offsets = offsets
        res.latencies = array("d", [math.nan]) * n
        res.statuses = array("h", [NOT_DONE]) * n
        res.lateness = array("f", [0.0]) * n
        await self.pool.prewarm(spec.connections)
        payloads = [self.payload(i) for i in range(min(n, 1024))]  # rotated: building them mid-run costs CPU
        tasks: set[asyncio.Task[None]] = set()
        self._start_clock()
        i = 0
        while i < n:
            elapsed = _now() - self.t0
            end = due_until(offsets, i, elapsed)
            for j in range(i, end):
                res.lateness[j] = max(0.0, elapsed - offsets[j])
                if self.outstanding >= spec.max_outstanding:
                    res.statuses[j] = DROPPED
                    continue
                self.outstanding += 1
                res.peak_outstanding = max(res.peak_outstanding, self.outstanding)
                task = loop.create_task(self._one(j, self.t0 + offsets[j], payloads[j % len(payloads)]))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            i = end
            if i < n:
                await asyncio.sleep(max(0.0, self.t0 + offsets[i] - _now()))
        if tasks:
            await asyncio.wait(tasks)

    async def _one(self, index: int, intended: float, payload: bytes) -> None:
        res = self.result
        conn: _Connection | None = None
        try:
            # The timeout runs from the intended send time, so time spent queued for a connection counts.
            async with asyncio.timeout(max(0.0, intended + self.spec.timeout - _now())):
                conn = await self.pool.acquire()
                status = await conn.send(payload)
            now = _now()
            res.statuses[index] = status
            res.latencies[index] = now - intended
            self.last_answer = max(self.last_answer, now)
        except TimeoutError:
            res.statuses[index] = TIMEOUT
            if conn is not None:
                conn.close()  # the answer may still come; the connection is out of step now
        except (ConnectionError, OSError):
            res.statuses[index] = CONNECTION_ERROR
            if conn is not None:
                conn.close()
        finally:
            self.outstanding -= 1
            if conn is not None:
                self.pool.release(conn)

    async def _closed(self) -> None:
        spec = self.spec
        limit = spec.count if spec.count is not None else sys.maxsize
        res = self.result
        await self.pool.prewarm(spec.connections)
        payloads = [self.payload(i) for i in range(64)]
        self._start_clock()
        end = self.t0 + spec.duration
        counter = iter(range(limit))

        async def worker() -> None:
            conn = await self.pool.acquire()
            try:
                while _now() < end:
                    index = next(counter, None)
                    if index is None:
                        return
                    sent = _now()
                    try:
                        async with asyncio.timeout(spec.timeout):
                            status = await conn.send(payloads[index % len(payloads)])
                    except TimeoutError:
                        status = TIMEOUT
                    except (ConnectionError, OSError):
                        status = CONNECTION_ERROR
                    now = _now()
                    res.offsets.append(sent - self.t0)
                    res.latencies.append(now - sent)
                    res.statuses.append(status)
                    res.lateness.append(0.0)
                    self.last_answer = max(self.last_answer, now)
                    if status < 0:
                        conn.close()
                        self.pool.release(conn)
                        conn = await self.pool.acquire()
            finally:
                self.pool.release(conn)

        await asyncio.sleep(max(0.0, self.t0 - _now()))
        await asyncio.gather(*(worker() for _ in range(spec.connections)))


def run_in_this_process(spec: LoadSpec) -> LoadResult:
    """Run the load on a fresh event loop (uvloop when installed) and return the records."""
    wall_start = time.monotonic()
    usage_start = resource.getrusage(resource.RUSAGE_SELF)
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    # Everything allocated so far lives for the whole run; keep the collector away from it.
    gc.collect()
    gc.freeze()
    with runner:
        result = runner.run(_Run(spec).run())
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result.cpu_seconds = (usage.ru_utime - usage_start.ru_utime) + (usage.ru_stime - usage_start.ru_stime)
    result.wall_seconds = time.monotonic() - wall_start
    return result


# -- running it as a separate process ----------------------------------------------------------------


class LoadProcess:
    """The generator as a child process, so psutil can measure it and it has a core's worth of GIL."""

    def __init__(self, spec: LoadSpec, result_file: Path, log_file: Path | None = None) -> None:
        self.spec = spec
        self.result_file = result_file
        self.log_file = log_file or result_file.with_suffix(".log")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self) -> LoadProcess:
        self.result_file.parent.mkdir(parents=True, exist_ok=True)
        self.result_file.unlink(missing_ok=True)
        with self.log_file.open("ab") as log:
            command = [sys.executable, "-m", "bench.loadgen", "--spec", json.dumps(asdict(self.spec))]
            self.process = subprocess.Popen(
                [*command, "--result", str(self.result_file)],
                cwd=Path(__file__).resolve().parent.parent,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def wait(self, timeout: float | None = None) -> LoadResult:
        assert self.process is not None, "start() first"
        if timeout is None:
            timeout = self.expected_seconds() + self.spec.timeout + 60
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
            raise RuntimeError(f"load generator did not finish within {timeout:.0f}s; see {self.log_file}") from None
        if code != 0 or not self.result_file.exists():
            raise RuntimeError(f"load generator exited with {code}; see {self.log_file}")
        with self.result_file.open("rb") as handle:
            result: LoadResult = pickle.load(handle)
        return result

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def expected_seconds(self) -> float:
        return self.spec.duration if self.spec.rate is not None or self.spec.mode == "closed" else 0.0


def run_load(spec: LoadSpec, result_file: Path) -> LoadResult:
    """Start the generator process and wait for its result."""
    return LoadProcess(spec, result_file).start().wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen", description=__doc__.split("\n")[0])
    parser.add_argument("--spec", help="LoadSpec as JSON (what the harness passes)")
    parser.add_argument("--url", default="http://127.0.0.1:5001")
    parser.add_argument("--mode", choices=["open", "closed"], default="open")
    parser.add_argument("--rate", type=float, default=100.0, help="arrivals per second; 0 = burst of --count")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--count", type=int)
    parser.add_argument("--connections", type=int, default=128)
    parser.add_argument("--items", type=int, default=1)
    parser.add_argument("--result", type=Path, help="write the pickled LoadResult here")
    args = parser.parse_args(argv)
    if args.spec:
        spec = LoadSpec(**json.loads(args.spec))
    else:
        spec = LoadSpec(
            url=args.url,
            mode=args.mode,
            rate=args.rate or None,
            duration=args.duration,
            count=args.count,
            connections=args.connections,
            items=args.items,
        )
    result = run_in_this_process(spec)
    if args.result:
        tmp = args.result.with_suffix(".tmp")
        with tmp.open("wb") as handle:
            pickle.dump(result, handle, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, args.result)
    with contextlib.suppress(BrokenPipeError):
        from bench.metrics import latency_summary

        summary = {
            "sent": result.sent,
            "ok": result.ok,
            "statuses": result.status_counts(),
            "elapsed_s": round(result.elapsed, 3),
            "throughput_per_s": round(result.ok / result.elapsed, 1) if result.elapsed else None,
            "latency_ms": latency_summary(result.ok_latencies()),
            "generator_cpu_percent": round(result.cpu_percent(), 1),
        }
        print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    # Run through the importable module, so pickled results name bench.loadgen classes, not __main__ ones.
    from bench.loadgen import main as module_main

    sys.exit(module_main())
