"""order-repair with fakes for Kafka and the registry: which dead-lettered records each filter selects, what the
commands print, that replay produces exactly the records that may go back (key and value unchanged, to their
original topic) and never a truncated, foreign or still-undecodable one, and that the spool loses no row."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Message
from sqlalchemy import MetaData, insert, select
from typer.testing import CliRunner

from events.settings import EventSettings
from events.topology import DEAD_LETTER_HEADERS
from messaging.avro_codec import PoisonRecord, RegistryUnavailable
from messaging.dead_letter import PRODUCER_MAX_MESSAGE_BYTES
from messaging.dead_letter_copy import dead_letter_copy
from messaging.dead_letter_spool import DeadLetterSpool, dead_letter_spool_table
from messaging.topic_reader import OffsetRange
from order_service import bootstrap as order_bootstrap
from order_service import store as order_store
from persistence.engine import make_engine
from repair.cli import app
from repair.dead_letters import DeadLetter, Delivery, Outgoing, Selection
from repair.spool import SpoolTable
from tests.unit.log_capture import json_lines

H = DEAD_LETTER_HEADERS
DLQ = "order-events.dlq"
VALID = b"\x00\x00\x00\x00\x01valid order"  # what the fake registry decodes


def dead_letter(
    offset: int,
    key: str = "order-1",
    error_type: str = "UnknownSchemaId",
    value: bytes = VALID,
    *,
    partition: int = 0,
    original_topic: str = "order-events",
    original_offset: int | None = None,
    max_bytes: int = PRODUCER_MAX_MESSAGE_BYTES,
    headers: list[tuple[str, bytes]] | None = None,
) -> DeadLetter:
    """The copy the consumer writes for a record of original_topic, as it lies at DLQ[partition]@offset."""
    original = Message(
        topic=original_topic,
        partition=0,
        offset=offset if original_offset is None else original_offset,
        key=key.encode(),
        value=value,
        headers=headers,
        timestamp=(1, 1_700),
    )
    copy = dead_letter_copy(H, original, error_type, f"{error_type} at offset {offset}", max_bytes)
    return DeadLetter(DLQ, copy.key, copy.value, tuple(copy.headers), partition, offset, 1_800)


class FakeDecoder:
    """VALID decodes; any other value is poison; values in unavailable make the registry unreachable."""

    def __init__(self, unavailable: frozenset[bytes] = frozenset()) -> None:
        self.unavailable = unavailable

    def decode(self, topic: str, key: bytes | None, value: bytes | None) -> dict[str, Any]:
        if value in self.unavailable:
            raise RegistryUnavailable("connection refused")
        if topic not in {"order-events", "fulfillment-events"}:
            raise LookupError(f"{topic} is not an event topic of this deployment")
        if value != VALID:
            raise PoisonRecord("InvalidWireFormat", "not the Confluent wire format")
        return {"orderId": (key or b"").decode(), "totalAmount": "1.00"}


@dataclass
class FakeSender:
    """Records what was produced; keys in refuse are refused by the broker."""

    refuse: set[bytes] = field(default_factory=set)
    sent: list[Outgoing] = field(default_factory=list)

    def send(self, records: list[Outgoing]) -> list[Delivery]:
        deliveries = []
        for record in records:
            if record.key in self.refuse:
                deliveries.append(Delivery("TOPIC_AUTHORIZATION_FAILED: not authorised"))
            else:
                self.sent.append(record)
                deliveries.append(Delivery(None, 0, 100 + len(self.sent)))
        return deliveries


@dataclass
class FakeSpool:
    rows: list[DeadLetter]
    removed: list[int] = field(default_factory=list)

    def copies(self) -> list[DeadLetter]:
        return [row for row in self.rows if row.spool_id not in self.removed]

    def remove(self, spool_id: int) -> None:
        self.removed.append(spool_id)


@dataclass
class FakeEnvironment:
    """The deployment at its default settings, its dead-letter topic holding copies."""

    copies: list[DeadLetter]
    decoder_: FakeDecoder = field(default_factory=FakeDecoder)
    sender_: FakeSender = field(default_factory=FakeSender)
    spool_: FakeSpool = field(default_factory=lambda: FakeSpool([]))
    settings: EventSettings = field(default_factory=EventSettings)
    reads: list[tuple[str, OffsetRange]] = field(default_factory=list)
    senders: int = 0

    def read(self, topic: str, offsets: OffsetRange) -> list[DeadLetter]:
        self.reads.append((topic, offsets))
        if topic != DLQ:
            raise TimeoutError(f"topics {topic} not found: topic {topic} does not exist")
        return [c for c in self.copies if offsets.partitions is None or c.partition in offsets.partitions]

    def decoder(self) -> FakeDecoder:
        return self.decoder_

    def sender(self) -> FakeSender:
        self.senders += 1
        return self.sender_

    def spool(self, database_url: str) -> FakeSpool:
        return self.spool_


def invoke(environment: FakeEnvironment, *args: str) -> Any:
    return CliRunner().invoke(app, list(args), obj=environment)


@pytest.fixture
def mixed() -> FakeEnvironment:
    """order-1 and order-2 replayable, a truncated copy, garbage, and a copy from another topic."""
    return FakeEnvironment(
        [
            dead_letter(0, "order-1"),
            dead_letter(1, "order-big", "InvalidWireFormat", b"\xff" * 1_010_000),
            dead_letter(2, "order-garbage", "InvalidWireFormat", b"\xffgarbage"),
            dead_letter(3, "order-2", "IncompatibleWriterSchema"),
            dead_letter(4, "order-3", original_topic="fulfillment-events"),
        ]
    )


# -- selection ------------------------------------------------------------------------------------------


def test_filters_select_by_error_type_key_partition_and_offsets_in_order_up_to_the_limit() -> None:
    copies = [dead_letter(o, f"k{o}", "UnknownSchemaId" if o % 2 else "InvalidEvent") for o in range(6, -1, -1)]
    copies.append(dead_letter(3, "k3", "UnknownSchemaId", partition=1))
    select = lambda **f: [(c.partition, c.offset) for c in Selection(**f).select(copies)]  # noqa: E731

    assert select() == [(0, 0), (0, 1), (0, 2), (0, 3), (0, 4), (0, 5), (0, 6), (1, 3)]
    assert select(error_type="UnknownSchemaId") == [(0, 1), (0, 3), (0, 5), (1, 3)]
    assert select(key="k3") == [(0, 3), (1, 3)]
    assert select(key="k3", partition=1) == [(1, 3)]
    assert select(first_offset=2, last_offset=4, partition=0) == [(0, 2), (0, 3), (0, 4)]
    assert select(error_type="UnknownSchemaId", limit=2) == [(0, 1), (0, 3)]
    assert select(key="nobody") == []
    assert Selection(partition=1, first_offset=5).offsets() == OffsetRange(5, None, frozenset({1}))


def test_a_copy_reads_its_facts_from_the_dead_letter_headers() -> None:
    copy = dead_letter(9, "order-9", "InvalidEvent", b"\xff" * 1_010_000, original_offset=41)
    assert copy.truncated and copy.original_size == 1_010_000 and len(copy.value or b"") < 1_000_000
    assert (copy.original, copy.error_type, copy.key_text) == ("order-events[0]@41", "InvalidEvent", "order-9")
    assert copy.where == f"{DLQ}[0]@9"
    assert copy.to_json()["originalOffset"] == 41


# -- dlq list / show -----------------------------------------------------------------------------------------


def test_list_prints_one_line_per_record_with_its_origin_error_size_and_truncation(mixed: FakeEnvironment) -> None:
    result = invoke(mixed, "dlq", "list")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 1 + 5 + 1 and lines[-1] == "5 record(s)"
    big = next(line for line in lines if "order-big" in line)
    assert "InvalidWireFormat" in big and "order-events[0]@1" in big and "1010000" in big and " yes " in big
    first = next(line for line in lines if "order-1" in line)
    assert "UnknownSchemaId" in first and " no " in first and "UnknownSchemaId at offset 0" in first
    assert mixed.reads == [(DLQ, OffsetRange())]  # the default topic: ORDER_EVENTS_DLQ_TOPIC


def test_list_filters_and_prints_json(mixed: FakeEnvironment) -> None:
    result = invoke(mixed, "dlq", "list", "--error-type", "InvalidWireFormat", "--limit", "1", "--json")
    assert result.exit_code == 0, result.output
    (record,) = [json.loads(line) for line in result.output.splitlines()]
    assert (record["key"], record["offset"], record["truncated"], record["originalSize"]) == (
        "order-big",
        1,
        True,
        1_010_000,
    )
    invoke(mixed, "dlq", "list", "--from-offset", "2", "--to-offset", "3", "--partition", "0")
    assert mixed.reads[-1] == (DLQ, OffsetRange(2, 3, frozenset({0})))


def test_a_topic_that_cannot_be_read_is_reported_with_exit_code_2(mixed: FakeEnvironment) -> None:
    result = invoke(mixed, "dlq", "list", "--topic", "no-such.dlq")
    assert result.exit_code == 2
    assert "no-such.dlq does not exist" in result.output


def test_show_prints_headers_and_the_decoded_event(mixed: FakeEnvironment) -> None:
    result = invoke(mixed, "dlq", "show", "--partition", "0", "--offset", "3")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["event"] == {"orderId": "order-2", "totalAmount": "1.00"}
    assert shown["headers"][H.error_type] == "IncompatibleWriterSchema"
    assert shown["headers"][H.original_topic] == "order-events"
    assert (shown["partition"], shown["offset"], shown["key"]) == (0, 3, "order-2")


def test_show_falls_back_to_size_and_hex_saying_why_it_does_not_decode(mixed: FakeEnvironment) -> None:
    garbage = json.loads(invoke(mixed, "dlq", "show", "--partition", "0", "--offset", "2").output)
    assert garbage["event"] is None
    assert garbage["undecodable"] == {
        "reason": "InvalidWireFormat: not the Confluent wire format",
        "valueBytes": 8,
        "valueHexPrefix": b"\xffgarbage".hex(),
    }
    truncated = json.loads(invoke(mixed, "dlq", "show", "--partition", "0", "--offset", "1").output)
    assert truncated["undecodable"]["reason"].startswith("the copy is truncated (")
    assert len(truncated["undecodable"]["valueHexPrefix"]) == 128  # the first 64 bytes only


def test_show_of_a_missing_offset_exits_1(mixed: FakeEnvironment) -> None:
    result = invoke(mixed, "dlq", "show", "--partition", "0", "--offset", "99")
    assert result.exit_code == 1 and f"no record at {DLQ}[0]@99" in result.output


# -- dlq replay ----------------------------------------------------------------------------------------------


def test_dry_run_produces_nothing_and_says_what_it_would_do(mixed: FakeEnvironment) -> None:
    result = invoke(mixed, "dlq", "replay", "--dry-run")
    assert result.exit_code == 0, result.output
    assert mixed.senders == 0 and mixed.sender_.sent == []
    lines = result.output.splitlines()
    would = [line for line in lines[:-1] if line.startswith("would replay")]
    assert [("order-1" in w, "order-2" in w) for w in would] == [(True, False), (False, True)]
    assert lines[-1] == "would replay 2, skipped 3, failed 0 of 5 selected (dry run: nothing produced)"


def test_replay_produces_exactly_the_valid_records_unchanged_to_their_original_topic(mixed: FakeEnvironment) -> None:
    result = invoke(mixed, "dlq", "replay")
    assert result.exit_code == 0, result.output
    assert mixed.sender_.sent == [
        Outgoing("order-events", b"order-1", VALID),
        Outgoing("order-events", b"order-2", VALID),
    ]
    lines = result.output.splitlines()
    skipped = {line.split("key=")[1].split()[0]: line for line in lines if line.startswith("skipped")}
    assert "truncated copy" in skipped["order-big"] and "the original is order-events[0]@1" in skipped["order-big"]
    assert "still cannot be processed: InvalidWireFormat" in skipped["order-garbage"]
    assert "fulfillment-events is not order-events" in skipped["order-3"]
    assert lines[-1] == "replayed 2, skipped 3, failed 0 of 5 selected"


def test_replay_continues_the_originals_trace_and_carries_no_other_header() -> None:
    traceparent = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    original_headers = [("traceparent", traceparent), ("tracestate", b"v=1"), ("other", b"x")]
    environment = FakeEnvironment([dead_letter(0, "order-1", headers=original_headers), dead_letter(1, "order-2")])
    result = invoke(environment, "dlq", "replay")
    assert result.exit_code == 0, result.output
    assert environment.sender_.sent == [
        Outgoing("order-events", b"order-1", VALID, (("traceparent", traceparent), ("tracestate", b"v=1"))),
        Outgoing("order-events", b"order-2", VALID),
    ]


def test_replay_honours_the_filters(mixed: FakeEnvironment) -> None:
    result = invoke(mixed, "dlq", "replay", "--key", "order-2")
    assert result.exit_code == 0, result.output
    assert [r.key for r in mixed.sender_.sent] == [b"order-2"]


def test_two_copies_of_one_original_are_replayed_once() -> None:
    environment = FakeEnvironment([dead_letter(0, "order-1"), dead_letter(1, "order-1", original_offset=0)])
    result = invoke(environment, "dlq", "replay")
    assert result.exit_code == 0, result.output
    assert len(environment.sender_.sent) == 1
    assert f"another copy of order-events[0]@0 ({DLQ}[0]@0)" in result.output


def test_a_refused_delivery_or_an_unreachable_registry_fails_the_replay_with_exit_code_1() -> None:
    unavailable = b"\x00\x00\x00\x00\x02needs the registry"
    environment = FakeEnvironment(
        [dead_letter(0, "order-1"), dead_letter(1, "order-2"), dead_letter(2, "order-3", value=unavailable)],
        decoder_=FakeDecoder(frozenset({unavailable})),
        sender_=FakeSender(refuse={b"order-2"}),
    )
    result = invoke(environment, "dlq", "replay")
    assert result.exit_code == 1
    assert [r.key for r in environment.sender_.sent] == [b"order-1"]
    assert "TOPIC_AUTHORIZATION_FAILED" in result.output and "the registry cannot tell" in result.output
    assert result.output.splitlines()[-1] == "replayed 1, skipped 0, failed 2 of 3 selected"


# -- spool ---------------------------------------------------------------------------------------------------


def spooled(spool_id: int, key: str, topic: str = DLQ) -> DeadLetter:
    copy = dead_letter(spool_id, key)
    return DeadLetter(topic, copy.key, copy.value, copy.headers, spool_id=spool_id, spool_reason="topic refused")


def test_spool_replay_deletes_a_row_only_once_its_copy_was_delivered() -> None:
    rows = [spooled(1, "order-1"), spooled(2, "order-2"), spooled(3, "order-3")]
    environment = FakeEnvironment([], sender_=FakeSender(refuse={b"order-2"}), spool_=FakeSpool(rows))

    dry = invoke(environment, "spool", "replay", "--database-url", "sqlite:///unused.db", "--dry-run")
    assert dry.exit_code == 0 and environment.spool_.removed == [] and environment.sender_.sent == []

    result = invoke(environment, "spool", "replay", "--database-url", "sqlite:///unused.db")
    assert result.exit_code == 1
    assert [(r.topic, r.key, r.headers) for r in environment.sender_.sent] == [
        (DLQ, b"order-1", rows[0].headers),
        (DLQ, b"order-3", rows[2].headers),
    ]
    assert environment.spool_.removed == [1, 3]
    assert "row kept" in result.output
    assert result.output.splitlines()[-1] == "replayed 2, skipped 0, failed 1 of 3 selected"


def test_spool_list_reads_the_table_the_service_writes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/service.db"
    engine = make_engine(url)
    metadata = MetaData()
    table = dead_letter_spool_table(metadata)
    metadata.create_all(engine)
    original = Message(topic="order-events", partition=0, offset=12, key=b"order-7", value=b"\xffbad", timestamp=(1, 5))
    copy = dead_letter_copy(H, original, "InvalidWireFormat", "magic byte", PRODUCER_MAX_MESSAGE_BYTES)
    DeadLetterSpool(engine, table).add(DLQ, [(copy, "TOPIC_AUTHORIZATION_FAILED: not authorised")])

    (row,) = SpoolTable(engine).copies()
    assert (row.topic, row.key, row.value, row.headers) == (DLQ, b"order-7", b"\xffbad", tuple(copy.headers))
    assert (row.original, row.error_type, row.spool_reason) == (
        "order-events[0]@12",
        "InvalidWireFormat",
        "TOPIC_AUTHORIZATION_FAILED: not authorised",
    )

    class Tables(FakeEnvironment):
        def spool(self, database_url: str) -> SpoolTable:
            return SpoolTable(make_engine(database_url))

    result = invoke(Tables([]), "spool", "list", "--database-url", url)
    assert result.exit_code == 0, result.output
    assert "order-7" in result.output and "TOPIC_AUTHORIZATION_FAILED" in result.output
    assert result.output.splitlines()[-1] == "1 record(s)"
    SpoolTable(engine).remove(row.spool_id or 0)
    assert SpoolTable(engine).copies() == []


def test_a_database_without_the_spool_table_exits_2(tmp_path: Path) -> None:
    class Tables(FakeEnvironment):
        def spool(self, database_url: str) -> SpoolTable:
            return SpoolTable(make_engine(database_url))

    result = invoke(Tables([]), "spool", "list", "--database-url", f"sqlite:///{tmp_path}/empty.db")
    assert result.exit_code == 2 and "cannot read the spool" in result.output


def test_parked_outbox_rows_are_listed_retried_and_discarded(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/orders.db"
    engine = make_engine(url)
    order_bootstrap.migrate(engine)
    outbox = order_store.outbox
    with engine.begin() as conn:
        for key, parked in (("order-1", True), ("order-1", False), ("order-2", True)):
            conn.execute(
                insert(outbox).values(
                    topic="order-events",
                    key=key,
                    event_type="OrderCreated",
                    payload=json.dumps({"orderId": key}),
                    created_at=1.0,
                    attempts=1 if parked else 0,
                    failure_reason="MSG_SIZE_TOO_LARGE: too large" if parked else None,
                    parked_at=2.0 if parked else None,
                )
            )
    runner = CliRunner()
    listed = runner.invoke(app, ["outbox", "list", "--database-url", url], obj=object())
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert lines[-1] == "2 parked"
    assert lines[0].split("\t")[:3] == ["1", "order-events", "order-1"] and "behind=1" in lines[0]
    as_json = runner.invoke(app, ["outbox", "list", "--database-url", url, "--json"], obj=object())
    assert [json.loads(line)["payload"]["orderId"] for line in as_json.output.splitlines()] == ["order-1", "order-2"]

    assert runner.invoke(app, ["outbox", "retry", "--database-url", url, "--id", "1"], obj=object()).exit_code == 0
    discarded = runner.invoke(app, ["outbox", "discard", "--database-url", url, "--id", "3"], obj=object())
    assert discarded.exit_code == 0 and json.loads(discarded.output)["key"] == "order-2"
    again = runner.invoke(app, ["outbox", "retry", "--database-url", url, "--id", "3"], obj=object())
    assert again.exit_code == 1
    with engine.connect() as conn:
        left = conn.execute(select(outbox.c.id, outbox.c.parked_at).order_by(outbox.c.id)).all()
    assert [tuple(row) for row in left] == [(1, None), (2, None)]  # unparked, the one behind it waits no more


def test_a_mistyped_database_path_is_reported_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "no-such.db"
    result = CliRunner().invoke(app, ["outbox", "list", "--database-url", f"sqlite:///{missing}"], obj=object())
    assert result.exit_code == 2 and "no database file" in result.output
    assert not missing.exists()


def test_each_replayed_record_is_logged_naming_its_order(mixed: FakeEnvironment) -> None:
    with json_lines("repair") as lines:
        result = invoke(mixed, "dlq", "replay")
    assert result.exit_code == 0, result.output
    replayed = [(line["orderId"], line["event"]) for line in lines.at("info")]
    assert replayed == [("order-1", "dead-lettered record replayed"), ("order-2", "dead-lettered record replayed")]
