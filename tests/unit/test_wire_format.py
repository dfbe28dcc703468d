"""The schema id a record names is read from its Confluent wire-format header, the one way every reader does."""

from __future__ import annotations

import pytest

from harness.records import wire_value
from messaging.avro_codec import wire_schema_id


@pytest.mark.parametrize("schema_id", [0, 1, 7, 2**24 + 3, 2**32 - 1])
def test_the_id_written_in_the_header_is_the_id_read(schema_id: int) -> None:
    assert wire_schema_id(wire_value(schema_id, b"\x02avro body")) == schema_id
    assert wire_schema_id(wire_value(schema_id, b"")) == schema_id  # a header alone still names its schema


@pytest.mark.parametrize("value", [None, b"", b"\x00\x00\x00\x01", b"\x01\x00\x00\x00\x07body", b"{json}"])
def test_a_value_not_in_the_wire_format_names_no_schema(value: bytes | None) -> None:
    assert wire_schema_id(value) is None
