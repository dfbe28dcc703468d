"""registry-data-loss: the Schema Registry restarted on empty storage (a new journal topic) under load.

The producers' cached schema ids mean nothing to the new registry; they must notice at their next registration
check, register again and drop their caches, so new orders are published with ids the new registry knows and
are fulfilled. The records written before are readable only with the schemas the old registry held: they are
snapshotted before the fault and handed to the reconciliation (run.state["writer_schemas"]).
"""

from __future__ import annotations

import json

import httpx

from chaos.run import Run
from chaos.scenario import Scenario
from events.topology import FULFILLMENT_EVENTS, ORDER_EVENTS
from harness.reconcile import Reconciliation
from harness.topics import read_to_end
from messaging.avro_codec import wire_schema_id
from messaging.registry import registry_http_client, registry_url_config

FAST_CHECKS = {"SCHEMA_CHECK_INTERVAL_SECONDS": "1"}
# After this many unknown ids in a row the snapshot stops looking (ids are handed out in sequence).
_GAP = 20
# The records checked for new ids: the load's last ones (it runs on for tail_s after the fault).
_LAST = 20


def snapshot_schemas(registry_url: str) -> dict[int, str]:
    """Every schema the registry resolves by id, from id 1 until _GAP ids in a row are unknown."""
    found: dict[int, str] = {}
    misses, schema_id = 0, 1
    with registry_http_client(registry_url_config(registry_url), 10, base_url=registry_url) as client:
        while misses < _GAP:
            response = client.get(f"/schemas/ids/{schema_id}")
            if response.status_code == 200:
                found[schema_id] = response.json()["schema"]
                misses = 0
            else:
                misses += 1
            schema_id += 1
    return found


def inject(run: Run) -> None:
    """Snapshot the schemas, restart the registry on empty storage, wait for both subjects to come back."""
    run.state["writer_schemas"] = snapshot_schemas(run.system.registry_url)
    registry = run.stack.registry
    subjects = {ORDER_EVENTS.subject(run.system.order_topic), FULFILLMENT_EVENTS.subject(run.system.fulfillment_topic)}
    with run.fault("schema registry restarted on empty storage") as fault:
        registry.stop()
        registry.journal_topic = f"{registry.journal_topic}-after-loss"
        registry.start()
        back = run.poll(lambda: subjects <= set(_subjects(run)), timeout=30, interval=0.5)
        fault.evidence.append(f"subjects registered again: {sorted(_subjects(run))}")
    run.check("both services registered their schemas again", bool(back), str(sorted(_subjects(run))))


def verify(run: Run, recon: Reconciliation) -> None:
    """The last records on order-events (written by the load after the fault) carry ids the new registry
    resolves to OrderCreated."""
    records = read_to_end(run.system.kafka, run.system.order_topic)[-_LAST:]
    ids = {wire_schema_id(r.value()) for r in records}
    with registry_http_client(
        registry_url_config(run.system.registry_url), 10, base_url=run.system.registry_url
    ) as client:
        names = {i: _record_name(client, i) if i is not None else None for i in ids}
    run.check(
        f"new orders carry ids the new registry knows (last {len(records)} records)",
        bool(ids) and set(names.values()) == {ORDER_EVENTS.event.name},
        str(names),
    )


def _subjects(run: Run) -> list[str]:
    with registry_http_client(registry_url_config(run.system.registry_url), 5) as client:
        response = client.get(f"{run.system.registry_url}/subjects")
    return response.json() if response.status_code == 200 else []


def _record_name(client: httpx.Client, schema_id: int) -> str | None:
    response = client.get(f"/schemas/ids/{schema_id}")
    if response.status_code != 200:
        return None
    name: str | None = json.loads(response.json()["schema"]).get("name")
    return name


SCENARIO = Scenario(
    "registry-data-loss", "schema registry restarted on empty storage", inject, env=FAST_CHECKS, verify=verify
)
