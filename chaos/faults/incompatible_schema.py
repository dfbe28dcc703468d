"""incompatible-schema: under load, the registry comes to refuse the Order Service's event schema, as after
the deployment of an incompatible schema: its version is (soft-)deleted from the subject, whose latest version
then lacks a field the service's schema has without default, under BACKWARD compatibility.

The service must notice at its next registration check and fail closed: POST answers 503 naming the field
(the load retries with its Idempotency-Keys), readiness 503; the rows caught by the refusal are parked with the
registry's reason. Then the subject is fixed (compatibility NONE): intake reopens by itself, and the scenario,
as the operator, retries the parked rows through the repair functions, so every accepted order is fulfilled.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx

from chaos.run import Run
from chaos.scenario import Scenario
from events.topology import ORDER_EVENTS
from harness.order_bodies import order_body
from harness.schema_versions import schema_without
from messaging.registry import registry_http_client, registry_url_config
from order_service import store
from outbox.parking import list_parked, retry_parked
from persistence.engine import make_engine

SCHEMA_JSON = {"Content-Type": "application/vnd.schemaregistry.v1+json"}
# A field of OrderCreated without default: a subject whose latest version lacks it refuses the schema.
MISSING_FIELD = "customerName"
FAST_CHECKS = {"SCHEMA_CHECK_INTERVAL_SECONDS": "1"}


def inject(run: Run) -> None:
    """Make the subject refuse the schema, hold, fix the subject, retry what was parked."""
    subject = ORDER_EVENTS.subject(run.system.order_topic)
    registry = registry_http_client(
        registry_url_config(run.system.registry_url), 10, base_url=run.system.registry_url, headers=SCHEMA_JSON
    )
    try:
        with run.fault(f"the registry refuses the schema of {subject}") as fault:
            ours = registry.get(f"/subjects/{subject}/versions").json()
            # In this order, the subject never accepts the service's schema anew until the fix.
            registry.put(f"/config/{subject}", json={"compatibility": "NONE"}).raise_for_status()
            registry.post(f"/subjects/{subject}/versions", json={"schema": schema_without(MISSING_FIELD)})
            registry.put(f"/config/{subject}", json={"compatibility": "BACKWARD"}).raise_for_status()
            for version in ours:  # soft delete: the records written with its id still resolve
                registry.delete(f"/subjects/{subject}/versions/{version}").raise_for_status()

            refused = run.poll(lambda: _refused_readiness(run), timeout=20)
            run.check(
                "readiness 503 naming the incompatible field",
                bool(refused) and refused["eventSchema"]["fields"] == [MISSING_FIELD],
                str(refused["eventSchema"] if refused else "not refused within 20 s"),
            )
            answer = httpx.post(f"{run.system.orders.url}/api/orders", json=order_body(customer="chaos-refused"))
            fields = [e.get("field") for e in answer.json().get("errors", [])] if answer.status_code == 503 else []
            run.check(
                "POST answers 503 naming the field, with Retry-After",
                answer.status_code == 503 and fields == [MISSING_FIELD] and "Retry-After" in answer.headers,
                f"{answer.status_code} {fields}",
            )
            fault.evidence += run.hold(run.profile.registry_down_s, _refusal_probe(run))
            registry.put(f"/config/{subject}", json={"compatibility": "NONE"}).raise_for_status()
            reopened = run.poll(lambda: httpx.get(f"{run.system.orders.url}/health/ready").status_code == 200, 30)
            run.check("intake reopens by itself once the registry accepts the schema", bool(reopened))
        _retry_parked(run)
    finally:
        registry.close()


def _retry_parked(run: Run) -> None:
    """As the operator: list the rows parked while the schema was refused, check why, retry them."""
    engine = make_engine(run.system.env["order"]["DATABASE_URL"])
    try:
        parked = list_parked(engine, store.outbox, limit=100_000)
        reasons = {(row.failure_reason or "").split(":")[0] for row in parked}
        run.check(
            f"the {len(parked)} rows caught by the refusal are parked with the registry's reason",
            reasons <= {"SchemaRefused"},
            str(reasons),
        )
        run.state["parked"] = [row.key for row in parked]
        for row in parked:
            retry_parked(engine, store.outbox, row.id)
        left = run.poll(lambda: not list_parked(engine, store.outbox), timeout=30)
        run.check("retried, none parked again", bool(left))
    finally:
        engine.dispose()


def _refused_readiness(run: Run) -> dict | None:  # type: ignore[type-arg]
    response = httpx.get(f"{run.system.orders.url}/health/ready", timeout=5)
    body = response.json()
    return body if response.status_code == 503 and body["eventSchema"]["status"] == "refused" else None


def _refusal_probe(run: Run) -> Callable[[], str | None]:
    def probe() -> str | None:
        body = _refused_readiness(run)
        return f"readiness 503: {body['eventSchema']['fields']} refused" if body else None

    return probe


SCENARIO = Scenario(
    "incompatible-schema",
    "the registry refuses the order event schema",
    inject,
    env=FAST_CHECKS,
    order_service_faulted=True,  # POSTs answer 503 while the schema is refused, by design (retried)
)
