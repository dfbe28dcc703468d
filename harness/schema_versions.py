"""Event schema versions other than the committed ones, as a registry subject may come to hold them: for the
tests and chaos runs that make the registry refuse a service's schema."""

from __future__ import annotations

import json

from contract_models.events import ORDER_CREATED_SCHEMA


def schema_without(field: str, schema: str = ORDER_CREATED_SCHEMA) -> str:
    """schema (Avro JSON text; default: the committed OrderCreated) without its field named field, as JSON text.

    Registered as a subject's latest version under BACKWARD compatibility, it makes the registry refuse the
    committed schema when field has no default there (a new reader cannot fill it in from old data; Confluent
    Schema Registry docs, "Schema Evolution and Compatibility"). A field it does not have leaves it unchanged.
    """
    parsed = json.loads(schema)
    parsed["fields"] = [f for f in parsed["fields"] if f["name"] != field]
    return json.dumps(parsed)
