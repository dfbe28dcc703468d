"""Hostile clients as fault drivers: connections that send nothing or half a request head, floods of long polls,
and the served process's own CPU time and descriptors while they run.

The drivers speak HTTP through the harness's client (``harness.load.http``), each on an event loop of its own
(the calling thread blocks until the driver is done), and return what every connection or request met, so a
scenario can check it. Times are seconds (``time.monotonic`` unless named epoch).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
import psutil

from harness.load.generator import event_loop_runner
from harness.load.http import Connection, Pool, ReadingConnection, build_get
from harness.load.records import CONNECTION_ERROR, TIMEOUT
from httpapi.slow_clients import raise_open_file_limit

T = TypeVar("T")

# Half a request head: the request line and some headers, never the blank line that ends it (slowloris).
PARTIAL_HEAD = b"POST /api/orders HTTP/1.1\r\nHost: chaos\r\nContent-Type: application/json\r\nX-Slow: "
# Connections opened at once: the server's accept backlog (uvicorn: 2,048) copes with a slice this size.
CONNECT_SLICE = 200


def run_driver(driver: Coroutine[Any, Any, T]) -> T:
    """Run a driver coroutine to its end on a fresh event loop (uvloop when installed) in this thread."""
    with event_loop_runner() as runner:
        return runner.run(driver)


def run_driver_apart(driver: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
    """driver(*args) run to its end in a child process of its own (spawned) and its result, so neither the
    driver nor the steady load beside it in this process waits for the other's share of the interpreter lock:
    both measure the service, not each other. driver must be a module-level coroutine function; its arguments
    and result are pickled. Raises what the driver raised."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_run_apart, driver, args).result()


def _run_apart(driver: Callable[..., Coroutine[Any, Any, T]], args: tuple[Any, ...]) -> T:
    return run_driver(driver(*args))


# -- connections that send nothing, or half a head -------------------------------------------------------


@dataclass(frozen=True)
class HeldConnection:
    """One connection a hostile client held open: whether it sent half a head, and how the server ended it.

    closed_after_s: from the connection being open to the server closing it (None: still open when the
    driver gave up); status: the server's answer before closing (408 for a stalled head), None for none.
    """

    partial: bool
    closed_after_s: float | None
    status: int | None


@dataclass
class HeldWave:
    """The connections of one wave and the attempts that did not even connect (with why)."""

    connections: list[HeldConnection] = field(default_factory=list)
    connect_errors: list[str] = field(default_factory=list)

    @property
    def still_open(self) -> int:
        """Connections the server had not closed when the driver gave up."""
        return sum(1 for c in self.connections if c.closed_after_s is None)

    def closed_within(self, seconds: float) -> int:
        """Connections the server closed within seconds of their opening."""
        return sum(1 for c in self.connections if c.closed_after_s is not None and c.closed_after_s <= seconds)


class _Held(Connection):
    """A connection that records when the server ended it and the status it answered, if any."""

    def __init__(self) -> None:
        super().__init__()
        self.opened_at = time.monotonic()
        self.ended_at: float | None = None
        self.status: int | None = None
        self.ended = asyncio.Event()

    def on_message_complete(self) -> None:
        """httptools: the server answered (a 408 that closes the connection)."""
        self.status = self._parser.get_status_code()
        if not self._parser.should_keep_alive():
            self._ended()
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        """asyncio: the socket closed; the server's doing unless this side closed it first."""
        if not self.closed:
            self._ended()
        super().connection_lost(exc)
        self.ended.set()

    def _ended(self) -> None:
        if self.ended_at is None:
            self.ended_at = time.monotonic()


async def hold_connections(host: str, port: int, silent: int, partial: int, give_up_s: float) -> HeldWave:
    """Open silent + partial connections to host:port (in slices of CONNECT_SLICE), send PARTIAL_HEAD on the
    partial ones and nothing on the others, and wait until the server closed every one, at most give_up_s
    seconds after the last opened; then close what is left. Raises this process's open-file limit first."""
    raise_open_file_limit()
    loop = asyncio.get_running_loop()
    wave = HeldWave()
    held: list[tuple[bool, _Held]] = []
    kinds = _spread(silent, partial)
    for start in range(0, len(kinds), CONNECT_SLICE):
        batch = kinds[start : start + CONNECT_SLICE]
        results = await asyncio.gather(
            *(loop.create_connection(_Held, host, port) for _ in batch), return_exceptions=True
        )
        for is_partial, result in zip(batch, results, strict=True):
            if isinstance(result, BaseException):
                wave.connect_errors.append(f"{type(result).__name__}: {result}")
                continue
            conn = result[1]
            if is_partial and conn.transport is not None and not conn.closed:
                conn.transport.write(PARTIAL_HEAD)
            held.append((is_partial, conn))
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(give_up_s):
            await asyncio.gather(*(conn.ended.wait() for _, conn in held))
    for is_partial, conn in held:
        closed_after = None if conn.ended_at is None else conn.ended_at - conn.opened_at
        wave.connections.append(HeldConnection(is_partial, closed_after, conn.status))
        conn.close()
    return wave


def _spread(silent: int, partial: int) -> list[bool]:
    """silent False and partial True, the True ones spread evenly among the others."""
    total = silent + partial
    return [partial > 0 and (index * partial) // total != ((index + 1) * partial) // total for index in range(total)]


# -- long polls ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LongPoll:
    """One long poll's outcome: the order, the seconds to its answer, the HTTP status (or the load generator's
    TIMEOUT / CONNECTION_ERROR code) and the order's status in the answer."""

    order_id: str
    elapsed_s: float
    status: int
    order_status: str | None


async def long_poll_flood(
    host: str,
    port: int,
    order_ids: Sequence[str],
    concurrency: int,
    wait_for: str,
    timeout_s: float,
    duration_s: float,
) -> list[LongPoll]:
    """concurrency clients, each on a keep-alive connection of its own, sending
    ``GET /api/orders/{id}?waitFor=wait_for&timeout=timeout_s`` one after another (the orders taken in turn)
    until duration_s has passed; every answer is awaited (at most timeout_s + 10 s). The clients start spread
    over the first timeout_s, as independent clients would, so all of them wait at once from then on without
    arriving in one burst every timeout_s. Raises ValueError without orders."""
    if not order_ids:
        raise ValueError("a long-poll flood needs orders to wait on")
    raise_open_file_limit()
    pool = Pool(host, port, concurrency, ReadingConnection)
    await pool.prewarm(concurrency)
    host_header = f"{host}:{port}"
    polls: list[LongPoll] = []
    end = time.monotonic() + duration_s

    async def client(index: int) -> None:
        await asyncio.sleep(timeout_s * index / concurrency)
        turn = 0
        while time.monotonic() < end:
            order_id = order_ids[(index + turn * concurrency) % len(order_ids)]
            turn += 1
            request = build_get(host_header, f"/api/orders/{order_id}?waitFor={wait_for}&timeout={timeout_s:g}")
            started = time.monotonic()
            order_status = None
            try:
                conn = await pool.acquire()
            except OSError:
                polls.append(LongPoll(order_id, time.monotonic() - started, CONNECTION_ERROR, None))
                continue
            try:
                async with asyncio.timeout(timeout_s + 10):
                    status = await conn.send(request)
                assert isinstance(conn, ReadingConnection)
                if status == 200:
                    order_status = orjson.loads(conn.body).get("status")
            except TimeoutError:
                conn.close()
                status = TIMEOUT
            except OSError:
                conn.close()
                status = CONNECTION_ERROR
            finally:
                pool.release(conn)
            polls.append(LongPoll(order_id, time.monotonic() - started, status, order_status))

    try:
        await asyncio.gather(*(client(index) for index in range(concurrency)))
    finally:
        pool.close()
    return polls


# -- the served process ----------------------------------------------------------------------------------


@dataclass
class ProcessUsage:
    """A process's CPU time (user + system, its threads included) over a stretch of wall time, and the most
    descriptors it had open at once; filled in when the watch ends."""

    cpu_seconds: float = 0.0
    wall_seconds: float = 0.0
    peak_open_files: int = 0

    @property
    def cpu_percent(self) -> float:
        """CPU as a percentage of one core over the stretch."""
        return 100.0 * self.cpu_seconds / self.wall_seconds if self.wall_seconds > 0 else 0.0


@contextlib.contextmanager
def watch_process(pid: int, interval_s: float = 0.25) -> Iterator[ProcessUsage]:
    """Measure pid (psutil) for the duration of the block: CPU time at both ends, open descriptors sampled
    every interval_s on a thread. Raises psutil.NoSuchProcess if pid does not exist."""
    process = psutil.Process(pid)
    usage = ProcessUsage()
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            with contextlib.suppress(psutil.Error):
                usage.peak_open_files = max(usage.peak_open_files, process.num_fds())
            done.wait(interval_s)

    sampler = threading.Thread(target=sample, name="watch-process", daemon=True)
    started, cpu = time.monotonic(), _cpu(process)
    sampler.start()
    try:
        yield usage
    finally:
        done.set()
        sampler.join()
        with contextlib.suppress(psutil.Error):
            usage.cpu_seconds = _cpu(process) - cpu
        usage.wall_seconds = time.monotonic() - started


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)
