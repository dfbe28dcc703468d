"""Dead-letter routing: a record that can never be processed is parked with the reason in its headers.

The copy goes to the dead-letter topic, cut to fit the producer's limit when it is too large
(messaging.dead_letter_copy). A dead-letter topic that does not exist is created (from its TopicSpec). What the
topic refuses for good (it cannot be created, writing is not authorised, the copy is invalid or still too large)
goes to the local spool in the service's database (messaging.dead_letter_spool), so no poison record holds up
the records behind it. Only what waiting cures (the broker away, timeouts) makes the batch be read again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from messaging.dead_letter_copy import DeadLetterRecord, dead_letter_copy, dead_letter_headers
from messaging.dead_letter_headers import DeadLetterHeaders
from messaging.dead_letter_spool import DeadLetterSpool
from messaging.metrics import dead_lettered
from observability.metrics import Metrics

__all__ = ["DeadLetterCounts", "DeadLetterError", "DeadLetterPublisher", "dead_letter_headers", "is_permanent"]

log = logging.getLogger(__name__)

# librdkafka's default `message.max.bytes`: the largest record a producer left at its defaults sends, in bytes.
PRODUCER_MAX_MESSAGE_BYTES = 1_000_000

# Errors that say the topic does not exist (broker-side and librdkafka's local one).
UNKNOWN_TOPIC = frozenset({KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC})
# Errors no wait cures: the broker or the client refuses this record or this topic for good (Kafka protocol
# error codes; librdkafka's local codes are negative).
PERMANENT = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.RECORD_LIST_TOO_LARGE,
        KafkaError.INVALID_RECORD,
        KafkaError.INVALID_MSG_SIZE,
        KafkaError.TOPIC_EXCEPTION,
        KafkaError.INVALID_REQUIRED_ACKS,
        KafkaError.INVALID_PARTITIONS,
        KafkaError.INVALID_REPLICATION_FACTOR,
        KafkaError.INVALID_CONFIG,
        KafkaError.POLICY_VIOLATION,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
        KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
        KafkaError.UNSUPPORTED_FOR_MESSAGE_FORMAT,
        KafkaError.UNSUPPORTED_VERSION,
        KafkaError._INVALID_ARG,
        KafkaError._UNKNOWN_PARTITION,
        KafkaError._BAD_MSG,
    }
)


class DeadLetterError(Exception):
    """The dead-letter copy was neither confirmed by the topic nor spooled (an outage: the broker away, a
    timeout, the database failing); the source offset must not be committed and the record is read again."""


def is_permanent(error: KafkaError) -> bool:
    """Whether error is one no wait cures: PERMANENT, or an unknown topic (asked after it could not be created)."""
    return error.code() in PERMANENT or error.code() in UNKNOWN_TOPIC


@dataclass(frozen=True)
class DeadLetterCounts:
    """published: copies the dead-letter topic confirmed since this process started; spooled: records in the
    local spool (None while the database cannot say)."""

    published: int
    spooled: int | None

    def to_json(self) -> dict[str, int | None]:
        """{"published": n, "spooled": m}: how health reports it."""
        return {"published": self.published, "spooled": self.spooled}


class DeadLetterPublisher:
    """Copies poison records to a dead-letter topic and waits for the broker's ack; spools what it refuses.

    headers: the names of the headers the reason and origin go in. max_message_bytes: the producer's
    `message.max.bytes` (larger copies are cut to fit). create_topic: creates the topic (raises KafkaException
    when it cannot), None when it must exist. spool: where copies the topic refuses for good go, None to wait
    for the topic instead (DeadLetterError). metrics: where published and spooled copies are counted by error
    type (messaging.metrics).
    """

    def __init__(
        self,
        producer: Producer,
        topic: str,
        headers: DeadLetterHeaders,
        *,
        max_message_bytes: int = PRODUCER_MAX_MESSAGE_BYTES,
        create_topic: Callable[[], None] | None = None,
        spool: DeadLetterSpool | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._producer = producer
        self._dead_lettered = dead_lettered(metrics or Metrics())
        self._counted: dict[tuple[str, str], Any] = {}
        self._headers = headers
        self._max_message_bytes = max_message_bytes
        self._create_topic = create_topic
        self._spool = spool
        self._topic_exists = False
        self.topic = topic
        self.published = 0

    def counts(self) -> DeadLetterCounts:
        """Copies published since start and records in the spool. Blocking (asks the database); spooled is None
        when the database fails or there is no spool."""
        spooled: int | None = None
        if self._spool is not None:
            try:
                spooled = self._spool.count()
            except Exception as exc:
                log.warning("cannot count the dead-letter spool: %s", exc)
        return DeadLetterCounts(self.published, spooled)

    def publish_all(self, records: Sequence[tuple[Message, str, str]], timeout: float = 30.0) -> None:
        """Dead-letter (message, error type, error message) records and wait once for all their acks.

        One wait per batch, not per record: a burst of poison records must not stall the valid ones. A copy the
        topic refuses for good goes to the spool. Raises DeadLetterError when a copy was neither confirmed nor
        spooled within timeout seconds (an outage: the records must be read again later).
        """
        if not records:
            return
        deadline = time.monotonic() + timeout
        copies = [
            dead_letter_copy(self._headers, message, error_type, error_message, self._max_message_bytes)
            for message, error_type, error_message in records
        ]
        refused = self._prepare_topic(deadline)
        if refused is not None:
            self._to_spool([(copy, refused) for copy in copies])
            return
        outcomes = self._send(copies, deadline)
        if any(error is not None and error.code() in UNKNOWN_TOPIC for error in outcomes):
            # Deleted since it was seen: create it again and send what it refused once more.
            self._topic_exists = False
            again = [i for i, error in enumerate(outcomes) if error is not None and error.code() in UNKNOWN_TOPIC]
            refused = self._prepare_topic(deadline)
            if refused is None:
                for i, error in zip(again, self._send([copies[i] for i in again], deadline), strict=True):
                    outcomes[i] = error
        transient = [error for error in outcomes if error is not None and not is_permanent(error)]
        if transient:
            self._topic_exists = False  # look again next time: the topic may have gone meanwhile
            raise DeadLetterError(f"dead-letter publish to {self.topic} failed: {transient[:3]}")
        spool = [
            (copy, refused if refused and error.code() in UNKNOWN_TOPIC else _describe(error))
            for copy, error in zip(copies, outcomes, strict=True)
            if error is not None
        ]
        self._to_spool(spool)
        sent = [copy for copy, error in zip(copies, outcomes, strict=True) if error is None]
        self.published += len(sent)
        for copy in sent:
            self._count(copy, "published")
            log.warning(
                "dead-lettered %s[%s]@%s to %s%s: %s: %s",
                copy.source_topic,
                copy.source_partition,
                copy.source_offset,
                self.topic,
                f" (truncated from {copy.original_size} bytes)" if copy.truncated else "",
                copy.header(self._headers.error_type),
                (copy.header(self._headers.error_message) or "")[:200],
            )

    # -- the topic ---------------------------------------------------------------------------------------

    def _prepare_topic(self, deadline: float) -> str | None:
        """Make sure the topic exists, creating it if need be. Returns None when it does, or why it never will
        (the copies go to the spool then); raises DeadLetterError while the broker cannot tell (an outage)."""
        if self._topic_exists:
            return None
        error = self._topic_error(deadline)
        if error is None:
            self._topic_exists = True
            return None
        if error.code() not in UNKNOWN_TOPIC:
            return f"dead-letter topic {self.topic} unusable: {_describe(error)}"
        if self._create_topic is None:
            return f"dead-letter topic {self.topic} does not exist and is not created here"
        log.warning("dead-letter topic %s does not exist: creating it", self.topic)
        try:
            self._create_topic()
        except Exception as exc:
            cause = exc.args[0] if isinstance(exc, KafkaException) and isinstance(exc.args[0], KafkaError) else None
            if cause is None or not is_permanent(cause):
                raise DeadLetterError(f"cannot create dead-letter topic {self.topic} yet: {exc}") from exc
            return f"cannot create dead-letter topic {self.topic}: {_describe(cause)}"
        # Wait until the producer's metadata shows it: until then it would refuse the copies as unknown.
        while (error := self._topic_error(deadline)) is not None and error.code() in UNKNOWN_TOPIC:
            if time.monotonic() >= deadline:
                raise DeadLetterError(f"created dead-letter topic {self.topic} is not visible yet")
            time.sleep(0.1)
        self._topic_exists = True
        return None

    def _topic_error(self, deadline: float) -> KafkaError | None:
        """The broker's answer for the topic's metadata: None when it is there, else the error (unknown topic,
        not authorised...). Raises DeadLetterError when no broker answers before deadline."""
        try:
            metadata = self._producer.list_topics(self.topic, timeout=max(0.5, min(5.0, deadline - time.monotonic())))
        except KafkaException as exc:
            raise DeadLetterError(f"cannot look up dead-letter topic {self.topic}: {exc}") from exc
        found = metadata.topics.get(self.topic)
        if found is None:
            return KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART)
        if found.error is not None and found.error.code() != KafkaError.LEADER_NOT_AVAILABLE:
            return found.error
        return None

    # -- sending and spooling ------------------------------------------------------------------------------

    def _send(self, copies: Sequence[DeadLetterRecord], deadline: float) -> list[KafkaError | None]:
        """Produce copies and wait for every ack until deadline; the error of each (None when confirmed).
        Raises DeadLetterError when acks are still outstanding at the deadline."""
        outcomes: list[KafkaError | None] = [None] * len(copies)

        def on_delivery(index: int) -> Callable[[KafkaError | None, Message], None]:
            def report(err: KafkaError | None, _msg: Message) -> None:
                outcomes[index] = err

            return report

        for index, copy in enumerate(copies):
            try:
                self._producer.produce(
                    self.topic, key=copy.key, value=copy.value, headers=copy.headers, on_delivery=on_delivery(index)
                )
            except KafkaException as exc:
                outcomes[index] = exc.args[0]
            except BufferError:
                outcomes[index] = KafkaError(KafkaError._QUEUE_FULL)
        remaining = self._producer.flush(max(0.0, deadline - time.monotonic()))
        if remaining:
            self._topic_exists = False
            raise DeadLetterError(f"dead-letter publish to {self.topic} failed: {remaining} not confirmed in time")
        return outcomes

    def _to_spool(self, records: Sequence[tuple[DeadLetterRecord, str]]) -> None:
        if not records:
            return
        if self._spool is None:
            raise DeadLetterError(f"dead-letter topic {self.topic} refused {len(records)} copies: {records[0][1]}")
        try:
            self._spool.add(self.topic, records)
        except Exception as exc:
            raise DeadLetterError(f"cannot spool {len(records)} dead-letter copies: {exc}") from exc
        for copy, reason in records:
            self._count(copy, "spooled")
            log.error(
                "dead-letter copy of %s[%s]@%s spooled locally (%s): %s",
                copy.source_topic,
                copy.source_partition,
                copy.source_offset,
                copy.header(self._headers.error_type),
                reason,
            )

    def _count(self, copy: DeadLetterRecord, outcome: str) -> None:
        key = (copy.header(self._headers.error_type) or "unknown", outcome)
        child = self._counted.get(key)
        if child is None:
            child = self._counted[key] = self._dead_lettered.labels(*key)
        child.inc()


def _describe(error: KafkaError | None) -> str:
    if error is None:
        return "refused"
    return f"{error.name()}: {error.str()}"
