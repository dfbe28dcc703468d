"""The load generator: POST orders on a fixed arrival schedule (open loop), or back to back (closed loop).

Request i is due at ``t0 + i / rate`` and its latency is measured from that intended time, not from the
moment it was written to a socket. A server that stalls therefore shows up as a latency spike for every
request that arrived during the stall, instead of silently slowing the generator down (coordinated
omission). Requests wait for a free keep-alive connection from a bounded pool; that wait counts too.
Arrivals never wait for earlier answers, so a slow or dead service cannot slow the load down and hide
a fault; with idempotent retries (``LoadSpec.idempotent_retries``) an order the service stored but could
not confirm is answered on the retry with its key instead of being created twice.

The closed mode (every connection sends back to back for a fixed time) measures the maximum throughput
of an endpoint. ``harness.load.runners`` runs a generator in a child process or on a background thread.
"""

from __future__ import annotations

import asyncio
import gc
import math
import random
import resource
import sys
import threading
import time
import uuid
from array import array
from typing import NamedTuple
from urllib.parse import urlsplit

import orjson

from harness.load.http import Connection, Pool, ReadingConnection, build_request
from harness.load.records import CONNECTION_ERROR, DROPPED, NOT_DONE, TIMEOUT, Accepted, Failure, LoadResult, LoadSpec
from harness.load.schedule import arrival_offsets, due_until
from harness.order_bodies import SHIPPING_ADDRESS, order_body
from messaging.backoff import Backoff

# Answers after which an order is sent again with its key; any other 4xx is definite.
_RETRY_STATUSES = {408, 429}
# How long the arrival loop sleeps at most, so a stop request is noticed promptly.
_MAX_NAP_S = 0.25


def _now() -> float:
    # Not loop.time(): uvloop's clock has millisecond resolution and is cached per loop iteration.
    return time.perf_counter()


class _Answer(NamedTuple):
    status: int  # HTTP status, TIMEOUT or CONNECTION_ERROR
    sent: bool  # a connection was had (or tried): False means the time ran out waiting for one
    body: bytes = b""  # the response body (ReadingConnection only)
    replayed: bool = False
    error: str = ""  # why there was no HTTP answer


class LoadRun:
    """One run of spec on the running event loop: ``await run()``; ``stop()`` (from any thread) ends arrivals early.

    While it runs, result fills in; lock guards result.accepted for readers on other threads.
    """

    def __init__(self, spec: LoadSpec) -> None:
        self.spec = spec
        parts = urlsplit(spec.url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.host_header = f"{self.host}:{self.port}"
        protocol = ReadingConnection if spec.idempotent_retries else Connection
        self.pool = Pool(self.host, self.port, spec.connections, protocol)
        self.result = LoadResult(spec)
        self.lock = threading.Lock()
        self.outstanding = 0
        self.last_answer = 0.0
        self.t0 = 0.0
        self._cpu_at_t0 = 0.0
        self._stop = threading.Event()

    def stop(self) -> None:
        """End the arrivals now; requests already sent (and their retries) still finish."""
        self._stop.set()

    def body(self, index: int) -> bytes:
        """The JSON body of arrival index."""
        spec = self.spec
        addressed = spec.addressed_every > 0 and index % spec.addressed_every == 0
        address = SHIPPING_ADDRESS if addressed else None
        customer = f"{spec.tag}-c{index % spec.customers}"
        return orjson.dumps(order_body(index, customer=customer, items=spec.items, shipping_address=address))

    async def run(self) -> LoadResult:
        """Run the load to its end (or stop()) and every request to its answer; the filled-in result."""
        if self.spec.mode == "open":
            await self._open()
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

    async def _open(self) -> None:
        spec = self.spec
        loop = asyncio.get_running_loop()
        offsets = arrival_offsets(spec.rate, spec.duration, spec.count)
        n = len(offsets)
        res = self.result
        res.offsets = offsets
        res.latencies = array("d", [math.nan]) * n
        res.statuses = array("h", [NOT_DONE]) * n
        res.lateness = array("f", [0.0]) * n
        res.attempts = array("H", [0]) * n
        await self.pool.prewarm(spec.connections)
        # Rotated: building them mid-run costs CPU. Keyed requests differ in their key, so they are built as due.
        payloads = [] if spec.idempotent_retries else [self._payload(i) for i in range(min(n, 1024))]
        tasks: set[asyncio.Task[None]] = set()
        self._start_clock()
        i = 0
        while i < n and not self._stop.is_set():
            elapsed = _now() - self.t0
            end = due_until(offsets, i, elapsed)
            for j in range(i, end):
                res.lateness[j] = max(0.0, elapsed - offsets[j])
                if self.outstanding >= spec.max_outstanding:
                    res.statuses[j] = DROPPED
                    continue
                self.outstanding += 1
                res.peak_outstanding = max(res.peak_outstanding, self.outstanding)
                intended = self.t0 + offsets[j]
                if spec.idempotent_retries:
                    request = self._with_retries(j, intended)
                else:
                    request = self._once(j, intended, payloads[j % len(payloads)])
                task = loop.create_task(request)
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            i = end
            if i < n:
                await asyncio.sleep(min(_MAX_NAP_S, max(0.0, self.t0 + offsets[i] - _now())))
        res.stopped_at = time.time()
        if i < n:  # stopped early: the arrivals never scheduled are not part of the run
            for column in (res.offsets, res.latencies, res.statuses, res.lateness, res.attempts):
                del column[i:]
        if tasks:
            await asyncio.wait(tasks)

    def _payload(self, index: int, key: str | None = None) -> bytes:
        headers = {"Idempotency-Key": key} if key else None
        return build_request(self.host_header, self.spec.path, self.body(index), headers)

    async def _attempt(self, payload: bytes, deadline: float) -> _Answer:
        """One request: a connection (waiting until deadline), then its answer (until deadline or attempt_timeout)."""
        try:
            async with asyncio.timeout(max(0.0, deadline - _now())):
                conn = await self.pool.acquire()
        except TimeoutError:
            return _Answer(TIMEOUT, False, error="TimeoutError: no connection came free in time")
        except OSError as exc:  # refused, reset: the connection could not be opened
            return _Answer(CONNECTION_ERROR, True, error=f"{type(exc).__name__}: {exc}")
        if self.spec.attempt_timeout is not None:
            deadline = min(deadline, _now() + self.spec.attempt_timeout)
        try:
            async with asyncio.timeout(max(0.0, deadline - _now())):
                status = await conn.send(payload)
        except TimeoutError:
            conn.close()  # the answer may still come; the connection is out of step now
            return _Answer(TIMEOUT, True, error="TimeoutError: no answer in time")
        except OSError as exc:
            conn.close()
            return _Answer(CONNECTION_ERROR, True, error=f"{type(exc).__name__}: {exc}")
        else:
            if isinstance(conn, ReadingConnection):
                return _Answer(status, True, conn.body, conn.replayed)
            return _Answer(status, True)
        finally:
            self.pool.release(conn)

    def _record(self, index: int, intended: float, answer: _Answer, attempts: int) -> None:
        res = self.result
        res.statuses[index] = answer.status
        res.attempts[index] = attempts
        if answer.status > 0:
            now = _now()
            res.latencies[index] = now - intended
            self.last_answer = max(self.last_answer, now)

    async def _once(self, index: int, intended: float, payload: bytes) -> None:
        try:
            answer = await self._attempt(payload, intended + self.spec.timeout)
            self._record(index, intended, answer, int(answer.sent))
        finally:
            self.outstanding -= 1

    async def _with_retries(self, index: int, intended: float) -> None:
        key = f"{self.spec.tag}-{uuid.uuid4()}"
        payload = self._payload(index, key)
        first_sent = time.time()
        deadline = intended + self.spec.timeout
        attempts = 0
        backoff = Backoff(first=0.1, maximum=2.0)
        try:
            while True:
                answer = await self._attempt(payload, deadline)
                attempts += answer.sent
                self._record(index, intended, answer, attempts)
                if 200 <= answer.status < 300:
                    self._accept(key, answer, first_sent, attempts)
                    return
                if not answer.sent:  # the time ran out waiting for a connection
                    if attempts:
                        self.result.gave_up.append(key)
                    return
                status = answer.status if answer.status > 0 else None
                error = answer.error or answer.body.decode(errors="replace")[:300]
                self.result.failures.append(Failure(key, time.time(), status, error, attempts))
                # Another 4xx is a definite answer: sending the same request again cannot change it.
                retry = status is None or status >= 500 or status in _RETRY_STATUSES
                delay = backoff.failed()
                if not retry or _now() + delay > deadline:
                    self.result.gave_up.append(key)
                    return
                await asyncio.sleep(delay * random.uniform(0.5, 1.5))
        finally:
            self.outstanding -= 1

    def _accept(self, key: str, answer: _Answer, first_sent: float, attempts: int) -> None:
        order_id = orjson.loads(answer.body)["orderId"]
        accepted = Accepted(key, order_id, first_sent, time.time(), attempts, answer.replayed)
        with self.lock:
            previous = self.result.accepted.get(order_id)
            if previous is not None and previous.key != key:
                # Two keys answered with one order: the service mixed up two requests.
                self.result.conflicts.append((key, order_id, previous.key))
                return
            self.result.accepted[order_id] = accepted

    async def _closed(self) -> None:
        spec = self.spec
        limit = spec.count if spec.count is not None else sys.maxsize
        res = self.result
        await self.pool.prewarm(spec.connections)
        payloads = [self._payload(i) for i in range(64)]
        self._start_clock()
        end = self.t0 + spec.duration
        counter = iter(range(limit))

        async def worker() -> None:
            conn = await self.pool.acquire()
            try:
                while _now() < end and not self._stop.is_set():
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
                    res.attempts.append(1)
                    self.last_answer = max(self.last_answer, now)
                    if status < 0:
                        conn.close()
                        self.pool.release(conn)
                        conn = await self.pool.acquire()
            finally:
                self.pool.release(conn)

        await asyncio.sleep(max(0.0, self.t0 - _now()))
        await asyncio.gather(*(worker() for _ in range(spec.connections)))
        res.stopped_at = time.time()


def event_loop_runner() -> asyncio.Runner:
    """A runner on uvloop when it is installed (cheaper per request), else asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.Runner()
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)


def run_in_this_process(spec: LoadSpec) -> LoadResult:
    """Run the load on a fresh event loop in this thread and return the records (with the generator's CPU)."""
    wall_start = time.monotonic()
    usage_start = resource.getrusage(resource.RUSAGE_SELF)
    runner = event_loop_runner()
    # Everything allocated so far lives for the whole run; keep the collector away from it.
    gc.collect()
    gc.freeze()
    with runner:
        result = runner.run(LoadRun(spec).run())
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result.cpu_seconds = (usage.ru_utime - usage_start.ru_utime) + (usage.ru_stime - usage_start.ru_stime)
    result.wall_seconds = time.monotonic() - wall_start
    return result
