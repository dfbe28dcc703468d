"""disk-full-orders: under load, the filesystem of the Order Service's database fills up (a filler file takes
all its space) for disk_full_s, then the filler is deleted.

Expected (httpapi/error_boundary.py): POST /api/orders answers 503 problem+json with Retry-After and keeps the
connection open (the load retries with its Idempotency-Keys); readiness is 503 while the disk is full; the
failure is logged once per interval, not per request; once space is free orders are accepted again by the
same process, without a restart.
"""

from __future__ import annotations

import http.client
import json
import time
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from chaos.disk import OwnDisk
from chaos.run import Run, StatusTimeline
from chaos.scenario import Scenario
from harness.order_bodies import order_body
from harness.reconcile import Reconciliation, sqlite_path
from infra.services import ORDER_DATABASE

# SQLite's message for SQLITE_FULL, in every error about it (the service's logs, readiness).
DISK_FULL = "database or disk is full"
# Warnings and errors the service may log over the window: each kind once per interval, not per request, batch
# or retry (the load sends rate * window requests, each refused at least once).
MAX_LOG_RECORDS = 20


@dataclass(frozen=True)
class Answer:
    """A POST /api/orders answered on a connection of its own, and whether that connection served another request."""

    status: int
    retry_after: str | None
    content_type: str | None
    body: dict  # type: ignore[type-arg]
    kept_alive: bool


def post_order(run: Run) -> Answer:
    """POST one order (a key of its own), then GET /health/live on the same connection; an accepted order is
    kept out of the load's reconciliation. http.client.HTTPException or OSError if the service does not answer."""
    url = urlsplit(run.system.orders.url)
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=10)
    try:
        body = json.dumps(order_body(customer="chaos-disk-full")).encode()
        headers = {"content-type": "application/json", "Idempotency-Key": f"chaos-disk-{uuid.uuid4()}"}
        conn.request("POST", "/api/orders", body, headers)
        response = conn.getresponse()
        payload = json.loads(response.read() or b"{}")
        if 200 <= response.status < 300:
            run.ignored_orders.add(payload["orderId"])
        sock = conn.sock  # None once the server said Connection: close
        conn.request("GET", "/health/live")
        live = conn.getresponse()
        live.read()
        kept_alive = sock is not None and conn.sock is sock and live.status == 200
        return Answer(
            response.status, response.getheader("Retry-After"), response.getheader("content-type"), payload, kept_alive
        )
    finally:
        conn.close()


def inject(run: Run) -> None:
    """Fill the database's filesystem, wait until intake refuses, hold while sampling readiness, delete the filler,
    wait until intake reopens."""
    assert run.disk is not None, "disk-full-orders needs its own_disk"
    disk, profile = run.disk, run.profile
    database = sqlite_path(run.system.env["order"]["DATABASE_URL"])
    readiness = StatusTimeline()
    with run.fault(f"the order database's filesystem full for {profile.disk_full_s:g}s") as fault:
        fault.evidence.append(disk.fill_under(database))
        refused = run.poll(lambda: (answer := post_order(run)).status == 503 and answer, timeout=30)
        run.check(
            "POST answers 503 problem+json with Retry-After on a kept-alive connection",
            bool(refused)
            and refused.retry_after is not None
            and refused.content_type == "application/problem+json"
            and refused.kept_alive,
            str(refused) if refused else "no 503 within 30 s of the disk filling",
        )
        refused_at = time.time()

        def ready() -> str | None:
            response = httpx.get(run.system.orders.url + "/health/ready", timeout=5)
            said = readiness.add(f"{response.status_code} {response.json()['status']}")
            return None if said == "200 ok" else said

        fault.evidence += run.hold(profile.disk_full_s, ready)
        disk.remove_filler()
    reopened = run.poll(lambda: post_order(run).status == 201, timeout=60)
    assert fault.ended_at is not None
    reopened_at = time.time()
    fault.evidence.append(f"intake reopened {reopened_at - fault.ended_at:.1f}s after space was freed")
    run.check("intake reopens once space is free", bool(reopened))
    ok_seconds = readiness.seconds("200 ok", until=fault.ended_at)
    run.state.update(
        readiness=readiness.summary(),
        readiness_ok_seconds=round(ok_seconds, 1),
        refused_at=refused_at,
        reopened_at=reopened_at if reopened else None,
    )
    run.check(
        "readiness 503 (not ok) all the while the disk was full",
        bool(readiness.samples) and all(said.startswith("503") for _, said in readiness.samples),
        f"{readiness.summary()}; said ok for {ok_seconds:.1f}s",
    )


def verify(run: Run, recon: Reconciliation) -> None:
    """The load's refusals were 503s within the window, the logs stayed short, the same process took orders after."""
    assert run.load is not None
    load, fault, orders = run.load.result, run.faults[0], run.system.orders
    end = fault.ended_at or fault.started_at
    reopened_at = run.state.get("reopened_at") or end
    during = load.failures_between(fault.started_at, reopened_at)
    kinds = {f.status for f in during}
    run.check(
        "the load's POSTs were refused with 503 while the disk was full, and with nothing else",
        bool(during) and kinds == {503},
        f"{len(during)} refused attempts, statuses {sorted(kinds, key=str)}",
    )
    after = [f for f in load.failures if f.at > reopened_at + 1]  # a second for answers already on their way
    run.check("no POST refused once intake reopened", not after, f"{len(after)} refused after it reopened")
    accepted_after = sum(1 for a in load.accepted.values() if a.first_sent > end)
    run.check(
        "orders accepted after space was freed, by the same process",
        accepted_after > 0 and orders.restarts == 0 and orders.running,
        f"{accepted_after} accepted, {orders.restarts} restarts",
    )
    records = run.log_records(orders, fault.started_at, reopened_at)  # warnings and errors, whatever they say
    run.check(
        f"the full disk logged, fewer than {MAX_LOG_RECORDS} warnings and errors over the window",
        bool(run.log_records(orders, fault.started_at, reopened_at, DISK_FULL)) and len(records) < MAX_LOG_RECORDS,
        f"{len(records)} records for {len(during)} refused POSTs over {reopened_at - fault.started_at:.0f}s",
    )
    run.state["log_records"] = records


SCENARIO = Scenario(
    "disk-full-orders",
    "the Order Service's database filesystem full, then space freed",
    inject,
    order_service_faulted=True,  # POSTs answer 503 while the disk is full, by design (retried)
    verify=verify,
    own_disk=OwnDisk(ORDER_DATABASE),
)
