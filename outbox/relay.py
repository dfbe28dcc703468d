"""The relay: publishes outbox rows with the idempotent producer and deletes each row only after the broker
confirmed it.

Rows are claimed with a lease (outbox.claims), so several replicas can relay from one table without
publishing a row twice; a relay that dies leaves leases that expire and are taken over. Each claim names its
owner process, so a relay starting on the same host frees the claims of owners that are gone at once instead
of waiting for their leases (and never those of a live sibling). Within one relay rows go out in id order,
which keeps the order of events per key.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

from confluent_kafka import KafkaError, Message, Producer
from sqlalchemy import Engine, Table

from messaging.avro_codec import EventCodec, RegistryUnavailable
from messaging.backoff import Backoff
from outbox.claims import OutboxClaims
from outbox.ownership import current_owner, owner_is_gone

log = logging.getLogger(__name__)

# After the registry or the broker failed, wait at least this long before the next claim (seconds).
_UNAVAILABLE_FIRST_DELAY = 0.5


class OutboxRelay:
    """Publishes the rows of one outbox table in a background thread, from start() until stop().

    codecs: the codec of each event type, by the `event_type` the rows carry (the event model's class name).
    batch_size rows are claimed at a time for lease_seconds; with nothing to do the relay polls every
    idle_poll_seconds, or at once when woken (wake()); at most max_in_flight records await the broker's answer.
    """

    def __init__(
        self,
        engine: Engine,
        table: Table,
        producer: Producer,
        codecs: Mapping[str, EventCodec[Any]],
        *,
        batch_size: int = 500,
        lease_seconds: float = 45.0,
        idle_poll_seconds: float = 0.5,
        max_in_flight: int = 20_000,
    ) -> None:
        self._engine = engine
        self._table = table
        self._producer = producer
        self._codecs = codecs
        self._batch_size = batch_size
        self._lease = lease_seconds
        self._idle = idle_poll_seconds
        self._max_in_flight = max_in_flight
        self._claims_of: OutboxClaims | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._delivered: list[int] = []
        self._failed: list[int] = []
        self._in_flight: set[int] = set()
        self._backoff = Backoff(first=0.2, maximum=5.0)
        self._thread = threading.Thread(target=self._run, name="outbox-relay", daemon=True)

    @property
    def _claims(self) -> OutboxClaims:
        # Made on first use: the owner (this process) is looked up then, not when the relay is built.
        if self._claims_of is None:
            self._claims_of = OutboxClaims(self._engine, self._table, current_owner())
        return self._claims_of

    def start(self) -> None:
        """Free the claims of relays on this host that are gone, then start relaying (once per instance).

        Raises the database's error if the claims cannot be freed, RuntimeError when started twice.
        """
        freed = self._claims.release_owners(owner_is_gone)
        if freed:
            log.info("freed outbox claims of %d relay(s) that are gone", freed)
        self._thread.start()

    def wake(self) -> None:
        """Called after a transaction added rows, so they go out without waiting for the next poll."""
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop claiming, give in-flight records up to timeout seconds to be confirmed, record the outcome, and
        free the claims of rows still unconfirmed. Blocks up to about 2 * timeout + 5 seconds (the thread's
        current cycle, then the producer's flush); rows left unconfirmed go out on the next start."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout + 5)
        self._producer.flush(timeout)
        self._settle()
        self._claims.release(list(self._in_flight))

    def backlog(self) -> int:
        """Rows waiting in the outbox (accepted events not yet confirmed by the broker). Blocking; raises the
        database's error."""
        return self._claims.backlog()

    # -- loop ---------------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                claimed = self._cycle()
            except Exception:  # keep relaying whatever a single cycle hit
                log.exception("outbox relay cycle failed")
                claimed = 0
                self._backoff.failed()
            if self._backoff.delay:
                self._stop.wait(self._backoff.delay)
            elif claimed < self._batch_size and not self._in_flight:
                self._wake.wait(self._idle)
                self._wake.clear()

    def _cycle(self) -> int:
        self._producer.poll(0)
        self._settle()
        if len(self._in_flight) >= self._max_in_flight:
            self._producer.poll(0.1)
            return 0
        rows = self._claims.claim(self._batch_size, self._lease)
        if not rows:
            if self._in_flight:
                self._producer.poll(0.05)
                self._settle()
            return 0
        produced = self._produce(rows)
        self._producer.poll(0)
        if produced == len(rows):
            self._backoff.succeeded()
        return len(rows)

    def _produce(self, rows: list[Any]) -> int:
        """Produce rows in order; returns how many were handed to the producer."""
        for index, row in enumerate(rows):
            codec = self._codecs[row.event_type]
            try:
                value = codec.encode(codec.model.model_validate_json(row.payload))
            except RegistryUnavailable as exc:
                # Keep the rest (and their order) for later; producing past this row would reorder keys.
                log.warning("schema registry unavailable, outbox rows wait: %s", exc)
                self._claims.release([r.id for r in rows[index:]])
                self._backoff.failed(first=_UNAVAILABLE_FIRST_DELAY)
                return index
            self._in_flight.add(row.id)
            self._produce_one(row.topic, row.key, value, row.id)
        return len(rows)

    def _produce_one(self, topic: str, key: str, value: bytes, row_id: int) -> None:
        def on_delivery(err: KafkaError | None, _msg: Message, row_id: int = row_id) -> None:
            with self._lock:
                (self._failed if err is not None else self._delivered).append(row_id)

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
            self._claims.delete(delivered)
            self._in_flight.difference_update(delivered)
        if failed:
            log.warning("kafka did not confirm %d outbox record(s); they go out again", len(failed))
            self._claims.release(failed)
            self._in_flight.difference_update(failed)
            self._backoff.failed(first=_UNAVAILABLE_FIRST_DELAY)
