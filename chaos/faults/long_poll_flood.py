"""long-poll-flood: CONCURRENCY long polls at once on orders that will not change, again and again while the
steady load runs.

Each poll is ``GET /api/orders/{id}?waitFor=Pending,Processing&timeout=T`` (schemas/openapi/order-service.yaml)
on an order already terminal: it never goes back, so every poll is held for its whole timeout and answered with
the order unchanged. The clients start spread over the first timeout, so all CONCURRENCY wait at once from then
on without arriving together. What the service must do (order_service/status_waiter.py: one shared re-read for all
waiters, a timer each): answer every poll within T + OVERSHOOT_S, spend at most CPU_PER_POLL_BOUND_MS of CPU per
poll beyond what it spends on the load alone (psutil on its pid, the same length measured just before), and keep
the create P95 during the flood within CREATE_P95_FACTOR times the P95 before it (or CREATE_P95_FLOOR_S,
whichever is larger: below it no user notices).
"""

from __future__ import annotations

from chaos.clients import ProcessUsage, long_poll_flood, run_driver_apart, watch_process
from chaos.run import Run
from chaos.scenario import Scenario
from harness.orders import TERMINAL
from harness.percentiles import latency_summary
from harness.reconcile import Reconciliation

CONCURRENCY = 500
WAIT_FOR = "Pending,Processing"  # statuses a terminal order never returns to
OVERSHOOT_S = 1.0
EARLY_S = 0.1  # the timer's and the clock's tolerance: no poll is answered this much before its timeout
CPU_PER_POLL_BOUND_MS = 10.0
CREATE_P95_FACTOR = 10.0
CREATE_P95_FLOOR_S = 0.1


def inject(run: Run) -> None:
    """Wait until the orders accepted so far are terminal, measure the service's CPU for profile.long_poll_flood_s,
    then flood it with long polls on those orders for as long, and check each answer and the CPU."""
    assert run.load is not None
    orders = run.system.orders
    assert orders.pid is not None
    profile = run.profile
    order_ids = run.load.accepted_ids()[:CONCURRENCY]
    run.check("the orders to wait on are terminal", bool(order_ids) and run.caught_up(60), f"{len(order_ids)} orders")
    with watch_process(orders.pid) as baseline:
        run.hold(profile.long_poll_flood_s)
    title = f"{CONCURRENCY} concurrent long polls (timeout {profile.long_poll_timeout_s:g}s) on unchanging orders"
    with run.fault(title) as fault, watch_process(orders.pid) as flood:
        polls = run_driver_apart(
            long_poll_flood,
            orders.host,
            orders.port,
            order_ids,
            CONCURRENCY,
            WAIT_FOR,
            profile.long_poll_timeout_s,
            profile.long_poll_flood_s,
        )
    timeout = profile.long_poll_timeout_s
    answered = [p for p in polls if p.status == 200 and p.order_status in TERMINAL]
    overshoot = max((p.elapsed_s - timeout for p in polls), default=0.0)
    earliest = min((p.elapsed_s for p in answered), default=0.0)
    extra_cpu_ms = _extra_cpu_ms(baseline, flood, len(polls))
    fault.evidence.append(
        f"{len(polls)} polls, max overshoot {overshoot:.3f}s; service CPU {flood.cpu_percent:.0f}% of a core "
        f"(baseline {baseline.cpu_percent:.0f}%), {extra_cpu_ms:.2f} ms per poll"
    )
    run.figures["longPolls"] = {
        "polls": len(polls),
        "maxOvershootSeconds": round(overshoot, 3),
        "cpuPercent": round(flood.cpu_percent, 1),
        "baselineCpuPercent": round(baseline.cpu_percent, 1),
        "extraCpuMsPerPoll": round(extra_cpu_ms, 3),
    }
    run.check(
        f"{CONCURRENCY} polls at once, again and again",
        len(polls) >= 2 * CONCURRENCY,
        f"{len(polls)} polls",
    )
    statuses = sorted({p.status for p in polls if p.status != 200 or p.order_status not in TERMINAL})
    run.check(
        "every long poll answered 200 with its order unchanged",
        len(answered) == len(polls),
        f"{len(polls) - len(answered)} not (statuses {statuses})",
    )
    run.check(
        f"every long poll answered within its timeout + {OVERSHOOT_S:g}s",
        overshoot <= OVERSHOOT_S,
        f"max overshoot {overshoot:.3f}s",
    )
    run.check(
        "no long poll answered before its timeout (its order did not change)",
        earliest >= timeout - EARLY_S,
        f"earliest {earliest:.3f}s of {timeout:g}s",
    )
    run.check(
        f"service CPU per long poll within {CPU_PER_POLL_BOUND_MS:g} ms",
        extra_cpu_ms <= CPU_PER_POLL_BOUND_MS,
        f"{extra_cpu_ms:.2f} ms per poll; {flood.cpu_percent:.0f}% of a core during, "
        f"{baseline.cpu_percent:.0f}% before",
    )


def _extra_cpu_ms(baseline: ProcessUsage, flood: ProcessUsage, polls: int) -> float:
    """CPU (ms) per poll the service spent during the flood beyond its baseline rate over the same wall time."""
    extra = flood.cpu_seconds - baseline.cpu_percent / 100.0 * flood.wall_seconds
    return 1000.0 * max(0.0, extra) / polls if polls else 0.0


def verify(run: Run, recon: Reconciliation) -> None:
    """The create P95 during the flood stayed within CREATE_P95_FACTOR of the P95 before it (or the floor)."""
    assert run.load is not None
    load = run.load.result
    fault = run.faults[0]
    during = latency_summary(load.ok_latencies_between(fault.started_at, fault.ended_at or fault.started_at))
    before = latency_summary(load.ok_latencies_between(load.started_at, fault.started_at))
    run.figures["createLatencyMs"] = {"before": before, "during": during}
    bound = max(CREATE_P95_FACTOR * (before["p95"] or 0.0), CREATE_P95_FLOOR_S * 1000)
    run.check(
        f"create P95 during the flood within {CREATE_P95_FACTOR:g}x the P95 before (at least {CREATE_P95_FLOOR_S:g}s)",
        during["p95"] is not None and during["p95"] <= bound,
        f"P95 {during['p95']} ms during ({during['count']} orders), {before['p95']} ms before ({before['count']})",
    )


SCENARIO = Scenario(
    "long-poll-flood",
    f"{CONCURRENCY} concurrent long polls on orders that do not change",
    inject,
    verify=verify,
)
