"""Writer schemas and bytes that would make the Avro decoder hang, crash or burn CPU are refused first."""

from __future__ import annotations

import io
import json
import time
from decimal import Decimal
from types import SimpleNamespace

import fastavro
import pytest

from contract_models.events import FULFILLMENT_STATUS_CHANGED_SCHEMA, ORDER_CREATED_SCHEMA
from events.codecs import codec_for
from events.topology import ORDER_EVENTS
from harness.records import avro_body, wire_value, zigzag
from messaging.avro_codec import PoisonRecord
from messaging.avro_safety import UnsafeWriterSchema, check_writer_schema, max_decimal_bytes, use_bounded_decimals

ORDER = "orderprocessing.events.OrderCreated"


def order_schema_with(field: dict, position: int = 0) -> dict:
    """OrderCreated's schema with field added at position (negative: from the end, -1 the last)."""
    schema = json.loads(ORDER_CREATED_SCHEMA)
    fields = schema["fields"]
    fields.insert(position if position >= 0 else len(fields) + 1 + position, field)
    return schema


def test_the_projects_own_schemas_and_compatible_evolutions_are_safe():
    check_writer_schema(ORDER_CREATED_SCHEMA, [ORDER])
    check_writer_schema(FULFILLMENT_STATUS_CHANGED_SCHEMA, ["orderprocessing.events.FulfillmentStatusChanged"])
    evolved = order_schema_with({"name": "note", "type": ["null", "string"], "default": None})
    evolved["fields"].append({"name": "tags", "type": {"type": "map", "values": "null"}, "default": {}})
    check_writer_schema(json.dumps(evolved), [ORDER])


@pytest.mark.parametrize(
    ("schema", "reason"),
    [
        (order_schema_with({"name": "j", "type": {"type": "array", "items": "null"}, "default": []}), "zero bytes"),
        (
            order_schema_with(
                {"name": "j", "type": {"type": "array", "items": {"type": "record", "name": "E", "fields": []}}}
            ),
            "zero bytes",
        ),
        (
            order_schema_with(
                {"name": "j", "type": {"type": "array", "items": {"type": "fixed", "name": "F", "size": 0}}}
            ),
            "zero bytes",
        ),
        (
            order_schema_with(
                {
                    "name": "j",
                    "type": {"type": "record", "name": "Node", "fields": [{"name": "n", "type": ["null", "Node"]}]},
                }
            ),
            "refers to itself",
        ),
        (order_schema_with({"name": "j", "type": "Unknown"}), "not a valid Avro schema"),
        ({**json.loads(ORDER_CREATED_SCHEMA), "name": "Other"}, "not one this consumer reads"),
        ({"type": "array", "items": "long"}, "not a record"),
    ],
)
@pytest.mark.parametrize("position", [0, 4, -1], ids=["first", "middle", "last"])
def test_schemas_that_hang_or_crash_the_decoder_are_refused(schema, reason, position):
    if schema.get("type") == "record" and schema.get("name") == "OrderCreated":
        # The offending field wherever it is: a field after one that takes bytes is checked all the same.
        added = [f for f in schema["fields"] if f["name"] == "j"]
        if added:
            schema = order_schema_with(added[0], position)
    with pytest.raises(UnsafeWriterSchema, match=reason):
        check_writer_schema(json.dumps(schema), [ORDER])


def test_nesting_beyond_the_limit_is_refused():
    inner: object = "long"
    for _ in range(40):
        inner = {"type": "array", "items": inner}
    with pytest.raises(UnsafeWriterSchema, match="deeper"):
        check_writer_schema(json.dumps(order_schema_with({"name": "j", "type": inner})), [ORDER])


class _Registry:
    def __init__(self, schemas: dict[int, str]) -> None:
        self.schemas = schemas

    def get_schema(self, schema_id: int) -> SimpleNamespace:
        return SimpleNamespace(schema_str=self.schemas[schema_id])


def test_a_zero_size_array_of_2_62_items_is_poison_at_once():
    writer = order_schema_with({"name": "junk", "type": {"type": "array", "items": "null"}, "default": []})
    codec = codec_for(_Registry({7: json.dumps(writer)}), ORDER_EVENTS, "order-events")  # type: ignore[arg-type]
    started = time.process_time()
    with pytest.raises(PoisonRecord) as raised:
        codec.decode(wire_value(7, zigzag(2**62) + zigzag(0)))
    assert raised.value.kind == "UnsafeWriterSchema"
    assert time.process_time() - started < 0.1


def test_a_decimal_longer_than_its_precision_is_refused_before_conversion():
    use_bounded_decimals()
    plain = json.loads(
        ORDER_CREATED_SCHEMA.replace('{"type":"bytes","logicalType":"decimal","precision":12,"scale":2}', '"bytes"')
    )
    record = {
        "eventId": "6f1f0c2e-5a3b-4c1d-9e8f-0a1b2c3d4e5f",
        "eventType": "OrderCreated",
        "timestamp": 0,
        "orderId": "6f1f0c2e-5a3b-4c1d-9e8f-0a1b2c3d4e60",
        "customerId": "c",
        "customerName": "n",
        "items": [{"productId": "p", "productName": "n", "quantity": 1, "price": b"\x7f" * 400_000}],
        "totalAmount": b"\x01",
    }
    body = avro_body(plain, record)
    reader = fastavro.parse_schema(json.loads(ORDER_CREATED_SCHEMA))
    started = time.process_time()
    with pytest.raises(ValueError, match="exceeds its precision"):
        fastavro.schemaless_reader(io.BytesIO(body), reader, reader)
    assert time.process_time() - started < 0.1


def test_decimal_byte_bounds_follow_precision():
    assert max_decimal_bytes(12) == 6 and max_decimal_bytes(18) == 8 and max_decimal_bytes(38) == 16


def _record(**changes) -> dict:
    record = {
        "eventId": "6f1f0c2e-5a3b-4c1d-9e8f-0a1b2c3d4e5f",
        "eventType": "OrderCreated",
        "timestamp": 1_700_000_000_000,
        "orderId": "6f1f0c2e-5a3b-4c1d-9e8f-0a1b2c3d4e60",
        "customerId": "c",
        "customerName": "n",
        "items": [{"productId": "p", "productName": "n", "quantity": 1, "price": b"\x07\xcf"}],  # 19.99
        "totalAmount": b"\x07\xcf",
    }
    return {**record, **changes}


def _wire(schema: dict | str, record: dict, schema_id: int = 7) -> tuple[object, bytes]:
    text = schema if isinstance(schema, str) else json.dumps(schema)
    plain = json.loads(text.replace('{"type":"bytes","logicalType":"decimal","precision":12,"scale":2}', '"bytes"'))
    codec = codec_for(_Registry({schema_id: text}), ORDER_EVENTS, "order-events")  # type: ignore[arg-type]
    return codec, wire_value(schema_id, avro_body(plain, record))


def test_a_record_of_the_committed_schema_decodes_and_its_key_must_be_its_order_id():
    codec, data = _wire(ORDER_CREATED_SCHEMA, _record())
    event = codec.decode(data, b"6f1f0c2e-5a3b-4c1d-9e8f-0a1b2c3d4e60")
    assert event.items[0].price == Decimal("19.99")
    for key in (b"another-key", b""):
        with pytest.raises(PoisonRecord) as raised:
            codec.decode(data, key)
        assert raised.value.kind == "InvalidEvent" and "key" in raised.value.message


@pytest.mark.parametrize(
    ("writer_decimal", "kind"),
    [
        ({"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 0}, "IncompatibleWriterSchema"),
        ({"type": "bytes", "logicalType": "decimal", "precision": 38, "scale": 30}, "IncompatibleWriterSchema"),
        ({"type": "bytes", "logicalType": "decimal", "precision": 20, "scale": 2}, "IncompatibleWriterSchema"),
    ],
)
def test_a_writer_decimal_of_another_scale_or_precision_is_poison(writer_decimal, kind):
    schema = json.loads(ORDER_CREATED_SCHEMA)
    (total,) = (field for field in schema["fields"] if field["name"] == "totalAmount")
    total["type"] = writer_decimal
    codec, data = _wire(schema, _record())
    with pytest.raises(PoisonRecord) as raised:
        codec.decode(data)
    assert raised.value.kind == kind and "totalAmount" in raised.value.message


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda data: data + b"\x00\x01garbage", id="trailing bytes"),
        pytest.param(lambda data: data.replace(b"\x04\x07\xcf", b"\x00", 1), id="zero-length decimal"),
    ],
)
def test_bytes_beyond_or_short_of_a_well_formed_value_are_poison(tamper):
    codec, data = _wire(ORDER_CREATED_SCHEMA, _record())
    with pytest.raises(PoisonRecord) as raised:
        codec.decode(tamper(data))
    assert raised.value.kind == "UndecodableRecord"


class _NotFound(Exception):
    http_status_code = 404


def test_an_unknown_schema_id_is_asked_for_once_per_interval():
    asked: list[int] = []

    class Registry:
        def get_schema(self, schema_id: int) -> SimpleNamespace:
            asked.append(schema_id)
            raise _NotFound(f"schema {schema_id} not found")

    codec = codec_for(Registry(), ORDER_EVENTS, "order-events")  # type: ignore[arg-type]
    for _ in range(50):
        with pytest.raises(PoisonRecord) as raised:
            codec.decode(wire_value(123_456_789, b"\x00" * 20))
        assert raised.value.kind == "UnknownSchemaId"
    assert asked == [123_456_789]


def test_a_self_reference_hidden_by_a_dotted_name_and_a_namespace_is_refused():
    # "x.Foo" with namespace "a": its fields' namespace is "x" (the dotted name wins), so "Foo" in it is
    # x.Foo itself, not the decoy a.Foo defined before.
    schema = json.loads(ORDER_CREATED_SCHEMA)
    decoy = {"type": "record", "name": "Foo", "namespace": "a", "fields": [{"name": "v", "type": "int"}]}
    recursive = {
        "type": "record",
        "name": "x.Foo",
        "namespace": "a",
        "fields": [{"name": "n", "type": ["null", "Foo"]}],
    }
    schema["fields"] += [{"name": "decoy", "type": decoy}, {"name": "x", "type": recursive}]
    with pytest.raises(UnsafeWriterSchema, match="refers to itself"):
        check_writer_schema(json.dumps(schema), [ORDER])


def test_types_that_multiply_the_decode_work_are_refused():
    previous: object = "null"
    defined = None
    for level in range(8):  # each level a record of ten fields of the level below: 10**8 reads of no bytes
        record = {
            "type": "record",
            "name": f"L{level}",
            "fields": [{"name": f"f{i}", "type": previous} for i in range(10)],
        }
        if defined is not None:
            record["fields"][0]["type"] = defined
        defined, previous = record, f"L{level}"
    with pytest.raises(UnsafeWriterSchema, match="reads"):
        check_writer_schema(json.dumps(order_schema_with({"name": "x", "type": defined}, -1)), [ORDER])
    wide_items = {"type": "array", "items": {"type": "record", "name": "W", "fields": [
        {"name": f"n{i}", "type": "null"} for i in range(100)] + [{"name": "b", "type": "boolean"}]}}  # fmt: skip
    with pytest.raises(UnsafeWriterSchema, match="per byte"):
        check_writer_schema(json.dumps(order_schema_with({"name": "x", "type": wide_items}, -1)), [ORDER])


@pytest.mark.parametrize(
    "order_id",
    [
        "urn:uuid:6f1f0c2e-5a3b-4c1d-9e8f-0a1b2c3d4e60",
        "{6f1f0c2e-5a3b-4c1d-9e8f-0a1b2c3d4e60}",
        "6f1f0c2e5a3b4c1d9e8f0a1b2c3d4e60",
    ],
)
def test_a_uuid_in_another_text_form_or_a_record_without_key_is_poison(order_id):
    codec, data = _wire(ORDER_CREATED_SCHEMA, _record(orderId=order_id))
    with pytest.raises(PoisonRecord) as raised:
        codec.decode(data, b"6f1f0c2e-5a3b-4c1d-9e8f-0a1b2c3d4e60")
    assert raised.value.kind == "UndecodableRecord" and "RFC 4122" in raised.value.message
    codec, data = _wire(ORDER_CREATED_SCHEMA, _record())
    with pytest.raises(PoisonRecord, match="no key"):
        codec.decode(data, None)
