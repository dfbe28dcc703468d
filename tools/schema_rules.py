"""The project's own rules for event schemas, checked by `make schema-check` and `make contracts-release` beside
Avro compatibility (tools.schema_check), because neither the Avro library's compatibility check nor the registry
enforces them:

* the schema is valid Avro: JSON, parsed by the Avro library and by fastavro (the consumers' decoder, which
  refuses some defaults the Avro library takes);
* every field default is a valid value of the field's type (Avro specification, "Schema Declaration": a
  union's default is one of its first branch; bytes and fixed defaults are strings of code points 0-255; int and
  long fit 32 and 64 bits; a record's default names every field without a default of its own);
* every enum has a `default` symbol, so a reader maps a symbol it does not know to it instead of failing
  (docs/adr/0001-event-schema-compatibility.md);
* an enum's default never changes across versions: old readers map every new symbol to it
  (docs/adr/0003-cancelled-status-for-old-clients-and-readers.md).

Every function takes schema text (Avro JSON) and returns the problems found as sentences (empty: none), never
raising for a schema it cannot parse.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import avro.errors
import avro.schema
import fastavro

_INT_RANGES = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}


def parse_problem(text: str) -> str | None:
    """Why text is not a valid Avro schema (not JSON, refused by the Avro library's or fastavro's parser), or
    None when both parse it."""
    try:
        schema = json.loads(text)
    except ValueError as exc:
        return f"not JSON: {exc}"
    try:
        avro.schema.parse(text)
    except (avro.errors.AvroException, ValueError, TypeError, KeyError, RecursionError) as exc:
        return f"not a valid Avro schema (Avro library): {exc}"
    try:
        fastavro.parse_schema(schema)
    except Exception as exc:  # fastavro raises SchemaParseException, UnknownType, ValueError...
        return f"not a valid Avro schema (fastavro): {exc}"
    return None


def schema_problems(text: str) -> list[str]:
    """Why the schema text breaks the rules on its own: invalid Avro, a default that is not a value of its
    field's type, an enum without a default."""
    try:
        json.loads(text)
        parsed = avro.schema.parse(text)
    except (avro.errors.AvroException, ValueError, TypeError, KeyError, RecursionError):
        return [str(parse_problem(text))]
    problems = []
    for schema in _named_types(parsed):
        if isinstance(schema, avro.schema.EnumSchema) and schema.default is None:
            problems.append(
                f"enum {schema.fullname} has no default symbol: a reader could not read a symbol added later "
                "(docs/adr/0001: every enum has a default)"
            )
        if isinstance(schema, avro.schema.RecordSchema):
            for field in schema.fields:
                why = _invalid_default(field.type, field.default) if field.has_default else None
                if why is not None:
                    problems.append(
                        f"field {schema.fullname}.{field.name} has default {json.dumps(field.default)}, "
                        f"not a valid value of its type: {why} (Avro specification, field defaults)"
                    )
    if not problems:
        reason = parse_problem(text)
        problems += [reason] if reason is not None else []
    return problems


def enum_default_changes(new: str, old: str) -> list[str]:
    """Every enum both schemas (Avro JSON) define, by full name, whose default symbol differs between them;
    [] when either does not parse (schema_problems reports that)."""
    try:
        before, after = _enum_defaults(old), _enum_defaults(new)
    except (avro.errors.AvroException, ValueError, TypeError, KeyError, RecursionError):
        return []
    return [
        f"enum {name} has default {after[name]!r}, the released version {before[name]!r}: an enum's default never "
        "changes, old readers map every symbol they do not know to theirs (docs/adr/0003)"
        for name in sorted(before.keys() & after.keys())
        if before[name] != after[name]
    ]


def _enum_defaults(text: str) -> dict[str, str | None]:
    return {
        s.fullname: s.default for s in _named_types(avro.schema.parse(text)) if isinstance(s, avro.schema.EnumSchema)
    }


def _named_types(schema: avro.schema.Schema) -> Iterator[avro.schema.Schema]:
    """Every record, enum and fixed type schema defines, each once (recursive types included)."""
    seen: set[str] = set()
    stack: list[avro.schema.Schema] = [schema]
    while stack:
        current = stack.pop()
        if isinstance(current, avro.schema.NamedSchema):
            if current.fullname in seen:
                continue
            seen.add(current.fullname)
            yield current
        if isinstance(current, avro.schema.RecordSchema):
            stack.extend(field.type for field in current.fields)
        elif isinstance(current, avro.schema.UnionSchema):
            stack.extend(current.schemas)
        elif isinstance(current, avro.schema.ArraySchema):
            stack.append(current.items)
        elif isinstance(current, avro.schema.MapSchema):
            stack.append(current.values)


def _invalid_default(schema: avro.schema.Schema, value: Any) -> str | None:
    """Why value (JSON) is not a default of schema as the Avro specification encodes defaults; None if it is."""
    if isinstance(schema, avro.schema.UnionSchema):
        return _invalid_default(schema.schemas[0], value)  # a union's default is of its first branch
    kind = schema.type
    if kind == "null":
        return None if value is None else "a null's default is null"
    if kind == "boolean":
        return None if isinstance(value, bool) else "a boolean's default is true or false"
    if kind in _INT_RANGES:
        low, high = _INT_RANGES[kind]
        ok = isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
        return None if ok else f"an {kind}'s default is an integer from {low} to {high}"
    if kind in ("float", "double"):
        return (
            None
            if isinstance(value, int | float) and not isinstance(value, bool)
            else f"a {kind}'s default is a number"
        )
    if kind == "string":
        return None if isinstance(value, str) else "a string's default is a string"
    if kind in ("bytes", "fixed"):
        if not isinstance(value, str) or any(ord(c) > 255 for c in value):
            return f"a {kind}'s default is a string of code points 0-255"
        if kind == "fixed" and len(value) != schema.size:
            return f"a fixed's default has its size, {schema.size}"
        return None
    if kind == "enum":
        return None if value in schema.symbols else f"an enum's default field value is one of {schema.symbols}"
    if kind == "array":
        if not isinstance(value, list):
            return "an array's default is a JSON array"
        return next((f"item {i}: {w}" for i, v in enumerate(value) if (w := _invalid_default(schema.items, v))), None)
    if kind == "map":
        if not isinstance(value, dict):
            return "a map's default is a JSON object"
        return next((f"{k}: {w}" for k, v in value.items() if (w := _invalid_default(schema.values, v))), None)
    if kind in ("record", "error"):
        if not isinstance(value, dict):
            return "a record's default is a JSON object"
        for field in schema.fields:
            if field.name in value:
                why = _invalid_default(field.type, value[field.name])
                if why is not None:
                    return f"{field.name}: {why}"
            elif not field.has_default:
                return f"{field.name} is missing and has no default"
        return None
    return None
