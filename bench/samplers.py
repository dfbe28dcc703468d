"""Samplers that run beside a scenario on threads of their own: RSS and CPU of named processes (and the
machine), and the consumer groups' lag with the services' own view of their backlog."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import psutil

from events.topology import FULFILLMENT_EVENTS, ORDER_EVENTS
from messaging.group_lag import GroupLag
from messaging.settings import KafkaSettings, kafka_settings

MACHINE = "machine"  # pseudo-process: the whole machine


# -- process RSS and CPU ---------------------------------------------------------------------------------


@dataclass
class ProcessSeries:
    """One process's samples: times (s on the sampler's clock), RSS (MB) and CPU (% of a core, cumulative s)."""

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
        """RSS at start, end and peak; mean and peak CPU; CPU seconds."""
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


class ProcessTree:
    """A process and its descendants sampled as one: summed RSS, and CPU seconds as one growing total.

    The total is the CPU each member used since it was first seen (the members at creation count from then,
    later ones from their start) plus what members that have since exited had used at their last sample.
    Listing descendants reads every process of the machine (psutil), a few ms, so the members are listed again
    only every refresh_every samples and after one of them exited; in between the known ones are sampled.
    """

    def __init__(self, root: psutil.Process, refresh_every: int = 10) -> None:
        self.root = root
        self.refresh_every = max(1, refresh_every)
        self._samples = 0
        self._members: dict[int, psutil.Process] = {}
        self._baseline: dict[int, float] = {}  # a member's CPU seconds when first seen (0 for ones started later)
        self._last: dict[int, float] = {}  # a member's CPU seconds at its last sample
        self._gone = 0.0  # CPU seconds of members that exited, up to their last sample
        self._started = False

    def sample(self) -> tuple[int, float]:
        """(RSS bytes of all members, CPU seconds so far); psutil.NoSuchProcess once the root has exited."""
        current = {self.root.pid: self.root}
        if self._samples % self.refresh_every == 0:
            for child in self.root.children(recursive=True):
                current[child.pid] = self._members.get(child.pid, child)
        else:
            current.update(self._members)
        self._samples += 1
        rss = 0
        for pid, member in current.items():
            try:
                with member.oneshot():
                    rss += member.memory_info().rss
                    times = member.cpu_times()
            except (psutil.NoSuchProcess, psutil.ZombieProcess):
                if member is self.root:
                    raise
                continue
            cpu = times.user + times.system
            if pid not in self._baseline:
                self._baseline[pid] = cpu if not self._started or member is self.root else 0.0
                self._members[pid] = member
            self._last[pid] = cpu
        for pid in [pid for pid in self._members if pid not in current or not current[pid].is_running()]:
            self._gone += self._last.pop(pid, 0.0) - self._baseline.pop(pid, 0.0)
            del self._members[pid]
            self._samples = 0  # a member exited: look for its replacement at the next sample
        self._started = True
        return rss, self._gone + sum(self._last[pid] - self._baseline[pid] for pid in self._members)


class ProcessSampler(threading.Thread):
    """Samples RSS and CPU of named processes every `interval` seconds; processes may come and go."""

    def __init__(self, interval: float = 0.5, origin: float | None = None) -> None:
        super().__init__(name="bench-proc-sampler", daemon=True)
        self.interval = interval
        self.origin = origin if origin is not None else time.time()
        self.series: dict[str, ProcessSeries] = {}
        self._procs: dict[str, psutil.Process] = {}
        self._trees: dict[str, ProcessTree] = {}
        self._machine = False
        self._lock = threading.Lock()
        self._stop_event = threading.Event()

    def watch(self, name: str, pid: int | None, *, tree: bool = False) -> None:
        """Sample pid under name from now on; a new pid under a known name continues its series.

        tree: sample the process with all its descendants as one (RSS and CPU summed), e.g. a service's
        supervisor and its WORKERS; workers that start later count from their start, CPU of one that exits
        counts up to its last sample (at most one interval of it is missed)."""
        if pid is None:
            return
        with self._lock:
            try:
                root = psutil.Process(pid)
                self._procs[name] = root
            except psutil.NoSuchProcess:
                return
            if tree:
                self._trees[name] = ProcessTree(root)
            else:
                self._trees.pop(name, None)
            series = self.series.setdefault(name, ProcessSeries(name, pid))
            if series.pid != pid:
                series.pid = pid
                series.last_cpu = None  # CPU seconds of the new process add to the old ones
        self._sample_one(name)

    def unwatch(self, name: str) -> None:
        """Take a last sample of name and stop sampling it."""
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
        """Sample every watched process (and the machine) now."""
        for name in [*self._procs, *([MACHINE] if self._machine else [])]:
            self._sample_one(name)

    def run(self) -> None:
        """The thread's body: sample every interval seconds until stop()."""
        while not self._stop_event.wait(self.interval):
            self.sample_now()

    def stop(self) -> dict[str, ProcessSeries]:
        """Stop sampling (one last sample); the series by name."""
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
            elif name in self._trees:
                try:
                    rss_bytes, cpu = self._trees[name].sample()
                except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                    self._procs.pop(name, None)
                    self._trees.pop(name, None)
                    return
                rss = rss_bytes / 1_048_576
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
        kafka: str | KafkaSettings,
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
        order_topic = env["order"][ORDER_EVENTS.topic_env]
        fulfillment_topic = env["order"][FULFILLMENT_EVENTS.topic_env]
        self._fulfillment_lag = GroupLag(kafka_settings(kafka), env["fulfillment"]["CONSUMER_GROUP"], order_topic)
        self._projection_lag = GroupLag(kafka_settings(kafka), env["order"]["CONSUMER_GROUP"], fulfillment_topic)
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
        """The thread's body: one row every interval seconds (less the sample's own time) until stop()."""
        while not self._stop_event.is_set():
            started = time.monotonic()
            self.sample()
            self._stop_event.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def sample(self) -> None:
        """Take one row of samples (the health endpoints only every health_every-th time)."""
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
        """Stop sampling and close the clients; the samples by column."""
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
