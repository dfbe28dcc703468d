"""What a fault works with while its scenario runs: the stack, the services, the load, and the record.

A fault module's inject step takes a :class:`Run`: it injects faults inside ``run.fault(...)`` (the
fault's window), holds them for their duration with ``run.hold(...)`` and records checks with
``run.check(...)``; its verify step reads what inject left in ``run.state``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import Message
from confluent_kafka.admin import AdminClient

from chaos.disk import SmallDisk
from chaos.profile import Profile
from events.topology import ORDER_EVENTS
from harness.load import BackgroundLoad
from harness.order_bodies import order_body
from harness.orders import TERMINAL, wait_drained, wait_terminal
from harness.reconcile import Reconciliation
from harness.system import System
from harness.topics import read_to_end
from harness.waiting import poll
from infra.services import ServiceProcess
from infra.stack import LocalStack
from messaging.group_lag import GroupLag
from messaging.settings import kafka_client_config

log = logging.getLogger("chaos")


@dataclass
class Check:
    """One verdict of a scenario: its name, whether it held, and what was seen."""

    name: str
    ok: bool
    detail: str = ""


@dataclass
class Fault:
    """One fault window (epoch s): from its injection until the faulted part is back; evidence it took effect."""

    name: str
    started_at: float
    ended_at: float | None = None
    evidence: list[str] = field(default_factory=list)


@dataclass
class StatusTimeline:
    """What a health endpoint said over a stretch of a fault: (epoch s, status) samples, in order."""

    samples: list[tuple[float, str]] = field(default_factory=list)

    def add(self, status: str) -> str:
        """Record status as said now; returns it."""
        self.samples.append((time.time(), status))
        return status

    def seconds(self, status: str, until: float | None = None) -> float:
        """How long it said status: each sample counts until the next one (the last one until until, if given)."""
        if not self.samples:
            return 0.0
        ends = [at for at, _ in self.samples[1:]] + [until if until is not None else self.samples[-1][0]]
        return sum(max(0.0, end - at) for (at, said), end in zip(self.samples, ends, strict=True) if said == status)

    def summary(self) -> str:
        """Each status said and how often, e.g. "down x12, degraded x1"."""
        return ", ".join(f"{said} x{n}" for said, n in Counter(said for _, said in self.samples).items()) or "no sample"


class Run:
    """The stack, the system and the load of one scenario, with its faults, checks and diagnostics."""

    def __init__(self, profile: Profile, stack: LocalStack, system: System) -> None:
        self.profile = profile
        self.stack = stack
        self.system = system
        self.services: list[ServiceProcess] = [system.orders, system.fulfillment]
        self.load: BackgroundLoad | None = None
        self.faults: list[Fault] = []
        self.checks: list[Check] = []
        self.ignored_orders: set[str] = set()  # probe orders, not part of the load
        # Records of order-events read before a scenario deleted the topic: reconciled with the new topic's.
        self.order_events_before: list[Message] = []
        self.state: dict[str, Any] = {}  # what a scenario's inject step leaves for its verify step
        self.diagnostics: dict[str, Any] = {}  # the system's own view, taken when orders got stuck
        self.figures: dict[str, Any] = {}  # what a scenario measured beyond the results table (JSON-ready)
        self.rng = random.Random()
        self.disk: SmallDisk | None = None  # the scenario's own_disk, mounted
        self._group_lag: GroupLag | None = None

    # recording
    def check(self, name: str, ok: bool, detail: str = "") -> None:
        """Record (and log) a check."""
        self.checks.append(Check(name, bool(ok), detail))
        log.info("check %-45s %s %s", name, "ok" if ok else "FAILED", detail)

    @contextlib.contextmanager
    def fault(self, name: str) -> Iterator[Fault]:
        """The window of one fault: opened on entering, closed on leaving (however the block ends)."""
        record = Fault(name, time.time())
        self.faults.append(record)
        log.info("fault: %s", name)
        try:
            yield record
        finally:
            record.ended_at = time.time()
            log.info("fault over after %.1fs: %s", record.ended_at - record.started_at, name)

    @property
    def fault_end(self) -> float | None:
        """When the last fault window closed (epoch s), None before any did."""
        ends = [f.ended_at for f in self.faults if f.ended_at is not None]
        return max(ends) if ends else None

    # waiting
    def hold(self, seconds: float, probe: Callable[[], str | None] | None = None) -> list[str]:
        """Keep a fault in place for seconds (its duration); meanwhile sample probe about once a second.

        Returns the distinct observations the probe made, each with how often it was made.
        """
        end = time.monotonic() + seconds
        seen: list[str] = []
        while time.monotonic() < end:
            if probe is not None:
                with contextlib.suppress(Exception):
                    observation = probe()
                    if observation:
                        seen.append(observation)
            time.sleep(min(1.0, max(0.0, end - time.monotonic())))
        return [f"{text} (x{n})" for text, n in Counter(seen).items()]

    def poll(self, condition: Callable[[], Any], timeout: float, interval: float = 0.2) -> Any:
        """condition()'s first truthy value, or None after timeout seconds (errors count as falsy)."""
        return poll(condition, timeout, interval, ignore=(Exception,))

    # the services' own views
    def dependency_down(self, name: str) -> Callable[[], str | None]:
        """A probe for hold(): does the Order Service's readiness report dependency name as down?"""

        def probe() -> str | None:
            status = self.system.order_readiness()["dependencies"][name]["status"]
            return f"order service reported {name} {status}" if status != "ok" else None

        return probe

    def log_records(
        self, service: ServiceProcess, since: float, until: float, containing: str = "", level: int = logging.WARNING
    ) -> list[str]:
        """The records of service's log written between since and until (epoch s) at level or above whose text (the
        line with its traceback) contains containing, case-insensitively; each record as its first line."""
        return [
            record.splitlines()[0]
            for at, record in log_records(service.log_file)
            if since <= at <= until
            and logging.getLevelName(record.split(" ", 3)[2]) >= level
            and containing.lower() in record.lower()
        ]

    def caught_up(self, timeout: float) -> bool:
        """Wait until every order accepted so far is terminal (at most timeout seconds); whether it got there."""
        assert self.load is not None
        return wait_drained(self.system.orders.url, set(self.load.accepted_ids()), timeout).drained

    def fulfillment_group_lag(self) -> int | None:
        """The fulfillment consumer group's lag on order-events, from the offsets committed in Kafka."""
        if self._group_lag is None:
            env = self.system.env["fulfillment"]
            self._group_lag = GroupLag(self.system.kafka, env["CONSUMER_GROUP"], env[ORDER_EVENTS.topic_env])
        return self._group_lag()

    def check_group_caught_up(self, name: str, timeout: float = 60) -> None:
        """Check that the fulfillment group commits past everything on order-events within timeout seconds."""
        caught_up = self.poll(lambda: self.fulfillment_group_lag() == 0, timeout=timeout, interval=0.5)
        self.check(name, bool(caught_up), "" if caught_up else f"lag {self.fulfillment_group_lag()}")

    def check_pickup_sla(self, recon: Reconciliation) -> None:
        """Check that no valid order was picked up later than the profile's pickup SLA after it was accepted."""
        delay = recon.max_pickup_delay_s
        self.check(
            f"no valid order picked up later than {self.profile.pickup_sla_s:g}s",
            delay is not None and delay <= self.profile.pickup_sla_s,
            f"max pickup delay {delay}s",
        )

    def dead_letters(self) -> dict[str, list[dict[str, str]]]:
        """The Fulfillment Service's dead-letter topic read to its end: each record's headers (as text) by its key."""
        seen: dict[str, list[dict[str, str]]] = {}
        topic = self.system.env["fulfillment"][ORDER_EVENTS.dead_letter_env]
        for record in read_to_end(self.system.kafka, topic):
            headers = {name: (value or b"").decode(errors="replace") for name, value in record.headers() or []}
            seen.setdefault((record.key() or b"").decode(errors="replace"), []).append(headers)
        return seen

    def partitions(self, topic: str) -> int:
        """How many partitions topic has."""
        metadata = AdminClient(kafka_client_config(self.system.kafka)).list_topics(topic, timeout=30)
        return len(metadata.topics[topic].partitions)

    def describe_fulfillment_group(self) -> dict[str, Any]:
        """The fulfillment consumer group as the broker sees it: state and each member's partitions."""
        group = self.system.env["fulfillment"]["CONSUMER_GROUP"]
        admin = AdminClient(kafka_client_config(self.system.kafka))
        description = admin.describe_consumer_groups([group])[group].result(timeout=10)
        return {
            "state": str(description.state),
            "members": [
                {
                    "clientId": member.client_id,
                    "partitions": [
                        tp.partition for tp in (member.assignment.topic_partitions if member.assignment else [])
                    ],
                }
                for member in description.members
            ],
        }

    def snapshot(self) -> dict[str, Any]:
        """What the services and the broker say when orders are stuck: where to start looking."""
        snapshot: dict[str, Any] = {}
        probes: dict[str, Callable[[], Any]] = {
            "orderServiceReady": self.system.order_readiness,
            "fulfillmentGroupLag": self.fulfillment_group_lag,
            "fulfillmentGroup": self.describe_fulfillment_group,
        }
        for service in self.services:
            if service.module == "fulfillment_service" and service.running:
                probes[f"fulfillmentHealth:{service.port}"] = lambda s=service: self.system.fulfillment_health(s)
        for name, probe in probes.items():
            try:
                snapshot[name] = probe()
            except Exception as exc:
                snapshot[name] = f"unavailable: {exc}"
        return snapshot

    def probe_order(self, timeout: float = 90.0) -> None:
        """One order end to end: topics exist, schemas are registered, consumers have their partitions.

        Raises RuntimeError when it is not terminal within timeout seconds.
        """
        with httpx.Client(base_url=self.system.orders.url, timeout=30) as client:
            body = order_body(customer="chaos-probe")
            created = client.post("/api/orders", json=body, headers={"Idempotency-Key": "chaos-probe"})
            created.raise_for_status()
            order_id = created.json()["orderId"]
            self.ignored_orders.add(order_id)
            # Errors count as "not yet": the services have only just started.
            if not self.poll(lambda: wait_terminal(client, order_id, 5) in TERMINAL, timeout, interval=0.1):
                raise RuntimeError(f"probe order {order_id} did not finish within {timeout:g}s; the system is not up")

    def close(self) -> None:
        """Release the Kafka clients the run opened."""
        if self._group_lag is not None:
            self._group_lag.close()


# The services' log formats (observability.logs): JSON lines (LOG_FORMAT=json, the default off a terminal), and
# plain text records "%(asctime)s %(levelname)s %(name)s: %(message)s" in local time, traceback lines following.
_RECORD_START = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) ")


def log_records(path: Path) -> Iterator[tuple[float, str]]:
    """Each record of a service's log file as (epoch s, its text with the lines that follow it, e.g. a traceback);
    lines before the first record are skipped. Nothing for a missing file.

    A JSON line is one record; its text is "<date> <time> <LEVEL> <the JSON line>" (UTC), so the level is its
    third word, as in a text record, and its exception is in the line."""
    if not path.exists():
        return
    at: float | None = None
    lines: list[str] = []
    with path.open(encoding="utf-8", errors="replace") as file:
        for line in file:
            record = _json_record(line)
            start = None if record else _RECORD_START.match(line)
            if record or start:
                if at is not None:
                    yield at, "".join(lines)
                if record:
                    at, lines = record
                    continue
                assert start is not None
                stamp = time.mktime(time.strptime(start.group(1), "%Y-%m-%d %H:%M:%S"))
                at, lines = stamp + int(start.group(2)) / 1000, [line]
            elif at is not None:
                lines.append(line)
    if at is not None:
        yield at, "".join(lines)


def _json_record(line: str) -> tuple[float, list[str]] | None:
    """(epoch s, [its text]) of a JSON log line, None for any other line."""
    if not line.startswith("{"):
        return None
    try:
        fields = json.loads(line)
        stamp = datetime.fromisoformat(str(fields["timestamp"]).replace("Z", "+00:00"))
        level = str(fields["level"]).upper()
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return stamp.timestamp(), [f"{stamp:%Y-%m-%d %H:%M:%S} {level} {line}"]
