"""The dead-letter copy of a poison record: its key, its value (cut when it would not fit the producer's limit)
and the headers that name its origin and the reason it was parked."""

from __future__ import annotations

import time
from dataclasses import dataclass

from confluent_kafka import Message

from messaging.dead_letter_headers import DeadLetterHeaders

# Longest error message a dead-letter header carries (characters).
MAX_ERROR_MESSAGE = 2000
# librdkafka's upper bound on one record's framing beyond key, value and headers (RD_KAFKAP_MESSAGE_V2_MAX_OVERHEAD:
# varint length, attributes, timestamp delta, offset delta, key and value lengths, header count), in bytes.
RECORD_OVERHEAD_BYTES = 36
# Kept free below the limit on top of the exact framing, in bytes: the copy must never be refused for size.
SIZE_MARGIN_BYTES = 512


@dataclass(frozen=True)
class DeadLetterRecord:
    """What goes to the dead-letter topic (or the local spool) for one poison record.

    source_topic, source_partition, source_offset: the original's coordinates; key, value: the bytes to write
    (value cut when truncated); headers: (name, UTF-8 value) pairs; original_size: the original value's size
    in bytes.
    """

    source_topic: str
    source_partition: int
    source_offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    original_size: int
    truncated: bool

    def header(self, name: str) -> str | None:
        """The text of header name, or None when the copy has no such header."""
        return next((value.decode() for key, value in self.headers if key == name), None)


def dead_letter_headers(
    names: DeadLetterHeaders,
    message: Message,
    error_type: str,
    error_message: str,
    *,
    original_size: int | None = None,
    truncated: bool = False,
) -> list[tuple[str, bytes]]:
    """The headers that park message for error_type with error_message: the original record's own headers
    (its W3C `traceparent`, for one, so the copy stays in its trace), a null value as empty bytes, and then the
    dead-letter facts (UTF-8 values) named by names; an original header with one of those names is left out.

    original_size: the original value's size in bytes (default: len(message.value())); truncated: whether the
    copy's bytes were cut.
    """
    _, timestamp = message.timestamp()
    if original_size is None:
        original_size = len(message.value() or b"")
    ours = set(names.names())
    kept = [(name, _bytes(value)) for name, value in message.headers() or () if name not in ours]
    return [
        *kept,
        (names.original_topic, (message.topic() or "").encode()),
        (names.original_partition, str(message.partition()).encode()),
        (names.original_offset, str(message.offset()).encode()),
        (names.error_type, error_type.encode()),
        (names.error_message, error_message[:MAX_ERROR_MESSAGE].encode()),
        (names.original_timestamp, str(timestamp).encode()),
        (names.dead_lettered_at, str(int(time.time() * 1000)).encode()),
        (names.original_size, str(original_size).encode()),
        (names.truncated, b"true" if truncated else b"false"),
    ]


def _bytes(value: bytes | str | None) -> bytes:
    return value.encode() if isinstance(value, str) else value or b""


def headers_size(headers: list[tuple[str, bytes]]) -> int:
    """Bytes the headers take in a record: name, value and their two varint lengths (at most 5 bytes each)."""
    return sum(len(name.encode()) + len(value) + 10 for name, value in headers)


def record_size(key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]) -> int:
    """An upper bound of the size librdkafka checks against `message.max.bytes` for one record, in bytes."""
    return RECORD_OVERHEAD_BYTES + len(key or b"") + len(value or b"") + headers_size(headers)


def dead_letter_copy(
    names: DeadLetterHeaders, message: Message, error_type: str, error_message: str, max_message_bytes: int
) -> DeadLetterRecord:
    """The copy of message to dead-letter for error_type/error_message, at most max_message_bytes in size.

    The key and value are kept byte for byte when the record fits; otherwise the value is cut (and the key
    too, to what the value leaves or at least half the room, when it is itself huge) so that key, value and
    headers fit within
    max_message_bytes (librdkafka's `message.max.bytes`, checked on every produce, MSG_SIZE_TOO_LARGE
    otherwise) with SIZE_MARGIN_BYTES to spare. Raises ValueError when not even the headers fit.
    """
    key, value = message.key(), message.value()
    original_size = len(value or b"")
    headers = dead_letter_headers(names, message, error_type, error_message, original_size=original_size)
    truncated = record_size(key, value, headers) + SIZE_MARGIN_BYTES > max_message_bytes
    if truncated:
        headers = dead_letter_headers(
            names, message, error_type, error_message, original_size=original_size, truncated=True
        )
        room = max_message_bytes - SIZE_MARGIN_BYTES - record_size(None, None, headers)
        if room < 0:
            raise ValueError(f"the dead-letter headers alone exceed {max_message_bytes} bytes")
        if key is not None:
            key = key[: max(room // 2, room - original_size)]
        if value is not None:
            value = value[: room - len(key or b"")]
    return DeadLetterRecord(
        message.topic() or "",
        int(message.partition() or 0),
        int(message.offset() or 0),
        key,
        value,
        headers,
        original_size,
        truncated,
    )
