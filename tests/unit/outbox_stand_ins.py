"""What the outbox relay tests share: a stand-in event and codec (no registry), a temporary SQLite outbox and
librdkafka's built-in mock cluster. Use the fixtures as `outbox = outbox_stand_ins.outbox` in a test module."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Producer
from pydantic import BaseModel
from sqlalchemy import Engine, MetaData, Table

from messaging.avro_codec import RegistrationCheck, RegistryUnavailable, UnencodableEvent
from outbox.table import outbox_table
from persistence.engine import make_engine

TOPIC = "events"


class Event(BaseModel):
    """The stand-in event: its text is what the codec writes."""

    text: str


class StandInCodec:
    """Encodes Event.text as bytes; "unencodable" never encodes, "registry-down" fails while registry_down is set."""

    model = Event

    def __init__(self) -> None:
        self.registry_down = False

    def encode(self, event: Event) -> bytes:
        if event.text == "unencodable":
            raise UnencodableEvent("ValueError: the value fits no Avro type")
        if event.text == "registry-down" and self.registry_down:
            raise RegistryUnavailable("registry unreachable")
        return event.text.encode()

    def check_registration(self, now: float) -> Any:
        return RegistrationCheck("ok", f"{TOPIC}-value", now, schema_id=1)


@pytest.fixture
def outbox(tmp_path) -> tuple[Engine, Table]:
    """An outbox table in a temporary SQLite database: (engine, table)."""
    engine = make_engine(f"sqlite:///{tmp_path}/outbox.sqlite")
    metadata = MetaData()
    table = outbox_table(metadata)
    metadata.create_all(engine)
    return engine, table


@pytest.fixture
def mock_cluster() -> Iterator[str]:
    """librdkafka's mock cluster, kept alive by a producer; yields its bootstrap servers."""
    holder = Producer({"test.mock.num.brokers": 1})
    servers = holder.list_topics(timeout=10).orig_broker_name.split("/")[0]
    yield servers
    holder.flush(5)
