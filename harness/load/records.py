"""What a load run is asked to do (LoadSpec) and what it did (LoadResult), request by request."""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from typing import Any

# Status codes recorded for arrivals that got no HTTP answer.
NOT_DONE = 0
TIMEOUT = -1
CONNECTION_ERROR = -2
DROPPED = -3  # not sent: too many requests were already outstanding

ERROR_NAMES = {NOT_DONE: "not-done", TIMEOUT: "timeout", CONNECTION_ERROR: "connection-error", DROPPED: "dropped"}


@dataclass(frozen=True)
class LoadSpec:
    """What to send, how fast and for how long. Raises ValueError for a combination that cannot run.

    With idempotent_retries every order carries an Idempotency-Key of its own and is sent again with that
    key after a connection error, a timeout, a 408, 429 or 5xx, with jittered backoff, until its timeout
    is spent; the order ids answered are recorded (what a fault run reconciles against).
    """

    url: str  # base URL, e.g. http://127.0.0.1:5001
    path: str = "/api/orders"
    mode: str = "open"  # "open": fixed arrival schedule; "closed": each connection sends back to back
    rate: float | None = 100.0  # arrivals per second; None sends `count` requests at once (a burst)
    duration: float = 10.0  # open: length of the schedule; closed: run time (s)
    count: int | None = None  # upper bound on requests
    connections: int = 128  # keep-alive connections (open: pool size, all opened before t0)
    items: int = 1  # lines per order
    customers: int = 1000  # distinct customer ids
    tag: str = "bench"  # customerId (and Idempotency-Key) prefix: tells this run's orders apart
    timeout: float = 30.0  # per arrival, counted from its intended send time (retries included)
    max_outstanding: int = 20_000  # arrivals beyond this many unanswered requests are dropped (and counted)
    idempotent_retries: bool = False
    attempt_timeout: float | None = None  # one attempt on the wire (s); None: until the arrival's timeout
    addressed_every: int = 0  # arrival n carries order_bodies.SHIPPING_ADDRESS when n % addressed_every == 0; 0: none

    def __post_init__(self) -> None:
        if self.mode not in ("open", "closed"):
            raise ValueError(f"mode must be open or closed, not {self.mode!r}")
        if self.rate is None and self.count is None:
            raise ValueError("a burst (rate None) needs a count")
        if self.rate is not None and self.rate <= 0:
            raise ValueError("rate must be positive")
        if self.connections < 1:
            raise ValueError("connections must be at least 1")
        if self.addressed_every < 0:
            raise ValueError("addressed_every must be 0 (no address) or positive")
        if self.idempotent_retries and self.mode != "open":
            raise ValueError("idempotent retries need the open mode")


@dataclass(frozen=True)
class Accepted:
    """An order the service answered 2xx (recorded with idempotent_retries)."""

    key: str  # its Idempotency-Key
    order_id: str
    first_sent: float  # epoch s of the first attempt
    accepted_at: float  # epoch s of the 2xx answer
    attempts: int
    replayed: bool  # answered as the replay of an earlier attempt with the same key


@dataclass(frozen=True)
class Failure:
    """One attempt that was not answered 2xx (recorded with idempotent_retries)."""

    key: str
    at: float  # epoch s
    status: int | None  # None: no HTTP answer at all (refused, reset, timeout)
    error: str
    attempt: int


@dataclass
class LoadResult:
    """Per-arrival records (parallel arrays, index = arrival number), the generator's own cost, and with
    idempotent_retries every order accepted and every attempt that failed."""

    spec: LoadSpec
    started_at: float = 0.0  # epoch s of t0 (the first intended send)
    stopped_at: float = 0.0  # epoch s when arrivals ended (schedule done or stopped early)
    offsets: array = field(default_factory=lambda: array("d"))  # intended send time - t0 (s)
    latencies: array = field(default_factory=lambda: array("d"))  # answer time - intended send time (s); NaN if none
    statuses: array = field(default_factory=lambda: array("h"))  # HTTP status or one of the negative codes above
    lateness: array = field(default_factory=lambda: array("f"))  # how late the scheduler launched it (s)
    attempts: array = field(default_factory=lambda: array("H"))  # requests actually sent for it
    elapsed: float = 0.0  # t0 to the last answer (s)
    cpu_seconds: float = 0.0  # user + system CPU of the generator over its whole run
    wall_seconds: float = 0.0  # generator run time
    run_cpu_seconds: float = 0.0  # the same from t0 to the end of the run (start-up excluded)
    run_wall_seconds: float = 0.0
    connections_opened: int = 0
    peak_outstanding: int = 0
    accepted: dict[str, Accepted] = field(default_factory=dict)  # by order id
    failures: list[Failure] = field(default_factory=list)
    gave_up: list[str] = field(default_factory=list)  # keys sent but never answered 2xx
    conflicts: list[tuple[str, str, str]] = field(default_factory=list)  # key, order id, other key

    @property
    def sent(self) -> int:
        """Arrivals not dropped."""
        return sum(1 for s in self.statuses if s != DROPPED)

    @property
    def ok(self) -> int:
        """Arrivals answered 2xx."""
        return sum(1 for s in self.statuses if 200 <= s < 300)

    @property
    def dropped(self) -> int:
        """Arrivals not sent because max_outstanding requests were unanswered."""
        return sum(1 for s in self.statuses if s == DROPPED)

    @property
    def never_sent(self) -> int:
        """Arrivals whose whole timeout went waiting for a connection: the service fell behind the rate."""
        return sum(1 for s, n in zip(self.statuses, self.attempts, strict=True) if s == TIMEOUT and n == 0)

    def status_counts(self) -> dict[str, int]:
        """Arrivals per final status ("201", "timeout", ...)."""
        counts: dict[str, int] = {}
        for status in self.statuses:
            label = ERROR_NAMES.get(status, str(status))
            counts[label] = counts.get(label, 0) + 1
        return counts

    def ok_latencies(self) -> list[float]:
        """Latencies (s) of the arrivals answered 2xx."""
        return [lat for lat, s in zip(self.latencies, self.statuses, strict=True) if 200 <= s < 300]

    def ok_latencies_between(self, start: float, end: float) -> list[float]:
        """Latencies (s) of the arrivals answered 2xx whose intended send time lies between two epoch times."""
        return [
            lat
            for offset, lat, s in zip(self.offsets, self.latencies, self.statuses, strict=True)
            if 200 <= s < 300 and start <= self.started_at + offset <= end
        ]

    def cpu_percent(self) -> float:
        """Generator CPU as % of one core while it ran the load (start-up excluded)."""
        return 100.0 * self.run_cpu_seconds / self.run_wall_seconds if self.run_wall_seconds > 0 else 0.0

    def failures_between(self, start: float, end: float) -> list[Failure]:
        """Failed attempts between two epoch times (inclusive)."""
        return [f for f in self.failures if start <= f.at <= end]

    def outcome_json(self) -> dict[str, Any]:
        """What the orders met, as a fault run reports it: accepted, failed attempts by kind, given up."""
        kinds: dict[str, int] = {}
        for failure in self.failures:
            label = str(failure.status) if failure.status is not None else failure.error.split(":")[0]
            kinds[label] = kinds.get(label, 0) + 1
        return {
            "rate": self.spec.rate,
            "startedAt": self.started_at,
            "stoppedAt": self.stopped_at,
            "sent": self.sent,
            "accepted": len(self.accepted),
            # Answered as a replay: an earlier attempt with the same key was stored but not answered.
            "acceptedAsReplay": sum(a.replayed for a in self.accepted.values()),
            "failedAttempts": len(self.failures),
            "failedAttemptsByKind": kinds,
            "gaveUp": len(self.gave_up),
            "keyConflicts": len(self.conflicts),
            "notSent": self.dropped,
            "queuedOut": self.never_sent,
            "failureSample": [
                {"key": f.key, "at": f.at, "status": f.status, "error": f.error[:200], "attempt": f.attempt}
                for f in self.failures[:20]
            ],
        }
