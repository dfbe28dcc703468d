"""Reconciliation after a fault: what the client was promised against what the system did.

Sources, each read independently of the services' own bookkeeping where possible:
- the load generator: every order answered 2xx (accepted);
- the Order Service API: each order's status and when it last changed;
- `order-events` and `fulfillment-events`, read from the beginning to the end and decoded:
  when each order was created and picked up, which tracking numbers it was given;
- the shipping provider's ledger: successful provider calls per order.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient

from harness.load import Accepted, LoadResult
from messaging.avro_codec import EventCodec, PoisonRecord
from messaging.event_codecs import order_created_codec, status_changed_codec

M = TypeVar("M")

TERMINAL = frozenset({"Fulfilled", "Failed"})
NON_TERMINAL = ("Pending", "Processing")  # in the order an order moves through them


# -- topics ---------------------------------------------------------------------------------------


def read_to_end(bootstrap_servers: str, topic: str, timeout: float = 120.0) -> list[Message]:
    """Every record of topic, from the beginning up to the end it had when reading started."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": f"chaos-reader-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.partition.eof": False,
        }
    )
    deadline = time.monotonic() + timeout
    try:
        metadata = consumer.list_topics(topic, timeout=30).topics.get(topic)
        if metadata is None or metadata.error is not None:
            raise RuntimeError(f"topic {topic} not found: {metadata.error if metadata else 'missing'}")
        partitions = sorted(metadata.partitions)
        remaining: dict[int, int] = {}  # partition -> end offset still to reach
        for partition in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=30)
            if high > low:
                remaining[partition] = high
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        records: list[Message] = []
        while remaining:
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic}: partitions {sorted(remaining)} not read to the end in {timeout}s")
            for message in consumer.consume(1000, timeout=0.5):
                if message.error() is not None:
                    continue
                partition = message.partition()
                end = remaining.get(partition)
                if end is None or message.offset() >= end:
                    continue  # written after reading started
                records.append(message)
                if message.offset() >= end - 1:
                    del remaining[partition]
        return records
    finally:
        consumer.close()


@dataclass
class OrderEventScan:
    created_ms: dict[str, int] = field(default_factory=dict)  # first OrderCreated timestamp per order
    copies: Counter[str] = field(default_factory=Counter)  # OrderCreated records per order
    undecodable: int = 0  # poison records (dead-lettered by the consumer)


def decode_all(records: list[Message], codec: EventCodec[M]) -> tuple[list[M], int]:
    """The decoded events, and how many records were poison (dead-lettered by the consumers)."""
    events: list[M] = []
    undecodable = 0
    for record in records:
        try:
            events.append(codec.decode(record.value()))
        except PoisonRecord:
            undecodable += 1
    return events, undecodable


def scan_order_events(records: list[Message], registry_url: str, topic: str) -> OrderEventScan:
    codec = order_created_codec(SchemaRegistryClient({"url": registry_url}), topic)
    events, undecodable = decode_all(records, codec)
    scan = OrderEventScan(undecodable=undecodable)
    for event in events:
        order_id = str(event.orderId)
        scan.copies[order_id] += 1
        stamp = int(event.timestamp.timestamp() * 1000)
        scan.created_ms[order_id] = min(stamp, scan.created_ms.get(order_id, stamp))
    return scan


@dataclass
class FulfillmentEventScan:
    picked_up_ms: dict[str, int] = field(default_factory=dict)  # first Pending (picked up) per order
    tracking: defaultdict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    statuses: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    undecodable: int = 0


def scan_fulfillment_events(records: list[Message], registry_url: str, topic: str) -> FulfillmentEventScan:
    codec = status_changed_codec(SchemaRegistryClient({"url": registry_url}), topic)
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
    """Successful provider calls per order id (the provider's idempotency key)."""
    if not path.exists():
        return {}
    return {key: int(requests) for key, requests in _query(path, "SELECT idempotency_key, requests FROM shipments")}


def outbox_backlog(path: Path) -> int:
    if not path.exists():
        return 0
    return int(_query(path, "SELECT count(*) FROM outbox")[0][0])


def wait_outboxes_empty(paths: list[Path], deadline: float) -> dict[str, int]:
    """Poll until every outbox is empty, so the topics hold every event; returns what is left."""
    while True:
        left = {str(path): outbox_backlog(path) for path in paths}
        if not any(left.values()) or time.monotonic() >= deadline:
            return {name: count for name, count in left.items() if count}
        time.sleep(0.5)


# -- the Order Service's view ---------------------------------------------------------------------


def list_orders(client: httpx.Client, status: str | None = None) -> dict[str, dict[str, Any]]:
    """Every order (with the given status), following the pagination."""
    found: dict[str, dict[str, Any]] = {}
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 100}
        if status:
            params["status"] = status
        if cursor:
            params["cursor"] = cursor
        response = client.get("/api/orders", params=params)
        response.raise_for_status()
        page = response.json()
        for order in page["items"]:
            found[order["orderId"]] = order
        cursor = page.get("nextCursor")
        if not cursor:
            return found


def not_yet_terminal(client: httpx.Client, order_ids: set[str]) -> set[str]:
    """The given orders that are still Pending or Processing.

    Read in the order statuses advance, so an order that moves on between two pages is still seen.
    """
    open_ids: set[str] = set()
    for status in NON_TERMINAL:
        open_ids |= set(list_orders(client, status))
    return order_ids & open_ids


@dataclass
class DrainOutcome:
    drained: bool
    waited_s: float
    open_orders: int  # accepted orders not terminal when the wait ended


def wait_drained(base_url: str, accepted: set[str], timeout: float, progress: Any = None) -> DrainOutcome:
    """Poll until no accepted order is Pending or Processing, at most timeout seconds."""
    started = time.monotonic()
    open_ids = set(accepted)
    with httpx.Client(base_url=base_url, timeout=30) as client:
        while True:
            try:
                open_ids = not_yet_terminal(client, accepted)
            except httpx.HTTPError as exc:
                if progress:
                    progress(f"order service not answering while draining: {exc}")
            else:
                if not open_ids:
                    return DrainOutcome(True, time.monotonic() - started, 0)
            waited = time.monotonic() - started
            if waited >= timeout:
                return DrainOutcome(False, waited, len(open_ids))
            if progress:
                progress(f"draining: {len(open_ids)} orders not terminal after {waited:.0f}s")
            time.sleep(0.5)


def _epoch(iso: str | None) -> float | None:
    return datetime.fromisoformat(iso).timestamp() if iso else None


# -- the verdict ----------------------------------------------------------------------------------


@dataclass
class Reconciliation:
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

    def to_json(self, sample: int = 20) -> dict[str, Any]:
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
    load: LoadResult,
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
) -> Reconciliation:
    """ignore: orders created outside the load (probes), left out of every count."""
    accepted = load.accepted
    with httpx.Client(base_url=order_service_url, timeout=30) as client:
        orders = {i: o for i, o in list_orders(client).items() if i not in ignore}
        for order_id in set(accepted) - set(orders):
            # Not in the listing: ask for it directly before calling it lost.
            response = client.get(f"/api/orders/{order_id}")
            if response.status_code == 200:
                orders[order_id] = response.json()

    created = scan_order_events(read_to_end(bootstrap_servers, order_topic), registry_url, order_topic)
    fulfilled = scan_fulfillment_events(
        read_to_end(bootstrap_servers, fulfillment_topic), registry_url, fulfillment_topic
    )
    return judge(
        accepted=load.accepted,
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
    accepted: dict[str, Accepted],
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
    )
