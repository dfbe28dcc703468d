"""A scenario's environment: a fresh pair of services on the run's shared stack, and how a load is measured there.

Every scenario gets services on free ports with its own topics, consumer groups and SQLite databases, so no
scenario inherits another's backlog, data or memory. Before measuring, a few orders go end to end (topics
created, schemas registered, groups joined) and unmeasured load warms threads, pools and connections up.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx

from bench.events import EventCollector, all_terminal
from bench.figures import event_figures, lag_figures, load_figures, process_figures, spec_json
from bench.profile import PROVIDER, Profile
from bench.profiler import Profiler
from bench.samplers import LagSampler, ProcessSampler
from harness.load import LoadProcess, LoadResult, LoadSpec
from harness.order_bodies import order_body
from harness.orders import TERMINAL, wait_terminal
from harness.system import System, make_system
from harness.waiting import poll
from infra.stack import LocalStack

log = logging.getLogger("bench")


class BenchRun(Protocol):
    """What scenarios use of the benchmark run they belong to (``bench.run.Bench``)."""

    run_dir: Path
    profile: Profile
    stack: LocalStack

    def start_profilers(self, env: Environment, label: str, seconds: float) -> list[Profiler]:
        """Profilers on both services for seconds, their output named by label; [] when the run does not profile."""
        ...

    def profile_files(self, env: Environment, label: str) -> dict[str, str]:
        """The profile output paths written for label, by service name ({} when none)."""
        ...


@dataclass
class Sampling:
    """The samplers running during a measurement; origin is their clock's zero (epoch s)."""

    origin: float
    procs: ProcessSampler
    lag: LagSampler
    stopped: bool = False

    def stop(self) -> None:
        """Stop both samplers (idempotent)."""
        if not self.stopped:
            self.stopped = True
            self.procs.stop()
            self.lag.stop()


class Environment:
    """A fresh pair of services on the shared stack; a context manager that starts and warms them up.

    Measured orders carry the customerId prefix ``tag``; files go to ``<run dir>/<name>/``; env are further
    environment variables for both services (e.g. METRICS_ENABLED="false"), service_env for one of them by its
    key in System.env ("order", "fulfillment"; e.g. its WORKERS and DATABASE_URL).
    """

    def __init__(
        self,
        bench: BenchRun,
        name: str,
        env: Mapping[str, str] | None = None,
        service_env: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        self.bench = bench
        self.name = name
        self.dir = bench.run_dir / name
        self.dir.mkdir(parents=True, exist_ok=True)
        suffix = uuid.uuid4().hex[:6]
        self.tag = f"bench{suffix}"  # customerId prefix of measured orders
        extra = {**PROVIDER, **(env or {})}
        self.system: System = make_system(
            bench.stack.bootstrap_servers, bench.stack.registry_url, self.dir, prefix=f"{name}-{suffix}-", **extra
        )
        for service, variables in (service_env or {}).items():
            self.system.env[service].update(variables)

    @property
    def order_url(self) -> str:
        """The Order Service's base URL."""
        return self.system.orders.url

    def __enter__(self) -> Environment:
        self.system.start()
        try:
            self._warm_up()
        except BaseException:
            self.system.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.system.stop()

    def _warm_up(self) -> None:
        """A few orders end to end, so topic creation, schema registration and group joins are done."""
        profile = self.bench.profile
        with httpx.Client(base_url=self.order_url, timeout=30) as client:
            ids = []
            for i in range(profile.warmup_orders):
                response = client.post("/api/orders", json=order_body(i, customer=f"warmup-{i}"))
                response.raise_for_status()
                ids.append(response.json()["orderId"])
            deadline = time.monotonic() + 60
            for order_id in ids:
                status = wait_terminal(client, order_id, max(0.1, deadline - time.monotonic()))
                if status not in TERMINAL:
                    log.warning("%s: warm-up order %s still %s; going on", self.name, order_id, status)

    def warm_load(self, rate: float, connections: int) -> None:
        """Unmeasured load at the scenario's rate (threads, pools and connections grow to their working
        size), then wait until the pipeline is idle again so the measured run starts from empty."""
        seconds = self.bench.profile.warmup_s
        if seconds <= 0:
            return
        spec = LoadSpec(self.order_url, rate=min(rate, 1000.0), duration=seconds, connections=connections, tag="warmup")
        self.load(spec, "warmup", profile=False)
        self.wait_idle(self.bench.profile.drain_timeout_s)

    def wait_idle(self, timeout: float) -> bool:
        """Until no outbox rows, no consumer lag and nothing in flight (or timeout seconds); whether it got there."""

        def idle() -> bool:
            ready = self.system.order_readiness()
            health = self.system.fulfillment_health()
            return ready.get("outboxBacklog") == 0 and health.get("consumerLag") == 0 and health.get("inFlight") == 0

        if poll(idle, timeout, interval=0.25, ignore=(httpx.HTTPError, ValueError)):
            return True
        log.warning("%s: pipeline not idle after %.0fs; measuring anyway", self.name, timeout)
        return False

    @contextmanager
    def sampling(self, interval: float | None = None) -> Iterator[Sampling]:
        """Process and lag samplers for the services, the stack and this harness (every interval seconds)."""
        bench = self.bench
        interval = interval or bench.profile.sample_interval_s
        origin = time.time()
        procs = ProcessSampler(interval, origin)
        # A service is its process with any workers it supervises (WORKERS > 1): CPU and RSS summed.
        procs.watch("order-service", self.system.orders.pid, tree=True)
        procs.watch("fulfillment-service", self.system.fulfillment.pid, tree=True)
        procs.watch("kafka", bench.stack.broker.pid)
        procs.watch("registry", bench.stack.registry.pid)
        procs.watch("harness", os.getpid())
        procs.watch_machine()
        lag = LagSampler(
            bench.stack.bootstrap_servers,
            self.system.env,
            self.order_url,
            self.system.fulfillment.url,
            interval,
            origin,
            health_every=max(1, round(2.0 / interval)),  # health endpoints every 2 s (they cost the services)
        )
        procs.start()
        lag.start()
        sampling = Sampling(origin, procs, lag)
        try:
            yield sampling
        finally:
            sampling.stop()

    def collector(self) -> EventCollector:
        """A reader of both topics that keeps this scenario's event timestamps."""
        return EventCollector(
            self.bench.stack.bootstrap_servers,
            self.bench.stack.registry_url,
            self.system.order_topic,
            self.system.fulfillment_topic,
            self.tag,
        )

    def load(self, spec: LoadSpec, label: str, sampling: Sampling | None = None, *, profile: bool = True) -> LoadResult:
        """Run the generator process (sampled as 'loadgen'); profile the services meanwhile if asked."""
        process = LoadProcess(spec, self.dir / f"{label}.load.pkl", self.dir / "logs" / f"{label}.loadgen.log")
        process.start()
        if sampling is not None:
            sampling.procs.watch("loadgen", process.pid)
        profilers = self.bench.start_profilers(self, label, process.expected_seconds()) if profile else []
        try:
            result = process.wait()
        finally:
            process.kill()
            if sampling is not None:
                sampling.procs.unwatch("loadgen")
            for profiler in profilers:
                profiler.finish()
        return result

    def measure(
        self,
        spec: LoadSpec,
        *,
        kind: str,
        drain_timeout: float | None = None,
        settle_s: float = 0,
        sample_every: float | None = None,
        profile: bool = True,
    ) -> dict[str, Any]:
        """Run spec sampled, then follow both topics until every accepted order is terminal (drain_timeout s).

        settle_s: wait this long after the drain before the last samples (memory settles); profile: py-spy the
        services meanwhile when the run profiles (False where the profiler's CPU would distort). Returns the
        scenario's figures: load, events, lag, processes and profiles.
        """
        drain_timeout = drain_timeout if drain_timeout is not None else self.bench.profile.drain_timeout_s
        with self.sampling(sample_every) as sampling:
            result = self.load(spec, "load", sampling, profile=profile)
            load_end = time.time()
            collector = self.collector()
            try:
                drained = collector.follow(all_terminal(result.ok), drain_timeout)
            finally:
                collector.close()
            drain_seconds = time.time() - load_end
            log.info("%s: read %d records in %.1fs after the load", self.name, collector.records, drain_seconds)
            if settle_s:
                time.sleep(settle_s)  # let RSS settle after the drain (the long run reports it)
        figures: dict[str, Any] = {"kind": kind, "spec": spec_json(spec)}
        figures["load"] = load_figures(result)
        figures["events"] = event_figures(collector.times, result.started_at)
        figures["events"]["drained"] = drained
        figures["events"]["drainSeconds"] = round(drain_seconds, 1)
        shift = sampling.origin - result.started_at
        fixed_schedule = spec.mode == "open" and spec.rate is not None
        # A burst or a closed loop lasts until the last answer; a schedule lasts its duration.
        load_seconds = spec.duration if fixed_schedule else result.elapsed
        figures["lag"] = lag_figures(sampling.lag, shift, 0.0, load_seconds, spec.rate if fixed_schedule else None)
        # CPU per order over load and drain: the projection and the provider calls run on after the load.
        figures["processes"] = process_figures(
            sampling.procs, shift, 0.0, load_end - result.started_at + drain_seconds, result.ok
        )
        figures["profile"] = self.bench.profile_files(self, "load")
        return figures
