"""The benchmark scenarios and the frame they run in.

One Kafka broker and Schema Registry serve the whole run (the JVMs are slow to start and need warming
up). Every scenario gets a fresh pair of services on free ports with its own topics, consumer groups
and SQLite databases, so no scenario inherits another's backlog, data or memory. The frame of an
order-service scenario: start the services, send a few warm-up orders end to end (topics created,
schemas registered, consumer group joined), start sampling, run the load generator in its own
process, then keep sampling while reading both topics until every accepted order reached a terminal
status (bounded by a drain timeout).
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.metrics import (
    MACHINE,
    EventCollector,
    EventTimes,
    LagSampler,
    ProcessSampler,
    all_terminal,
    judge_lag,
    percentile_series,
    rate_series,
    share_within,
)
from harness.load import LoadProcess, LoadResult, LoadSpec
from harness.percentiles import latency_summary
from harness.system import System, make_system
from infra.ports import free_port
from infra.services import ServiceProcess
from infra.stack import LocalStack

log = logging.getLogger("bench")

ROOT = Path(__file__).resolve().parent.parent
PROVIDER = {"PROVIDER_MIN_LATENCY_MS": "100", "PROVIDER_MAX_LATENCY_MS": "500", "PROVIDER_FAILURE_RATE": "0.10"}
PICKUP_SLA_S = 5.0
RAMP_P95_LIMIT_MS = 500.0
LONG_TIME_CAP_S = 4 * 3600.0  # the closed-loop long run stops here even if the count is not reached

STEADY_RATES = {"steady-100": 100.0, "steady-300": 300.0, "steady-1000": 1000.0}
DEFAULT_SCENARIOS = ("steady-100", "steady-300", "steady-1000", "capacity", "burst", "ramp")
ALL_SCENARIOS = (*DEFAULT_SCENARIOS, "long")


@dataclass(frozen=True)
class Profile:
    """Durations and sizes: the full run, or the shortened smoke run (--quick)."""

    name: str
    steady_s: float
    baseline_s: float  # per rate, for both ceilings
    capacity_s: float  # closed-loop saturation, order service and bare app alike
    burst_orders: int
    ramp_rates: tuple[float, ...]
    ramp_step_s: float
    drain_timeout_s: float
    steady_connections: int = 128
    capacity_connections: int = 64
    burst_connections: int = 1000
    sample_interval_s: float = 0.5
    warmup_orders: int = 10  # sent one by one and followed to a terminal status
    warmup_s: float = 5.0  # unmeasured load at the scenario's rate before each measured run
    long_orders: int = 1_000_000
    long_rate: float = 0.0  # 0: closed loop, every order created as fast as the service accepts it


FULL = Profile(
    name="full",
    steady_s=60,
    baseline_s=20,
    capacity_s=15,
    burst_orders=10_000,
    ramp_rates=(100, 200, 300, 400, 500, 600, 700, 800, 900, 1000, 1200, 1400, 1700, 2000, 2500, 3000),
    ramp_step_s=20,
    drain_timeout_s=180,
)
QUICK = Profile(
    name="quick",
    steady_s=10,
    baseline_s=5,
    capacity_s=5,
    burst_orders=2_000,
    ramp_rates=(100, 300, 600, 1000, 1500, 2000),
    ramp_step_s=5,
    drain_timeout_s=45,
    warmup_s=2,
)


# -- per-scenario environment --------------------------------------------------------------------------


class Environment:
    """A fresh pair of services on the shared stack, with its own topics, groups and databases."""

    def __init__(self, bench: Bench, name: str) -> None:
        self.bench = bench
        self.name = name
        self.dir = bench.run_dir / name
        self.dir.mkdir(parents=True, exist_ok=True)
        suffix = uuid.uuid4().hex[:6]
        self.tag = f"bench{suffix}"  # customerId prefix of measured orders
        self.system: System = make_system(
            bench.stack.bootstrap_servers, bench.stack.registry_url, self.dir, prefix=f"{name}-{suffix}-", **PROVIDER
        )

    @property
    def order_url(self) -> str:
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
                body = {
                    "customerId": f"warmup-{i}",
                    "customerName": "Warm Up",
                    "items": [{"productId": "p-1", "productName": "Warm-up", "quantity": 1, "price": 1.0}],
                }
                response = client.post("/api/orders", json=body)
                response.raise_for_status()
                ids.append(response.json()["orderId"])
            deadline = time.monotonic() + 60
            for order_id in ids:
                left = max(0.1, min(30.0, deadline - time.monotonic()))
                status = client.get(
                    f"/api/orders/{order_id}", params={"waitFor": "Fulfilled,Failed", "timeout": left}
                ).json()["status"]
                if status not in ("Fulfilled", "Failed"):
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
        """Until no outbox rows, no consumer lag and nothing in flight (or timeout)."""
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=5) as client:
            while time.monotonic() < deadline:
                try:
                    ready = client.get(self.order_url + "/health/ready").json()
                    health = client.get(self.system.fulfillment.url + "/api/fulfillment/health").json()
                except (httpx.HTTPError, ValueError):
                    ready, health = {}, {}
                if ready.get("outboxBacklog") == 0 and health.get("consumerLag") == 0 and health.get("inFlight") == 0:
                    return True
                time.sleep(0.25)
        log.warning("%s: pipeline not idle after %.0fs; measuring anyway", self.name, timeout)
        return False

    @contextmanager
    def sampling(self, interval: float | None = None) -> Iterator[Sampling]:
        """Process and lag samplers for the services, the stack and this harness."""
        bench = self.bench
        interval = interval or bench.profile.sample_interval_s
        origin = time.time()
        procs = ProcessSampler(interval, origin)
        procs.watch("order-service", self.system.orders.pid)
        procs.watch("fulfillment-service", self.system.fulfillment.pid)
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


@dataclass
class Sampling:
    origin: float
    procs: ProcessSampler
    lag: LagSampler
    stopped: bool = False

    def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            self.procs.stop()
            self.lag.stop()


# -- profiling with py-spy -------------------------------------------------------------------------------


class Profiler:
    """py-spy sampling one service process while the load runs (collapsed stacks, speedscope-loadable).

    Mode "gil" samples only the thread holding the GIL: where the Python CPU goes (threads blocked in
    librdkafka or SQLite calls would otherwise look busy). Mode "wall" samples every thread, idle ones
    included: where the time goes, waits on locks and queues too.
    """

    def __init__(self, pid: int, output: Path, seconds: float, mode: str = "gil") -> None:
        self.output = output
        self.log = output.with_suffix(".log")
        py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        # --nonblocking: never pause the service to read its stacks (costs some accuracy, not latency).
        command = [py_spy, "record", "--pid", str(pid), "--rate", "100", "--nonblocking", "--format", "raw"]
        command.append("--gil" if mode == "gil" else "--idle")
        # The generator needs a moment to start and open its connections before the load begins.
        command += ["--duration", str(max(1, math.ceil(seconds + 1.5))), "--output", str(output)]
        with self.log.open("wb") as log_handle:
            self.process = subprocess.Popen(command, stdout=log_handle, stderr=subprocess.STDOUT)

    def finish(self) -> None:
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGINT)  # py-spy writes what it has on SIGINT
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()


# -- the run -----------------------------------------------------------------------------------------------


class Bench:
    """Owns the shared stack and runs scenarios; results are JSON-ready dicts."""

    def __init__(
        self,
        run_dir: Path,
        profile: Profile,
        *,
        profile_services: bool = False,
        profile_mode: str = "gil",
        keep_data: bool = False,
    ) -> None:
        self.run_dir = run_dir
        self.profile = profile
        self.profile_services = profile_services
        self.profile_mode = profile_mode
        self.keep_data = keep_data
        self.stack = LocalStack.ephemeral(run_dir / "stack")

    def __enter__(self) -> Bench:
        log.info("starting Kafka and the Schema Registry in %s", self.stack.directory)
        self.stack.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stack.stop()
        if not self.keep_data:
            shutil.rmtree(self.stack.directory / "kafka" / "data", ignore_errors=True)
            for database in self.run_dir.glob("*/*.db*"):
                database.unlink(missing_ok=True)

    def start_profilers(self, env: Environment, label: str, seconds: float) -> list[Profiler]:
        if not self.profile_services or seconds <= 0:
            return []
        return [
            Profiler(pid, env.dir / f"{label}.{name}.pyspy.txt", seconds, self.profile_mode)
            for name, pid in (
                ("order-service", env.system.orders.pid),
                ("fulfillment-service", env.system.fulfillment.pid),
            )
            if pid is not None
        ]

    def run(self, names: list[str]) -> dict[str, Any]:
        """Baselines for what the scenarios compare with, then each scenario; failures are recorded."""
        results: dict[str, Any] = {"baselines": {}, "scenarios": {}}
        rates = sorted({STEADY_RATES[n] for n in names if n in STEADY_RATES})
        if rates or "capacity" in names:
            results["baselines"] = self.guarded("baselines", lambda: self.baselines(rates, "capacity" in names))
        for name in names:
            results["scenarios"][name] = self.guarded(name, lambda name=name: self.scenario(name))
            self.write_partial(results)
        return results

    def guarded(self, name: str, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        log.info("=== %s ===", name)
        started = time.monotonic()
        try:
            result = run()
        except Exception as exc:
            log.exception("%s failed", name)
            result = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
        result["wallSeconds"] = round(time.monotonic() - started, 1)
        return result

    def write_partial(self, results: dict[str, Any]) -> None:
        # A long run that dies late still leaves its finished scenarios behind.
        (self.run_dir / "partial.json").write_text(json.dumps(results, default=str))

    def scenario(self, name: str) -> dict[str, Any]:
        if name in STEADY_RATES:
            return self.steady(name, STEADY_RATES[name])
        runners: dict[str, Callable[[], dict[str, Any]]] = {
            "capacity": self.capacity,
            "burst": self.burst,
            "ramp": self.ramp,
            "long": self.long,
        }
        if name not in runners:
            raise ValueError(f"unknown scenario {name!r}; known: {', '.join(ALL_SCENARIOS)}")
        return runners[name]()

    # -- baselines -------------------------------------------------------------------------------------

    def baselines(self, rates: list[float], capacity: bool) -> dict[str, Any]:
        p = self.profile
        out: dict[str, Any] = {"http": {}, "kafka": {}}
        directory = self.run_dir / "baselines"
        server = ServiceProcess(
            "bench.baselines", free_port(), {}, directory / "logs" / "bare-fastapi.log", "/health/live"
        )
        server.start()
        try:
            sampler = ProcessSampler(p.sample_interval_s)
            sampler.watch("bare-fastapi", server.pid)
            sampler.watch_machine()
            sampler.start()
            try:
                # A short unmeasured run first: the first requests of a fresh process are slower.
                self._bare_load(server, directory, "warmup", LoadSpec(server.url, rate=200, duration=2), sampler)
                for rate in rates:
                    spec = LoadSpec(server.url, rate=rate, duration=p.baseline_s, connections=p.steady_connections)
                    out["http"][f"{rate:g}"] = self._bare_load(server, directory, f"open-{rate:g}", spec, sampler)
                if capacity:
                    spec = LoadSpec(
                        server.url, mode="closed", duration=p.capacity_s, connections=p.capacity_connections
                    )
                    out["http"]["capacity"] = self._bare_load(server, directory, "capacity", spec, sampler)
            finally:
                sampler.stop()
        finally:
            server.stop()
        for rate in rates:
            out["kafka"][f"{rate:g}"] = self.kafka_baseline(rate, p.baseline_s, directory)
        return out

    def _bare_load(
        self, server: ServiceProcess, directory: Path, label: str, spec: LoadSpec, sampler: ProcessSampler
    ) -> dict[str, Any]:
        process = LoadProcess(spec, directory / f"{label}.load.pkl", directory / "logs" / f"{label}.loadgen.log")
        before = time.time() - sampler.origin
        result = process.start().wait()
        sampler.sample_now()
        after = time.time() - sampler.origin
        figures = load_figures(result)
        cpu = sampler.series["bare-fastapi"].cpu_between(before, after)
        figures["serverCpuMsPerRequest"] = round(1000 * cpu / result.ok, 3) if cpu and result.ok else None
        figures["serverRssMb"] = sampler.series["bare-fastapi"].rss_mb[-1]
        busy = sampler.series[MACHINE].cpu_between(before, after)
        if busy is not None and cpu is not None and after > before:
            figures["othersCpuPercent"] = round(max(0.0, 100 * (busy - cpu - result.cpu_seconds) / (after - before)), 1)
        return figures

    def kafka_baseline(self, rate: float, seconds: float, directory: Path) -> dict[str, Any]:
        result_file = directory / f"kafka-{rate:g}.json"
        command = [sys.executable, "-m", "bench.baselines", "kafka", "--bootstrap", self.stack.bootstrap_servers]
        log_file = directory / "logs" / f"kafka-{rate:g}.log"
        with log_file.open("ab") as log_handle:
            subprocess.run(
                [*command, "--rate", str(rate), "--duration", str(seconds), "--result", str(result_file)],
                cwd=ROOT,
                check=True,
                timeout=seconds + 120,
                stdout=log_handle,
                stderr=subprocess.STDOUT,
            )
        raw = json.loads(result_file.read_text())
        latencies = [v for v in raw["latencies"] if v is not None and not math.isnan(v)]
        return {
            "rate": rate,
            "duration": seconds,
            "sent": raw["sent"],
            "received": raw["received"],
            "latencyMs": latency_summary(latencies),
        }

    # -- order-service scenarios ---------------------------------------------------------------------------

    def steady(self, name: str, rate: float) -> dict[str, Any]:
        p = self.profile
        with Environment(self, name) as env:
            env.warm_load(rate, p.steady_connections)
            spec = LoadSpec(
                env.order_url, rate=rate, duration=p.steady_s, connections=p.steady_connections, tag=env.tag
            )
            return self._run_scenario(env, spec, kind="steady")

    def burst(self) -> dict[str, Any]:
        p = self.profile
        with Environment(self, "burst") as env:
            env.warm_load(200, p.steady_connections)
            spec = LoadSpec(
                env.order_url,
                rate=None,
                count=p.burst_orders,
                duration=0,
                connections=p.burst_connections,
                tag=env.tag,
            )
            return self._run_scenario(env, spec, kind="burst")

    def long(self) -> dict[str, Any]:
        """long_orders orders for memory: open loop at long_rate, or closed loop (as fast as the service
        accepts them, so the count is always reached) when long_rate is 0."""
        p = self.profile
        with Environment(self, "long") as env:
            env.warm_load(p.long_rate or 200.0, p.steady_connections)
            if p.long_rate > 0:
                spec = LoadSpec(
                    env.order_url,
                    rate=p.long_rate,
                    duration=p.long_orders / p.long_rate,
                    count=p.long_orders,
                    connections=p.steady_connections,
                    tag=env.tag,
                )
            else:
                spec = LoadSpec(
                    env.order_url,
                    mode="closed",
                    duration=LONG_TIME_CAP_S,
                    count=p.long_orders,
                    connections=p.capacity_connections,
                    tag=env.tag,
                )
            return self._run_scenario(
                env, spec, kind="long", drain_timeout=max(p.drain_timeout_s, 3600), settle_s=10, sample_every=2.0
            )

    def _run_scenario(
        self,
        env: Environment,
        spec: LoadSpec,
        *,
        kind: str,
        drain_timeout: float | None = None,
        settle_s: float = 0,
        sample_every: float | None = None,
    ) -> dict[str, Any]:
        drain_timeout = drain_timeout if drain_timeout is not None else self.profile.drain_timeout_s
        with env.sampling(sample_every) as sampling:
            result = env.load(spec, "load", sampling)
            load_end = time.time()
            collector = env.collector()
            try:
                drained = collector.follow(all_terminal(result.ok), drain_timeout)
            finally:
                collector.close()
            drain_seconds = time.time() - load_end
            log.info("%s: read %d records in %.1fs after the load", env.name, collector.records, drain_seconds)
            if settle_s:
                time.sleep(settle_s)  # let RSS settle after the drain (the long run reports it)
        figures: dict[str, Any] = {"kind": kind, "spec": _spec_json(spec)}
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
        figures["profile"] = self._profile_files(env, "load")
        return figures

    def capacity(self) -> dict[str, Any]:
        """Maximum create throughput: every connection posts back to back for capacity_s."""
        p = self.profile
        with Environment(self, "capacity") as env:
            env.warm_load(200, p.capacity_connections)
            spec = LoadSpec(
                env.order_url, mode="closed", duration=p.capacity_s, connections=p.capacity_connections, tag=env.tag
            )
            with env.sampling() as sampling:
                result = env.load(spec, "load", sampling)
        shift = sampling.origin - result.started_at
        return {
            "kind": "capacity",
            "spec": _spec_json(spec),
            "load": load_figures(result),
            "processes": process_figures(sampling.procs, shift, 0.0, max(spec.duration, result.elapsed), result.ok),
            "lag": lag_figures(sampling.lag, shift, 0.0, spec.duration, None),
            "profile": self._profile_files(env, "load"),
        }

    def ramp(self) -> dict[str, Any]:
        """Rising steps until create P95 exceeds 500 ms, the backlog grows or requests fail."""
        p = self.profile
        steps: list[dict[str, Any]] = []
        results: list[LoadResult] = []
        with Environment(self, "ramp") as env:
            env.warm_load(p.ramp_rates[0], p.steady_connections)
            with env.sampling() as sampling:
                for rate in p.ramp_rates:
                    spec = LoadSpec(
                        env.order_url, rate=rate, duration=p.ramp_step_s, connections=p.steady_connections, tag=env.tag
                    )
                    result = env.load(spec, f"step-{rate:g}", sampling)
                    results.append(result)
                    step = _ramp_step(rate, result, sampling)
                    steps.append(step)
                    log.info("ramp %g/s: %s", rate, step["verdict"])
                    if not step["passed"]:
                        break
                collector = env.collector()
                try:
                    # The steps' pickup figures; a failed last step may not drain, hence the bound.
                    collector.follow(all_terminal(sum(r.ok for r in results)), min(p.drain_timeout_s, 60))
                finally:
                    collector.close()
            first = results[0].started_at
            for step, result in zip(steps, results, strict=True):
                window = (result.started_at, result.started_at + p.ramp_step_s)
                pickups = [
                    lat
                    for oid, lat in collector.times.pickup_latencies().items()
                    if window[0] <= collector.times.created[oid] < window[1]
                ]
                step["pickupMs"] = latency_summary(pickups)
        passed = [s["rate"] for s in steps if s["passed"]]
        shift = sampling.origin - first
        end = results[-1].started_at - first + p.ramp_step_s
        return {
            "kind": "ramp",
            "stepSeconds": p.ramp_step_s,
            "steps": steps,
            "maxSustainedRate": max(passed) if passed else None,
            "lag": lag_figures(sampling.lag, shift, 0.0, end, None),
            "processes": process_figures(sampling.procs, shift, 0.0, end, sum(r.ok for r in results)),
            "series": _concat_series(results, first),
            "events": event_figures(collector.times, first),
        }

    def _profile_files(self, env: Environment, label: str) -> dict[str, str]:
        if not self.profile_services:
            return {}
        found = {}
        for name in ("order-service", "fulfillment-service"):
            path = env.dir / f"{label}.{name}.pyspy.txt"
            if path.exists():
                found[name] = str(path)
        return found


def _ramp_step(rate: float, result: LoadResult, sampling: Sampling) -> dict[str, Any]:
    figures = load_figures(result)
    shift = sampling.origin - result.started_at
    points = [(t + shift, v) for t, v in sampling.lag.backlog_points()]
    verdict = judge_lag(points, 0.0, result.spec.duration, rate)
    p95 = figures["latencyMs"]["p95"]
    reasons = []
    if p95 is None or p95 > RAMP_P95_LIMIT_MS:
        reasons.append(f"create P95 {_ms_text(p95)} > {RAMP_P95_LIMIT_MS:g} ms")
    if result.ok < 0.99 * len(result.statuses):
        reasons.append(f"only {result.ok} of {len(result.statuses)} requests answered 2xx")
    if not verdict.bounded:
        reasons.append(verdict.reason)
    return {
        "rate": rate,
        "achievedPerSecond": figures["achievedPerSecond"],
        "latencyMs": figures["latencyMs"],
        "statuses": figures["statuses"],
        "lag": asdict(verdict),
        "passed": not reasons,
        "verdict": "; ".join(reasons) or "ok",
    }


def _ms_text(value: float | None) -> str:
    return "none answered" if value is None else f"{value:,.1f} ms"


def _concat_series(results: list[LoadResult], origin: float) -> dict[str, Any]:
    """Create latency and answers per second across the ramp's steps, on one clock."""
    times: list[float] = []
    values: list[float] = []
    answered: list[float] = []
    offered_t: list[float] = []
    offered: list[float | None] = []
    for result in results:
        shift = result.started_at - origin
        offered_t += [shift, shift + result.spec.duration, shift + result.spec.duration]
        offered += [result.spec.rate or 0.0, result.spec.rate or 0.0, None]  # None: a gap between steps
        for offset, latency, status in zip(result.offsets, result.latencies, result.statuses, strict=True):
            if 200 <= status < 300:
                times.append(offset + shift)
                values.append(latency)
                answered.append(offset + latency + shift)
    t, per_second = rate_series(answered)
    return {
        "latency": percentile_series(times, values),
        "answeredPerSecond": {"t": t, "value": per_second},
        "offered": {"t": offered_t, "value": offered},
    }


def _spec_json(spec: LoadSpec) -> dict[str, Any]:
    data = asdict(spec)
    data.pop("url")
    return data


# -- figures -------------------------------------------------------------------------------------------------


def load_figures(result: LoadResult) -> dict[str, Any]:
    """Create-request figures of one load run (times relative to its t0)."""
    ok_times = []
    ok_latencies = []
    answered_at = []
    for offset, latency, status in zip(result.offsets, result.latencies, result.statuses, strict=True):
        if 200 <= status < 300:
            ok_times.append(offset)
            ok_latencies.append(latency)
            answered_at.append(offset + latency)
    lateness = sorted(result.lateness)
    t, per_second = rate_series(answered_at)
    return {
        "arrivals": len(result.statuses),
        "ok": result.ok,
        "statuses": result.status_counts(),
        "latencyMs": latency_summary(ok_latencies),
        "achievedPerSecond": round(result.ok / result.elapsed, 1) if result.elapsed > 0 else None,
        "elapsedSeconds": round(result.elapsed, 3),
        "generator": {
            "cpuPercent": round(result.cpu_percent(), 1),
            "cpuSeconds": round(result.run_cpu_seconds, 2),
            "schedulerLatenessMs": {
                "p99": round(lateness[int(0.99 * (len(lateness) - 1))] * 1000, 3) if lateness else None,
                "max": round(lateness[-1] * 1000, 3) if lateness else None,
            },
            "connectionsOpened": result.connections_opened,
            "peakOutstanding": result.peak_outstanding if result.spec.mode == "open" else None,
        },
        "series": {
            "latency": percentile_series(ok_times, ok_latencies),
            # A burst's requests are all due at t0; by answer time its latencies show how the backlog drained.
            "latencyByAnswer": percentile_series(answered_at, ok_latencies),
            "answeredPerSecond": {"t": t, "value": per_second},
        },
    }


def event_figures(times: EventTimes, started_at: float) -> dict[str, Any]:
    """Pickup and time-to-terminal figures from the events' own timestamps."""
    pickup = times.pickup_latencies()
    terminal = times.terminal_latencies()
    created_rel = {oid: ts - started_at for oid, ts in times.created.items()}
    pickup_ids = list(pickup)
    t_picked, picked_per_second = rate_series(times.picked[oid] - started_at for oid in pickup_ids)
    return {
        "created": len(times.created),
        "pickedUp": len(pickup),
        "terminal": len(terminal),
        "outcomes": times.outcome_counts(),
        "pickupMs": latency_summary(pickup.values()),
        "terminalMs": latency_summary(terminal.values()),
        "pickedWithin5s": round(share_within(pickup.values(), PICKUP_SLA_S), 5) if pickup else None,
        "series": {
            "pickup": percentile_series([created_rel[oid] for oid in pickup_ids], [pickup[oid] for oid in pickup_ids]),
            "pickedPerSecond": {"t": t_picked, "value": picked_per_second},
        },
    }


def lag_figures(sampler: LagSampler, shift: float, start: float, end: float, rate: float | None) -> dict[str, Any]:
    samples = dict(sampler.samples)
    samples["t"] = [round(t + shift, 3) for t in samples["t"]]
    points = [(t + shift, v) for t, v in sampler.backlog_points()]
    figures: dict[str, Any] = {"series": samples, "maxBacklog": max((v for _, v in points), default=None)}
    if rate is not None:
        figures["verdict"] = asdict(judge_lag(points, start, end, rate))
    return figures


def process_figures(sampler: ProcessSampler, shift: float, start: float, end: float, requests: int) -> dict[str, Any]:
    """RSS/CPU summary and series per process; CPU seconds (and per order) between start and end."""
    figures: dict[str, Any] = {}
    for name, series in sampler.series.items():
        summary = series.summary()
        cpu = series.cpu_between(start - shift, end - shift)
        summary["cpuSecondsDuringRun"] = round(cpu, 2) if cpu is not None else None
        if name in ("order-service", "fulfillment-service") and cpu is not None and requests:
            summary["cpuMsPerOrder"] = round(1000 * cpu / requests, 3)
        summary["series"] = {
            "t": [round(t + shift, 3) for t in series.t],
            "rssMb": series.rss_mb,
            "cpuPercent": series.cpu_percent,
        }
        figures[name] = summary
    machine = figures.get(MACHINE)
    if machine is not None and end > start:
        ours = sum(f["cpuSecondsDuringRun"] or 0.0 for n, f in figures.items() if n != MACHINE)
        busy = machine["cpuSecondsDuringRun"]
        if busy is not None:
            seconds = end - start
            machine["cpuPercentDuringRun"] = round(100 * busy / seconds, 1)
            # CPU used by processes outside this benchmark: on a shared machine, the noise in the figures.
            machine["othersCpuPercentDuringRun"] = round(max(0.0, 100 * (busy - ours) / seconds), 1)
    return figures
