"""KAFKA_CLIENT_PROPERTIES: extra librdkafka properties for every Kafka client, and the properties the project
owns and so refuses there (librdkafka's CONFIGURATION.md names them all)."""

from __future__ import annotations

import json
import re

# Property -> why KAFKA_CLIENT_PROPERTIES may not set it (the setting that does, or the rule it would break).
OWNED_PROPERTIES: dict[str, str] = {
    "bootstrap.servers": "set KAFKA_BOOTSTRAP_SERVERS instead",
    "metadata.broker.list": "set KAFKA_BOOTSTRAP_SERVERS instead",
    "security.protocol": "set KAFKA_SECURITY_PROTOCOL instead",
    "sasl.mechanism": "set KAFKA_SASL_MECHANISM instead",
    "sasl.mechanisms": "set KAFKA_SASL_MECHANISM instead",
    "sasl.username": "set KAFKA_SASL_USERNAME instead",
    "sasl.password": "set KAFKA_SASL_PASSWORD instead",
    "ssl.ca.location": "set KAFKA_SSL_CA_LOCATION instead",
    "ssl.certificate.location": "set KAFKA_SSL_CERTIFICATE_LOCATION instead",
    "ssl.key.location": "set KAFKA_SSL_KEY_LOCATION instead",
    "ssl.key.password": "set KAFKA_SSL_KEY_PASSWORD instead",
    "enable.idempotence": "producers are idempotent (acks=all) so a retried send never duplicates an event",
    "acks": "producers wait for all in-sync replicas (acks=all) before an outbox row counts as published",
    "message.max.bytes": "the dead-letter publisher cuts copies to the producer's limit, which it states itself",
    "transactional.id": "producers are idempotent, not transactional",
    "enable.auto.commit": "consumers commit an offset only past finished work",
    "enable.auto.offset.store": "consumers commit an offset only past finished work",
    "auto.offset.reset": "the consumer runtime decides where a group starts",
    "enable.partition.eof": "each client decides whether it wants end-of-partition events",
    "group.id": "each consumer role has its own group (CONSUMER_GROUP)",
    "group.instance.id": "every consumer would take the same static member id and fence the others out",
    "client.id": "each client names itself, so logs and broker metrics tell them apart",
    "partitioner": "a key must map to the same partition from every producer, or an order's events reorder",
    "queuing.strategy": "records of one partition leave in the order they were produced",
}
# Whole families the project owns: TLS and SASL come only from their KAFKA_SSL_* / KAFKA_SASL_* variables, so no
# property can switch certificate checks off or bring credentials of its own.
OWNED_PREFIXES: dict[str, str] = {
    "ssl.": "TLS is set by the KAFKA_SSL_* variables",
    "ssl_": "TLS is set by the KAFKA_SSL_* variables",
    "sasl.": "SASL is set by the KAFKA_SASL_* variables",
    "enable.ssl.": "TLS is set by the KAFKA_SSL_* variables",
}
# librdkafka's other names for a property (CONFIGURATION.md "alias"); a topic property may also be given globally
# with the prefix "topic.".
ALIASES: dict[str, str] = {"request.required.acks": "acks"}

_NAME = re.compile(r"^[a-z][a-z0-9_.-]*$")


class ClientPropertiesError(ValueError):
    """KAFKA_CLIENT_PROPERTIES cannot be parsed or sets a property the project owns (OWNED_PROPERTIES)."""


def parse_client_properties(text: str) -> dict[str, str]:
    """The properties of text: a JSON object ({"client.rack": "eu-west-1a", "socket.keepalive.enable": true}) or
    comma-separated key=value pairs (client.rack=eu-west-1a,socket.keepalive.enable=true); "" is none.

    Values become the strings librdkafka takes (JSON true/false as "true"/"false", numbers as written); keys are
    trimmed and lower-case property names. Raises ClientPropertiesError for malformed text, a JSON value that
    is an object, array or null, a repeated key, or an owned property (checked by check_client_properties).
    """
    text = text.strip()
    if not text:
        return {}
    if text.startswith("{"):
        try:
            loaded = json.loads(text, object_pairs_hook=_no_repeats)
        except json.JSONDecodeError as exc:
            raise ClientPropertiesError(f"KAFKA_CLIENT_PROPERTIES is not a JSON object: {exc}") from None
        pairs = [(key, _json_value(key, value)) for key, value in loaded.items()]
    else:
        pairs = []
        for number, item in enumerate(text.split(","), start=1):
            key, equals, value = item.partition("=")
            if not equals or not key.strip():
                # Not the item itself: a value may be a secret.
                raise ClientPropertiesError(f"KAFKA_CLIENT_PROPERTIES: item {number} is not key=value")
            pairs.append((key, value.strip()))
    properties: dict[str, str] = {}
    for raw_key, value in pairs:
        key = raw_key.strip()
        if not _NAME.match(key):
            raise ClientPropertiesError(
                f"KAFKA_CLIENT_PROPERTIES: {key[:60]!r} is not a librdkafka property name (a-z, 0-9, '.', '_', '-')"
            )
        if key in properties:
            raise ClientPropertiesError(f"KAFKA_CLIENT_PROPERTIES sets {key} twice")
        properties[key] = value
    check_client_properties(properties)
    return properties


def check_client_properties(properties: dict[str, str]) -> None:
    """Raises ClientPropertiesError naming every owned property properties sets, and why: by its name, any alias
    of it, or its `topic.`-prefixed form (OWNED_PROPERTIES, ALIASES), or as one of a family (OWNED_PREFIXES)."""
    refused = []
    for key in properties:
        reason = _owned(key)
        if reason is not None:
            refused.append(f"{key} ({reason})")
    if refused:
        raise ClientPropertiesError("KAFKA_CLIENT_PROPERTIES may not set " + "; ".join(refused))


def _owned(key: str) -> str | None:
    for name in (key, key.removeprefix("topic.")):
        name = ALIASES.get(name, name)
        if name in OWNED_PROPERTIES:
            return OWNED_PROPERTIES[name]
        family = next((why for prefix, why in OWNED_PREFIXES.items() if name.startswith(prefix)), None)
        if family is not None:
            return family
    return None


def _no_repeats(pairs: list[tuple[str, object]]) -> dict[str, object]:
    found: dict[str, object] = {}
    for key, value in pairs:
        if key in found:
            raise ClientPropertiesError(f"KAFKA_CLIENT_PROPERTIES sets {key} twice")
        found[key] = value
    return found


def _json_value(key: str, value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise ClientPropertiesError(f"KAFKA_CLIENT_PROPERTIES: {key} must be a string, number or boolean")
