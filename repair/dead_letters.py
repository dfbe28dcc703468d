"""Dead-lettered records as an operator handles them: a copy with the facts its dead-letter headers carry, the
selection of copies to act on, and the replay of selected copies to the topic they were read from.

The header names are the topology's (events.topology.DEAD_LETTER_HEADERS: Kafka Connect's `__connect.errors.*`
and this project's `__orderprocessing.dlq.*`); values are UTF-8 text, numbers in decimal.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from events.topology import DEAD_LETTER_HEADERS
from messaging.avro_codec import PoisonRecord, RegistryUnavailable
from messaging.topic_reader import OffsetRange
from observability.logs import order_context
from observability.trace_context import FIELDS as TRACE_FIELDS

H = DEAD_LETTER_HEADERS


@dataclass(frozen=True)
class DeadLetter:
    """One dead-letter copy: its key and value bytes (the value cut when truncated), its headers as
    (name, bytes) pairs, and where it is: topic (the dead-letter topic it is in, or was meant for) with partition
    and offset, or, for a copy kept in a service's spool, the spool row's id and the reason the topic refused it
    (partition and offset None then). timestamp_ms: the copy's own record timestamp (epoch ms), if any."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    partition: int | None = None
    offset: int | None = None
    timestamp_ms: int | None = None
    spool_id: int | None = None
    spool_reason: str | None = None

    def header(self, name: str) -> str | None:
        """The text of the last header called name (bytes that are not UTF-8 replaced), None when absent."""
        found = [value for key, value in self.headers if key == name]
        return found[-1].decode("utf-8", "replace") if found else None

    def _number(self, name: str) -> int | None:
        text = self.header(name)
        try:
            return int(text) if text is not None else None
        except ValueError:
            return None

    @property
    def where(self) -> str:
        """Where the copy is, for people: `topic[partition]@offset` or `spool row <id> (for topic)`."""
        if self.spool_id is not None:
            return f"spool row {self.spool_id} (for {self.topic})"
        return f"{self.topic}[{self.partition}]@{self.offset}"

    @property
    def key_text(self) -> str | None:
        """The key as text (bytes that are not UTF-8 replaced), None for a record without key."""
        return None if self.key is None else self.key.decode("utf-8", "replace")

    @property
    def original_topic(self) -> str | None:
        """The topic the original record was read from (`__connect.errors.topic`)."""
        return self.header(H.original_topic)

    @property
    def original_partition(self) -> int | None:
        """The original record's partition."""
        return self._number(H.original_partition)

    @property
    def original_offset(self) -> int | None:
        """The original record's offset."""
        return self._number(H.original_offset)

    @property
    def original(self) -> str:
        """The original record's coordinates, `topic[partition]@offset` ("?" for what the headers lack)."""

        def shown(value: object) -> str:
            return "?" if value is None else str(value)

        return f"{shown(self.original_topic)}[{shown(self.original_partition)}]@{shown(self.original_offset)}"

    @property
    def error_type(self) -> str | None:
        """Why it was dead-lettered, e.g. UnknownSchemaId, InvalidEvent (`__connect.errors.exception.class.name`)."""
        return self.header(H.error_type)

    @property
    def error_message(self) -> str | None:
        """The error in detail (`__connect.errors.exception.message`)."""
        return self.header(H.error_message)

    @property
    def original_size(self) -> int | None:
        """The original value's size in bytes (the copy's own value may be shorter when truncated)."""
        return self._number(H.original_size)

    @property
    def truncated(self) -> bool:
        """Whether the copy's value (or key) was cut to fit: it is not the original record."""
        return self.header(H.truncated) == "true"

    @property
    def original_timestamp(self) -> int | None:
        """The original record's timestamp, epoch ms."""
        return self._number(H.original_timestamp)

    @property
    def dead_lettered_at(self) -> int | None:
        """When it was dead-lettered, epoch ms."""
        return self._number(H.dead_lettered_at)

    def to_json(self) -> dict[str, Any]:
        """The copy's facts as JSON (no value bytes): where it is, key, error, original coordinates, size."""
        facts: dict[str, Any] = {"topic": self.topic}
        if self.spool_id is not None:
            facts |= {"spoolId": self.spool_id, "spoolReason": self.spool_reason}
        else:
            facts |= {"partition": self.partition, "offset": self.offset}
        return facts | {
            "key": self.key_text,
            "errorType": self.error_type,
            "errorMessage": self.error_message,
            "originalTopic": self.original_topic,
            "originalPartition": self.original_partition,
            "originalOffset": self.original_offset,
            "originalSize": self.original_size,
            "copySize": len(self.value or b""),
            "truncated": self.truncated,
            "originalTimestamp": self.original_timestamp,
            "deadLetteredAt": self.dead_lettered_at,
        }


@dataclass(frozen=True)
class Selection:
    """Which copies to act on: all of these that are given must hold. error_type and key are compared exactly
    (key as UTF-8 text); partition, first_offset and last_offset (inclusive) apply to copies on a topic; limit
    keeps the first that many matches (in partition and offset order, or spool order)."""

    error_type: str | None = None
    key: str | None = None
    partition: int | None = None
    first_offset: int | None = None
    last_offset: int | None = None
    limit: int | None = None

    def offsets(self) -> OffsetRange:
        """The part of the topic to read: only what the partition and offset bounds let through."""
        partitions = None if self.partition is None else frozenset({self.partition})
        return OffsetRange(self.first_offset, self.last_offset, partitions)

    def matches(self, copy: DeadLetter) -> bool:
        """Whether copy passes every filter given (limit aside)."""
        if self.error_type is not None and copy.error_type != self.error_type:
            return False
        if self.key is not None and copy.key_text != self.key:
            return False
        if copy.offset is not None:
            if self.partition is not None and copy.partition != self.partition:
                return False
            if self.first_offset is not None and copy.offset < self.first_offset:
                return False
            if self.last_offset is not None and copy.offset > self.last_offset:
                return False
        return True

    def select(self, copies: Iterable[DeadLetter]) -> list[DeadLetter]:
        """The copies that match, in partition and offset order (spool rows by id), at most limit of them."""
        chosen = sorted(
            (copy for copy in copies if self.matches(copy)),
            key=lambda c: (c.spool_id or 0, c.partition or 0, c.offset or 0),
        )
        return chosen if self.limit is None else chosen[: self.limit]


# -- replay ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outgoing:
    """A record to produce: topic, key and value bytes, and headers ((name, bytes) pairs)."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass(frozen=True)
class Delivery:
    """What the broker answered for one record: error None and its partition and offset when it was written,
    else the error's description."""

    error: str | None
    partition: int | None = None
    offset: int | None = None


class Sender(Protocol):
    """Produces records and waits for the broker's answer to each."""

    def send(self, records: Sequence[Outgoing]) -> list[Delivery]:
        """One Delivery per record, in order, once each was confirmed or refused (or timed out)."""
        ...


class Decoder(Protocol):
    """Decodes a value as the event of the topic it was read from."""

    def decode(self, topic: str, key: bytes | None, value: bytes | None) -> dict[str, Any]:
        """The event as JSON. Raises PoisonRecord when it can never be processed (LookupError: topic has no
        declared event), RegistryUnavailable while its writer schema cannot be fetched."""
        ...


REPLAYED = "replayed"
WOULD_REPLAY = "would replay"
SKIPPED = "skipped"
FAILED = "failed"


@dataclass(frozen=True)
class Outcome:
    """What became of one selected copy: action (REPLAYED, WOULD_REPLAY, SKIPPED, FAILED) and why or where."""

    copy: DeadLetter
    action: str
    detail: str


@dataclass
class ReplayReport:
    """Every selected copy's outcome; dry_run: nothing was produced."""

    dry_run: bool
    outcomes: list[Outcome] = field(default_factory=list)

    def count(self, action: str) -> int:
        """How many outcomes are action."""
        return sum(1 for outcome in self.outcomes if outcome.action == action)

    @property
    def failed(self) -> bool:
        """Whether any copy failed (the command's exit code is then non-zero)."""
        return self.count(FAILED) > 0

    def summary(self) -> str:
        """One line: how many were (or would be) replayed, skipped and failed, of how many selected."""
        done = f"would replay {self.count(WOULD_REPLAY)}" if self.dry_run else f"replayed {self.count(REPLAYED)}"
        line = f"{done}, skipped {self.count(SKIPPED)}, failed {self.count(FAILED)} of {len(self.outcomes)} selected"
        return line + (" (dry run: nothing produced)" if self.dry_run else "")


def replay_refusal(copy: DeadLetter, source_topic: str | None) -> str | None:
    """Why copy must not be replayed to its original topic, or None when it may.

    Refused: a truncated copy (it is not the original record, whose coordinates it names), a copy without its
    original topic header, and one whose original topic is not source_topic, the topic that dead-letters to the
    topic the copy is in (a copy names no other place it may go).
    """
    if copy.truncated:
        return (
            f"truncated copy ({len(copy.value or b'')} of {copy.original_size} bytes): not the original record; "
            f"the original is {copy.original}"
        )
    if copy.original_topic is None:
        return f"no {H.original_topic} header: its original topic is unknown"
    if copy.original_topic != source_topic:
        expected = source_topic or "no topic of this deployment"
        return f"its original topic {copy.original_topic} is not {expected}, the topic {copy.topic} takes records from"
    return None


def replay(
    copies: Sequence[DeadLetter],
    source_topic: str | None,
    decoder: Decoder,
    sender: Sender | None,
) -> ReplayReport:
    """Produce each copy's key and value, unchanged, to its original topic, with the original's W3C trace context
    headers (`traceparent`, `tracestate`: the replay continues the original's trace) and no others; sender None
    is a dry run that produces nothing and says what it would do.

    Skipped (never produced): copies replay_refusal refuses, a second copy of an original already replayed in
    this run, and copies that still do not decode as the original topic's event (PoisonRecord: replaying them
    would only dead-letter them again). A copy is failed when the registry cannot be asked (RegistryUnavailable)
    or the broker did not confirm it. Consumers are idempotent, so an original replayed again (in another run,
    or after a failure) is processed once.
    """
    report = ReplayReport(dry_run=sender is None)
    to_send: list[DeadLetter] = []
    replayed: dict[tuple[str | None, int | None, int | None], DeadLetter] = {}
    verdicts: list[Outcome | None] = []
    for copy in copies:
        refusal = replay_refusal(copy, source_topic)
        original = (copy.original_topic, copy.original_partition, copy.original_offset)
        if refusal is None and original in replayed and original[1] is not None:
            refusal = f"another copy of {copy.original} ({replayed[original].where}) is replayed in this run"
        if refusal is not None:
            verdicts.append(Outcome(copy, SKIPPED, refusal))
            continue
        assert copy.original_topic is not None
        try:
            with _key_context(copy):  # what the registry client logs meanwhile names the order
                decoder.decode(copy.original_topic, copy.key, copy.value)
        except PoisonRecord as exc:
            verdicts.append(Outcome(copy, SKIPPED, f"still cannot be processed: {exc.kind}: {exc.message[:200]}"))
            continue
        except RegistryUnavailable as exc:
            verdicts.append(Outcome(copy, FAILED, f"the registry cannot tell whether it decodes now: {exc}"[:300]))
            continue
        replayed[original] = copy
        verdicts.append(None)
        to_send.append(copy)
    deliveries = iter(
        sender.send([Outgoing(c.original_topic or "", c.key, c.value, _trace_headers(c)) for c in to_send])
        if sender
        else []
    )
    for copy, verdict in zip(copies, verdicts, strict=True):
        if verdict is not None:
            report.outcomes.append(verdict)
        elif sender is None:
            report.outcomes.append(Outcome(copy, WOULD_REPLAY, f"-> {copy.original_topic}"))
        else:
            delivery = next(deliveries)
            if delivery.error is None:
                where = f"{copy.original_topic}[{delivery.partition}]@{delivery.offset}"
                report.outcomes.append(Outcome(copy, REPLAYED, f"-> {where}"))
            else:
                report.outcomes.append(Outcome(copy, FAILED, f"-> {copy.original_topic}: {delivery.error}"))
    return report


def _key_context(copy: DeadLetter) -> contextlib.AbstractContextManager[None]:
    """The copy's key (the orderId of both topics' records) bound to the lines logged inside; nothing without one."""
    key = copy.key_text
    return order_context(key) if key else contextlib.nullcontext()


def _trace_headers(copy: DeadLetter) -> tuple[tuple[str, bytes], ...]:
    """The copy's W3C trace context headers, which it kept from its original."""
    return tuple((name, value) for name, value in copy.headers if name in TRACE_FIELDS)
