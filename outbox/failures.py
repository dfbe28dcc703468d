"""Why publishing an outbox row failed, and whether waiting can cure it.

Transient (retry the row later, with backoff): the broker or the registry unreachable or slow, the producer's
queue full, a delivery that timed out, a writer schema not registered while writers may not register it
(AUTO_REGISTER_SCHEMAS=false: the rows wait until the deploy pipeline registers it), anything not known to be
permanent. Permanent (park the row, outbox.parking):
an event that does not encode with its schema or does not validate as its event type, a registry that refuses
the writer schema (HTTP 409 incompatible / 422 invalid), a record over the producer's or the broker's size limit
(librdkafka's MSG_SIZE_TOO_LARGE and the broker's RecordTooLarge/RecordListTooLarge) or one the broker calls
invalid. Kafka's own classification (KafkaError.retriable(), the protocol's error table) agrees on every code
listed here.
"""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException
from pydantic import ValidationError

from messaging.avro_codec import RegistryUnavailable, UnencodableEvent
from messaging.registry import SchemaNotRegistered, SchemaRefused

# Kafka errors no retry cures: the record is too large or malformed for the producer or the broker.
PERMANENT_KAFKA_ERRORS = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,  # over message.max.bytes (librdkafka, at produce) or the broker's limit
        KafkaError.INVALID_MSG_SIZE,
        KafkaError.RECORD_LIST_TOO_LARGE,
        KafkaError.INVALID_RECORD,  # the broker refuses the record (e.g. a key a compacted topic needs)
        KafkaError._BAD_MSG,
        KafkaError._INVALID_ARG,
    }
)
_REASON_CHARS = 1000


@dataclass(frozen=True)
class PublishFailure:
    """One failed attempt at publishing a row: permanent (park it) or not (retry it), and why (at most 1,000
    characters, the error's type first)."""

    permanent: bool
    reason: str


class UnknownEventType(Exception):
    """A row names an event type this relay has no codec for."""


def classify(exc: BaseException) -> PublishFailure:
    """The failure exc (raised while encoding or producing a row) amounts to."""
    if isinstance(exc, (RegistryUnavailable, SchemaNotRegistered)):
        return _failure(False, exc)
    if isinstance(exc, (SchemaRefused, UnencodableEvent, ValidationError, UnknownEventType)):
        return _failure(True, exc)
    if isinstance(exc, BufferError):  # librdkafka's queue is full
        return _failure(False, exc)
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        return classify_delivery(exc.args[0])
    return _failure(False, exc)


def classify_delivery(err: KafkaError) -> PublishFailure:
    """The failure a delivery report's error (or a produce() call's) amounts to."""
    permanent = err.code() in PERMANENT_KAFKA_ERRORS
    return PublishFailure(permanent, f"KafkaError {err.name()}: {err.str()}"[:_REASON_CHARS])


def _failure(permanent: bool, exc: BaseException) -> PublishFailure:
    return PublishFailure(permanent, f"{type(exc).__name__}: {exc}"[:_REASON_CHARS])
