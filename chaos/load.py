"""Open-loop load: POST /api/orders at a fixed arrival rate, whatever the service answers.

Arrivals do not wait for earlier answers (a slow or dead service must not slow the load down, or the
fault would hide itself). Every POST carries its own Idempotency-Key and is retried with that same key
after a connection error, a timeout or a 5xx, so an order the service stored but could not confirm is
answered on the retry instead of being created twice. Every attempt that was not answered 2xx is
recorded with its time. The run is bounded in time, in count and in outstanding requests; at most
max_concurrency requests are on the wire at once, later arrivals queue in the client (their send time
stays the scheduled one, and the wait counts against their retry budget).

Runs on its own thread and event loop, so the caller's thread stays free to inject faults.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

_RETRY_STATUSES = {408, 429}


@dataclass(frozen=True)
class Accepted:
    """An order the service answered 2xx."""

    key: str
    order_id: str
    first_sent: float  # epoch s of the first attempt
    accepted_at: float  # epoch s of the 2xx answer
    attempts: int
    replayed: bool  # answered as the replay of an earlier attempt with the same key


@dataclass(frozen=True)
class Failure:
    """One POST attempt that was not answered 2xx."""

    key: str
    at: float  # epoch s
    status: int | None  # None: no HTTP answer at all (refused, reset, timeout)
    error: str
    attempt: int


@dataclass
class LoadResult:
    """What the load did: every order accepted, every attempt that failed."""

    rate: float
    started_at: float = 0.0
    stopped_at: float = 0.0
    sent: int = 0  # arrivals: distinct orders (keys) the load tried to place
    accepted: dict[str, Accepted] = field(default_factory=dict)  # by order id
    failures: list[Failure] = field(default_factory=list)
    gave_up: list[str] = field(default_factory=list)  # keys never answered 2xx
    conflicts: list[tuple[str, str, str]] = field(default_factory=list)  # key, order id, other order id
    not_sent: int = 0  # arrivals dropped because too many requests were outstanding
    # Arrivals that waited their whole retry budget in the client's queue and were never sent: the
    # service answered too slowly for the rate (no POST of theirs reached it, so no non-2xx either).
    queued_out: int = 0

    def failures_between(self, start: float, end: float) -> list[Failure]:
        return [f for f in self.failures if start <= f.at <= end]

    def to_json(self) -> dict[str, Any]:
        statuses: dict[str, int] = {}
        for failure in self.failures:
            label = str(failure.status) if failure.status is not None else failure.error.split(":")[0]
            statuses[label] = statuses.get(label, 0) + 1
        return {
            "rate": self.rate,
            "startedAt": self.started_at,
            "stoppedAt": self.stopped_at,
            "sent": self.sent,
            "accepted": len(self.accepted),
            # Answered as a replay: an earlier attempt with the same key was stored but not answered.
            "acceptedAsReplay": sum(a.replayed for a in self.accepted.values()),
            "failedAttempts": len(self.failures),
            "failedAttemptsByKind": statuses,
            "gaveUp": len(self.gave_up),
            "keyConflicts": len(self.conflicts),
            "notSent": self.not_sent,
            "queuedOut": self.queued_out,
            "failureSample": [
                {"key": f.key, "at": f.at, "status": f.status, "error": f.error[:200], "attempt": f.attempt}
                for f in self.failures[:20]
            ],
        }


def order_body(index: int) -> dict[str, Any]:
    """A valid order; customers and items vary with index."""
    return {
        "customerId": f"chaos-cust-{index % 97}",
        "customerName": "Chaos Monkey",
        "items": [
            {"productId": f"p-{(index + i) % 50}", "productName": f"Product {i}", "quantity": i + 1, "price": 9.99}
            for i in range(1 + index % 3)
        ],
    }


class LoadGenerator:
    """POSTs orders to base_url at rate per second until stop(), max_seconds or max_orders."""

    def __init__(
        self,
        base_url: str,
        rate: float,
        *,
        max_seconds: float,
        max_orders: int | None = None,
        retry_seconds: float = 60.0,
        request_timeout: float = 10.0,
        max_outstanding: int = 20_000,
        max_concurrency: int = 16,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.base_url = base_url
        self.rate = rate
        self.max_seconds = max_seconds
        self.max_orders = max_orders if max_orders is not None else int(rate * max_seconds) + 1
        self.retry_seconds = retry_seconds
        self.request_timeout = request_timeout
        self.max_outstanding = max_outstanding
        self.max_concurrency = max_concurrency
        self.result = LoadResult(rate)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._thread_main, name="chaos-load", daemon=True)
        self._error: BaseException | None = None

    # -- control (caller's thread) -------------------------------------------------------------------

    def start(self) -> None:
        self.result.started_at = time.time()
        self._thread.start()

    def stop(self, timeout: float | None = None) -> LoadResult:
        """Stop new arrivals, wait for the outstanding requests (and their retries) to end."""
        self._stop.set()
        self._thread.join(timeout if timeout is not None else self.retry_seconds + self.request_timeout + 30)
        if self._thread.is_alive():
            raise TimeoutError("load generator did not finish its outstanding requests")
        if self._error is not None:
            raise RuntimeError("load generator crashed") from self._error
        return self.result

    @property
    def accepted_count(self) -> int:
        return len(self.result.accepted)

    def accepted_ids(self) -> list[str]:
        with self._lock:
            return list(self.result.accepted)

    def failure_count(self) -> int:
        return len(self.result.failures)

    # -- the loop (own thread) -----------------------------------------------------------------------

    def _thread_main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # reported by stop()
            self._error = exc

    async def _run(self) -> None:
        # Requests beyond max_concurrency wait for a slot here rather than in httpx's pool: after an
        # outage hundreds of retries would otherwise stampede the restarted service (and the pool).
        self._slots = asyncio.Semaphore(self.max_concurrency)
        limits = httpx.Limits(max_connections=self.max_concurrency, max_keepalive_connections=self.max_concurrency)
        timeout = httpx.Timeout(self.request_timeout, connect=5.0)
        tasks: set[asyncio.Task[None]] = set()
        async with httpx.AsyncClient(base_url=self.base_url, limits=limits, timeout=timeout) as client:
            start = time.monotonic()
            index = 0
            while not self._stop.is_set() and index < self.max_orders:
                # Arrival times are fixed in advance: a late loop catches up instead of drifting.
                due = start + index / self.rate
                now = time.monotonic()
                if due - start > self.max_seconds:
                    break
                if due > now:
                    await asyncio.sleep(due - now)
                    continue
                if len(tasks) >= self.max_outstanding:
                    self.result.not_sent += 1
                else:
                    task = asyncio.create_task(self._post(client, index))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                index += 1
            self.result.stopped_at = time.time()
            if tasks:
                await asyncio.wait(set(tasks))

    async def _post(self, client: httpx.AsyncClient, index: int) -> None:
        key = f"chaos-{uuid.uuid4()}"
        body = order_body(index)
        first_sent = time.time()
        deadline = time.monotonic() + self.retry_seconds
        self.result.sent += 1
        attempt = 0
        delay = 0.1
        while True:
            attempt += 1
            retry = True
            response: httpx.Response | None = None
            try:
                # Waiting for a slot counts against the budget too, so every POST ends within it.
                await asyncio.wait_for(self._slots.acquire(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                with self._lock:
                    if attempt == 1:
                        self.result.queued_out += 1
                    else:  # sent before and not answered 2xx: a POST given up on
                        self.result.gave_up.append(key)
                return
            try:
                response = await client.post("/api/orders", json=body, headers={"Idempotency-Key": key})
            except httpx.HTTPError as exc:
                self._fail(key, None, f"{type(exc).__name__}: {exc}", attempt)
            finally:
                self._slots.release()
            if response is not None:
                if 200 <= response.status_code < 300:
                    self._accept(key, response, first_sent, attempt)
                    return
                self._fail(key, response.status_code, response.text[:300], attempt)
                # Any other 4xx is a definite answer: retrying the same request cannot change it.
                retry = response.status_code >= 500 or response.status_code in _RETRY_STATUSES
            if not retry or time.monotonic() + delay > deadline:
                with self._lock:
                    self.result.gave_up.append(key)
                return
            await asyncio.sleep(delay * random.uniform(0.5, 1.5))
            delay = min(delay * 2, 2.0)

    def _accept(self, key: str, response: httpx.Response, first_sent: float, attempt: int) -> None:
        order_id = response.json()["orderId"]
        accepted = Accepted(
            key, order_id, first_sent, time.time(), attempt, response.headers.get("Idempotent-Replayed") == "true"
        )
        with self._lock:
            previous = self.result.accepted.get(order_id)
            if previous is not None and previous.key != key:
                # Two keys answered with one order: the service mixed up two requests.
                self.result.conflicts.append((key, order_id, previous.key))
                return
            self.result.accepted[order_id] = accepted

    def _fail(self, key: str, status: int | None, error: str, attempt: int) -> None:
        with self._lock:
            self.result.failures.append(Failure(key, time.time(), status, error, attempt))
