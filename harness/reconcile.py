"""Reconciliation: what clients were promised against what the system did; lost and duplicated orders.

Sources, each read independently of the services' own bookkeeping where possible:
- the load generator: every order answered 2xx (accepted);
- the Order Service API: each order's status and when it last changed;
- `order-events` and `fulfillment-events`, read from the beginning to the end and decoded:
  when each order was created and picked up, which tracking numbers it was given;
- the shipping provider's ledger: successful provider calls per order.

An order is lost when it was accepted but never became terminal or never reached `order-events`; it is
duplicated when the provider shipped it more than once or it was given more than one tracking number.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import Message
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from contract_models.events import OrderCreated
from events.codecs import codec_for
from events.topology import FULFILLMENT_EVENTS, ORDER_EVENTS
from harness.load import Accepted
from harness.orders import TERMINAL, DrainOutcome, list_orders
from harness.topics import read_to_end
from messaging.avro_codec import PoisonRecord
from messaging.registry import registry_client, registry_url_config
from messaging.topic_codec import RecordDecoder

# -- topics ---------------------------------------------------------------------------------------


def decode_all(records: list[Message], codec: RecordDecoder) -> tuple[list[Any], int]:
    """The decoded events, and how many records were poison (undecodable: dead-lettered by the consumers)."""
    events: list[Any] = []
    undecodable = 0
    for record in records:
        try:
            events.append(codec.decode(record.value()))
        except PoisonRecord:
            undecodable += 1
    return events, undecodable


@dataclass
class OrderEventScan:
    """What `order-events` says about each order."""

    created_ms: dict[str, int] = field(default_factory=dict)  # first OrderCreated timestamp per order
    copies: Counter[str] = field(default_factory=Counter)  # OrderCreated records per order
    undecodable: int = 0  # poison records (dead-lettered by the consumer)


class KnownSchemasClient(SchemaRegistryClient):
    """A registry client that resolves some ids from schemas known beforehand (what a registry held before it
    lost its data) and asks the registry for the others."""

    def __init__(self, url: str, known: Mapping[int, str]) -> None:
        super().__init__({**registry_url_config(url), "timeout": 5})
        self._known = dict(known)

    def get_schema(self, schema_id: int, *args: Any, **kwargs: Any) -> Schema:
        """The known schema of schema_id, else the registry's."""
        if schema_id in self._known:
            return Schema(self._known[schema_id], "AVRO")
        return super().get_schema(schema_id, *args, **kwargs)


def registry_reader(registry_url: str, writer_schemas: Mapping[int, str] | None, record: str) -> SchemaRegistryClient:
    """A client for reading one topic: writer_schemas (id -> schema text, e.g. a snapshot of a registry that
    later lost its data) of the record named record resolve first, so the records written with those ids
    still decode; only that record's, since a new registry may have given the same ids to other schemas."""
    known = {i: s for i, s in (writer_schemas or {}).items() if json.loads(s).get("name") == record}
    return KnownSchemasClient(registry_url, known) if known else registry_client(registry_url)


def scan_order_events(
    records: list[Message], registry_url: str, topic: str, writer_schemas: Mapping[int, str] | None = None
) -> OrderEventScan:
    """Scan OrderCreated records of topic (decoded with the registry's schemas, writer_schemas first)."""
    codec = codec_for(registry_reader(registry_url, writer_schemas, ORDER_EVENTS.event.name), ORDER_EVENTS, topic)
    events, undecodable = decode_all(records, codec)
    scan = OrderEventScan(undecodable=undecodable)
    for event in events:
        if not isinstance(event, OrderCreated):  # the order's other events (OrderCancelled) are not copies
            continue
        order_id = str(event.orderId)
        scan.copies[order_id] += 1
        stamp = int(event.timestamp.timestamp() * 1000)
        scan.created_ms[order_id] = min(stamp, scan.created_ms.get(order_id, stamp))
    return scan


@dataclass
class FulfillmentEventScan:
    """What `fulfillment-events` says about each order."""

    picked_up_ms: dict[str, int] = field(default_factory=dict)  # first Pending (picked up) per order
    tracking: defaultdict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    statuses: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    undecodable: int = 0


def scan_fulfillment_events(
    records: list[Message], registry_url: str, topic: str, writer_schemas: Mapping[int, str] | None = None
) -> FulfillmentEventScan:
    """Scan FulfillmentStatusChanged records of topic (decoded with the registry's schemas, writer_schemas
    first)."""
    registry = registry_reader(registry_url, writer_schemas, FULFILLMENT_EVENTS.event.name)
    codec = codec_for(registry, FULFILLMENT_EVENTS, topic)
    events, undecodable = decode_all(records, codec)
    scan = FulfillmentEventScan(undecodable=undecodable)
    for event in events:
        order_id = str(event.orderId)
        status = event.status.value
        scan.statuses[order_id][status] += 1
        if status == "Pending":
            stamp = int(event.timestamp.timestamp() * 1000)
            scan.picked_up_ms[order_id] = min(stamp, scan.picked_up_ms.get(order_id, stamp))
        if event.trackingNumber:
            scan.tracking[order_id].add(event.trackingNumber)
    return scan


# -- databases (read directly: the provider's ledger has no API, outboxes are internal) ------------


def sqlite_path(database_url: str) -> Path:
    """The file of a ``sqlite:///`` URL; ValueError for any other URL."""
    prefix = "sqlite:///"
    if not database_url.startswith(prefix):
        raise ValueError(f"not a SQLite file URL: {database_url}")
    return Path(database_url[len(prefix) :])


def _query(path: Path, sql: str) -> list[tuple[Any, ...]]:
    connection = sqlite3.connect(path, timeout=30)
    try:
        return connection.execute(sql).fetchall()
    finally:
        connection.close()


def ledger_requests(path: Path) -> dict[str, int]:
    """Successful provider calls per order id (the provider's idempotency key); {} while there is no ledger."""
    if not path.exists():
        return {}
    return {key: int(requests) for key, requests in _query(path, "SELECT idempotency_key, requests FROM shipments")}


def outbox_backlog(path: Path) -> int:
    """Events in a service database's outbox, not yet published (0 while there is no database)."""
    if not path.exists():
        return 0
    return int(_query(path, "SELECT count(*) FROM outbox")[0][0])


def wait_outboxes_empty(paths: list[Path], deadline: float) -> dict[str, int]:
    """Poll until every outbox is empty (so the topics hold every event) or time.monotonic() passes deadline.

    Returns the outboxes left non-empty, by database path.
    """
    while True:
        left = {str(path): outbox_backlog(path) for path in paths}
        if not any(left.values()) or time.monotonic() >= deadline:
            return {name: count for name, count in left.items() if count}
        time.sleep(0.5)


def _epoch(iso: str | None) -> float | None:
    return datetime.fromisoformat(iso).timestamp() if iso else None


# -- the verdict ----------------------------------------------------------------------------------


@dataclass
class Reconciliation:
    """The verdict on one run; times in seconds."""

    accepted: int
    lost: int
    lost_not_terminal: list[str]
    lost_not_published: list[str]
    duplicated: int
    duplicated_calls: dict[str, int]  # order id -> successful provider calls, where > 1
    duplicated_tracking: dict[str, list[str]]  # order id -> tracking numbers, where > 1
    unconfirmed_orders: int  # orders in the service that no 2xx answer announced
    missing_pickup: list[str]  # accepted orders without a picked-up event
    max_pickup_delay_s: float | None
    p99_pickup_delay_s: float | None
    drain_s: float | None  # fault end -> every order accepted until then terminal
    drained: bool
    statuses: dict[str, int]
    order_event_copies: int  # OrderCreated records beyond one per order (at-least-once redeliveries)
    poison_on_order_events: int
    outbox_left: dict[str, int]
    finished_at: dict[str, float] = field(default_factory=dict)  # terminal accepted orders: epoch s they finished

    def to_json(self, sample: int = 20) -> dict[str, Any]:
        """The verdict as JSON, lists of order ids cut to sample entries."""
        return {
            "accepted": self.accepted,
            "lost": self.lost,
            "lostNotTerminal": self.lost_not_terminal[:sample],
            "lostNotPublished": self.lost_not_published[:sample],
            "duplicated": self.duplicated,
            "duplicatedProviderCalls": dict(list(self.duplicated_calls.items())[:sample]),
            "duplicatedTracking": dict(list(self.duplicated_tracking.items())[:sample]),
            "unconfirmedOrders": self.unconfirmed_orders,
            "missingPickupEvents": len(self.missing_pickup),
            "missingPickupSample": self.missing_pickup[:sample],
            "maxPickupDelaySeconds": self.max_pickup_delay_s,
            "p99PickupDelaySeconds": self.p99_pickup_delay_s,
            "drainSeconds": self.drain_s,
            "drained": self.drained,
            "finalStatuses": self.statuses,
            "extraOrderCreatedCopies": self.order_event_copies,
            "poisonRecordsOnOrderEvents": self.poison_on_order_events,
            "outboxLeft": self.outbox_left,
        }


def reconcile(
    *,
    accepted: Mapping[str, Accepted],
    order_service_url: str,
    bootstrap_servers: str,
    registry_url: str,
    order_topic: str,
    fulfillment_topic: str,
    ledger_path: Path,
    fault_end: float | None,
    drain: DrainOutcome,
    outbox_left: dict[str, int],
    ignore: set[str] | frozenset[str] = frozenset(),
    writer_schemas: Mapping[int, str] | None = None,
    earlier_order_events: Sequence[Message] = (),
) -> Reconciliation:
    """Gather every source and judge: accepted orders by id; ignore: orders created outside the load (probes).

    fault_end is the epoch time the last fault ended (None without faults); writer_schemas: schemas by id to
    read records with before asking the registry (those of a registry that lost its data since).
    earlier_order_events: records of an earlier incarnation of order_topic (read before it was deleted and
    recreated), scanned with it.
    """
    with httpx.Client(base_url=order_service_url, timeout=30) as client:
        orders = {i: o for i, o in list_orders(client).items() if i not in ignore}
        for order_id in set(accepted) - set(orders):
            # Not in the listing: ask for it directly before calling it lost.
            response = client.get(f"/api/orders/{order_id}")
            if response.status_code == 200:
                orders[order_id] = response.json()

    order_records = [*earlier_order_events, *read_to_end(bootstrap_servers, order_topic)]
    created = scan_order_events(order_records, registry_url, order_topic, writer_schemas)
    fulfilled = scan_fulfillment_events(
        read_to_end(bootstrap_servers, fulfillment_topic), registry_url, fulfillment_topic, writer_schemas
    )
    return judge(
        accepted=accepted,
        orders=orders,
        created=created,
        fulfilled=fulfilled,
        calls=ledger_requests(ledger_path),
        fault_end=fault_end,
        drained=drain.drained,
        outbox_left=outbox_left,
    )


def judge(
    *,
    accepted: Mapping[str, Accepted],
    orders: dict[str, dict[str, Any]],
    created: OrderEventScan,
    fulfilled: FulfillmentEventScan,
    calls: dict[str, int],
    fault_end: float | None,
    drained: bool,
    outbox_left: dict[str, int],
) -> Reconciliation:
    """The verdict from what was gathered: accepted orders, the service's orders, topics, ledger."""
    not_terminal = sorted(i for i in accepted if orders.get(i, {}).get("status") not in TERMINAL)
    not_published = sorted(i for i in accepted if i not in created.created_ms)
    lost = set(not_terminal) | set(not_published)

    duplicated_calls = {order_id: n for order_id, n in calls.items() if n > 1}
    duplicated_tracking = {order_id: sorted(t) for order_id, t in fulfilled.tracking.items() if len(t) > 1}

    delays = sorted(
        (fulfilled.picked_up_ms[i] - created.created_ms[i]) / 1000
        for i in accepted
        if i in fulfilled.picked_up_ms and i in created.created_ms
    )
    missing_pickup = sorted(i for i in accepted if i not in fulfilled.picked_up_ms)

    drain_s: float | None = None
    if fault_end is not None and not not_terminal:
        # The backlog the fault left: orders accepted until it ended, and when the last of them finished.
        finished = [
            _epoch(orders[i].get("updatedAt")) or 0.0 for i, a in accepted.items() if a.accepted_at <= fault_end
        ]
        drain_s = max(0.0, max(finished, default=fault_end) - fault_end)

    return Reconciliation(
        accepted=len(accepted),
        lost=len(lost),
        lost_not_terminal=not_terminal,
        lost_not_published=not_published,
        duplicated=len(set(duplicated_calls) | set(duplicated_tracking)),
        duplicated_calls=duplicated_calls,
        duplicated_tracking=duplicated_tracking,
        unconfirmed_orders=len(set(orders) - set(accepted)),
        missing_pickup=missing_pickup,
        max_pickup_delay_s=delays[-1] if delays else None,
        p99_pickup_delay_s=delays[min(len(delays) - 1, int(len(delays) * 0.99))] if delays else None,
        drain_s=drain_s,
        drained=drained,
        statuses=dict(Counter(orders[i]["status"] for i in accepted if i in orders)),
        order_event_copies=sum(n - 1 for n in created.copies.values()),
        poison_on_order_events=created.undecodable,
        outbox_left=outbox_left,
        finished_at=_finished_at(accepted, orders),
    )


def _finished_at(accepted: Mapping[str, Accepted], orders: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Epoch s at which each accepted order reached its terminal status (its updatedAt), terminal ones only."""
    finished = {}
    for order_id in accepted:
        order = orders.get(order_id, {})
        stamp = _epoch(order.get("updatedAt"))
        if order.get("status") in TERMINAL and stamp is not None:
            finished[order_id] = stamp
    return finished
