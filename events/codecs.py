"""The codec of each declared event: its generated model, the committed schema embedded in the generated
package as reader and writer schema, its rules, its subject and compatibility (all from the topology)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from confluent_kafka.schema_registry import SchemaRegistryClient

from contract_models import events as generated
from events.topology import TopicDeclaration
from messaging.avro_codec import EventCodec


def codec_for(
    registry: SchemaRegistryClient, declaration: TopicDeclaration, topic: str, *, auto_register: bool = True
) -> EventCodec[Any]:
    """The codec of declaration's event on topic (this deployment's name for it).

    A decoded event that breaks the event's rules, or came under another key than the declared key field's,
    is a PoisonRecord of kind InvalidEvent. With auto_register the first write registers the schema and sets
    the declared compatibility on the topic's subject; without, writes use the id the subject already has for
    the schema and fail closed (messaging.registry.SchemaNotRegistered) while it has none.
    """
    event = declaration.event
    return EventCodec(
        registry,
        topic,
        getattr(generated, f"{event.module_name.upper()}_SCHEMA"),
        getattr(generated, event.name),
        rules=_rules(event.rules),
        subject=declaration.subject(topic),
        compatibility=declaration.compatibility,
        key_of=declaration.key_of,
        auto_register=auto_register,
    )


def _rules(reference: str | None) -> Callable[[Any], None] | None:
    if reference is None:
        return None
    module, _, function = reference.partition(":")
    rules: Callable[[Any], None] = getattr(importlib.import_module(module), function)
    return rules
