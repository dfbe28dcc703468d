"""The codecs of each declared event: its generated model, the committed schema embedded in the generated
package as reader and writer schema, its rules, its subject, the history carried over to that subject and
its compatibility (all from the topology)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from confluent_kafka.schema_registry import SchemaRegistryClient

from contract_models import events as generated
from events.topology import EventType, TopicDeclaration
from messaging.avro_codec import EventCodec
from messaging.topic_codec import RecordDecoder, TopicCodec


def event_codec_for(
    registry: SchemaRegistryClient,
    declaration: TopicDeclaration,
    topic: str,
    event: EventType | None = None,
    *,
    auto_register: bool = True,
) -> EventCodec[Any]:
    """The codec of event (default: the topic's first type) of declaration on topic (this deployment's name).

    A decoded event that breaks the event's rules, or came under another key than the declared key field's,
    is a PoisonRecord of kind InvalidEvent. With auto_register the first write carries the versions of the
    event's history subject over to its subject (when it has one), sets the declared compatibility on it and
    registers the schema; without, writes use the id the subject already has for the schema and fail closed
    (messaging.registry.SchemaNotRegistered) while it has none.
    """
    event = event or declaration.event
    return EventCodec(
        registry,
        topic,
        getattr(generated, f"{event.module_name.upper()}_SCHEMA"),
        getattr(generated, event.name),
        rules=_rules(event.rules),
        subject=declaration.subject(topic, event),
        compatibility=declaration.compatibility,
        key_of=declaration.key_of,
        auto_register=auto_register,
        history_subject=declaration.history_subject(topic, event),
    )


def event_codecs(
    registry: SchemaRegistryClient, declaration: TopicDeclaration, topic: str, *, auto_register: bool = True
) -> dict[str, EventCodec[Any]]:
    """The codec of every event type declaration carries on topic, by event name (the outbox rows' event_type);
    auto_register as for event_codec_for."""
    return {
        event.name: event_codec_for(registry, declaration, topic, event, auto_register=auto_register)
        for event in declaration.events
    }


def codec_for(registry: SchemaRegistryClient, declaration: TopicDeclaration, topic: str) -> RecordDecoder:
    """What the records of declaration's topic (named topic here) decode with: the event codec of its one event
    type, or a TopicCodec picking each record's type by its writer schema's record name."""
    if len(declaration.events) == 1:
        return event_codec_for(registry, declaration, topic)
    codecs = {event.full_name: event_codec_for(registry, declaration, topic, event) for event in declaration.events}
    return TopicCodec(registry, codecs)


def _rules(reference: str | None) -> Callable[[Any], None] | None:
    if reference is None:
        return None
    module, _, function = reference.partition(":")
    rules: Callable[[Any], None] = getattr(importlib.import_module(module), function)
    return rules
