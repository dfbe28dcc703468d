"""The frame every chaos scenario runs in, and what it yields.

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
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from chaos.disk import OwnDisk, small_disk
from chaos.health_watch import STUCK_AFTER_S, HealthWatch, stuck_while_ok_seconds
from chaos.profile import Profile, load_spec
from chaos.run import Check, Fault, Run
from chaos.stacks import StackPool
from harness.load import BackgroundLoad, LoadResult
from harness.orders import wait_drained
from harness.reconcile import Reconciliation, reconcile, sqlite_path, wait_outboxes_empty
from harness.system import System, make_system
from infra.stack import LocalStack

log = logging.getLogger("chaos")

# Every scenario's services: the provider can be driven at run time (provider-outage), logs at info.
BASE_ENV = {
    "PROVIDER_CONTROL_ENABLED": "true",
    "LOG_LEVEL": "info",
}


@dataclass(frozen=True)
class Scenario:
    """A named fault: inject it into a Run (and hold it); verify what is particular to it afterwards."""

    name: str
    title: str
    inject: Callable[[Run], None]
    env: dict[str, str] = field(default_factory=dict)  # for both services, on top of BASE_ENV
    # True where the fault is the Order Service itself: failed POSTs are expected there (and retried).
    order_service_faulted: bool = False
    verify: Callable[[Run, Reconciliation], None] | None = None
    # Runs once the system is made, before its services start (e.g. topics made by hand under CREATE_TOPICS=false).
    prepare: Callable[[System], None] | None = None
    # A database on a small filesystem of its own (mounted before the services start, unmounted after they
    # are gone): the fault fills it through run.disk.
    own_disk: OwnDisk | None = None


@dataclass
class ScenarioResult:
    """Everything a scenario yields, JSON-ready: checks, faults, the load's outcome and the reconciliation."""

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
    stuck_while_ok_s: float | None  # seconds an order was stuck while health said ok (chaos.health_watch)
    wall_seconds: float
    workdir: str  # service databases and logs
    stackdir: str  # broker and registry data and logs
    error: str | None = None
    diagnostics: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)  # what the scenario measured beyond the table

    def failed_checks(self) -> list[Check]:
        """The checks that did not hold."""
        return [c for c in self.checks if not c.ok]

    def to_json(self) -> dict[str, Any]:
        """The result as plain JSON data."""
        return asdict(self)


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
    load_result = LoadResult(load_spec("", profile.rate))  # the record if the run ends before the load starts
    recon: Reconciliation | None = None
    watch: HealthWatch | None = None
    stuck_while_ok: float | None = None
    error: str | None = None
    disks = contextlib.ExitStack()  # unmounted last, once nothing holds their files
    try:
        disk, database_dirs = None, {}
        if (own := scenario.own_disk) is not None:  # first: without the right to mount, nothing else is needed
            disk = disks.enter_context(small_disk(directory / f"disk-{own.database}", own.size_mib))
            database_dirs[own.database] = disk.path
        if stacks is not None:
            stack = stacks.take()
        else:
            stack = LocalStack.ephemeral(directory / "stack")
            stack.start()
        log.info("stack up after %.1fs", time.monotonic() - started)
        env = {**BASE_ENV, **scenario.env}
        system = make_system(
            stack.bootstrap_servers, stack.registry_url, directory, prefix="", database_dirs=database_dirs, **env
        )
        if scenario.prepare is not None:
            scenario.prepare(system)
        run = Run(profile, stack, system)
        run.disk = disk
        with ThreadPoolExecutor(2) as pool:  # both at once: start-up is most of a smoke run's overhead
            list(pool.map(lambda service: service.start(), run.services))
        log.info("services up after %.1fs", time.monotonic() - started)
        run.probe_order()
        log.info("probe order terminal after %.1fs", time.monotonic() - started)
        run.load = BackgroundLoad(load_spec(system.orders.url, profile.rate))
        run.load.start()
        watch = HealthWatch(system)
        watch.start()
        run.hold(profile.warmup_s)
        scenario.inject(run)
        run.hold(profile.tail_s)
        log.info("stopping the load (%d accepted so far)", run.load.accepted_count)
        load_result = run.load.stop()
        if stacks is not None and prepare_next:
            stacks.prepare()
        recon = _drain_and_reconcile(run, scenario, load_result)
        stuck_while_ok = stuck_while_ok_seconds(watch.stop(), load_result.accepted, recon.finished_at)
        run.check(
            "health not ok while orders are stuck",
            stuck_while_ok == 0,
            f"{stuck_while_ok:g}s with an order unfinished {STUCK_AFTER_S:g}s after acceptance while both said ok",
        )
    except Exception:
        error = traceback.format_exc()
        log.error("scenario %s crashed:\n%s", scenario.name, error)
    finally:
        if watch is not None:
            watch.stop()
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
            stack.kill()
        disks.close()

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
        stuck_while_ok_s=stuck_while_ok,
        wall_seconds=round(time.monotonic() - started, 1),
        workdir=str(directory),
        stackdir=str(stack_dir),
        error=error,
        diagnostics=run.diagnostics if run else {},
        figures=run.figures if run else {},
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
        run.diagnostics = run.snapshot()
        log.warning("state at the drain deadline: %s", run.diagnostics)
    outboxes = [
        sqlite_path(system.env["order"]["DATABASE_URL"]),
        sqlite_path(system.env["fulfillment"]["DATABASE_URL"]),
    ]
    # The topics are only complete once both outboxes are: wait for stragglers (bounded).
    outbox_left = wait_outboxes_empty(outboxes, time.monotonic() + (60 if drain.drained else 5))
    recon = reconcile(
        accepted=load.accepted,
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
        writer_schemas=run.state.get("writer_schemas"),  # a scenario that made the registry lose its data
        earlier_order_events=run.order_events_before,
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
