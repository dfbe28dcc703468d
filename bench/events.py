"""Each order's event timestamps, read from both topics while a scenario runs and drains.

An order is terminal for the benchmark at its first terminal FulfillmentStatusChanged (the Fulfillment
Service's own terminal statuses, ``fulfillment_service.domain.Status.is_terminal``: Shipped, Delivered,
Failed; Delivered only ever follows Shipped).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from events.codecs import codec_for
from events.topology import FULFILLMENT_EVENTS, ORDER_EVENTS
from fulfillment_service.domain import Status
from harness.topics import topic_reader
from messaging.registry import registry_client
from messaging.topic_codec import RecordDecoder

log = logging.getLogger("bench")

# The Fulfillment Service's own terminal statuses (not the Order Service's: harness.orders.TERMINAL).
FULFILLMENT_TERMINAL = frozenset(status.value for status in Status if status.is_terminal)


@dataclass
class EventTimes:
    """Epoch-second timestamps of each order's events, as the services wrote them into the events."""

    created: dict[str, float] = field(default_factory=dict)  # OrderCreated.timestamp, this run's orders only
    picked: dict[str, float] = field(default_factory=dict)  # first Pending (sequence 0) timestamp
    terminal: dict[str, tuple[float, str]] = field(default_factory=dict)  # first terminal status
    other_created: int = 0  # warm-up orders and the like

    def pickup_latencies(self) -> dict[str, float]:
        """Seconds from OrderCreated to picked up, per order of this run."""
        return {oid: self.picked[oid] - ts for oid, ts in self.created.items() if oid in self.picked}

    def terminal_latencies(self) -> dict[str, float]:
        """Seconds from OrderCreated to the first terminal event, per order of this run."""
        return {oid: self.terminal[oid][0] - ts for oid, ts in self.created.items() if oid in self.terminal}

    def outcome_counts(self) -> dict[str, int]:
        """Orders of this run per terminal status."""
        counts: dict[str, int] = {}
        for oid in self.created:
            if oid in self.terminal:
                status = self.terminal[oid][1]
                counts[status] = counts.get(status, 0) + 1
        return counts

    def done_count(self) -> int:
        """Orders of this run that are terminal."""
        return sum(1 for oid in self.created if oid in self.terminal)


class EventCollector:
    """Reads order-events and fulfillment-events from the beginning and keeps the timestamps; close() when done.

    Called repeatedly (poll) while a scenario drains, so it also tells when every order is terminal. Only
    orders whose customerId starts with ``<tag>-`` count as this run's.
    """

    def __init__(
        self, bootstrap_servers: str, registry_url: str, order_topic: str, fulfillment_topic: str, tag: str
    ) -> None:
        registry = registry_client(registry_url)
        self._codecs: dict[str, RecordDecoder] = {
            order_topic: codec_for(registry, ORDER_EVENTS, order_topic),
            fulfillment_topic: codec_for(registry, FULFILLMENT_EVENTS, fulfillment_topic),
        }
        self._order_topic = order_topic
        self._tag_prefix = f"{tag}-"
        self.times = EventTimes()
        self.records = 0
        self._reader = topic_reader(bootstrap_servers, [order_topic, fulfillment_topic])

    def poll(self, seconds: float) -> int:
        """Read what has arrived, for up to seconds; returns records read (0 while the topics do not exist)."""
        messages = self._reader.poll(seconds)
        for message in messages:
            self._add(message.topic(), message.value())
        self.records += len(messages)
        return len(messages)

    def follow(self, done: Callable[[EventTimes], bool], timeout: float, idle_exit: float | None = None) -> bool:
        """Poll until done(times) or timeout; with idle_exit, also stop after that long without records."""
        deadline = time.monotonic() + timeout
        last_record = time.monotonic()
        while time.monotonic() < deadline:
            if self.poll(1.0):
                last_record = time.monotonic()
            if done(self.times):
                return True
            if idle_exit is not None and time.monotonic() - last_record > idle_exit:
                return False
        return done(self.times)

    def close(self) -> None:
        """Close the reader."""
        self._reader.close()

    def _add(self, topic: str, value: bytes | None) -> None:
        try:
            event = self._codecs[topic].decode(value)
        except Exception as exc:  # a record the services dead-letter too; not ours to judge here
            log.warning("undecodable record on %s: %s", topic, exc)
            return
        times = self.times
        if topic == self._order_topic:
            if event.customerId.startswith(self._tag_prefix):
                times.created.setdefault(str(event.orderId), event.timestamp.timestamp())
            else:
                times.other_created += 1
            return
        order_id = str(event.orderId)
        status = event.status.value
        ts = event.timestamp.timestamp()
        if status == "Pending" and event.sequence == 0:
            times.picked.setdefault(order_id, ts)
        elif status in FULFILLMENT_TERMINAL and order_id not in times.terminal:
            times.terminal[order_id] = (ts, status)


def all_terminal(expected: int) -> Callable[[EventTimes], bool]:
    """A condition for follow(): at least expected orders created, and every one of them terminal."""
    return lambda times: len(times.created) >= expected and times.done_count() >= len(times.created)
