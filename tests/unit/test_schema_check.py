"""The local event-schema gate (tools.schema_check.check_local, run by `make schema-check` and
`make contracts-release`) refuses what the consumers would dead-letter and what the ADRs forbid, on a copy of
schemas/avro/, with clear messages and no traceback; the committed schemas pass."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from events.codecs import codec_for
from events.topology import ORDER_EVENTS
from harness.records import wire_value
from messaging.avro_codec import PoisonRecord
from tools import schema_check
from tools.schema_check import AVRO_DIR, EVENT_TOPICS, check_local, event_schemas, run

Schema = dict[str, Any]


@pytest.fixture
def avro_dir(tmp_path: Path) -> Path:
    copy = tmp_path / "avro"
    shutil.copytree(AVRO_DIR, copy)
    return copy


def edit(avro_dir: Path, name: str, change: Callable[[Schema], None]) -> str:
    """Apply change to avro_dir/<name>.avsc; returns the new text."""
    path = avro_dir / f"{name}.avsc"
    schema = json.loads(path.read_text())
    change(schema)
    path.write_text(json.dumps(schema, indent=2))
    return path.read_text()


def field(schema: Schema, name: str) -> Schema:
    (found,) = (f for f in schema["fields"] if f["name"] == name)
    return found


def refusals(avro_dir: Path) -> list[str]:
    return check_local(event_schemas(avro_dir, EVENT_TOPICS))


def set_namespace(schema: Schema) -> None:
    schema["namespace"] = "orderprocessing.events.v3"


def change_decimals(schema: Schema) -> None:
    price = field(field(schema, "items")["type"]["items"], "price")
    price["type"] = {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 3}
    field(schema, "totalAmount")["type"] = {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 4}


def test_the_committed_schemas_pass() -> None:
    assert check_local(event_schemas()) == []


def test_a_changed_namespace_is_refused_both_ways_as_the_consumer_refuses_it(avro_dir: Path) -> None:
    edit(avro_dir, "OrderCreated", set_namespace)

    found = [r for r in refusals(avro_dir) if "UnsafeWriterSchema" in r]

    # Each released version, as the reader, refuses the new writer, and the new reader refuses each released one.
    released = len(list((avro_dir / "history").glob("OrderCreated.v*.avsc")))
    assert len(found) == 2 * released
    assert sum("record orderprocessing.events.v3.OrderCreated is not one this consumer reads" in r for r in found) == (
        released
    )
    assert sum("record orderprocessing.events.OrderCreated is not one this consumer reads" in r for r in found) == (
        released
    )


def test_changed_decimals_are_refused_naming_the_place_and_both_decimals(avro_dir: Path) -> None:
    edit(avro_dir, "OrderCreated", change_decimals)

    found = [r for r in refusals(avro_dir) if "IncompatibleWriterSchema" in r]

    assert any(
        "OrderItem.price is decimal(12, 3) in the writer schema, decimal(12, 2) in the reader's" in r for r in found
    )
    assert any(
        "OrderItem.price is decimal(12, 2) in the writer schema, decimal(12, 3) in the reader's" in r for r in found
    )


class _Registry:
    """A registry client holding one writer schema, id 7."""

    def __init__(self, schema: str) -> None:
        self.schema = schema

    def get_schema(self, schema_id: int) -> SimpleNamespace:
        return SimpleNamespace(schema_str=self.schema)


@pytest.mark.parametrize("change", [set_namespace, change_decimals], ids=["namespace", "decimals"])
def test_the_gate_gives_the_consumers_own_reason(avro_dir: Path, change: Callable[[Schema], None]) -> None:
    """The codec the Fulfillment Service decodes order-events with dead-letters a record of the changed schema
    with the very reason the gate names."""
    writer = edit(avro_dir, "OrderCreated", change)
    codec = codec_for(_Registry(writer), ORDER_EVENTS, "order-events")  # type: ignore[arg-type]

    with pytest.raises(PoisonRecord) as raised:
        codec.decode(wire_value(7, b"\x00"))

    reason = raised.value.message.removeprefix("writer schema 7: ")
    assert any(f"{raised.value.kind}: {reason}" in r for r in refusals(avro_dir))


def test_an_int_default_of_text_is_a_clean_refusal_and_no_registry_is_asked(
    avro_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(
        avro_dir,
        "OrderCreated",
        lambda s: s["fields"].append({"name": "priority", "type": "int", "default": "high", "doc": "Priority."}),
    )
    asked: list[list[str]] = []

    def scratch(_registry: object, events: list[schema_check.EventSchema], _level: str) -> tuple[list[str], list[str]]:
        asked.append([event.name for event in events])
        return [], []

    monkeypatch.setattr(schema_check, "check_scratch", scratch)

    assert run(None, event_schemas(avro_dir, EVENT_TOPICS), scratch_url="http://127.0.0.1:9") == 1

    err = capsys.readouterr().err
    assert "OrderCreated.avsc" in err and "orderprocessing.events.OrderCreated.priority" in err and '"high"' in err
    assert "Traceback" not in err
    assert asked == [["FulfillmentStatusChanged", "OrderCancelled"]]  # OrderCreated never reaches the registry


@pytest.mark.parametrize(
    ("file", "text", "reason"),
    [
        ("OrderCreated.avsc", '{"type": "record", "name": "OrderCreated",', "not JSON"),
        ("OrderCreated.avsc", '{"type": "record", "name": "OrderCreated", "fields": [{"name": "x"}]}', "not a valid"),
        ("history/OrderCreated.v1.avsc", "[", "not JSON"),
    ],
)
def test_a_schema_that_does_not_parse_is_refused_naming_the_file_and_why(
    avro_dir: Path, file: str, text: str, reason: str
) -> None:
    (avro_dir / file).write_text(text)

    found = refusals(avro_dir)

    assert len([r for r in found if "OrderCreated" in r]) == 1
    assert any(f": {file}: {reason}" in r for r in found), found


def drop_enum_default(schema: Schema) -> None:
    del field(schema, "status")["type"]["default"]


def change_enum_default(schema: Schema) -> None:
    field(schema, "status")["type"]["default"] = "Failed"


def test_an_enum_without_a_default_is_refused(avro_dir: Path) -> None:
    edit(avro_dir, "FulfillmentStatusChanged", drop_enum_default)

    found = refusals(avro_dir)

    assert any(
        "FulfillmentStatusChanged.avsc: enum orderprocessing.events.FulfillmentStatus has no default symbol" in r
        for r in found
    ), found


def test_a_changed_enum_default_is_refused_against_every_released_version(avro_dir: Path) -> None:
    edit(avro_dir, "FulfillmentStatusChanged", change_enum_default)

    found = [r for r in refusals(avro_dir) if "has default 'Failed', the released version 'Pending'" in r]

    assert len(found) == len(list((avro_dir / "history").glob("FulfillmentStatusChanged.v*.avsc")))


@pytest.mark.parametrize(
    ("type_", "default"),
    [
        ("int", "high"),
        ("int", 2**31),
        ("long", 2**63),
        ("float", "1.0"),
        ("string", None),
        (["null", "string"], "text"),
        ({"type": "enum", "name": "Level", "symbols": ["LOW", "HIGH"], "default": "LOW"}, "MEDIUM"),
        ({"type": "array", "items": "int"}, ["a"]),
        ({"type": "map", "values": "long"}, {"a": "b"}),
        ({"type": "record", "name": "Box", "fields": [{"name": "size", "type": "int"}]}, {}),
        ({"type": "fixed", "name": "Pair", "size": 2}, "abc"),
        ("bytes", "\u0100"),
    ],
)
def test_a_default_that_is_not_a_value_of_its_type_is_refused(avro_dir: Path, type_: Any, default: Any) -> None:
    edit(
        avro_dir,
        "FulfillmentStatusChanged",
        lambda s: s["fields"].append({"name": "extra", "type": type_, "default": default, "doc": "Extra."}),
    )

    found = refusals(avro_dir)

    assert any(
        "FulfillmentStatusChanged.avsc: field orderprocessing.events.FulfillmentStatusChanged.extra has default" in r
        for r in found
    ), found


@pytest.mark.parametrize(
    ("type_", "default"),
    [
        ("int", -(2**31)),
        ("double", 1),
        (["string", "null"], "text"),
        ({"type": "array", "items": "int"}, [1, 2]),
        ({"type": "record", "name": "Box", "fields": [{"name": "size", "type": "int", "default": 0}]}, {}),
        ({"type": "fixed", "name": "Pair", "size": 2}, "\u00ff\u0000"),
    ],
)
def test_a_default_of_its_type_passes(avro_dir: Path, type_: Any, default: Any) -> None:
    edit(
        avro_dir,
        "FulfillmentStatusChanged",
        lambda s: s["fields"].append({"name": "extra", "type": type_, "default": default, "doc": "Extra."}),
    )

    assert refusals(avro_dir) == []
