"""The relay: publishes outbox rows with the idempotent producer and deletes each row only after the broker
confirmed it.

Rows are claimed with a lease (outbox.claims), so several replicas can relay from one table without
publishing a row twice; a relay that dies leaves leases that expire and are taken over. Each claim names its
owner process, so a relay starting on the same host frees the claims of owners that are gone at once instead
of waiting for their leases (and never those of a live sibling). Within one relay rows go out in id order,
which keeps the order of events per key.

A failed row is classified (outbox.failures): a transient failure (broker or registry away, queue full,
timeout) frees it for another try after a backoff; a permanent one (does not encode, too large, a schema the
registry refuses) parks it with its reason (outbox.parking), and the relay goes on with the other keys while the
later rows of that key wait behind the parked one. The relay also asks the registry now and then (at start,
every registration_check_seconds, sooner after registry errors) whether each codec's schema is still registered
with the id it writes (messaging.avro_codec.EventCodec.check_registration); schema_checks() is the last answer.
A row written in a trace is published in a span of that trace, its record carrying the W3C trace context headers
(outbox.tracing).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from confluent_kafka import KafkaError, Message, Producer
from opentelemetry.trace import Span, Tracer
from sqlalchemy import Engine, Table

from messaging.avro_codec import EventCodec, RegistrationCheck, RegistryUnavailable
from messaging.backoff import Backoff
from messaging.registry import SchemaRefused
from observability.logs import log_context
from observability.metrics import Metrics
from observability.throttled_log import ThrottledLog
from observability.trace_context import within
from outbox.claims import ClaimedRow, OutboxClaims
from outbox.failures import UnknownEventType, classify, classify_delivery
from outbox.metrics import RelayMetrics
from outbox.ownership import current_owner, owner_is_gone
from outbox.parking import OutboxHealth, outbox_health
from outbox.tracing import PublishSpans

log = logging.getLogger(__name__)

# After the registry or the broker failed, wait at least this long before the next claim (seconds).
_UNAVAILABLE_FIRST_DELAY = 0.5
# After a registry error, or while the registry cannot be asked, check the registrations again this soon (s).
_RECHECK_AFTER_REGISTRY_ERROR = 2.0


class OutboxRelay:
    """Publishes the rows of one outbox table in a background thread, from start() until stop().

    codecs: the codec of each event type, by the `event_type` the rows carry (the event model's class name).
    batch_size rows are claimed at a time for lease_seconds; with nothing to do the relay polls every
    idle_poll_seconds, or at once when woken (wake()); at most max_in_flight records await the broker's answer.
    registration_check_seconds: how often the codecs' registrations are checked (0: only at start and after
    registry errors). log_keys: by event type, the log context field a row's key is bound to while the relay
    logs about the row (e.g. "orderId"; "key" for other types). Each confirmed publication is one line, at INFO
    for the event types in announce (a state change an operator follows, e.g. OrderCreated), else at DEBUG.
    tracer: where the publish spans of rows written in a trace are made (outbox.tracing; default: the global
    provider's).
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
        registration_check_seconds: float = 30.0,
        metrics: Metrics | None = None,
        log_keys: Mapping[str, str] | None = None,
        announce: Collection[str] = (),
        tracer: Tracer | None = None,
    ) -> None:
        self._engine = engine
        self._spans = PublishSpans(tracer)
        self._table = table
        self._producer = producer
        self._codecs = codecs
        self._log_keys = dict(log_keys or {})
        self._announce = frozenset(announce)
        self._metrics = RelayMetrics(metrics or Metrics())
        self._batch_size = batch_size
        self._lease = lease_seconds
        self._idle = idle_poll_seconds
        self._max_in_flight = max_in_flight
        self._claims_of: OutboxClaims | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._delivered: list[int] = []
        self._failed: list[tuple[int, KafkaError]] = []
        self._in_flight: set[int] = set()
        self._backoff = Backoff(first=0.2, maximum=5.0)
        self._cycle_failures = ThrottledLog(log)  # a database that stays away fails every cycle
        self._check_interval = registration_check_seconds
        self._next_check = 0.0  # time.monotonic() of the next registration check; 0 = at once
        self._schema_checks: dict[str, RegistrationCheck] = {}
        self._thread = threading.Thread(target=self._run, name="outbox-relay", daemon=True)
        # Registration checks run beside the relay: a hung registry must not hold up publishing.
        self._check_now = threading.Event()
        self._checker = threading.Thread(target=self._check_loop, name="outbox-schema-check", daemon=True)

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
        self._checker.start()

    @property
    def event_types(self) -> frozenset[str]:
        """The event types this relay publishes (the `event_type` of the rows it has a codec for)."""
        return frozenset(self._codecs)

    def wake(self) -> None:
        """Called after a transaction added rows, so they go out without waiting for the next poll."""
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop claiming, give in-flight records up to timeout seconds to be confirmed, record the outcome, and
        free the claims of rows still unconfirmed. Blocks up to about 2 * timeout + 5 seconds (the thread's
        current cycle, then the producer's flush); rows left unconfirmed go out on the next start."""
        self._stop.set()
        self._wake.set()
        self._check_now.set()
        self._thread.join(timeout + 5)
        self._producer.flush(timeout)
        self._settle()
        self._claims.release(list(self._in_flight))

    def backlog(self) -> int:
        """Rows waiting in the outbox (accepted events not yet confirmed by the broker, not parked). Blocking;
        raises the database's error."""
        return self._claims.backlog()

    def health(self) -> OutboxHealth:
        """Backlog, age of the oldest unpublished row, parked rows and the oldest one's reason. Blocking."""
        return outbox_health(self._engine, self._table)

    def check_schemas(self) -> list[RegistrationCheck]:
        """Ask the registry about every codec's schema now (blocking: a few requests per codec, 5 s timeout
        each) and keep the answers for schema_checks(). Call it before start() to know at start-up; a thread of
        the relay's own calls it afterwards, beside the publishing one."""
        now = time.time()
        checks = dict(self._schema_checks)
        for event_type, codec in self._codecs.items():
            check = codec.check_registration(now)
            self._log_change(checks.get(event_type), check)
            checks[event_type] = check
        self._schema_checks = checks  # replaced whole: readers on other threads see one or the other
        unknown = any(check.status == "unknown" for check in checks.values())
        interval = self._check_interval if self._check_interval > 0 else float("inf")
        self._next_check = time.monotonic() + (min(interval, _RECHECK_AFTER_REGISTRY_ERROR) if unknown else interval)
        return list(checks.values())

    def schema_checks(self) -> list[RegistrationCheck]:
        """The registry's last answer about each codec's schema ([] before the first check)."""
        return list(self._schema_checks.values())

    def schema_refusal(self) -> RegistrationCheck | None:
        """The first schema the registry refused at the last check or publication, None while none is."""
        return next((c for c in self._schema_checks.values() if c.status == "refused"), None)

    # -- loop ---------------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                claimed = self._cycle()
            except Exception as exc:  # keep relaying whatever a single cycle hit
                self._cycle_failures.error(type(exc).__name__, "outbox relay cycle failed", exc)
                claimed = 0
                self._backoff.failed()
            if self._backoff.delay:
                self._stop.wait(self._backoff.delay)
            elif claimed < self._batch_size and not self._in_flight:
                self._wake.wait(self._idle)
                self._wake.clear()

    def _check_loop(self) -> None:
        while not self._stop.is_set():
            wait = self._next_check - time.monotonic()
            if wait > 0:
                self._check_now.wait(wait)
                self._check_now.clear()
                continue
            try:
                self.check_schemas()
            except Exception:
                log.exception("checking the schema registrations failed")
                self._next_check = time.monotonic() + _RECHECK_AFTER_REGISTRY_ERROR

    def _check_soon(self) -> None:
        """A registry error: check the registrations within _RECHECK_AFTER_REGISTRY_ERROR seconds."""
        self._next_check = min(self._next_check, time.monotonic() + _RECHECK_AFTER_REGISTRY_ERROR)
        self._check_now.set()

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

    def _produce(self, rows: list[ClaimedRow]) -> int:
        """Produce rows in order, parking those that can never be published (and holding back the later rows
        of their keys); returns how many rows were dealt with before a transient failure stopped the batch."""
        blocked: set[str] = set()  # keys with a row parked in this batch: their later rows wait
        for index, row in enumerate(rows):
            if row.key in blocked:
                self._claims.release([row.id])
                continue
            try:
                value = self._encode(row)
                self._in_flight.add(row.id)
                span, headers = self._spans.start(row)
                try:
                    self._produce_one(row.topic, row.key, value, row.id, row.created_at, row.event_type, headers, span)
                except Exception as exc:
                    self._in_flight.discard(row.id)
                    if span is not None:
                        self._spans.failed(span, exc)
                    raise
            except Exception as exc:
                failure = classify(exc)
                if failure.permanent:
                    with self._row_context(row.event_type, row.key):
                        log.error("outbox row %d (key %s) parked: %s", row.id, row.key, failure.reason)
                    self._claims.park([row.id], failure.reason)
                    blocked.add(row.key)
                    continue
                # Keep the rest (and their order) for later; producing past this row would reorder keys.
                log.warning("outbox rows wait, publishing failed: %s", failure.reason)
                self._claims.release([row.id], failure=failure.reason)
                self._claims.release([r.id for r in rows[index + 1 :]])
                self._backoff.failed(first=_UNAVAILABLE_FIRST_DELAY)
                if isinstance(exc, RegistryUnavailable):
                    self._check_soon()
                return index
        return len(rows)

    def _encode(self, row: ClaimedRow) -> bytes:
        """The row's event in the wire format. Raises what the codec raises, ValidationError for a payload that
        is not its event type, UnknownEventType for a type without a codec; records a refusal of the schema."""
        codec = self._codecs.get(row.event_type)
        if codec is None:
            raise UnknownEventType(f"no codec for event type {row.event_type!r}")
        try:
            value = codec.encode(codec.model.model_validate_json(row.payload))
        except SchemaRefused as exc:
            previous = self._schema_checks.get(row.event_type)
            check = RegistrationCheck.refusal(exc, time.time())
            self._log_change(previous, check)
            self._schema_checks = {**self._schema_checks, row.event_type: check}
            raise
        previous = self._schema_checks.get(row.event_type)
        if previous is not None and previous.status == "refused":
            # Registered after all (the subject was fixed): the refusal is over.
            self._schema_checks = {
                **self._schema_checks,
                row.event_type: RegistrationCheck("ok", previous.subject, time.time()),
            }
            log.info("the registry accepts the %s schema again", row.event_type)
        return value

    def _log_change(self, previous: RegistrationCheck | None, check: RegistrationCheck) -> None:
        if check.status == "refused" and (previous is None or previous.status != "refused"):
            log.error("the registry refuses the %s schema: %s", check.subject, check.detail)
        elif check.status == "ok" and previous is not None and previous.status == "refused":
            log.info("the registry accepts the %s schema again", check.subject)
        if check.reregistered:
            log.warning(
                "schema of %s registered again (the registry no longer knew its id): id %s",
                check.subject,
                check.schema_id,
            )

    def _produce_one(
        self,
        topic: str,
        key: str,
        value: bytes,
        row_id: int,
        created_at: float,
        event_type: str,
        headers: list[tuple[str, bytes]] | None,
        span: Span | None,
    ) -> None:
        def on_delivery(err: KafkaError | None, msg: Message, row_id: int = row_id) -> None:
            if err is None:
                self._metrics.published(topic, time.time() - created_at)
                with within(span):  # the callback runs outside the span: the line names its trace
                    self._log_published(event_type, key, msg)
            if span is not None:
                self._spans.delivered(span, err, msg)
            with self._lock:
                if err is None:
                    self._delivered.append(row_id)
                else:
                    self._failed.append((row_id, err))

        while True:
            try:
                self._producer.produce(topic, key=key.encode(), value=value, headers=headers, on_delivery=on_delivery)
                return
            except BufferError:
                self._producer.poll(0.1)

    @contextmanager
    def _row_context(self, event_type: str, key: str) -> Iterator[None]:
        """The row's key bound to the lines logged inside, under its event type's log key."""
        with log_context(**{self._log_keys.get(event_type, "key"): key}):
            yield

    def _log_published(self, event_type: str, key: str, msg: Message) -> None:
        """One line per confirmed record (on the thread polling the producer, the relay's)."""
        level = logging.INFO if event_type in self._announce else logging.DEBUG
        if not log.isEnabledFor(level):
            return
        with self._row_context(event_type, key):
            log.log(
                level,
                "%s published",
                event_type,
                extra={"topic": msg.topic(), "partition": msg.partition(), "offset": msg.offset()},
            )

    def _settle(self) -> None:
        """Delete confirmed rows; park the rows the broker refused for good, free the others for another try."""
        with self._lock:
            delivered, self._delivered = self._delivered, []
            failed, self._failed = self._failed, []
        if delivered:
            self._claims.delete(delivered)
            self._in_flight.difference_update(delivered)
        if failed:
            by_reason: dict[tuple[bool, str], list[int]] = defaultdict(list)
            for row_id, err in failed:
                failure = classify_delivery(err)
                by_reason[(failure.permanent, failure.reason)].append(row_id)
            for (permanent, reason), ids in by_reason.items():
                if permanent:
                    log.error("kafka refused %d outbox record(s) for good, parked: %s", len(ids), reason)
                    self._claims.park(ids, reason)
                else:
                    log.warning("kafka did not confirm %d outbox record(s); they go out again: %s", len(ids), reason)
                    self._claims.release(ids, failure=reason)
            self._in_flight.difference_update(row_id for row_id, _err in failed)
            if any(not permanent for permanent, _reason in by_reason):
                self._backoff.failed(first=_UNAVAILABLE_FIRST_DELAY)
