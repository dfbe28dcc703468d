"""silent-connections: more connections than the Order Service has descriptors for, sending nothing or half a
request head, held while the steady load runs.

The Order Service runs with RLIMIT_NOFILE at OPEN_FILES (soft and hard), and each wave opens SILENT connections
that send nothing and PARTIAL that send half a request head: more than it has descriptors. What the service must
do (httpapi/slow_clients.py): close a silent connection once its head deadline (HEAD_SECONDS) passed, answer a
stalled head with 408 and close it, and keep RESERVED_DESCRIPTORS free for its own work (database files, Kafka)
by closing the connection that waited longest for a head whenever a new one would take them. So every held
connection is closed by the server within the deadline plus MARGIN_S, the service never runs out of descriptors,
and the load's requests keep being answered: at most MAX_FAILED_POSTS attempts fail (each retried with its
Idempotency-Key) and the create P95 during the fault stays within CREATE_P95_BOUND_S.
"""

from __future__ import annotations

import time

from chaos.clients import HeldWave, hold_connections, run_driver_apart, watch_process
from chaos.run import Run
from chaos.scenario import Scenario
from harness.percentiles import latency_summary
from harness.reconcile import Reconciliation
from harness.system import System
from httpapi.slow_clients import HEAD_SECONDS, RESERVED_DESCRIPTORS

OPEN_FILES = 1024
SILENT = 1100
PARTIAL = 150
MARGIN_S = 3.0
# A connection closed sooner than this was closed to make room, not held to the deadline.
HELD_S = HEAD_SECONDS * 0.8
# The load's failed POST attempts allowed over the run: a request sent on a keep-alive connection just as the
# server closed it (idle, it had waited longest for a head when room was made).
MAX_FAILED_POSTS = 5
CREATE_P95_BOUND_S = 1.0


def prepare(system: System) -> None:
    """The Order Service starts with OPEN_FILES descriptors at most (soft and hard limit)."""
    system.orders.open_files = OPEN_FILES


def inject(run: Run) -> None:
    """Open waves of SILENT + PARTIAL connections, each held until the server closed all of it (or it gave up
    HEAD_SECONDS + MARGIN_S + 5 s on), one after another for profile.silent_connections_s; check how each
    connection ended."""
    orders = run.system.orders
    assert orders.pid is not None
    give_up = HEAD_SECONDS + MARGIN_S + 5
    waves: list[HeldWave] = []
    title = f"waves of {SILENT} silent and {PARTIAL} half-sent connections against {OPEN_FILES} descriptors"
    with run.fault(title) as fault, watch_process(orders.pid) as usage:
        end = time.monotonic() + run.profile.silent_connections_s
        while not waves or time.monotonic() < end:
            waves.append(run_driver_apart(hold_connections, orders.host, orders.port, SILENT, PARTIAL, give_up))
        fault.evidence.append(f"peak {usage.peak_open_files} open descriptors of {OPEN_FILES}")
    held = [conn for wave in waves for conn in wave.connections]
    closed = sorted(c.closed_after_s for c in held if c.closed_after_s is not None)
    made_room = sum(1 for s in closed if s < HELD_S)
    connect_errors = [error for wave in waves for error in wave.connect_errors]
    fault.evidence.append(
        f"{len(waves)} waves, {len(held)} connections: {made_room} closed early to make room, "
        f"{len(closed) - made_room} at the deadline, max {closed[-1] if closed else 0:.2f}s; "
        f"{len(connect_errors)} did not connect"
    )
    run.figures["heldConnections"] = {
        "waves": len(waves),
        "connections": len(held),
        "closedToMakeRoom": made_room,
        "maxClosedAfterSeconds": round(closed[-1], 3) if closed else None,
        "connectErrors": connect_errors[:5],
        "peakOpenFiles": usage.peak_open_files,
    }
    run.check(
        "each wave held more connections than the service has descriptors",
        len(held) / len(waves) > OPEN_FILES,
        f"{len(held)} connections in {len(waves)} waves, {OPEN_FILES} descriptors",
    )
    run.check(
        "the service never ran out of descriptors",
        usage.peak_open_files < OPEN_FILES,
        f"peak {usage.peak_open_files} open of {OPEN_FILES} ({RESERVED_DESCRIPTORS} kept from connections)",
    )
    late = [c for c in held if c.closed_after_s is None or c.closed_after_s > HEAD_SECONDS + MARGIN_S]
    run.check(
        f"every held connection closed by the server within {HEAD_SECONDS:g}s + {MARGIN_S:g}s",
        not late and not connect_errors,
        f"{len(late)} later or never, {len(connect_errors)} did not connect, max {closed[-1] if closed else 0:.2f}s",
    )
    # A half head is answered 408 at its deadline, or closed without an answer when room was made before it.
    partial = [c for c in held if c.partial]
    answered = sum(1 for c in partial if c.status == 408)
    other = sorted((round(c.closed_after_s or 0, 2), c.status) for c in partial if c.status not in (408, None))
    run.check(
        "half-sent heads were answered 408 (or closed to make room), nothing else",
        answered > 0 and not other,
        f"{answered} of {len(partial)} answered 408; other answers (seconds, status): {other[:10]}",
    )


def verify(run: Run, recon: Reconciliation) -> None:
    """The load's POSTs kept being answered: few failed attempts, the create P95 in the fault window bounded."""
    assert run.load is not None
    load = run.load.result
    failed = len(load.failures)
    run.check(f"at most {MAX_FAILED_POSTS} failed POST attempts", failed <= MAX_FAILED_POSTS, f"{failed} failed")
    fault = run.faults[0]
    during = latency_summary(load.ok_latencies_between(fault.started_at, fault.ended_at or fault.started_at))
    before = latency_summary(load.ok_latencies_between(load.started_at, fault.started_at))
    run.figures["createLatencyMs"] = {"before": before, "during": during}
    p95 = during["p95"]
    run.check(
        f"create P95 during the fault within {CREATE_P95_BOUND_S:g}s",
        p95 is not None and p95 <= CREATE_P95_BOUND_S * 1000,
        f"P95 {p95} ms during ({during['count']} orders), {before['p95']} ms before",
    )


SCENARIO = Scenario(
    "silent-connections",
    "more silent and half-sent connections than the Order Service has descriptors",
    inject,
    # The load's connections opened while the descriptors are taken are refused: failed attempts are
    # expected (and bounded by verify).
    order_service_faulted=True,
    verify=verify,
    prepare=prepare,
)
