"""Decoding a topic that carries several event types, one registry subject each (TopicRecordNameStrategy).

A record names its writer schema by id (Confluent wire format), not its type. The type is the full name of
the record at the writer schema's top level: looked up once per id from the registry (the client caches the
schema) and remembered, then the record goes to that type's EventCodec, which checks the writer schema and
decodes as it would alone. A record whose type the topic does not carry, or whose writer schema cannot be
looked up, is left to the first type's codec, so it fails exactly as on a topic of one type (UnsafeWriterSchema
"record ... is not one this consumer reads", RegistryUnavailable...). An id the registry does not know is an
UnknownSchemaId at once, and is not asked for again for UNKNOWN_ID_SECONDS, as a codec of one type does: a run
of records with made-up ids costs one lookup, not one each.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Protocol

from confluent_kafka.schema_registry import SchemaRegistryClient

from messaging.avro_codec import NO_KEY, UNKNOWN_ID_SECONDS, EventCodec, PoisonRecord, _NoKey, wire_schema_id
from messaging.avro_safety import UnsafeWriterSchema, writer_record_name

# Schema ids whose record name is remembered at most (a run of made-up ids cannot grow it without bound).
MAX_REMEMBERED_IDS = 10_000


class RecordDecoder(Protocol):
    """What a consumer decodes records with: an EventCodec, or a TopicCodec for a topic of several types."""

    def decode(self, data: bytes | None, key: bytes | _NoKey | None = NO_KEY) -> Any:
        """The event of a wire-format value. Raises PoisonRecord or RegistryUnavailable (EventCodec.decode)."""
        ...


class TopicCodec:
    """Decodes the records of one topic into the event of each record's type.

    codecs: the EventCodec of every event type the topic carries, by the full name of its Avro record
    (e.g. orderprocessing.events.OrderCreated), the first being the topic's original type. client: the registry
    the writer schemas are looked up in (the codecs' own).
    """

    def __init__(self, client: SchemaRegistryClient, codecs: Mapping[str, EventCodec[Any]]) -> None:
        if not codecs:
            raise ValueError("a topic codec needs at least one event codec")
        self._client = client
        self._codecs = dict(codecs)
        self._fallback = next(iter(self._codecs.values()))
        self._names: dict[int, str] = {}  # schema id -> the full name of its top-level record
        self._unknown_ids: dict[int, float] = {}  # schema id -> when the registry said it has none (monotonic)

    @property
    def codecs(self) -> Mapping[str, EventCodec[Any]]:
        """The codec of each event type, by record full name."""
        return self._codecs

    def decode(self, data: bytes | None, key: bytes | _NoKey | None = NO_KEY) -> Any:
        """The event of a wire-format value, decoded by its type's codec (EventCodec.decode: raises PoisonRecord
        for a record that will never decode, UnknownSchemaId among them, RegistryUnavailable while its writer
        schema cannot be fetched)."""
        name = self._record_name(data)
        codec = self._codecs.get(name) if name is not None else None
        return (codec or self._fallback).decode(data, key)

    def _record_name(self, data: bytes | None) -> str | None:
        """The record full name the writer schema of data names; None when it cannot be told (no wire format,
        the registry away, an unsafe schema): the fallback codec then says why. Raises PoisonRecord
        (UnknownSchemaId) for an id the registry does not know."""
        schema_id = wire_schema_id(data)
        if schema_id is None:
            return None
        name = self._names.get(schema_id)
        if name is not None:
            return name
        unknown_since = self._unknown_ids.get(schema_id)
        if unknown_since is not None and time.monotonic() - unknown_since < UNKNOWN_ID_SECONDS:
            raise PoisonRecord("UnknownSchemaId", f"schema id {schema_id} is not in the registry")
        try:
            name = writer_record_name(self._client.get_schema(schema_id).schema_str)
        except UnsafeWriterSchema:
            return None
        except Exception as exc:
            if getattr(exc, "http_status_code", None) == 404:
                if len(self._unknown_ids) >= MAX_REMEMBERED_IDS:
                    self._unknown_ids.clear()
                self._unknown_ids[schema_id] = time.monotonic()
                raise PoisonRecord("UnknownSchemaId", f"schema id {schema_id} is not in the registry") from exc
            return None  # the registry away: the fallback codec asks again and classifies it
        if len(self._names) >= MAX_REMEMBERED_IDS:
            self._names.clear()
        self._names[schema_id] = name
        return name
