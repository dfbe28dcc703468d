"""Avro encoding in Confluent wire format (magic byte 0, 4-byte big-endian schema id, Avro body; Schema
Registry docs, "Wire format") via the registry.

Writers register the committed schema under the topic's subject (confluent-kafka's AvroSerializer), or, with
auto_register off (AUTO_REGISTER_SCHEMAS=false), only look up its id there (the registry's "look up schema under
subject", POST /subjects/{subject}?normalize=true, so a schema registered in another layout is found) and
refuse to write while it is not registered (SchemaNotRegistered); readers resolve every writer version against
their own (generated) reader schema with fastavro, so old records read with defaults filled in, after checking
the writer schema is safe to decode with (messaging.avro_safety).

The serializer registers (or looks up) the schema for the first record; after that a writer writes each record
itself, with fastavro, the parsed schema and that id (the bytes the serializer would write, without its per-record
work). A writer keeps the id the registry gave its schema (confluent-kafka's serializer and client cache it too), so
it checks its registration now and then (`EventCodec.check_registration`): a registry that lost or reassigned the id
makes it register again and drop those caches; a registry that refuses the schema (409/422) is reported, and the
codec's next encode asks the registry again instead of writing records with an id the subject disowns.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

import fastavro
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext
from pydantic import BaseModel

from messaging.avro_safety import (
    IncompatibleDecimal,
    UnsafeWriterSchema,
    WriterSchemaCheck,
    use_bounded_decimals,
)
from messaging.registry import (
    NORMALIZED_SERIALIZER_CONF,
    SchemaNotRegistered,
    SchemaRefused,
    SubjectRegistration,
    is_registry_unavailable,
    set_compatibility,
)

M = TypeVar("M", bound=BaseModel)


class RegistryUnavailable(Exception):
    """The registry could not be reached; retry later, the record is fine."""


@dataclass(frozen=True)
class RegistrationCheck:
    """What the registry said about a writer's schema when last asked.

    status: "ok" (registered, schema_id is its id), "refused" (the registry refuses it: detail is the registry's
    reason, fields the fields it names) or "unknown" (the registry could not be asked: detail says why; writers
    carry on, failing open). reregistered: the id the writer had cached was unknown to the registry or another
    schema's there, so it registered again and dropped its caches. checked_at: epoch s.
    """

    status: Literal["ok", "refused", "unknown"]
    subject: str
    checked_at: float
    schema_id: int | None = None
    detail: str | None = None
    fields: tuple[str, ...] = ()
    reregistered: bool = False

    @classmethod
    def refusal(cls, exc: SchemaRefused, checked_at: float) -> RegistrationCheck:
        """The check a refusal amounts to."""
        return cls("refused", exc.subject, checked_at, detail=str(exc), fields=tuple(exc.fields))


class UnencodableEvent(ValueError):
    """The event does not encode with its committed Avro schema (a value outside an Avro type, a decimal
    of another scale, text that is not Unicode); publishing it could never succeed."""


def write_avro(buffer: io.BytesIO, parsed: Any, record: dict[str, Any]) -> None:
    """Append record's Avro body, written with the parsed schema by fastavro, to buffer. Raises
    UnencodableEvent for a record the schema does not take."""
    try:
        fastavro.schemaless_writer(buffer, parsed, record)
    except Exception as exc:  # fastavro raises ValueError, TypeError, OverflowError, struct.error...
        raise UnencodableEvent(f"{type(exc).__name__}: {exc}"[:500]) from exc


class AvroBodyWriter:
    """Writes records with one committed schema alone, as the registry-backed serializer would (both use
    fastavro), so a service can prove an event encodes before it promises to publish it."""

    def __init__(self, schema: str) -> None:
        self._parsed = fastavro.parse_schema(json.loads(schema))

    def __call__(self, record: dict[str, Any]) -> bytes:
        """The Avro body of record (no wire-format header). Raises UnencodableEvent."""
        buffer = io.BytesIO()
        write_avro(buffer, self._parsed, record)
        return buffer.getvalue()


class _NoKey:
    """The key argument was left out: the caller does not know the record's key."""


NO_KEY = _NoKey()
# How long a schema id the registry does not know is taken as unknown without asking again (seconds).
UNKNOWN_ID_SECONDS = 60.0
# Magic byte and 4-byte schema id before the Avro body in every record (Confluent wire format).
WIRE_HEADER_BYTES = 5


def wire_schema_id(value: bytes | None) -> int | None:
    """The registry schema id a Confluent wire-format record value names (bytes 1-4, big-endian, after the
    magic byte 0; Schema Registry docs, "Wire format"), or None for a value that is not in that format (no
    value, shorter than WIRE_HEADER_BYTES, another magic byte)."""
    if value is None or len(value) < WIRE_HEADER_BYTES or value[0] != 0:
        return None
    return int.from_bytes(value[1:WIRE_HEADER_BYTES], "big")


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
    auto_register: register the schema when the subject lacks it (confluent-kafka's `auto.register.schemas`);
    False: write only with the id the registry already has for exactly this schema under the subject, set no
    compatibility, carry no history over, and fail closed (SchemaNotRegistered) while there is none.
    history_subject: a subject whose versions are registered under subject, in order, before the schema is
    (SubjectRegistration.carry_over), at the first write and whenever the schema is registered again: the
    history of a subject the event type used before; that subject is left as it is.
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
        auto_register: bool = True,
        history_subject: str | None = None,
    ) -> None:
        if (compatibility is not None or history_subject is not None) and subject is None:
            raise ValueError("a compatibility level or history needs the subject it is set on")
        self.topic = topic
        self.model = model
        self._rules = rules
        self._client = client
        self._subject = subject
        self._compatibility = compatibility
        self._context = SerializationContext(topic, MessageField.VALUE)
        self._schema = schema
        self._auto_register = auto_register
        self._serializer_conf: dict[str, Any] = {"auto.register.schemas": auto_register, **NORMALIZED_SERIALIZER_CONF}
        if subject is not None:
            self._serializer_conf["subject.name.strategy"] = lambda _context, _record_name: subject
        # The writer's own client: dropping its cached ids (check_registration) leaves the readers' alone.
        self._writer_client = _client_like(client)
        self._serializer = AvroSerializer(self._writer_client, schema, conf=self._serializer_conf)
        self._written_id: int | None = None  # the schema id in the last record written
        self._stale = False  # set by check_registration (any thread), applied by the next encode
        self._registration = _registration(client, subject or f"{topic}-value", schema)
        self._reader = fastavro.parse_schema(json.loads(schema))
        self._writers: dict[int, Any] = {}  # schema id -> parsed writer schema
        self._unknown_ids: dict[int, float] = {}  # schema id -> when the registry said it has none (monotonic)
        self._key_of = key_of
        self._history_subject = history_subject
        # Without auto_register the subject is prepared by whoever registers the schema (make schema-register).
        self._subject_prepared = not auto_register or (compatibility is None and history_subject is None)
        self._check_writer = WriterSchemaCheck(schema)
        self._writer_checked: dict[int, str | None] = {}  # schema id -> why it is unsafe (None: safe)
        use_bounded_decimals()

    def encode(self, event: M | dict[str, Any]) -> bytes:
        """Serialize in the wire format. Raises RegistryUnavailable while the schema cannot be registered or
        looked up (retry later), SchemaRefused when the registry refuses the schema (409/422),
        SchemaNotRegistered (a SchemaRefused) when auto_register is off and the subject lacks the schema (404),
        and UnencodableEvent when the event does not fit the schema (neither will change by waiting)."""
        record = event.model_dump() if isinstance(event, BaseModel) else event
        if self._stale:
            self._apply_reset()
        try:
            if not self._subject_prepared:
                assert self._subject is not None
                if self._compatibility is not None:
                    set_compatibility(self._writer_client, self._subject, self._compatibility)
                self._carry_over_history()
                self._subject_prepared = True
            if self._written_id is not None:
                return self._write(self._written_id, record)
            value: bytes = self._serializer(record, self._context)
        except (SchemaRefused, UnencodableEvent):
            raise
        except Exception as exc:
            status = getattr(exc, "http_status_code", None)
            subject = self._registration.subject if self._registration else self._subject or f"{self.topic}-value"
            if status in (409, 422) and isinstance(exc, SchemaRegistryError):
                raise SchemaRefused(subject, status, exc.error_message) from exc
            if status == 404 and not self._auto_register and isinstance(exc, SchemaRegistryError):
                raise SchemaNotRegistered(subject, exc.error_message) from exc
            if is_registry_unavailable(exc) or isinstance(exc, SchemaRegistryError):
                raise RegistryUnavailable(str(exc)) from exc
            raise UnencodableEvent(f"{type(exc).__name__}: {exc}"[:500]) from exc
        self._written_id = wire_schema_id(value)
        return value

    def _write(self, schema_id: int, record: dict[str, Any]) -> bytes:
        """record in the wire format under schema_id, written by fastavro with the parsed schema (what the
        serializer does once it knows the id, without its per-record lookups). Raises UnencodableEvent."""
        buffer = io.BytesIO()
        buffer.write(b"\x00")
        buffer.write(schema_id.to_bytes(4, "big"))
        write_avro(buffer, self._reader, record)
        return buffer.getvalue()

    def check_registration(self, now: float) -> RegistrationCheck:
        """Ask the registry, past every cache, whether the schema this codec writes is registered under its
        subject with the id the codec writes (now: epoch s, recorded in the result). Blocking (a few HTTP
        requests of at most the client's timeout each); never raises. May run on another thread than encode():
        the caches are dropped by the next encode().

        Not registered (the subject was emptied, the registry lost its data): register again, setting the
        declared compatibility first where the subject has none of its own; with auto_register off, a refusal
        (SchemaNotRegistered) instead, which clears once the schema is registered. Registered with another id than the
        one written: the caches are dropped, so the next record carries the registry's id. Refused: the caches
        are dropped too, so encode() asks the registry and raises SchemaRefused instead of writing the old id.
        """
        registration = self._registration
        if registration is None:
            return RegistrationCheck("unknown", self.topic, now, detail="no registry URL to check against")
        try:
            found = registration.registered_id()
            if found is None and not self._auto_register:
                raise SchemaNotRegistered(registration.subject, "POST /subjects/{subject} answered 404")
            if found is None:
                if self._compatibility is not None and not registration.has_compatibility():
                    set_compatibility(self._writer_client, registration.subject, self._compatibility)
                self._carry_over_history()
                found = registration.register()
        except SchemaRefused as exc:
            self._reset_writer()
            return RegistrationCheck.refusal(exc, now)
        except Exception as exc:
            return RegistrationCheck("unknown", registration.subject, now, detail=f"{type(exc).__name__}: {exc}"[:300])
        stale = self._written_id is not None and self._written_id != found
        if stale:
            self._reset_writer()
        return RegistrationCheck("ok", registration.subject, now, schema_id=found, reregistered=stale)

    def _carry_over_history(self) -> None:
        """Register the history subject's versions under the subject first (a no-op without either). Raises
        SchemaRefused, and SchemaRegistryError while the registry cannot answer."""
        if self._history_subject is not None and self._registration is not None:
            self._registration.carry_over(self._history_subject)

    def _reset_writer(self) -> None:
        """Have the next encode forget every id the writer cached, so it registers (or looks up) the schema; the
        id written so far is forgotten now (a later check of an idle writer finds nothing stale to report)."""
        self._written_id = None
        self._stale = True

    def _apply_reset(self) -> None:
        self._stale = False
        self._writer_client.clear_caches()
        self._serializer = AvroSerializer(self._writer_client, self._schema, conf=self._serializer_conf)
        self._written_id = None

    def decode(self, data: bytes | None, key: bytes | _NoKey | None = NO_KEY) -> M:
        """The event of a wire-format value, resolved to the reader schema and checked by the rules.

        The body must end where the Avro value ends (trailing bytes are a writer's error, not padding), and
        when the codec has a key_of and key is given (None: the record has no key), key must be the event's
        key. Raises PoisonRecord for a record that will never decode (kind: EmptyValue, InvalidWireFormat,
        UnknownSchemaId, IncompatibleWriterSchema, UnsafeWriterSchema, InvalidEvent or UndecodableRecord), and
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
        if self._key_of is not None and not isinstance(key, _NoKey) and key != self._key_of(event).encode():
            shown = "no key" if key is None else key[:60].decode("utf-8", "replace")
            raise PoisonRecord("InvalidEvent", f"record key {shown!r} is not the event's key {self._key_of(event)}")
        return event

    def _writer_schema(self, data: bytes) -> Any:
        """The parsed writer schema the record names, checked by messaging.avro_safety.WriterSchemaCheck (the
        check the contract gates run too); fetched and checked once per schema id. Raises
        PoisonRecord for a record not in the wire format or with an unsafe or incompatible writer schema;
        registry errors propagate."""
        schema_id = wire_schema_id(data)
        if schema_id is None:
            raise PoisonRecord("InvalidWireFormat", "not the Confluent wire format (magic byte 0, schema id)")
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
                self._check_writer(writer.schema_str)
                self._writers[schema_id] = fastavro.parse_schema(json.loads(writer.schema_str))
                self._writer_checked[schema_id] = None
            except (IncompatibleDecimal, UnsafeWriterSchema) as exc:
                self._writer_checked[schema_id] = f"{exc.kind}:{exc}"
        reason = self._writer_checked[schema_id]
        if reason is not None:
            kind, _, detail = reason.partition(":")
            raise PoisonRecord(kind, f"writer schema {schema_id}: {detail}")
        return self._writers[schema_id]


def _client_like(client: SchemaRegistryClient) -> SchemaRegistryClient:
    """A client of its own with client's configuration (client itself when it has none to copy, e.g. a fake)."""
    config = getattr(client, "config", None)
    conf = config() if callable(config) else None
    return SchemaRegistryClient(dict(conf)) if isinstance(conf, dict) and conf.get("url") else client


def _registration(client: SchemaRegistryClient, subject: str, schema: str) -> SubjectRegistration | None:
    config = getattr(client, "config", None)
    conf = config() if callable(config) else None
    if not isinstance(conf, dict) or not isinstance(conf.get("url"), str):
        return None
    return SubjectRegistration(conf, subject, schema, timeout=float(conf.get("timeout", 5)))


def _kind(exc: Exception, data: bytes) -> str:
    if wire_schema_id(data) is None:
        return "InvalidWireFormat"
    if getattr(exc, "http_status_code", None) == 404:
        return "UnknownSchemaId"
    if type(exc).__name__ == "SchemaResolutionError":
        return "IncompatibleWriterSchema"
    return "UndecodableRecord"
