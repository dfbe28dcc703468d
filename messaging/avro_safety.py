"""Limits on what a record may ask of the Avro decoder before it is decoded.

A consumer decodes each record with the writer schema the record names by its registry id, and fastavro
can be made to hang, crash the process or burn CPU by schemas and bytes that are perfectly valid Avro:

* an array whose items take zero bytes (`null`, a record without fields) with a block count of 2**62 loops
  for ever without reading a byte (AVRO-4300, apache/avro#3865);
* a recursive record nested 200,000 deep overflows the C stack: the process dies (AVRO-4328);
* a `decimal` of hundreds of kilobytes converts in quadratic time (the int-to-Decimal conversion behind
  CVE-2020-10735): 400 KB cost 17 s of CPU;
* a writer `decimal` of another scale than the reader's is read with the writer's scale: 19.99 written as
  decimal(12, 0) 1999 would read as 1999.00 (the specification says such schemas do not match).

So a writer schema is checked once per schema id, and rejected (the record is poison) unless its top level
is one of the records the consumer reads, no named type refers to itself, no array holds zero-size items,
and types nest at most `MAX_DEPTH` deep; each of its decimals must have the precision and scale of the
reader's at the same place (`check_decimals`). And decimals are read by `bounded_decimal_reader`, which refuses
bytes longer than the schema's precision can need, before converting them; `use_bounded_decimals()`
installs it through fastavro's documented hook for logical types (`fastavro.read.LOGICAL_READERS`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from typing import Any

from fastavro.read import LOGICAL_READERS

MAX_DEPTH = 32
_PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}


class UnsafeWriterSchema(ValueError):
    """A writer schema the consumer will not decode with; the message says why."""


class IncompatibleDecimal(ValueError):
    """A writer's decimal has another precision or scale than the reader's at the same place: the Avro
    specification's schema resolution ("Logical Types": two decimals match only if their scales and
    precisions match) refuses it; fastavro would read the writer's scale and change the value's meaning."""


def check_writer_schema(schema_text: str, accepted_names: Iterable[str]) -> None:
    """Raises UnsafeWriterSchema unless schema_text (Avro JSON) is safe to decode with (see above) and its
    top level is a record named one of accepted_names (full names, e.g. orderprocessing.events.OrderCreated).
    """
    try:
        schema = json.loads(schema_text)
    except ValueError as exc:
        raise UnsafeWriterSchema(f"not JSON: {exc}") from exc
    if not isinstance(schema, dict) or schema.get("type") != "record":
        raise UnsafeWriterSchema("the top level is not a record")
    name = _full_name(schema, "")
    if name not in set(accepted_names):
        raise UnsafeWriterSchema(f"record {name} is not one this consumer reads")
    _Walker().walk(schema, "", 0, ())


def _full_name(schema: dict[str, Any], namespace: str) -> str:
    name = str(schema.get("name", ""))
    if "." in name:
        return name
    space = schema.get("namespace", namespace) or ""
    return f"{space}.{name}" if space else name


class _Walker:
    """One pass over a schema: defines named types, checks references, depth and zero-size array items."""

    def __init__(self) -> None:
        self.zero_size: dict[str, bool] = {}  # named type -> takes zero bytes

    def walk(self, schema: Any, namespace: str, depth: int, defining: tuple[str, ...]) -> bool:
        """Checks schema; returns whether its values take zero bytes."""
        if depth > MAX_DEPTH:
            raise UnsafeWriterSchema(f"types nest deeper than {MAX_DEPTH}")
        if isinstance(schema, str):
            return self._reference(schema, namespace, defining)
        if isinstance(schema, list):  # a union: the branch index takes at least a byte
            for branch in schema:
                self.walk(branch, namespace, depth + 1, defining)
            return False
        if not isinstance(schema, dict):
            raise UnsafeWriterSchema(f"not a schema: {str(schema)[:50]}")
        kind = schema.get("type")
        if kind in ("record", "error"):
            name = _full_name(schema, namespace)
            inner = (schema.get("namespace") or name.rpartition(".")[0]) if "." in name else namespace
            fields = schema.get("fields", [])
            # Every field is walked (a list, not all() over a generator, which would stop at the first field
            # that takes bytes and leave the rest unchecked).
            sizes = [
                self.walk(field.get("type"), inner, depth + 1, (*defining, name))
                for field in fields
                if isinstance(field, dict)
            ]
            zero = all(sizes)
            self.zero_size[name] = zero
            return zero
        if kind == "enum":
            self.zero_size[_full_name(schema, namespace)] = False
            return False
        if kind == "fixed":
            zero = schema.get("size") == 0
            self.zero_size[_full_name(schema, namespace)] = zero
            return zero
        if kind == "array":
            if self.walk(schema.get("items"), namespace, depth + 1, defining):
                raise UnsafeWriterSchema("an array holds items that take zero bytes")
            return False
        if kind == "map":
            self.walk(schema.get("values"), namespace, depth + 1, defining)
            return False  # every entry has a string key
        return self.walk(kind, namespace, depth + 1, defining)  # {"type": "long", "logicalType": ...}

    def _reference(self, name: str, namespace: str, defining: tuple[str, ...]) -> bool:
        if name in _PRIMITIVES:
            return name == "null"
        candidates = [name] if "." in name else [f"{namespace}.{name}" if namespace else name, name]
        for candidate in candidates:
            if candidate in defining:
                raise UnsafeWriterSchema(f"type {candidate} refers to itself")
            if candidate in self.zero_size:
                return self.zero_size[candidate]
        raise UnsafeWriterSchema(f"unknown type {name}")


def reader_decimals(schema_text: str) -> dict[str, tuple[int, int]]:
    """{place: (precision, scale)} of every decimal in schema_text (Avro JSON); a place is the full name of
    the record and the field, with `[]` for array items and `{}` for map values (e.g.
    `orderprocessing.events.OrderItem.price`)."""
    found: dict[str, tuple[int, int]] = {}
    _collect_decimals(json.loads(schema_text), "", "", found)
    return found


def check_decimals(schema_text: str, reader: dict[str, tuple[int, int]]) -> None:
    """Raises IncompatibleDecimal when a decimal of the writer schema_text has another precision or scale
    than the reader's decimal at the same place (reader: reader_decimals() of the reader schema)."""
    for place, writer in reader_decimals(schema_text).items():
        if place in reader and reader[place] != writer:
            raise IncompatibleDecimal(
                f"{place} is decimal{writer} in the writer schema, decimal{reader[place]} in the reader's"
            )


def _collect_decimals(schema: Any, namespace: str, place: str, found: dict[str, tuple[int, int]]) -> None:
    if isinstance(schema, list):
        for branch in schema:
            _collect_decimals(branch, namespace, place, found)
        return
    if not isinstance(schema, dict):
        return
    kind = schema.get("type")
    if schema.get("logicalType") == "decimal" and kind in ("bytes", "fixed"):
        found[place] = (int(schema.get("precision", 0)), int(schema.get("scale", 0)))
    elif kind in ("record", "error"):
        name = _full_name(schema, namespace)
        inner = name.rpartition(".")[0]
        for field in schema.get("fields", []):
            if isinstance(field, dict):
                _collect_decimals(field.get("type"), inner, f"{name}.{field.get('name')}", found)
    elif kind == "array":
        _collect_decimals(schema.get("items"), namespace, f"{place}[]", found)
    elif kind == "map":
        _collect_decimals(schema.get("values"), namespace, f"{place}{{}}", found)
    elif isinstance(kind, dict | list):
        _collect_decimals(kind, namespace, place, found)


def max_decimal_bytes(precision: int) -> int:
    """Bytes of the two's complement of the largest unscaled value with precision digits."""
    return math.ceil((precision * math.log2(10) + 1) / 8)


def bounded_decimal_reader(
    read: Callable[[Any, Any, Any], Any],
) -> Callable[[Any, Any, Any], Any]:
    """fastavro's decimal reader (read), refusing bytes longer than the writer schema's precision needs."""

    def read_bounded(data: Any, writer_schema: Any = None, reader_schema: Any = None) -> Any:
        precision = int((writer_schema or {}).get("precision", 38))
        if not data:  # no two's complement is zero bytes long; the Java reference decoder refuses it too
            raise ValueError("a decimal of zero bytes")
        if len(data) > max_decimal_bytes(min(precision, 38)):
            raise ValueError(f"a decimal of {len(data)} bytes exceeds its precision of {precision} digits")
        return read(data, writer_schema, reader_schema)

    read_bounded.bounded = True  # type: ignore[attr-defined]
    return read_bounded


def use_bounded_decimals() -> None:
    """Install bounded_decimal_reader for fastavro's bytes and fixed decimals (idempotent)."""
    for key in ("bytes-decimal", "fixed-decimal"):
        if not getattr(LOGICAL_READERS[key], "bounded", False):
            LOGICAL_READERS[key] = bounded_decimal_reader(LOGICAL_READERS[key])
