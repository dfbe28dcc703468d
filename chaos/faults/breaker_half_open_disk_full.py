"""breaker-half-open-disk-full: the shipping provider fails every call until the circuit breaker opens; then the
filesystem of the provider's ledger fills up and the provider's failure rate is normal again, so each half-open
probe fails on the ledger's disk (an error that is not the provider's ProviderError); then the filler is deleted.

Expected (Fulfiller.attempt, fulfillment_service/use_cases.py): any exception of a probe's call releases the
probe slot, so once the ledger can be written again the next probe closes the breaker and orders ship again
without a restart, none twice; the Fulfillment Service's health is not ok while orders wait.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from pathlib import Path

from chaos.disk import OwnDisk
from chaos.run import Run, StatusTimeline
from chaos.scenario import Scenario
from fulfillment_service.settings import FulfillmentServiceSettings
from harness.reconcile import Reconciliation, sqlite_path
from infra.services import PROVIDER_DATABASE

DISK_FULL = "database or disk is full"  # SQLite's message for SQLITE_FULL
# Half-open probes the disk window lasts for at least (one per BREAKER_RESET_SECONDS, the service's default).
PROBES = 3


def shipments_since(ledger: Path, since: float) -> int:
    """Shipments the provider's ledger holds that were created since (epoch s); a read, so it works on a full disk."""
    with contextlib.closing(sqlite3.connect(f"file:{ledger}?mode=ro", uri=True, timeout=30)) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM shipments WHERE created_at >= ?", (since,)).fetchone()[0])


def inject(run: Run) -> None:
    """Fail every provider call until the breaker opens; fill the ledger's disk; restore the provider; hold while
    the probes fail on the disk; delete the filler; wait for the breaker to close."""
    assert run.disk is not None, "breaker-half-open-disk-full needs its own_disk"
    disk, profile, system = run.disk, run.profile, run.system
    ledger = sqlite_path(system.env["fulfillment"]["PROVIDER_DATABASE_URL"])
    normal = system.set_provider()
    health = StatusTimeline()

    def sample() -> str | None:
        body = system.fulfillment_health()
        if body["breaker"] != "closed":  # orders wait for the breaker meanwhile
            health.add(body["status"])
        return f"breaker {body['breaker']}, health {body['status']}"

    with run.fault("shipping provider failing 100% until the breaker opens, then its ledger's disk full") as fault:
        system.set_provider(failureRate=1.0)
        opened = run.poll(lambda: (said := sample()) and "breaker open" in said, timeout=60)
        run.check("the circuit breaker opened during the outage", bool(opened), str(opened or "not within 60 s"))
        health.samples.clear()  # from here on orders wait: health must not say ok until the breaker closes
        fault.evidence.append(disk.fill_under(ledger))
        full_at = time.time()
        system.set_provider(failureRate=normal["failureRate"])
        reset = FulfillmentServiceSettings.model_fields["breaker_reset_seconds"].default
        held = run.hold(max(profile.disk_full_s, PROBES * reset), sample)
        fault.evidence += held
        # Read before the filler goes: a write queued meanwhile may commit the moment space is back.
        shipped_while_full = shipments_since(ledger, full_at)
        disk.remove_filler()
        freed_at = time.time()
    closed = run.poll(lambda: "breaker closed" in (sample() or ""), timeout=60)
    closed_at = time.time()
    fault.evidence.append(f"breaker closed {closed_at - freed_at:.1f}s after space was freed")
    run.check(
        "the breaker closes once the ledger has space, without a restart",
        bool(closed) and system.fulfillment.restarts == 0 and system.fulfillment.running,
        f"{system.fulfillment.restarts} restarts",
    )
    run.check(
        "the breaker stayed open or half-open while the ledger's disk was full",
        not any("closed" in h for h in held),
        "; ".join(held),
    )
    ok_seconds = health.seconds("ok", until=closed_at)
    run.check(
        "fulfillment health not ok while orders waited for the breaker",
        ok_seconds == 0 and bool(health.samples),
        f"{health.summary()}; said ok for {ok_seconds:.1f}s",
    )
    run.check("no shipment recorded while the ledger's disk was full", shipped_while_full == 0, f"{shipped_while_full}")
    run.state.update(
        full_at=full_at, freed_at=freed_at, health=health.summary(), health_ok_seconds=round(ok_seconds, 1)
    )


def verify(run: Run, recon: Reconciliation) -> None:
    """The probes failed on the ledger's disk (logged), and orders shipped once it had space again."""
    full_at, freed_at = run.state["full_at"], run.state["freed_at"]
    ledger = sqlite_path(run.system.env["fulfillment"]["PROVIDER_DATABASE_URL"])
    records = run.log_records(run.system.fulfillment, full_at, freed_at + 1, DISK_FULL)
    run.check(
        "half-open probes failed on the ledger's full disk (logged)",
        bool(records),
        f"{len(records)} log records" + (f", first: {records[0]}" if records else ""),
    )
    after = shipments_since(ledger, freed_at)
    run.check("orders shipped once the ledger had space again", after > 0, f"{after} shipments after")


SCENARIO = Scenario(
    "breaker-half-open-disk-full",
    "breaker opened by a provider outage, its half-open probes failing on the ledger's full disk",
    inject,
    verify=verify,
    own_disk=OwnDisk(PROVIDER_DATABASE),
)
