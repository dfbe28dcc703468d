"""Limits on what a record may ask of the Avro decoder before it is decoded.

A consumer decodes each record with the writer schema the record names by its registry id, and fastavro
can be made to hang, crash the process or burn CPU by schemas and bytes that are perfectly valid Avro:

* an array whose items take zero bytes (`null`, a record without fields) with a block count of 2**62 loops
  for ever without reading a byte (AVRO-4300, apache/avro#3865);
* a recursive record nested 200,000 deep overflows the C stack: the process dies (AVRO-4328);
* a `decimal` of hundreds of kilobytes converts in quadratic time (the int-to-Decimal conversion behind
  CVE-2020-10735): 400 KB cost 17 s of CPU;
* a writer `decimal` of another scale than the reader's is read with the writer's scale: 19.99 written as
  decimal(12, 0) 1999 would read as 1999.00 (the specification says such schemas do not match);
* named types that nest each other tenfold, eight deep, ask for 10**8 reads of a few bytes (no recursion,
  no arrays needed), holding the interpreter lock for minutes.

So a writer schema is checked once per schema id, and rejected (the record is poison) unless its top level
is one of the records the consumer reads, no named type refers to itself (names resolved by fastavro's own
parser), no array or map holds zero-size items or items that ask for more than `MAX_READS_PER_BYTE` reads per
byte, a record takes at most `MAX_RECORD_READS` reads, and types nest at most `MAX_DEPTH` deep; each of its
decimals must have the precision and scale of the reader's at the same place (`check_decimals`). And
decimals are read by `bounded_decimal_reader`, which refuses bytes longer than the schema's precision can
need, before converting them; `use_bounded_decimals()` installs it through fastavro's documented hook for
logical types (`fastavro.read.LOGICAL_READERS`).
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import fastavro
from fastavro.read import LOGICAL_READERS

MAX_DEPTH = 32
# Values a record may take to decode, counted from its schema (a named type used ten times counts ten times,
# so types nesting each other tenfold cannot ask for 10**8 reads from a few bytes); the project's events take
# under 100.
MAX_RECORD_READS = 10_000
# Values one byte of an array or map item may ask to decode.
MAX_READS_PER_BYTE = 16
_PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}


class UnsafeWriterSchema(ValueError):
    """A writer schema the consumer will not decode with; the message says why. kind: how a dead-letter record
    names it (its error-class header)."""

    kind = "UnsafeWriterSchema"


class IncompatibleDecimal(ValueError):
    """A writer's decimal has another precision or scale than the reader's at the same place: the Avro
    specification's schema resolution ("Logical Types": two decimals match only if their scales and
    precisions match) refuses it; fastavro would read the writer's scale and change the value's meaning. kind:
    how a dead-letter record names it (its error-class header)."""

    kind = "IncompatibleWriterSchema"


def check_writer_schema(schema_text: str, accepted_names: Iterable[str]) -> None:
    """Raises UnsafeWriterSchema unless schema_text (Avro JSON) is safe to decode with (see above) and its
    top level is a record named one of accepted_names (full names, e.g. orderprocessing.events.OrderCreated).

    Names are resolved by fastavro's own parser (the decoder's resolution, so a dotted name with a namespace
    attribute means what it means to the decoder), after the JSON nesting is bounded so that parsing cannot
    recurse deeply itself.
    """
    parsed = _parse_bounded(schema_text)
    if parsed.get("name") not in set(accepted_names):
        raise UnsafeWriterSchema(f"record {parsed.get('name')} is not one this consumer reads")
    cost = _Walker().walk(parsed, 0, ()).cost
    if cost > MAX_RECORD_READS:
        raise UnsafeWriterSchema(f"a record takes {cost} reads to decode, more than {MAX_RECORD_READS}")


class WriterSchemaCheck:
    """Every check a consumer reading with the reader schema reader_text (Avro JSON) applies to a writer schema
    before it decodes a record with it, in one call: the EventCodec runs it once per writer schema id, and the
    contract gates (tools.schema_check) run it on every pair of released and current versions, so the gates
    refuse whatever the consumers would dead-letter.

    Calling it with a writer schema's text raises UnsafeWriterSchema (check_writer_schema: its top-level record
    must have the reader's full name, and be safe to decode with) or IncompatibleDecimal (check_decimals: every
    decimal at a place the reader has one must have the reader's precision and scale). Raises UnsafeWriterSchema
    at construction for a reader schema that is not valid Avro.
    """

    def __init__(self, reader_text: str) -> None:
        self.record_names = frozenset({writer_record_name(reader_text)})
        self.decimals = reader_decimals(reader_text)

    def __call__(self, writer_text: str) -> None:
        """Raises UnsafeWriterSchema or IncompatibleDecimal unless a consumer would decode with writer_text."""
        check_writer_schema(writer_text, self.record_names)
        check_decimals(writer_text, self.decimals)


def writer_record_name(schema_text: str) -> str:
    """The full name of the record at the top level of schema_text (Avro JSON), e.g.
    orderprocessing.events.OrderCancelled, as fastavro's parser resolves it, read under the same bounds as
    check_writer_schema (which the schema must still pass before anything is decoded with it).

    Raises UnsafeWriterSchema for text that is not JSON, not a record at the top level, nested too deep or not
    valid Avro.
    """
    return str(_parse_bounded(schema_text).get("name"))


def _parse_bounded(schema_text: str) -> dict[str, Any]:
    """schema_text parsed by fastavro once its JSON nesting is known to be bounded. Raises UnsafeWriterSchema."""
    try:
        schema = json.loads(schema_text)
    except (ValueError, RecursionError) as exc:
        raise UnsafeWriterSchema(f"not JSON: {str(exc)[:100]}") from exc
    if not isinstance(schema, dict) or schema.get("type") != "record":
        raise UnsafeWriterSchema("the top level is not a record")
    if _json_depth(schema) > 4 * MAX_DEPTH:
        raise UnsafeWriterSchema(f"types nest deeper than {MAX_DEPTH}")
    try:
        parsed: dict[str, Any] = fastavro.parse_schema(schema)
    except Exception as exc:  # fastavro raises SchemaParseException, UnknownType, ValueError...
        raise UnsafeWriterSchema(f"not a valid Avro schema: {str(exc)[:200]}") from exc
    return parsed


def _json_depth(value: Any) -> int:
    """How deep lists and objects nest in value, counted without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


@dataclass(frozen=True)
class _Shape:
    """What decoding one value of a type costs: at least min_bytes of input, and cost reads (values decoded,
    counting each field, branch and element header; the items of arrays and maps are paid for by their bytes)."""

    min_bytes: int
    cost: int


_PRIMITIVE_BYTES = {"null": 0, "boolean": 1, "int": 1, "long": 1, "float": 4, "double": 8, "bytes": 1, "string": 1}


class _Walker:
    """One pass over a schema parsed by fastavro (full names everywhere): checks references, depth, and the
    decode work each byte of input can ask for."""

    def __init__(self) -> None:
        self.named: dict[str, _Shape] = {}

    def walk(self, schema: Any, depth: int, defining: tuple[str, ...]) -> _Shape:
        """Checks schema; returns its shape. Raises UnsafeWriterSchema."""
        if depth > MAX_DEPTH:
            raise UnsafeWriterSchema(f"types nest deeper than {MAX_DEPTH}")
        if isinstance(schema, str):
            return self._reference(schema, defining)
        if isinstance(schema, list):  # a union: the branch index, then one branch
            shapes = [self.walk(branch, depth + 1, defining) for branch in schema]
            if not shapes:
                raise UnsafeWriterSchema("an empty union")
            return _Shape(1 + min(x.min_bytes for x in shapes), 1 + max(x.cost for x in shapes))
        if not isinstance(schema, dict):
            raise UnsafeWriterSchema(f"not a schema: {str(schema)[:50]}")
        kind = schema.get("type")
        if kind in ("record", "error"):
            name = str(schema.get("name"))
            shapes = [
                self.walk(field.get("type"), depth + 1, (*defining, name))
                for field in schema.get("fields", [])
                if isinstance(field, dict)
            ]
            shape = _Shape(sum(x.min_bytes for x in shapes), 1 + sum(x.cost for x in shapes))
            self.named[name] = shape
            return shape
        if kind == "enum":
            self.named[str(schema.get("name"))] = _Shape(1, 1)
            return _Shape(1, 1)
        if kind == "fixed":
            shape = _Shape(int(schema.get("size", 0)), 1)
            self.named[str(schema.get("name"))] = shape
            return shape
        if kind in ("array", "map"):
            item = self.walk(schema.get("items" if kind == "array" else "values"), depth + 1, defining)
            if kind == "map":
                item = _Shape(item.min_bytes + 1, item.cost + 1)  # every entry has a string key
            if item.min_bytes == 0:
                raise UnsafeWriterSchema(f"an {kind} holds items that take zero bytes")
            if item.cost > MAX_READS_PER_BYTE * item.min_bytes:
                raise UnsafeWriterSchema(
                    f"an {kind} item takes {item.cost} reads for {item.min_bytes} bytes (at most "
                    f"{MAX_READS_PER_BYTE} per byte)"
                )
            return _Shape(1, 1)
        return self.walk(kind, depth + 1, defining)  # {"type": "long", "logicalType": ...}

    def _reference(self, name: str, defining: tuple[str, ...]) -> _Shape:
        if name in _PRIMITIVE_BYTES:
            return _Shape(_PRIMITIVE_BYTES[name], 1)
        if name in defining:
            raise UnsafeWriterSchema(f"type {name} refers to itself")
        if name in self.named:
            return self.named[name]
        raise UnsafeWriterSchema(f"unknown type {name}")


def reader_decimals(schema_text: str) -> dict[str, tuple[int, int]]:
    """{place: (precision, scale)} of every decimal in schema_text (Avro JSON); a place is the full name of
    the record and the field, with `[]` for array items and `{}` for map values (e.g.
    `orderprocessing.events.OrderItem.price`). Names are resolved by fastavro's parser."""
    found: dict[str, tuple[int, int]] = {}
    _collect_decimals(fastavro.parse_schema(json.loads(schema_text)), "", found)
    return found


def check_decimals(schema_text: str, reader: dict[str, tuple[int, int]]) -> None:
    """Raises IncompatibleDecimal when a decimal of the writer schema_text has another precision or scale
    than the reader's decimal at the same place (reader: reader_decimals() of the reader schema)."""
    for place, writer in reader_decimals(schema_text).items():
        if place in reader and reader[place] != writer:
            raise IncompatibleDecimal(
                f"{place} is decimal{writer} in the writer schema, decimal{reader[place]} in the reader's"
            )


def _collect_decimals(schema: Any, place: str, found: dict[str, tuple[int, int]]) -> None:
    if isinstance(schema, list):
        for branch in schema:
            _collect_decimals(branch, place, found)
        return
    if not isinstance(schema, dict):
        return
    kind = schema.get("type")
    if schema.get("logicalType") == "decimal" and kind in ("bytes", "fixed"):
        found[place] = (int(schema.get("precision", 0)), int(schema.get("scale", 0)))
    elif kind in ("record", "error"):
        for field in schema.get("fields", []):
            if isinstance(field, dict):
                _collect_decimals(field.get("type"), f"{schema.get('name')}.{field.get('name')}", found)
    elif kind == "array":
        _collect_decimals(schema.get("items"), f"{place}[]", found)
    elif kind == "map":
        _collect_decimals(schema.get("values"), f"{place}{{}}", found)
    elif isinstance(kind, dict | list):
        _collect_decimals(kind, place, found)


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


_UUID_TEXT = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def strict_uuid_reader(data: Any, writer_schema: Any = None, reader_schema: Any = None) -> uuid.UUID:
    """The `uuid` logical type as the Avro specification defines it: text in the RFC 4122 form (8-4-4-4-12
    hexadecimal digits). fastavro hands the text to uuid.UUID, which also takes `urn:uuid:`, braces and
    32 bare digits; a record key that names the same entity would then no longer equal the field's text."""
    if not isinstance(data, str) or not _UUID_TEXT.fullmatch(data):
        raise ValueError(f"not a UUID in RFC 4122 text form: {str(data)[:60]!r}")
    return uuid.UUID(data)


def use_bounded_decimals() -> None:
    """Install bounded_decimal_reader for fastavro's bytes and fixed decimals, and strict_uuid_reader for
    its uuid strings (idempotent)."""
    for key in ("bytes-decimal", "fixed-decimal"):
        if not getattr(LOGICAL_READERS[key], "bounded", False):
            LOGICAL_READERS[key] = bounded_decimal_reader(LOGICAL_READERS[key])
    LOGICAL_READERS["string-uuid"] = strict_uuid_reader
