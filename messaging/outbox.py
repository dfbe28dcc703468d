"""Transactional outbox: events are written in the same transaction as the state they describe, and a
relay publishes them with the idempotent producer, deleting each row only after the broker confirmed it.

Rows are claimed with a lease (and FOR UPDATE SKIP LOCKED on PostgreSQL), so several replicas can relay
from one table without publishing a row twice; a relay that dies leaves leases that expire and are taken
over. Each claim names its owner process, so a relay starting on the same host frees the claims of owners
that are gone at once instead of waiting for their leases (and never those of a live sibling).
Within one relay rows go out in id order, which keeps the order of events per key.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psutil
from confluent_kafka import KafkaError, Message, Producer
from pydantic import BaseModel
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    func,
    insert,
    select,
    update,
)

from messaging.avro_codec import EventCodec, RegistryUnavailable
from persistence.engine import write_transaction

log = logging.getLogger(__name__)


def outbox_table(metadata: MetaData) -> Table:
    return Table(
        "outbox",
        metadata,
        Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
        Column("topic", String(255), nullable=False),
        Column("key", String(255), nullable=False),
        Column("event_type", String(100), nullable=False),
        Column("payload", Text, nullable=False),
        Column("created_at", Float, nullable=False),
        # Epoch seconds until which a relay owns the row; NULL = free.
        Column("claimed_until", Float, nullable=True, index=True),
        # The owning relay's process (host:pid:start time), so its claims can be freed once it is gone.
        Column("claimed_by", String(255), nullable=True),
    )


def outbox_row(topic: str, key: str, event: BaseModel) -> dict[str, Any]:
    """The row that carries one event; insert it in the transaction that changes the state."""
    return {
        "topic": topic,
        "key": key,
        "event_type": type(event).__name__,
        "payload": event.model_dump_json(),
        "created_at": time.time(),
        "claimed_until": None,
        "claimed_by": None,
    }


def add_to_outbox(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    if rows:
        conn.execute(insert(table), rows)


@dataclass
class RelayStats:
    published: int = 0
    failed_attempts: int = 0
    last_error: str | None = None
    last_success: float | None = None
    registry_ok: bool = True
    broker_ok: bool = True
    in_flight: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class OutboxRelay:
    """Publishes outbox rows in a background thread until stop()."""

    def __init__(
        self,
        engine: Engine,
        table: Table,
        producer: Producer,
        codecs: dict[str, EventCodec[Any]],
        *,
        batch_size: int = 500,
        lease_seconds: float = 45.0,
        idle_poll_seconds: float = 0.5,
        max_in_flight: int = 20_000,
        on_published: Callable[[int], None] | None = None,
    ) -> None:
        self._engine = engine
        self._table = table
        self._producer = producer
        self._codecs = codecs
        self._batch_size = batch_size
        self._lease = lease_seconds
        self._idle = idle_poll_seconds
        self._max_in_flight = max_in_flight
        self._on_published = on_published
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._delivered: list[int] = []
        self._failed: list[int] = []
        self._in_flight: set[int] = set()
        self._backoff = 0.0
        self.stats = RelayStats()
        self._thread = threading.Thread(target=self._run, name="outbox-relay", daemon=True)

    def start(self) -> None:
        self._release_claims_of_dead_owners()
        self._thread.start()

    def wake(self) -> None:
        """Called after a transaction added rows, so they go out without waiting for the next poll."""
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop claiming, give in-flight records up to timeout to be confirmed, record the outcome."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout + 5)
        self._producer.flush(timeout)
        self._settle()
        self._release(list(self._in_flight))

    def backlog(self) -> int:
        with self._engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(self._table)).scalar_one())

    # -- loop ---------------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                claimed = self._cycle()
            except Exception as exc:  # keep relaying whatever a single cycle hit
                log.exception("outbox relay cycle failed")
                self.stats.last_error = str(exc)
                claimed = 0
                self._backoff = min(max(self._backoff * 2, 0.2), 5.0)
            if self._backoff:
                self._stop.wait(self._backoff)
            elif claimed < self._batch_size and not self._in_flight:
                self._wake.wait(self._idle)
                self._wake.clear()

    def _cycle(self) -> int:
        self._producer.poll(0)
        self._settle()
        if len(self._in_flight) >= self._max_in_flight:
            self._producer.poll(0.1)
            return 0
        rows = self._claim()
        if not rows:
            if self._in_flight:
                self._producer.poll(0.05)
                self._settle()
            return 0
        produced = self._produce(rows)
        self._producer.poll(0)
        if produced == len(rows):
            self._backoff = 0.0
            self.stats.registry_ok = True
        return len(rows)

    def _claim(self) -> list[Any]:
        now = time.time()
        table = self._table
        free = (table.c.claimed_until.is_(None)) | (table.c.claimed_until < now)
        ids = (
            select(table.c.id)
            .where(free)
            .order_by(table.c.id)
            .limit(self._batch_size)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        with write_transaction(self._engine) as conn:
            rows = conn.execute(
                update(table)
                .where(table.c.id.in_(ids))
                .values(claimed_until=now + self._lease, claimed_by=OWNER)
                .returning(table.c.id, table.c.topic, table.c.key, table.c.event_type, table.c.payload)
            ).all()
        return sorted(rows, key=lambda r: r.id)

    def _produce(self, rows: list[Any]) -> int:
        for index, row in enumerate(rows):
            codec = self._codecs[row.event_type]
            try:
                value = codec.encode(codec.model.model_validate_json(row.payload))
            except RegistryUnavailable as exc:
                # Keep the rest (and their order) for later; producing past this row would reorder keys.
                self.stats.registry_ok = False
                self.stats.last_error = f"schema registry unavailable: {exc}"
                self._release([r.id for r in rows[index:]])
                self._backoff = min(max(self._backoff * 2, 0.5), 5.0)
                return index
            self._in_flight.add(row.id)
            self._produce_one(row.topic, row.key, value, row.id)
        return len(rows)

    def _produce_one(self, topic: str, key: str, value: bytes, row_id: int) -> None:
        def on_delivery(err: KafkaError | None, _msg: Message, row_id: int = row_id) -> None:
            with self._lock:
                (self._failed if err is not None else self._delivered).append(row_id)
            if err is not None:
                self.stats.broker_ok = False
                self.stats.last_error = f"kafka: {err}"

        while True:
            try:
                self._producer.produce(topic, key=key.encode(), value=value, on_delivery=on_delivery)
                return
            except BufferError:
                self._producer.poll(0.1)

    def _settle(self) -> None:
        """Delete confirmed rows, free failed ones for another try."""
        with self._lock:
            delivered, self._delivered = self._delivered, []
            failed, self._failed = self._failed, []
        if delivered:
            with write_transaction(self._engine) as conn:
                for chunk in _chunks(delivered, 500):
                    conn.execute(delete(self._table).where(self._table.c.id.in_(chunk)))
            self._in_flight.difference_update(delivered)
            self.stats.published += len(delivered)
            self.stats.last_success = time.time()
            self.stats.broker_ok = True
            if self._on_published:
                self._on_published(len(delivered))
        if failed:
            self.stats.failed_attempts += len(failed)
            self._release(failed)
            self._in_flight.difference_update(failed)
            self._backoff = min(max(self._backoff * 2, 0.5), 5.0)

    def _release(self, ids: list[int]) -> None:
        if not ids:
            return
        with write_transaction(self._engine) as conn:
            for chunk in _chunks(ids, 500):
                conn.execute(
                    update(self._table).where(self._table.c.id.in_(chunk)).values(claimed_until=None, claimed_by=None)
                )

    def _release_claims_of_dead_owners(self) -> None:
        """Claims left by a killed relay on this host are void: free them now, not when their leases expire."""
        table = self._table
        with self._engine.connect() as conn:
            owners = conn.execute(select(table.c.claimed_by).where(table.c.claimed_by.is_not(None)).distinct())
            dead = [owner for (owner,) in owners if owner_is_gone(owner)]
        if dead:
            with write_transaction(self._engine) as conn:
                conn.execute(
                    update(table).where(table.c.claimed_by.in_(dead)).values(claimed_until=None, claimed_by=None)
                )
            log.info("freed outbox claims of %d relay(s) that are gone", len(dead))


def _process_owner() -> str:
    started = psutil.Process(os.getpid()).create_time()
    return f"{socket.gethostname()}:{os.getpid()}:{started:.2f}"


OWNER = _process_owner()


def owner_is_gone(owner: str) -> bool:
    """True only when the owner certainly no longer runs: same host, and its pid is dead or reused."""
    try:
        host, pid, started = owner.rsplit(":", 2)
        pid_number, started_at = int(pid), float(started)
    except ValueError:
        return False
    if host != socket.gethostname():
        return False  # another machine: its leases expire on their own
    try:
        return abs(psutil.Process(pid_number).create_time() - started_at) > 0.05
    except psutil.NoSuchProcess:
        return True


def _chunks(items: list[int], size: int) -> list[list[int]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
