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
import io
import json
import logging
import random
import shutil
import struct
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import fastavro
import httpx
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from chaos.reconcile import (
    Reconciliation,
    read_to_end,
    reconcile,
    sqlite_path,
    wait_drained,
    wait_outboxes_empty,
)
from harness.load import BackgroundLoad, LoadResult, LoadSpec
from harness.order_bodies import order_body
from harness.system import System, make_system
from infra.ports import free_port
from infra.services import ServiceProcess, fulfillment_service
from infra.stack import LocalStack
from messaging.group_lag import GroupLag

log = logging.getLogger("chaos")


@dataclass(frozen=True)
class Profile:
    """How hard and how long: the full-length run, or a short smoke run for `make test`."""

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


FULL = Profile(
    name="full",
    rate=200,
    warmup_s=10,
    tail_s=10,
    drain_timeout_s=180,
    broker_down_s=30,
    kills=10,
    # Long enough between kills for the restarted service to work off the requests queued meanwhile.
    kill_gap_s=(3.0, 8.0),
    registry_down_s=30,
    provider_outage_s=60,
    poison_records=1000,
    poison_spread_s=10,
    pause_s=20,
)

SMOKE = Profile(
    name="smoke",
    rate=40,
    warmup_s=1,
    tail_s=1,
    drain_timeout_s=90,
    broker_down_s=3,
    kills=2,
    kill_gap_s=(0.5, 2.0),
    registry_down_s=3,
    provider_outage_s=4,
    poison_records=1000,
    poison_spread_s=3,
    pause_s=3,
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
    create_non_2xx: int  # POST attempts not answered 2xx
    create_non_2xx_orders: int  # distinct orders (keys) with at least one such attempt
    create_non_2xx_during_faults: int
    wall_seconds: float
    workdir: str  # service databases and logs
    stackdir: str  # broker and registry data and logs
    error: str | None = None
    diagnostics: dict[str, Any] = field(default_factory=dict)

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
        self.load: BackgroundLoad | None = None
        self.faults: list[Fault] = []
        self.checks: list[Check] = []
        self.ignored_orders: set[str] = set()  # probe orders, not part of the load
        self.state: dict[str, Any] = {}  # what a scenario's inject step leaves for its verify step
        self.diagnostics: dict[str, Any] = {}  # the system's own view, taken when orders got stuck
        self.rng = random.Random()
        self._group_lag: GroupLag | None = None

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
        while time.monotonic() < end:
            if probe is not None:
                with contextlib.suppress(Exception):
                    observation = probe()
                    if observation:
                        seen.append(observation)
            time.sleep(min(1.0, max(0.0, end - time.monotonic())))
        # Distinct observations with how often each was made.
        return [f"{text} (x{n})" for text, n in Counter(seen).items()]

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
        """Wait until every order accepted so far is terminal (at most timeout seconds)."""
        assert self.load is not None
        accepted = set(self.load.accepted_ids())
        return wait_drained(self.system.orders.url, accepted, timeout).drained

    def fulfillment_group_lag(self) -> int | None:
        """The fulfillment consumer group's lag on order-events, from the offsets committed in Kafka."""
        if self._group_lag is None:
            env = self.system.env["fulfillment"]
            self._group_lag = GroupLag(self.system.bootstrap_servers, env["CONSUMER_GROUP"], env["ORDER_EVENTS_TOPIC"])
        return self._group_lag()

    def check_group_caught_up(self, name: str, timeout: float = 60) -> None:
        """Check that the fulfillment group commits past everything on order-events within timeout."""
        caught_up = self.poll(lambda: self.fulfillment_group_lag() == 0, timeout=timeout, interval=0.5)
        self.check(name, bool(caught_up), "" if caught_up else f"lag {self.fulfillment_group_lag()}")

    def close(self) -> None:
        if self._group_lag is not None:
            self._group_lag.close()

    def probe_order(self, timeout: float = 90.0) -> None:
        """One order end to end: topics exist, schemas are registered, consumers have their partitions."""
        with httpx.Client(base_url=self.system.orders.url, timeout=30) as client:
            created = client.post(
                "/api/orders", json=order_body(customer="chaos-probe"), headers={"Idempotency-Key": "chaos-probe"}
            )
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


def load_spec(order_service_url: str, rate: float) -> LoadSpec:
    """The steady load under every fault: open loop at rate, each order retried with its Idempotency-Key.

    At most 16 requests are on the wire (later arrivals queue in the client, so retries after an outage
    do not stampede the restarted service); an order gets 60 s from its intended send time, 10 s an attempt.
    """
    return LoadSpec(
        order_service_url,
        rate=rate,
        duration=1800,  # an upper bound: the scenario stops the load
        connections=16,
        items=2,
        customers=97,
        tag="chaos",
        timeout=60.0,
        attempt_timeout=10.0,
        idempotent_retries=True,
    )


BASE_ENV = {
    "PROVIDER_CONTROL_ENABLED": "true",
    "LOG_LEVEL": "info",
}


class StackPool:
    """Fresh stacks for consecutive scenarios; the next one can start while the current one drains.

    JVM start-up is a large part of a short (smoke) scenario, and a drain is mostly waiting. One
    long-lived worker thread starts every stack: the JVMs get SIGTERM when the thread that forked them
    ends (PR_SET_PDEATHSIG), so that thread must outlive them.
    """

    def __init__(self, base: Path) -> None:
        self._base = Path(base)
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="chaos-stacks")
        self._next: Future[LocalStack] | None = None

    def prepare(self) -> None:
        """Start the next stack in the background (once)."""
        if self._next is None:
            self._next = self._worker.submit(self._start_one)

    def take(self) -> LocalStack:
        """A started stack of its own for the caller."""
        self.prepare()
        assert self._next is not None
        future, self._next = self._next, None
        return future.result()

    def close(self) -> None:
        """Kill a stack prepared but never taken, and stop the worker."""
        if self._next is not None:
            with contextlib.suppress(Exception):
                _kill_stack(self._next.result())
            self._next = None
        self._worker.shutdown(wait=True)

    def _start_one(self) -> LocalStack:
        self._base.mkdir(parents=True, exist_ok=True)
        stack = LocalStack.ephemeral(Path(tempfile.mkdtemp(prefix="stack-", dir=self._base)))
        try:
            stack.start()
        except BaseException:
            _kill_stack(stack)
            raise
        return stack


def _kill_stack(stack: LocalStack) -> None:
    for component in (stack.registry, stack.broker):
        with contextlib.suppress(Exception):
            component.kill()


def run_scenario(
    scenario: Scenario,
    profile: Profile,
    workdir: Path | None = None,
    keep: bool = False,
    stacks: StackPool | None = None,
    prepare_next: bool = False,
) -> ScenarioResult:
    """Run one scenario on a stack of its own; never raises for a failing system, only records it.

    stacks: where the stack comes from (default: started here); prepare_next: have stacks start the
    next scenario's stack once this one's load has stopped.
    """
    owned = workdir is None
    directory = Path(tempfile.mkdtemp(prefix=f"chaos-{scenario.name}-")) if workdir is None else Path(workdir)
    directory.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    log.info("=== %s (%s): %s, in %s", scenario.name, profile.name, scenario.title, directory)
    stack: LocalStack | None = None
    run: Run | None = None
    load_result = LoadResult(load_spec("", profile.rate))
    recon: Reconciliation | None = None
    error: str | None = None
    try:
        if stacks is not None:
            stack = stacks.take()
        else:
            stack = LocalStack.ephemeral(directory / "stack")
            stack.start()
        log.info("stack up after %.1fs", time.monotonic() - started)
        env = {**BASE_ENV, **scenario.env}
        system = make_system(stack.bootstrap_servers, stack.registry_url, directory, prefix="", **env)
        run = Run(profile, stack, system)
        with ThreadPoolExecutor(2) as pool:  # both at once: start-up is most of a smoke run's overhead
            list(pool.map(lambda service: service.start(), run.services))
        log.info("services up after %.1fs", time.monotonic() - started)
        run.probe_order()
        log.info("probe order terminal after %.1fs", time.monotonic() - started)
        run.load = BackgroundLoad(load_spec(system.orders.url, profile.rate))
        run.load.start()
        run.hold(profile.warmup_s)
        scenario.inject(run)
        run.hold(profile.tail_s)
        log.info("stopping the load (%d accepted so far)", run.load.accepted_count)
        load_result = run.load.stop()
        if stacks is not None and prepare_next:
            stacks.prepare()
        recon = _drain_and_reconcile(run, scenario, load_result)
    except Exception:
        error = traceback.format_exc()
        log.error("scenario %s crashed:\n%s", scenario.name, error)
    finally:
        if run is not None and run.load is not None:
            with contextlib.suppress(Exception):
                run.load.stop(timeout=5)
            load_result = run.load.result  # what was recorded, even if requests were left outstanding
        if run is not None:
            run.close()
        # Everything is recorded by now and the data is thrown away: kill rather than wait for clean exits.
        for service in reversed(run.services if run else []):
            with contextlib.suppress(Exception):
                service.kill()
        if stack is not None:
            _kill_stack(stack)

    checks = run.checks if run else []
    if error is not None:
        checks.append(Check("scenario ran to the end", False, error.strip().splitlines()[-1]))
    faults = run.faults if run else []
    windows = [(f.started_at, f.ended_at or f.started_at) for f in faults]
    during = sum(len(load_result.failures_between(start, end)) for start, end in windows)
    passed = error is None and bool(checks) and all(c.ok for c in checks)
    stack_dir = stack.directory if stack is not None else directory / "stack"
    if passed and not keep:
        if owned:
            shutil.rmtree(directory, ignore_errors=True)
        if stacks is not None:
            shutil.rmtree(stack_dir, ignore_errors=True)
    result = ScenarioResult(
        scenario=scenario.name,
        title=scenario.title,
        profile=profile.name,
        passed=passed,
        checks=checks,
        faults=faults,
        load=load_result.outcome_json(),
        reconciliation=recon.to_json() if recon else {},
        create_non_2xx=len(load_result.failures),
        create_non_2xx_orders=len({f.key for f in load_result.failures}),
        create_non_2xx_during_faults=during,
        wall_seconds=round(time.monotonic() - started, 1),
        workdir=str(directory),
        stackdir=str(stack_dir),
        error=error,
        diagnostics=run.diagnostics if run else {},
    )
    log.info("=== %s %s after %.0fs", scenario.name, "PASSED" if passed else "FAILED", result.wall_seconds)
    return result


def _drain_and_reconcile(run: Run, scenario: Scenario, load: LoadResult) -> Reconciliation:
    profile, system = run.profile, run.system
    accepted = set(load.accepted)
    log.info("load stopped: %d sent, %d accepted, %d failed attempts", load.sent, len(accepted), len(load.failures))
    drain = wait_drained(system.orders.url, accepted, profile.drain_timeout_s, progress=_throttled(log.info, 10))
    log.info("drain %s after %.1fs", "complete" if drain.drained else "INCOMPLETE", drain.waited_s)
    if not drain.drained:
        run.diagnostics = _snapshot(run)
        log.warning("state at the drain deadline: %s", run.diagnostics)
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
    run.check(
        "load ran at its rate",
        not load.dropped and not load.never_sent,
        f"{load.dropped} arrivals dropped (too many outstanding), {load.never_sent} never sent "
        "(their whole retry budget spent in the client's queue: the service fell behind the rate)",
    )


def _snapshot(run: Run) -> dict[str, Any]:
    """What the services and the broker say when orders are stuck: where to start looking."""
    snapshot: dict[str, Any] = {}
    probes: dict[str, Callable[[], Any]] = {
        "orderServiceReady": run.order_health,
        "fulfillmentGroupLag": run.fulfillment_group_lag,
        "fulfillmentGroup": lambda: _describe_group(run),
    }
    for service in run.services:
        if service.module == "fulfillment_service" and service.running:
            probes[f"fulfillmentHealth:{service.port}"] = lambda service=service: run.fulfillment_health(service)
    for name, probe in probes.items():
        try:
            snapshot[name] = probe()
        except Exception as exc:
            snapshot[name] = f"unavailable: {exc}"
    return snapshot


def _describe_group(run: Run) -> dict[str, Any]:
    group = run.system.env["fulfillment"]["CONSUMER_GROUP"]
    admin = AdminClient({"bootstrap.servers": run.system.bootstrap_servers})
    description = admin.describe_consumer_groups([group])[group].result(timeout=10)
    return {
        "state": str(description.state),
        "members": [
            {
                "clientId": member.client_id,
                "partitions": [
                    tp.partition for tp in (member.assignment.topic_partitions if member.assignment else [])
                ],
            }
            for member in description.members
        ],
    }


def _failure_summary(load: LoadResult) -> str:
    kinds = load.outcome_json()["failedAttemptsByKind"]
    return ", ".join(f"{k}: {v}" for k, v in sorted(kinds.items())) if kinds else ""


def _throttled(emit: Callable[[str], None], every_s: float) -> Callable[[str], None]:
    last = [0.0]

    def emit_now_and_then(message: str) -> None:
        if time.monotonic() - last[0] >= every_s:
            last[0] = time.monotonic()
            emit(message)

    return emit_now_and_then


# -- the scenarios --------------------------------------------------------------------------------


def _dependency_down(run: Run, name: str) -> Callable[[], str | None]:
    """Probe: does the Order Service's readiness report the dependency as down? (the fault took effect)"""

    def probe() -> str | None:
        status = run.order_health()["dependencies"][name]["status"]
        return f"order service reported {name} {status}" if status != "ok" else None

    return probe


def broker_down(run: Run) -> None:
    broker = run.stack.broker
    for how, take_down in (("SIGTERM", broker.stop), ("SIGKILL", broker.kill)):
        with run.fault(f"broker stopped ({how}) for {run.profile.broker_down_s:g}s, then restarted") as fault:
            take_down()
            fault.evidence += run.hold(run.profile.broker_down_s, _dependency_down(run, "kafka"))
            broker.start()
        run.check(f"broker {how}: the order service saw Kafka down", bool(fault.evidence))
        if how == "SIGTERM":
            # The second fault starts from a caught-up system, so the two do not blur into one.
            caught_up = run.caught_up(run.profile.drain_timeout_s)
            fault.evidence.append(f"caught up before the next fault: {caught_up}")


def order_service_kills(run: Run) -> None:
    orders = run.system.orders
    statuses = []
    for n in range(1, run.profile.kills + 1):
        run.hold(run.rng.uniform(*run.profile.kill_gap_s))  # a random moment under load
        with run.fault(f"order service SIGKILL #{n}") as fault:
            orders.kill()
            assert orders.process is not None
            statuses.append(orders.process.returncode)
            fault.evidence.append(f"exit status {statuses[-1]}")
            orders.start()
    run.check(
        f"order service killed {run.profile.kills}x by SIGKILL", statuses == [-9] * run.profile.kills, str(statuses)
    )
    assert run.load is not None
    refused = sum(len(run.load.result.failures_between(f.started_at, f.ended_at or f.started_at)) for f in run.faults)
    run.check("POSTs failed while it was down (the kills hit the load)", refused > 0, f"{refused} failed attempts")


def fulfillment_kills(run: Run) -> None:
    service = run.system.fulfillment
    in_flight: list[int] = []

    def working() -> int | None:
        return run.fulfillment_health().get("inFlight") or None

    for n in range(1, run.profile.kills + 1):
        # After a restart the consumer first has to get its partitions back: let it work again for a
        # random while, then kill it at a moment when orders are in flight.
        run.poll(working, timeout=60, interval=0.1)
        run.hold(run.rng.uniform(*run.profile.kill_gap_s))
        busy = run.poll(working, timeout=30, interval=0.02)
        with run.fault(f"fulfillment service SIGKILL #{n}") as fault:
            service.kill()
            in_flight.append(int(busy or 0))
            fault.evidence.append(f"{busy or 0} records in flight when killed")
            service.start()
    run.check("every kill hit the service mid-processing", all(in_flight), f"in flight at each kill: {in_flight}")


def registry_down(run: Run) -> None:
    registry = run.stack.registry
    with run.fault(f"schema registry stopped for {run.profile.registry_down_s:g}s") as fault:
        registry.stop()
        fault.evidence += run.hold(run.profile.registry_down_s, _dependency_down(run, "schemaRegistry"))
        registry.start()
    run.check("the order service saw the registry down", bool(fault.evidence))


def provider_outage(run: Run) -> None:
    url = run.system.fulfillment.url + "/admin/provider"
    normal = httpx.put(url, json={}, timeout=10).json()  # an empty change answers the current behaviour

    def breaker() -> str | None:
        state = run.fulfillment_health()["breaker"]
        return f"breaker {state}" if state != "closed" else None

    with run.fault(f"shipping provider failing 100% for {run.profile.provider_outage_s:g}s") as fault:
        httpx.put(url, json={"failureRate": 1.0}, timeout=10).raise_for_status()
        fault.evidence += run.hold(run.profile.provider_outage_s, breaker)
        # Healthy again means its normal behaviour, random failures included.
        httpx.put(url, json={"failureRate": normal["failureRate"]}, timeout=10).raise_for_status()
    run.check("the circuit breaker opened during the outage", any("open" in e for e in fault.evidence))


# Writer schema of the "incompatible" poison records: a record the reader schema cannot resolve.
_INCOMPATIBLE_SCHEMA = {
    "type": "record",
    "name": "OrderCreated",
    "namespace": "orderprocessing.events",
    "fields": [{"name": "orderId", "type": "long"}, {"name": "note", "type": "string"}],
}
_POISON_KINDS = {
    "garbage": "InvalidWireFormat",
    "unknown-schema-id": "UnknownSchemaId",
    "incompatible-writer": "IncompatibleWriterSchema",
}


def _poison_records(run: Run, count: int) -> list[tuple[str, str, bytes]]:
    """(key, kind, value) for count records the consumer can never decode."""
    registry = SchemaRegistryClient({"url": run.system.registry_url})
    schema_id = registry.register_schema("chaos-incompatible-value", Schema(json.dumps(_INCOMPATIBLE_SCHEMA), "AVRO"))
    writer = fastavro.parse_schema(_INCOMPATIBLE_SCHEMA)
    kinds = list(_POISON_KINDS)
    records = []
    for i in range(count):
        kind = kinds[i % len(kinds)]
        if kind == "garbage":
            value = bytes([run.rng.randrange(1, 256)]) + run.rng.randbytes(run.rng.randrange(0, 64))
        elif kind == "unknown-schema-id":
            value = struct.pack(">bI", 0, run.rng.randrange(1_000_000_000, 2_000_000_000)) + run.rng.randbytes(20)
        else:
            body = io.BytesIO()
            fastavro.schemaless_writer(body, writer, {"orderId": i, "note": "not an order"})
            value = struct.pack(">bI", 0, schema_id) + body.getvalue()
        records.append((f"poison-{i}", kind, value))
    return records


def poison_records(run: Run) -> None:
    count, spread = run.profile.poison_records, run.profile.poison_spread_s
    records = _poison_records(run, count)
    run.state["poison"] = {key: kind for key, kind, _value in records}
    producer = Producer({"bootstrap.servers": run.system.bootstrap_servers, "linger.ms": 5})
    with run.fault(f"{count} poison records into {run.system.order_topic} over {spread:g}s") as fault:
        start = time.monotonic()
        for i, (key, _kind, value) in enumerate(records):
            due = start + spread * i / count  # spread among the valid orders, not one burst
            if due > time.monotonic():
                time.sleep(due - time.monotonic())
            producer.produce(run.system.order_topic, key=key.encode(), value=value)
            producer.poll(0)
        left = producer.flush(30)
        fault.evidence.append(f"{count - left} produced")
    run.check("every poison record was written", left == 0, f"{left} not confirmed")


def verify_poison(run: Run, recon: Reconciliation) -> None:
    expected: dict[str, str] = run.state["poison"]
    dlq_topic = run.system.env["fulfillment"]["ORDER_EVENTS_DLQ_TOPIC"]
    seen: dict[str, list[str]] = {}
    for record in read_to_end(run.system.bootstrap_servers, dlq_topic):
        headers = dict(record.headers() or [])
        key = (record.key() or b"").decode(errors="replace")
        seen.setdefault(key, []).append(headers.get("error.type", b"").decode())
    missing = [k for k in expected if k not in seen]
    run.check(f"all {len(expected)} poison records in the DLQ", not missing, f"{len(missing)} missing")
    wrong = [k for k, kind in expected.items() if k in seen and _POISON_KINDS[kind] not in seen[k]]
    run.check("each dead-lettered with its cause", not wrong, f"{len(wrong)} with another error.type")
    valid = [k for k in seen if k not in expected]
    run.check("no valid order in the DLQ", not valid, f"{len(valid)} valid records dead-lettered")
    copies = sum(len(v) - 1 for v in seen.values())
    run.check("each poison record dead-lettered once", copies == 0, f"{copies} extra copies")
    run.check_group_caught_up("consumer lag back to 0")
    delay = recon.max_pickup_delay_s
    run.check(
        f"no valid order picked up later than {run.profile.pickup_sla_s:g}s",
        delay is not None and delay <= run.profile.pickup_sla_s,
        f"max pickup delay {delay}s",
    )


def _log_since(path: Path, offset: int) -> str:
    with path.open("rb") as handle:
        handle.seek(offset)
        return handle.read().decode(errors="replace")


def rebalance_kill(run: Run) -> None:
    first = run.system.fulfillment
    second = fulfillment_service(free_port(), run.system.env["fulfillment"], run.system.data_dir / "logs")
    run.services.append(second)
    mark = first.log_file.stat().st_size

    def lines(path: Path, offset: int, word: str) -> list[str]:
        return [line for line in _log_since(path, offset).splitlines() if f"concurrent_consumer: {word}" in line]

    with run.fault("second fulfillment instance joins; the first is SIGKILLed mid-rebalance") as fault:
        second.start()
        # The rebalance is under way once the newcomer has joined (its first, empty, cooperative assignment)
        # or the first instance starts giving partitions up; kill at the first sign of either.
        trigger = run.poll(
            lambda: (lines(second.log_file, 0, "assigned") + lines(first.log_file, mark, "revoked"))[:1],
            timeout=30,
            interval=0.01,
        )
        first.kill()
        newcomer_owned = [line for line in lines(second.log_file, 0, "assigned") if "assigned []" not in line]
        fault.evidence.append(f"killed on: {trigger[0].split(': ', 1)[-1] if trigger else None}")
        fault.evidence.append(f"first instance had finished revoking: {bool(lines(first.log_file, mark, 'revoked'))}")
        fault.evidence.append(f"newcomer owned partitions yet: {bool(newcomer_owned)}")
    run.check(
        "the kill landed in a rebalance (newcomer joined, not yet given partitions)",
        bool(trigger) and not newcomer_owned,
        "; ".join(fault.evidence),
    )


def verify_rebalance(run: Run, recon: Reconciliation) -> None:
    consumer_topics = read_partitions(run.system.bootstrap_servers, run.system.order_topic)
    run.check(f"{run.system.order_topic} has >= 2 partitions", consumer_topics >= 2, f"{consumer_topics} partitions")
    run.check_group_caught_up("the group's lag back to 0")


def read_partitions(bootstrap_servers: str, topic: str) -> int:
    metadata = AdminClient({"bootstrap.servers": bootstrap_servers}).list_topics(topic, timeout=30)
    return len(metadata.topics[topic].partitions)


def broker_paused(run: Run) -> None:
    broker = run.stack.broker
    with run.fault(f"broker paused (SIGSTOP) for {run.profile.pause_s:g}s, then resumed") as fault:
        broker.pause()
        try:
            fault.evidence += run.hold(run.profile.pause_s, _dependency_down(run, "kafka"))
        finally:
            broker.resume()
    run.check("the order service saw Kafka hang", bool(fault.evidence))


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in [
        Scenario("broker-down", "broker stopped (SIGTERM, then SIGKILL), restarted", broker_down),
        Scenario(
            "order-service-kill",
            "order service SIGKILLed at random moments, restarted",
            order_service_kills,
            order_service_faulted=True,
        ),
        Scenario("fulfillment-kill", "fulfillment service SIGKILLed mid-processing, restarted", fulfillment_kills),
        Scenario("registry-down", "schema registry stopped", registry_down),
        Scenario("provider-outage", "shipping provider failing 100%, then healthy", provider_outage),
        Scenario("poison-records", "poison records among the orders", poison_records, verify=verify_poison),
        Scenario(
            "rebalance-kill",
            "two fulfillment instances, one SIGKILLed during a rebalance",
            rebalance_kill,
            # Topics are created by the services at start-up: both need the partition count from the start.
            env={"ORDER_EVENTS_PARTITIONS": "4"},
            verify=verify_rebalance,
        ),
        Scenario("broker-paused", "broker hung (SIGSTOP), then resumed", broker_paused),
    ]
}


def with_rate(profile: Profile, rate: float | None) -> Profile:
    return profile if rate is None else replace(profile, rate=rate)
