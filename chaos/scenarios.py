"""The eight chaos scenarios and the run that frames each of them.

Every scenario gets a fresh Kafka broker, Schema Registry and pair of services in its own directory.
The frame is the same for all: prove the system works (one probe order end to end), start the steady
load, let it run a little, inject the scenario's fault(s), keep the load going a little after the last
fault ended, stop it, wait (bounded) for every accepted order to reach a terminal status, reconcile.

A fault's window runs from its injection until the faulted part is back (restarted and healthy,
resumed, or the provider healthy again); the drain time is measured from the end of the last window.
"""

from __future__ import annotations

import contextlib
import logging
import random
import shutil
import struct
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from chaos.load import LoadGenerator, LoadResult, order_body
from chaos.reconcile import (
    Reconciliation,
    read_to_end,
    reconcile,
    sqlite_path,
    wait_drained,
    wait_outboxes_empty,
)
from infra.services import ServiceProcess, fulfillment_service
from infra.stack import LocalStack, free_port
from tests.support import System, make_system

log = logging.getLogger("chaos")


@dataclass(frozen=True)
class Profile:
    """How hard and how long: the full run of the issue, or a short smoke run for `make test`."""

    name: str
    rate: float  # orders per second
    warmup_s: float  # steady load before the first fault
    tail_s: float  # load after the last fault
    drain_timeout_s: float  # after the load stopped
    broker_down_s: float
    kills: int
    kill_gap_s: tuple[float, float]  # random pause before each kill
    registry_down_s: float
    provider_outage_s: float
    poison_records: int
    poison_spread_s: float
    pause_s: float
    pickup_sla_s: float = 5.0
    fulfillment_partitions: int = 4  # order-events partitions in the two-instance scenario


FULL = Profile(
    name="full",
    rate=200,
    warmup_s=10,
    tail_s=10,
    drain_timeout_s=180,
    broker_down_s=30,
    kills=10,
    kill_gap_s=(1.0, 5.0),
    registry_down_s=30,
    provider_outage_s=60,
    poison_records=1000,
    poison_spread_s=10,
    pause_s=20,
)

SMOKE = Profile(
    name="smoke",
    rate=40,
    warmup_s=2,
    tail_s=2,
    drain_timeout_s=90,
    broker_down_s=5,
    kills=3,
    kill_gap_s=(0.5, 2.0),
    registry_down_s=5,
    provider_outage_s=6,
    poison_records=1000,
    poison_spread_s=4,
    pause_s=5,
)


# -- results --------------------------------------------------------------------------------------


@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""


@dataclass
class Fault:
    name: str
    started_at: float
    ended_at: float | None = None
    evidence: list[str] = field(default_factory=list)


@dataclass
class ScenarioResult:
    scenario: str
    title: str
    profile: str
    passed: bool
    checks: list[Check]
    faults: list[Fault]
    load: dict[str, Any]
    reconciliation: dict[str, Any]
    create_non_2xx: int
    create_non_2xx_during_faults: int
    wall_seconds: float
    workdir: str
    error: str | None = None

    def failed_checks(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# -- the frame ------------------------------------------------------------------------------------


class Run:
    """What a scenario's fault injection works with: the stack, the services, the load, the record."""

    def __init__(self, profile: Profile, stack: LocalStack, system: System) -> None:
        self.profile = profile
        self.stack = stack
        self.system = system
        self.services: list[ServiceProcess] = [system.orders, system.fulfillment]
        self.load: LoadGenerator | None = None
        self.faults: list[Fault] = []
        self.checks: list[Check] = []
        self.ignored_orders: set[str] = set()  # probe orders, not part of the load
        self.rng = random.Random()

    # recording
    def check(self, name: str, ok: bool, detail: str = "") -> None:
        self.checks.append(Check(name, bool(ok), detail))
        log.info("check %-45s %s %s", name, "ok" if ok else "FAILED", detail)

    @contextlib.contextmanager
    def fault(self, name: str) -> Iterator[Fault]:
        record = Fault(name, time.time())
        self.faults.append(record)
        log.info("fault: %s", name)
        try:
            yield record
        finally:
            record.ended_at = time.time()
            log.info("fault over after %.1fs: %s", record.ended_at - record.started_at, name)

    @property
    def fault_end(self) -> float | None:
        ends = [f.ended_at for f in self.faults if f.ended_at is not None]
        return max(ends) if ends else None

    # waiting
    def hold(self, seconds: float, probe: Callable[[], str | None] | None = None) -> list[str]:
        """Keep a fault in place for seconds (its duration); meanwhile sample probe about once a second."""
        end = time.monotonic() + seconds
        seen: list[str] = []
        while (left := end - time.monotonic()) > 0:
            if probe is not None:
                with contextlib.suppress(Exception):
                    observation = probe()
                    if observation:
                        seen.append(observation)
            time.sleep(min(1.0, max(0.0, end - time.monotonic())))
        del left
        return seen

    def poll(self, condition: Callable[[], Any], timeout: float, interval: float = 0.2) -> Any:
        """condition()'s first truthy value, or None after timeout seconds (errors count as falsy)."""
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(Exception):
                value = condition()
                if value:
                    return value
            if time.monotonic() >= deadline:
                return None
            time.sleep(interval)

    # the services' own views
    def order_health(self) -> dict[str, Any]:
        return httpx.get(self.system.orders.url + "/health/ready", timeout=5).json()

    def fulfillment_health(self, service: ServiceProcess | None = None) -> dict[str, Any]:
        target = service or self.system.fulfillment
        return httpx.get(target.url + "/api/fulfillment/health", timeout=5).json()

    def caught_up(self, timeout: float) -> bool:
        """Wait until the order outbox is empty and the fulfillment consumers have no lag."""

        def done() -> bool:
            if self.order_health().get("outboxBacklog") != 0:
                return False
            return all(
                self.fulfillment_health(s).get("consumerLag") == 0
                for s in self.services
                if s.module == "fulfillment_service" and s.running
            )

        return bool(self.poll(done, timeout, interval=0.5))

    def probe_order(self, timeout: float = 90.0) -> None:
        """One order end to end: topics exist, schemas are registered, consumers have their partitions."""
        with httpx.Client(base_url=self.system.orders.url, timeout=30) as client:
            created = client.post("/api/orders", json=order_body(0), headers={"Idempotency-Key": "chaos-probe"})
            created.raise_for_status()
            order_id = created.json()["orderId"]
            self.ignored_orders.add(order_id)

            def terminal() -> bool:
                response = client.get(f"/api/orders/{order_id}", params={"waitFor": "Fulfilled,Failed", "timeout": 5})
                return response.json()["status"] in {"Fulfilled", "Failed"}

            if not self.poll(terminal, timeout, interval=0.1):
                raise RuntimeError(f"probe order {order_id} did not finish within {timeout:g}s; the system is not up")


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    inject: Callable[[Run], None]
    env: dict[str, str] = field(default_factory=dict)
    # True where the fault is the Order Service itself: failed POSTs are expected there (and retried).
    order_service_faulted: bool = False
    verify: Callable[[Run, Reconciliation], None] | None = None


BASE_ENV = {
    "PROVIDER_CONTROL_ENABLED": "true",
    "LOG_LEVEL": "info",
}


def run_scenario(
    scenario: Scenario, profile: Profile, workdir: Path | None = None, keep: bool = False
) -> ScenarioResult:
    """Run one scenario on a stack of its own; never raises for a failing system, only records it."""
    owned = workdir is None
    directory = Path(tempfile.mkdtemp(prefix=f"chaos-{scenario.name}-")) if workdir is None else Path(workdir)
    directory.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    log.info("=== %s (%s): %s, in %s", scenario.name, profile.name, scenario.title, directory)
    stack = LocalStack.ephemeral(directory / "stack")
    run: Run | None = None
    load_result = LoadResult(profile.rate)
    recon: Reconciliation | None = None
    error: str | None = None
    try:
        stack.start()
        env = {**BASE_ENV, **scenario.env}
        system = make_system(stack.bootstrap_servers, stack.registry_url, directory, prefix="", **env)
        run = Run(profile, stack, system)
        system.start()
        run.probe_order()
        run.load = LoadGenerator(system.orders.url, profile.rate, max_seconds=1800)
        run.load.start()
        run.hold(profile.warmup_s)
        scenario.inject(run)
        run.hold(profile.tail_s)
        log.info("stopping the load (%d accepted so far)", run.load.accepted_count)
        load_result = run.load.stop()
        recon = _drain_and_reconcile(run, scenario, load_result)
    except Exception:
        error = traceback.format_exc()
        log.error("scenario %s crashed:\n%s", scenario.name, error)
    finally:
        if run is not None and run.load is not None:
            with contextlib.suppress(Exception):
                load_result = run.load.stop(timeout=5)
        for service in reversed(run.services if run else []):
            with contextlib.suppress(Exception):
                service.stop()
        with contextlib.suppress(Exception):
            stack.stop()

    checks = run.checks if run else []
    if error is not None:
        checks.append(Check("scenario ran to the end", False, error.strip().splitlines()[-1]))
    faults = run.faults if run else []
    windows = [(f.started_at, f.ended_at or f.started_at) for f in faults]
    during = sum(len(load_result.failures_between(start, end)) for start, end in windows)
    passed = error is None and bool(checks) and all(c.ok for c in checks)
    if passed and owned and not keep:
        shutil.rmtree(directory, ignore_errors=True)
    result = ScenarioResult(
        scenario=scenario.name,
        title=scenario.title,
        profile=profile.name,
        passed=passed,
        checks=checks,
        faults=faults,
        load=load_result.to_json(),
        reconciliation=recon.to_json() if recon else {},
        create_non_2xx=len(load_result.failures),
        create_non_2xx_during_faults=during,
        wall_seconds=round(time.monotonic() - started, 1),
        workdir=str(directory),
        error=error,
    )
    log.info("=== %s %s after %.0fs", scenario.name, "PASSED" if passed else "FAILED", result.wall_seconds)
    return result


def _drain_and_reconcile(run: Run, scenario: Scenario, load: LoadResult) -> Reconciliation:
    profile, system = run.profile, run.system
    accepted = set(load.accepted)
    log.info("load stopped: %d sent, %d accepted, %d failed attempts", load.sent, len(accepted), len(load.failures))
    drain = wait_drained(system.orders.url, accepted, profile.drain_timeout_s, progress=_throttled(log.info, 10))
    log.info("drain %s after %.1fs", "complete" if drain.drained else "INCOMPLETE", drain.waited_s)
    outboxes = [
        sqlite_path(system.env["order"]["DATABASE_URL"]),
        sqlite_path(system.env["fulfillment"]["DATABASE_URL"]),
    ]
    # The topics are only complete once both outboxes are: wait for stragglers (bounded).
    outbox_left = wait_outboxes_empty(outboxes, time.monotonic() + (60 if drain.drained else 5))
    recon = reconcile(
        load=load,
        order_service_url=system.orders.url,
        bootstrap_servers=system.bootstrap_servers,
        registry_url=system.registry_url,
        order_topic=system.order_topic,
        fulfillment_topic=system.fulfillment_topic,
        ledger_path=sqlite_path(system.env["fulfillment"]["PROVIDER_DATABASE_URL"]),
        fault_end=run.fault_end,
        drain=drain,
        outbox_left=outbox_left,
        ignore=run.ignored_orders,
    )
    _common_checks(run, scenario, load, recon, drain.drained)
    if scenario.verify is not None:
        scenario.verify(run, recon)
    return recon


def _common_checks(run: Run, scenario: Scenario, load: LoadResult, recon: Reconciliation, drained: bool) -> None:
    profile = run.profile
    run.check("orders were accepted", recon.accepted > 0, f"{recon.accepted} accepted")
    run.check("every fault was injected and lifted", bool(run.faults) and all(f.ended_at for f in run.faults))
    run.check(
        "lost = 0",
        recon.lost == 0,
        f"{len(recon.lost_not_terminal)} never terminal, {len(recon.lost_not_published)} never on order-events",
    )
    run.check(
        "duplicated = 0",
        recon.duplicated == 0,
        f"{len(recon.duplicated_calls)} with >1 successful provider call, "
        f"{len(recon.duplicated_tracking)} with >1 tracking number",
    )
    run.check(
        f"all terminal within the drain deadline ({profile.drain_timeout_s:g}s)",
        drained,
        "" if drained else "deadline exceeded",
    )
    run.check(
        "every accepted order has its picked-up event",
        not recon.missing_pickup,
        f"{len(recon.missing_pickup)} missing",
    )
    run.check("outboxes empty after the drain", not recon.outbox_left, str(recon.outbox_left or ""))
    run.check("every POST was eventually answered 2xx", not load.gave_up, f"{len(load.gave_up)} gave up")
    run.check(
        "no order created twice",
        not load.conflicts and recon.unconfirmed_orders <= len(load.gave_up),
        f"{recon.unconfirmed_orders} orders no answer announced, {len(load.conflicts)} key conflicts",
    )
    if not scenario.order_service_faulted:
        run.check("create non-2xx = 0", not load.failures, _failure_summary(load))
    if load.not_sent:
        run.check("load ran at its rate", False, f"{load.not_sent} arrivals dropped: too many outstanding requests")


def _failure_summary(load: LoadResult) -> str:
    kinds = load.to_json()["failedAttemptsByKind"]
    return ", ".join(f"{k}: {v}" for k, v in sorted(kinds.items())) if kinds else ""


def _throttled(emit: Callable[[str], None], every_s: float) -> Callable[[str], None]:
    last = [0.0]

    def emit_now_and_then(message: str) -> None:
        if time.monotonic() - last[0] >= every_s:
            last[0] = time.monotonic()
            emit(message)

    return emit_now_and_then
