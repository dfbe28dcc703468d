"""Avro encoding in Confluent wire format (magic byte 0, 4-byte big-endian schema id, Avro body; Schema
Registry docs, "Wire format") via the registry.

Writers register the committed schema under the topic's subject (confluent-kafka's AvroSerializer); readers
resolve every writer version against their own (generated) reader schema with fastavro, so old records read
with defaults filled in, after checking the writer schema is safe to decode with (messaging.avro_safety).
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import fastavro
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from pydantic import BaseModel

from messaging.avro_safety import (
    IncompatibleDecimal,
    UnsafeWriterSchema,
    check_decimals,
    check_writer_schema,
    reader_decimals,
    use_bounded_decimals,
)
from messaging.registry import is_registry_unavailable, set_compatibility

M = TypeVar("M", bound=BaseModel)


class RegistryUnavailable(Exception):
    """The registry could not be reached; retry later, the record is fine."""


class UnencodableEvent(ValueError):
    """The event does not encode with its committed Avro schema (a value outside an Avro type, a decimal
    of another scale, text that is not Unicode); publishing it could never succeed."""


class AvroBodyWriter:
    """Writes records with one committed schema alone, as the registry-backed serializer would (both use
    fastavro), so a service can prove an event encodes before it promises to publish it."""

    def __init__(self, schema: str) -> None:
        self._parsed = fastavro.parse_schema(json.loads(schema))

    def __call__(self, record: dict[str, Any]) -> bytes:
        """The Avro body of record (no wire-format header). Raises UnencodableEvent."""
        buffer = io.BytesIO()
        try:
            fastavro.schemaless_writer(buffer, self._parsed, record)
        except Exception as exc:  # fastavro raises ValueError, TypeError, OverflowError, struct.error...
            raise UnencodableEvent(f"{type(exc).__name__}: {exc}"[:500]) from exc
        return buffer.getvalue()


# How long a schema id the registry does not know is taken as unknown without asking again (seconds).
UNKNOWN_ID_SECONDS = 60.0
# Magic byte and 4-byte schema id before the Avro body in every record (Confluent wire format).
WIRE_HEADER_BYTES = 5


class PoisonRecord(Exception):
    """The record can never be decoded (bad bytes, unknown schema id, unresolvable writer schema)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message


class EventCodec(Generic[M]):
    """Encodes and decodes one event type on one topic.

    schema: the Avro schema text writers register and readers resolve every writer version against; model: the
    pydantic model of the event. rules: checks a decoded event must pass before anyone acts on it; it raises
    ValueError for an event that breaks them, which decode() reports as a PoisonRecord of kind "InvalidEvent".
    key_of: the record key every event must be written under (a record under another key is an InvalidEvent
    too: its partition, and so its order with the other events of the same entity, would be wrong).
    subject: the registry subject writers register under (default: the serializer's, `<topic>-value`);
    compatibility: the level set on that subject before the first write (default: left as the registry has it).
    """

    def __init__(
        self,
        client: SchemaRegistryClient,
        topic: str,
        schema: str,
        model: type[M],
        rules: Callable[[M], None] | None = None,
        *,
        subject: str | None = None,
        compatibility: str | None = None,
        key_of: Callable[[M], str] | None = None,
    ) -> None:
        if compatibility is not None and subject is None:
            raise ValueError("a compatibility level needs the subject it is set on")
        self.topic = topic
        self.model = model
        self._rules = rules
        self._client = client
        self._subject = subject
        self._compatibility = compatibility
        self._context = SerializationContext(topic, MessageField.VALUE)
        conf: dict[str, Any] = {"auto.register.schemas": True}
        if subject is not None:
            conf["subject.name.strategy"] = lambda _context, _record_name: subject
        self._serializer = AvroSerializer(client, schema, conf=conf)
        self._reader = fastavro.parse_schema(json.loads(schema))
        self._writers: dict[int, Any] = {}  # schema id -> parsed writer schema
        self._unknown_ids: dict[int, float] = {}  # schema id -> when the registry said it has none (monotonic)
        self._key_of = key_of
        self._compatibility_set = compatibility is None
        self._record_names = {_record_name(schema)}
        self._reader_decimals = reader_decimals(schema)
        self._writer_checked: dict[int, str | None] = {}  # schema id -> why it is unsafe (None: safe)
        use_bounded_decimals()

    def encode(self, event: M | dict[str, Any]) -> bytes:
        """The record value in wire format. Raises RegistryUnavailable while the schema cannot be registered or
        looked up; any other error (a value the schema cannot hold, a schema the registry refuses) propagates
        as the serializer raised it."""
        record = event.model_dump() if isinstance(event, BaseModel) else event
        try:
            if not self._compatibility_set:
                assert self._subject is not None and self._compatibility is not None
                set_compatibility(self._client, self._subject, self._compatibility)
                self._compatibility_set = True
            return self._serializer(record, self._context)
        except Exception as exc:
            if is_registry_unavailable(exc):
                raise RegistryUnavailable(str(exc)) from exc
            raise

    def decode(self, data: bytes | None, key: bytes | None = None) -> M:
        """The event of a wire-format value, resolved to the reader schema and checked by the rules.

        The body must end where the Avro value ends (trailing bytes are a writer's error, not padding), and
        when the codec has a key_of and key is given, key must be the event's key. Raises PoisonRecord for a
        record that will never decode (kind: EmptyValue, InvalidWireFormat, UnknownSchemaId,
        IncompatibleWriterSchema, UnsafeWriterSchema, InvalidEvent or UndecodableRecord), and
        RegistryUnavailable while its writer schema cannot be fetched (the record is fine: read it again later).
        """
        if data is None:
            raise PoisonRecord("EmptyValue", "record has no value")
        try:
            writer = self._writer_schema(data)
            body = io.BytesIO(data)
            body.seek(WIRE_HEADER_BYTES)
            record = fastavro.schemaless_reader(body, writer, self._reader)
            if body.tell() != len(data):
                raise PoisonRecord("UndecodableRecord", f"{len(data) - body.tell()} bytes after the Avro value")
        except PoisonRecord:
            raise
        except Exception as exc:
            if is_registry_unavailable(exc):
                raise RegistryUnavailable(str(exc)) from exc
            raise PoisonRecord(_kind(exc, data), str(exc) or type(exc).__name__) from exc
        try:
            event = self.model.model_validate(record)
            if self._rules is not None:
                self._rules(event)
        except Exception as exc:
            raise PoisonRecord("InvalidEvent", str(exc)) from exc
        if self._key_of is not None and key is not None and key != self._key_of(event).encode():
            shown = key[:60].decode("utf-8", "replace")
            raise PoisonRecord("InvalidEvent", f"record key {shown!r} is not the event's key {self._key_of(event)}")
        return event

    def _writer_schema(self, data: bytes) -> Any:
        """The parsed writer schema the record names, checked to be safe to decode with (messaging.avro_safety)
        and to agree with the reader on every decimal; fetched and checked once per schema id. Raises
        PoisonRecord for a record not in the wire format or with an unsafe or incompatible writer schema;
        registry errors propagate."""
        if len(data) < WIRE_HEADER_BYTES or data[0] != 0:
            raise PoisonRecord("InvalidWireFormat", "not the Confluent wire format (magic byte 0, schema id)")
        schema_id = int.from_bytes(data[1:WIRE_HEADER_BYTES], "big")
        unknown_since = self._unknown_ids.get(schema_id)
        if unknown_since is not None and time.monotonic() - unknown_since < UNKNOWN_ID_SECONDS:
            raise PoisonRecord("UnknownSchemaId", f"schema id {schema_id} is not in the registry")
        if schema_id not in self._writer_checked:
            try:
                writer = self._client.get_schema(schema_id)
            except Exception as exc:
                if getattr(exc, "http_status_code", None) == 404:
                    # Remembered for a while: a run of records with made-up ids costs one lookup, not one each.
                    if len(self._unknown_ids) >= 10_000:
                        self._unknown_ids.clear()
                    self._unknown_ids[schema_id] = time.monotonic()
                raise
            try:
                check_writer_schema(writer.schema_str, self._record_names)
                check_decimals(writer.schema_str, self._reader_decimals)
                self._writers[schema_id] = fastavro.parse_schema(json.loads(writer.schema_str))
                self._writer_checked[schema_id] = None
            except IncompatibleDecimal as exc:
                self._writer_checked[schema_id] = f"IncompatibleWriterSchema:{exc}"
            except UnsafeWriterSchema as exc:
                self._writer_checked[schema_id] = f"UnsafeWriterSchema:{exc}"
        reason = self._writer_checked[schema_id]
        if reason is not None:
            kind, _, detail = reason.partition(":")
            raise PoisonRecord(kind, f"writer schema {schema_id}: {detail}")
        return self._writers[schema_id]


def _record_name(schema: str) -> str:
    parsed = json.loads(schema)
    name = parsed["name"]
    return name if "." in name else f"{parsed.get('namespace', '')}.{name}".lstrip(".")


def _kind(exc: Exception, data: bytes) -> str:
    if len(data) < 5 or data[0] != 0:
        return "InvalidWireFormat"
    if getattr(exc, "http_status_code", None) == 404:
        return "UnknownSchemaId"
    if type(exc).__name__ == "SchemaResolutionError":
        return "IncompatibleWriterSchema"
    return "UndecodableRecord"
