"""Figures from raw samples: percentiles, per-second series, lag trend; and the samplers that collect
them while a scenario runs (process RSS/CPU, consumer lag, event timestamps from Kafka)."""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import psutil
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient

from harness.percentiles import PERCENTILES, percentile
from messaging.avro_codec import EventCodec
from messaging.event_codecs import order_created_codec, status_changed_codec
from messaging.group_lag import GroupLag

log = logging.getLogger("bench")

MACHINE = "machine"  # pseudo-process: the whole machine
TERMINAL_STATUSES = {"Shipped", "Failed"}

# -- percentiles ------------------------------------------------------------------------------------


def share_within(seconds: Iterable[float], limit: float) -> float:
    values = [v for v in seconds if not math.isnan(v)]
    return sum(1 for v in values if v <= limit) / len(values) if values else math.nan


# -- time series --------------------------------------------------------------------------------------


def binned(
    times: Sequence[float], values: Sequence[float], width: float, start: float = 0.0
) -> list[tuple[float, list[float]]]:
    """Values grouped into consecutive bins of `width` seconds by their time; (bin start, values)."""
    if not times:
        return []
    bins: dict[int, list[float]] = {}
    for t, v in zip(times, values, strict=True):
        if math.isnan(v):
            continue
        bins.setdefault(int((t - start) // width), []).append(v)
    if not bins:
        return []
    return [(start + k * width, sorted(bins.get(k, []))) for k in range(min(bins), max(bins) + 1)]


def percentile_series(
    times: Sequence[float], values: Sequence[float], width: float = 1.0, scale: float = 1000.0
) -> dict[str, list[float | None]]:
    """Per-bin count and p50/p95/p99/max (ms) of values keyed by time, for plots."""
    series: dict[str, list[float | None]] = {"t": [], "count": [], "p50": [], "p95": [], "p99": [], "max": []}
    for start, vals in binned(times, values, width):
        series["t"].append(round(start, 3))
        series["count"].append(len(vals))
        for q in PERCENTILES:
            series[f"p{q:g}"].append(round(percentile(vals, q) * scale, 3) if vals else None)
        series["max"].append(round(vals[-1] * scale, 3) if vals else None)
    return series


def rate_series(times: Iterable[float], width: float = 1.0) -> tuple[list[float], list[float]]:
    """Events per second in consecutive bins of `width` seconds."""
    counts: dict[int, int] = {}
    for t in times:
        counts[int(t // width)] = counts.get(int(t // width), 0) + 1
    if not counts:
        return [], []
    keys = range(min(counts), max(counts) + 1)
    return [k * width for k in keys], [counts.get(k, 0) / width for k in keys]


def slope(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of (t, value) points (value per second); 0 for fewer than two points."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return 0.0
    return sum((t - mean_t) * (v - mean_v) for t, v in points) / var


@dataclass(frozen=True)
class LagVerdict:
    bounded: bool
    slope_per_s: float
    end_backlog: float
    max_backlog: float
    reason: str


def judge_lag(
    samples: Sequence[tuple[float, float]], start: float, end: float, rate: float, *, growth_share: float = 0.05
) -> LagVerdict:
    """Whether the backlog stayed bounded while load was offered at `rate` between start and end.

    The backlog normally holds the orders in flight (about rate x provider latency), so only two things
    count as unbounded: it is still growing over the second half of the window (least-squares slope above
    `growth_share` of the arrival rate) while more than one second of arrivals waits, or more than two
    seconds of arrivals wait at the end.
    """
    window = [(t, v) for t, v in samples if start <= t <= end]
    if not window:
        return LagVerdict(False, math.nan, math.nan, math.nan, "no lag samples")
    half = [(t, v) for t, v in window if t >= (start + end) / 2] or window
    growth = slope(half)
    end_backlog = window[-1][1]
    max_backlog = max(v for _, v in window)
    reasons = []
    if growth > growth_share * rate and end_backlog > rate:
        reasons.append(f"backlog still growing {growth:.0f}/s (> {growth_share:.0%} of {rate:g}/s)")
    if end_backlog > 2 * rate:
        reasons.append(f"{end_backlog:.0f} waiting at the end (> 2 s of arrivals)")
    return LagVerdict(not reasons, growth, end_backlog, max_backlog, "; ".join(reasons) or "ok")


# -- process RSS and CPU ---------------------------------------------------------------------------------


@dataclass
class ProcessSeries:
    name: str
    pid: int
    t: list[float] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)
    cpu_percent: list[float | None] = field(default_factory=list)  # of one core, since the previous sample
    cpu_total: list[float] = field(default_factory=list)  # CPU seconds used since sampling began, per sample
    cpu_seconds: float = 0.0  # user + system over the sampled period
    last_cpu: float | None = None
    last_t: float | None = None

    def cpu_between(self, start: float, end: float) -> float | None:
        """CPU seconds used between two sample-clock times (nearest samples inside the window)."""
        inside = [c for t, c in zip(self.t, self.cpu_total, strict=True) if start <= t <= end]
        return inside[-1] - inside[0] if len(inside) >= 2 else None

    def summary(self) -> dict[str, Any]:
        busy = [c for c in self.cpu_percent if c is not None] or [0.0]
        return {
            "pid": self.pid,
            "rss_mb_start": round(self.rss_mb[0], 1) if self.rss_mb else None,
            "rss_mb_end": round(self.rss_mb[-1], 1) if self.rss_mb else None,
            "rss_mb_peak": round(max(self.rss_mb), 1) if self.rss_mb else None,
            "cpu_percent_mean": round(sum(busy) / len(busy), 1),
            "cpu_percent_peak": round(max(busy), 1),
            "cpu_seconds": round(self.cpu_seconds, 2),
        }


class ProcessSampler(threading.Thread):
    """Samples RSS and CPU of named processes every `interval` seconds; processes may come and go."""

    def __init__(self, interval: float = 0.5, origin: float | None = None) -> None:
        super().__init__(name="bench-proc-sampler", daemon=True)
        self.interval = interval
        self.origin = origin if origin is not None else time.time()
        self.series: dict[str, ProcessSeries] = {}
        self._procs: dict[str, psutil.Process] = {}
        self._machine = False
        self._lock = threading.Lock()
        self._stop_event = threading.Event()

    def watch(self, name: str, pid: int | None) -> None:
        """Sample pid under name from now on; a new pid under a known name continues its series."""
        if pid is None:
            return
        with self._lock:
            try:
                self._procs[name] = psutil.Process(pid)
            except psutil.NoSuchProcess:
                return
            series = self.series.setdefault(name, ProcessSeries(name, pid))
            if series.pid != pid:
                series.pid = pid
                series.last_cpu = None  # CPU seconds of the new process add to the old ones
        self._sample_one(name)

    def unwatch(self, name: str) -> None:
        self._sample_one(name)
        with self._lock:
            self._procs.pop(name, None)

    def watch_machine(self) -> None:
        """Also sample the whole machine as 'machine': busy CPU of all cores and memory in use. On a
        shared machine, what it shows beyond the watched processes is someone else's load."""
        with self._lock:
            self.series.setdefault(MACHINE, ProcessSeries(MACHINE, 0))
            self._machine = True
        self._sample_one(MACHINE)

    def sample_now(self) -> None:
        for name in [*self._procs, *([MACHINE] if self._machine else [])]:
            self._sample_one(name)

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            self.sample_now()

    def stop(self) -> dict[str, ProcessSeries]:
        self._stop_event.set()
        if self.is_alive():
            self.join(5)
        self.sample_now()
        return self.series

    def _sample_one(self, name: str) -> None:
        with self._lock:
            proc = self._procs.get(name)
            series = self.series.get(name)
            if series is None or (proc is None and name != MACHINE):
                return
            if proc is None:
                machine = psutil.cpu_times()
                rss = psutil.virtual_memory().used / 1_048_576
                cpu = sum(machine) - machine.idle - getattr(machine, "iowait", 0.0)
            else:
                try:
                    with proc.oneshot():
                        rss = proc.memory_info().rss / 1_048_576
                        times = proc.cpu_times()
                except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                    self._procs.pop(name, None)
                    return
                cpu = times.user + times.system
            now = time.time() - self.origin
            percent = None
            if series.last_cpu is not None and series.last_t is not None and now > series.last_t:
                percent = round(100.0 * (cpu - series.last_cpu) / (now - series.last_t), 1)
                series.cpu_seconds += cpu - series.last_cpu
            series.t.append(round(now, 3))
            series.rss_mb.append(round(rss, 1))
            series.cpu_percent.append(percent)
            series.cpu_total.append(round(series.cpu_seconds, 3))
            series.last_cpu = cpu
            series.last_t = now


# -- lag ---------------------------------------------------------------------------------------------


class LagSampler(threading.Thread):
    """Every `interval` s the broker-side lag of both consumer groups; every `health_every`-th time also
    the order outbox backlog and the fulfillment service's own view (consumerLag, inFlight)."""

    def __init__(
        self,
        bootstrap_servers: str,
        env: dict[str, dict[str, str]],
        order_url: str,
        fulfillment_url: str,
        interval: float = 0.5,
        origin: float | None = None,
        health_every: int = 4,
    ) -> None:
        super().__init__(name="bench-lag-sampler", daemon=True)
        self.interval = interval
        self.health_every = max(1, health_every)  # health endpoints every n-th sample
        self._ticks = 0
        self.origin = origin if origin is not None else time.time()
        order_topic = env["order"]["ORDER_EVENTS_TOPIC"]
        fulfillment_topic = env["order"]["FULFILLMENT_EVENTS_TOPIC"]
        self._fulfillment_lag = GroupLag(bootstrap_servers, env["fulfillment"]["CONSUMER_GROUP"], order_topic)
        self._projection_lag = GroupLag(bootstrap_servers, env["order"]["CONSUMER_GROUP"], fulfillment_topic)
        self._order_url = order_url
        self._fulfillment_url = fulfillment_url
        self._http = httpx.Client(timeout=2.0)
        self.samples: dict[str, list[Any]] = {
            "t": [],
            "orderEventsLag": [],  # fulfillment group on order-events: accepted, published, not yet done
            "fulfillmentEventsLag": [],  # order service projection on fulfillment-events
            "outboxBacklog": [],  # accepted orders whose event is not yet published
            "consumerLag": [],  # as /api/fulfillment/health reports it
            "inFlight": [],
        }
        self._lock = threading.Lock()
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            started = time.monotonic()
            self.sample()
            self._stop_event.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def sample(self) -> None:
        now = time.time() - self.origin
        health: dict[str, Any] | None = None
        ready: dict[str, Any] | None = None
        self._ticks += 1
        if self._ticks % self.health_every == 1 or self.health_every == 1:
            # The health endpoints probe the registry, the broker and the database on every call; asking
            # them less often than the broker keeps the sampler's own cost on the services small.
            health = self._get_json(self._fulfillment_url + "/api/fulfillment/health")
            ready = self._get_json(self._order_url + "/health/ready")
        row = {
            "t": round(now, 3),
            "orderEventsLag": self._fulfillment_lag(),
            "fulfillmentEventsLag": self._projection_lag(),
            "outboxBacklog": ready.get("outboxBacklog") if ready else None,
            "consumerLag": health.get("consumerLag") if health else None,
            "inFlight": health.get("inFlight") if health else None,
        }
        with self._lock:  # readers see whole rows only
            for key, value in row.items():
                self.samples[key].append(value)

    def backlog_points(self) -> list[tuple[float, float]]:
        """Accepted orders not yet picked up and committed: outbox backlog + order-events lag."""
        points = []
        with self._lock:
            s = {key: list(values) for key, values in self.samples.items()}
        last_outbox = 0
        for t, lag, outbox, health_lag in zip(
            s["t"], s["orderEventsLag"], s["outboxBacklog"], s["consumerLag"], strict=True
        ):
            if outbox is not None:
                last_outbox = outbox  # sampled less often: hold the last value in between
            kafka_lag = lag if lag is not None else health_lag
            if kafka_lag is None:
                continue
            points.append((t, float(kafka_lag + last_outbox)))
        return points

    def stop(self) -> dict[str, list[Any]]:
        self._stop_event.set()
        if self.is_alive():
            self.join(10)
        self._http.close()
        self._fulfillment_lag.close()
        self._projection_lag.close()
        return self.samples

    def _get_json(self, url: str) -> dict[str, Any] | None:
        try:
            return self._http.get(url).json()
        except (httpx.HTTPError, ValueError):
            return None


# -- event timestamps from Kafka ----------------------------------------------------------------------


@dataclass
class EventTimes:
    """Epoch-second timestamps of each order's events, as the services wrote them into the events."""

    created: dict[str, float] = field(default_factory=dict)  # OrderCreated.timestamp, this run's orders only
    picked: dict[str, float] = field(default_factory=dict)  # first Pending (sequence 0) timestamp
    terminal: dict[str, tuple[float, str]] = field(default_factory=dict)  # first Shipped/Failed
    other_created: int = 0  # warm-up orders and the like

    def pickup_latencies(self) -> dict[str, float]:
        return {oid: self.picked[oid] - ts for oid, ts in self.created.items() if oid in self.picked}

    def terminal_latencies(self) -> dict[str, float]:
        return {oid: self.terminal[oid][0] - ts for oid, ts in self.created.items() if oid in self.terminal}

    def outcome_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for oid in self.created:
            if oid in self.terminal:
                status = self.terminal[oid][1]
                counts[status] = counts.get(status, 0) + 1
        return counts

    def done_count(self) -> int:
        return sum(1 for oid in self.created if oid in self.terminal)


class EventCollector:
    """Reads order-events and fulfillment-events from the beginning and keeps the timestamps.

    Called repeatedly (poll) while a scenario drains, so it also tells when every order is terminal.
    """

    def __init__(
        self, bootstrap_servers: str, registry_url: str, order_topic: str, fulfillment_topic: str, tag: str
    ) -> None:
        registry = SchemaRegistryClient({"url": registry_url})
        self._codecs: dict[str, EventCodec[Any]] = {
            order_topic: order_created_codec(registry, order_topic),
            fulfillment_topic: status_changed_codec(registry, fulfillment_topic),
        }
        self._order_topic = order_topic
        self._tag_prefix = f"{tag}-"
        self.times = EventTimes()
        self.records = 0
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap_servers,
                "group.id": f"bench-reader-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "fetch.wait.max.ms": 100,
            }
        )
        self._assigned = False
        self._topics = [order_topic, fulfillment_topic]

    def _assign(self) -> bool:
        partitions = []
        for topic in self._topics:
            meta = self._consumer.list_topics(topic, timeout=5).topics.get(topic)
            if meta is None or meta.error is not None or not meta.partitions:
                return False
            partitions += [TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.partitions]
        self._consumer.assign(partitions)
        self._assigned = True
        return True

    def poll(self, seconds: float) -> int:
        """Consume for up to `seconds`; returns records read."""
        if not self._assigned and not self._assign():
            return 0
        read = 0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            messages = self._consumer.consume(2000, timeout=min(0.2, max(0.01, deadline - time.monotonic())))
            if not messages:
                break
            for message in messages:
                if message.error() is not None:
                    if message.error().code() != KafkaError._PARTITION_EOF:
                        log.warning("reader error: %s", message.error())
                    continue
                self._add(message.topic(), message.value())
                read += 1
        self.records += read
        return read

    def follow(self, done: Callable[[EventTimes], bool], timeout: float, idle_exit: float | None = None) -> bool:
        """Poll until done(times) or timeout; with idle_exit, also stop after that long without records."""
        deadline = time.monotonic() + timeout
        last_record = time.monotonic()
        while time.monotonic() < deadline:
            if self.poll(1.0):
                last_record = time.monotonic()
            if done(self.times):
                return True
            if idle_exit is not None and time.monotonic() - last_record > idle_exit:
                return False
        return done(self.times)

    def close(self) -> None:
        self._consumer.close()

    def _add(self, topic: str, value: bytes | None) -> None:
        try:
            event = self._codecs[topic].decode(value)
        except Exception as exc:  # a record the services dead-letter too; not ours to judge here
            log.warning("undecodable record on %s: %s", topic, exc)
            return
        times = self.times
        if topic == self._order_topic:
            if event.customerId.startswith(self._tag_prefix):
                times.created.setdefault(str(event.orderId), event.timestamp.timestamp())
            else:
                times.other_created += 1
            return
        order_id = str(event.orderId)
        status = event.status.value
        ts = event.timestamp.timestamp()
        if status == "Pending" and event.sequence == 0:
            times.picked.setdefault(order_id, ts)
        elif status in TERMINAL_STATUSES and order_id not in times.terminal:
            times.terminal[order_id] = (ts, status)


def all_terminal(expected: int) -> Callable[[EventTimes], bool]:
    return lambda times: len(times.created) >= expected and times.done_count() >= len(times.created)
