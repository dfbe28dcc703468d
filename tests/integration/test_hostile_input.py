"""Hostile input against the running services on the real broker and registry: rule-breaking events are
dead-lettered and never acted on, and no request leaves a connection without an HTTP answer."""

from __future__ import annotations

import base64
import json
import socket
import sqlite3
import threading
import time
import uuid
from decimal import Decimal

import httpx
import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from contract_models.events import (
    FULFILLMENT_STATUS_CHANGED_SCHEMA,
    ORDER_CREATED_SCHEMA,
    FulfillmentStatus,
)
from events.codecs import event_codec_for
from events.topology import DEAD_LETTER_HEADERS, FULFILLMENT_EVENTS, ORDER_EVENTS
from harness.orders import post_orders, wait_all_terminal
from harness.records import avro_body, produce_records, wire_value, zigzag
from harness.topics import read_topic
from httpapi import strict_json
from tests.sample_events import order_created, order_line, status_changed

pytestmark = pytest.mark.integration

ERROR_TYPE = DEAD_LETTER_HEADERS.error_type


RULE_BREAKING_ORDERS = {
    "negative quantity": {"items": [order_line(quantity=-5)], "totalAmount": Decimal("-5.00")},
    "zero quantity": {"items": [order_line(quantity=0)], "totalAmount": Decimal("0.00")},
    "no items": {"items": [], "totalAmount": Decimal("0.00")},
    "total not the sum": {"totalAmount": Decimal("999.00")},
    "negative price": {"items": [order_line(price=Decimal("-1.00"))], "totalAmount": Decimal("-1.00")},
    "price above the limit": {"items": [order_line(price=Decimal("2000000.00"))], "totalAmount": Decimal("2000000.00")},
    "other event type": {"eventType": "OrderShipped"},
    "empty customer id": {"customerId": ""},
    "empty product id": {"items": [order_line(productId="")]},
    "nil order id": {"orderId": uuid.UUID(int=0)},
}


def test_orders_that_break_the_rules_are_dead_lettered_and_never_shipped(system):
    codec = event_codec_for(SchemaRegistryClient({"url": system.registry_url}), ORDER_EVENTS, system.order_topic)
    events = {name: order_created(**overrides) for name, overrides in RULE_BREAKING_ORDERS.items()}
    # encode() registers and serializes with the real registry: every record is valid Avro.
    encoded = {name: codec.encode(event) for name, event in events.items()}
    produce_records(
        system.bootstrap_servers, system.order_topic, [(str(events[n].orderId), v) for n, v in encoded.items()]
    )
    valid = post_orders(system.orders.url, 3)
    wait_all_terminal(system.orders.url, valid, timeout=60)

    dlq = read_topic(
        system.bootstrap_servers,
        system.env["fulfillment"][ORDER_EVENTS.dead_letter_env],
        stop=lambda records: len(records) >= len(events),
        timeout=30,
    )
    parked = {record.value(): dict(record.headers()) for record in dlq}
    for name, value in encoded.items():
        assert name and parked[value][ERROR_TYPE].decode() == "InvalidEvent"  # bytes untouched, reason named
    with sqlite3.connect(system.data_dir / "shipping-provider.db") as ledger:
        shipped = {key for (key,) in ledger.execute("SELECT idempotency_key FROM shipments")}
    assert not shipped & {str(e.orderId) for e in events.values()}
    for event in events.values():
        found = httpx.get(f"{system.fulfillment.url}/api/fulfillment/orders/{event.orderId}", timeout=10)
        assert found.status_code in (404, 422)


def test_status_changes_that_break_the_rules_are_dead_lettered_and_projection_goes_on(system):
    registry = SchemaRegistryClient({"url": system.registry_url})
    codec = event_codec_for(registry, FULFILLMENT_EVENTS, system.fulfillment_topic)
    broken = [
        status_changed(FulfillmentStatus.Shipped, trackingNumber="S" * 500, carrier="MockCarrier"),
        status_changed(FulfillmentStatus.Failed),  # without a reason
    ]
    produce_records(
        system.bootstrap_servers, system.fulfillment_topic, [(str(e.orderId), codec.encode(e)) for e in broken]
    )
    valid = post_orders(system.orders.url, 3)
    wait_all_terminal(system.orders.url, valid, timeout=60)
    dlq = read_topic(
        system.bootstrap_servers,
        system.env["order"][FULFILLMENT_EVENTS.dead_letter_env],
        stop=lambda records: len(records) >= len(broken),
        timeout=30,
    )
    assert sorted(r.key().decode() for r in dlq) == sorted(str(e.orderId) for e in broken)
    assert {dict(r.headers())[ERROR_TYPE].decode() for r in dlq} == {"InvalidEvent"}


def _exchange(port: int, request: bytes, timeout: float = 10.0) -> bytes:
    """Send raw bytes and return everything the server answered until it closed the connection (every
    request here asks it to, or is one the server must refuse and close on)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(request)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _post(body: bytes, content_type: str = "application/json") -> bytes:
    return (
        b"POST /api/orders HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: "
        + content_type.encode()
        + b"\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


HOSTILE_REQUESTS = {
    "deep nesting": _post(b"[" * 2000 + b"]" * 2000),
    "huge exponent": _post(b'{"customerId":"c","customerName":"n","items":[{"quantity":1e400000}]}'),
    "tiny price": _post(b'{"customerId":"c","customerName":"n","items":[{"price":1e-999999999}]}'),
    "lone surrogate": _post(b'{"customerId":"\\ud800"}'),
    "not utf-8": _post(b'{"customerId":"\xff\xfe"}'),
    "duplicate keys": _post(b'{"customerId":"a","customerId":"b"}'),
    "nul in text": _post(b'{"customerId":"a\\u0000"}'),
    "many values": _post(b"[" + b",".join([b"1.5e3"] * 150_000) + b"]"),
    "bad chunked body": b"POST /api/orders HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    "negative content-length": b"POST /api/orders HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    "garbage request line": b"\x00\x01\x02 / HTTP/1.1\r\n\r\n",
    "cursor beyond bigint": b"GET /api/orders?cursor="
    + base64.urlsafe_b64encode(b"50000000000000000000:00000000-0000-4000-8000-000000000000")
    + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
}


def test_every_hostile_request_gets_an_http_answer_and_others_are_served_meanwhile(system):
    port = int(system.orders.url.rsplit(":", 1)[1])
    answers = {name: _exchange(port, request) for name, request in HOSTILE_REQUESTS.items()}
    for name, answer in answers.items():
        status_line = answer.split(b"\r\n", 1)[0]
        assert status_line.startswith(b"HTTP/1.1 4"), f"{name}: {status_line!r}"

    # While the most expensive body this service parses is in flight, liveness still answers at once.
    values_left = strict_json.MAX_VALUES - 10
    worst = _post(b'{"customerId":"c","customerName":"n","items":[' + b",".join([b"1.5e3"] * values_left) + b"]}")
    live_times: list[float] = []
    stop = threading.Event()

    def probe() -> None:
        with httpx.Client(base_url=system.orders.url, timeout=10) as client:
            while not stop.is_set():
                started = time.monotonic()
                assert client.get("/health/live").status_code == 200
                live_times.append(time.monotonic() - started)

    prober = threading.Thread(target=probe)
    prober.start()
    try:
        for _ in range(20):
            assert _exchange(port, worst).startswith(b"HTTP/1.1 422")
    finally:
        stop.set()
        prober.join()
    assert live_times and max(live_times) < 1.0, max(live_times)


def _decoder_attacks(registry: SchemaRegistryClient, schema: str, valid_body: bytes) -> dict[str, bytes]:
    """Records that are valid Avro for a writer schema the registry holds, but would hang the decoder, crash
    the process or burn seconds of CPU (see messaging/avro_safety.py for the public reports)."""
    with_array = json.loads(schema)
    with_array["fields"].insert(0, {"name": "junk", "type": {"type": "array", "items": "null"}, "default": []})
    recursive = json.loads(schema)
    node = {"type": "record", "name": "Node", "fields": [{"name": "n", "type": ["null", "Node"]}]}
    recursive["fields"].insert(0, {"name": "junk", "type": node, "default": {"n": None}})
    array_id = registry.register_schema(f"attack-{uuid.uuid4().hex[:8]}-value", Schema(json.dumps(with_array), "AVRO"))
    recursive_id = registry.register_schema(
        f"attack-{uuid.uuid4().hex[:8]}-value", Schema(json.dumps(recursive), "AVRO")
    )
    return {
        "zero-size array of 2**62 items": wire_value(array_id, zigzag(2**62) + zigzag(0) + valid_body),
        "record nested 200,000 deep": wire_value(recursive_id, b"\x02" * 200_000 + b"\x00" + valid_body),
    }


def test_records_that_would_hang_or_crash_the_decoder_are_dead_lettered_on_both_topics(system):
    registry = SchemaRegistryClient({"url": system.registry_url})
    order_codec = event_codec_for(registry, ORDER_EVENTS, system.order_topic)
    status_codec = event_codec_for(registry, FULFILLMENT_EVENTS, system.fulfillment_topic)
    valid_order = order_codec.encode(order_created())[5:]
    valid_status = status_codec.encode(status_changed(FulfillmentStatus.Pending))[5:]
    order_attacks = _decoder_attacks(registry, ORDER_CREATED_SCHEMA, valid_order)
    # The project's own schema id, with a price decimal of 400 KB: quadratic to convert.
    plain = ORDER_CREATED_SCHEMA.replace('{"type":"bytes","logicalType":"decimal","precision":12,"scale":2}', '"bytes"')
    record = {**order_created().model_dump(mode="json"), "timestamp": 0}
    record["items"] = [{**record["items"][0], "price": b"\x7f" * 400_000}]
    record["totalAmount"] = b"\x01"
    own_id = registry.get_latest_version(ORDER_EVENTS.subject(system.order_topic)).schema_id
    order_attacks["decimal of 400 KB"] = wire_value(own_id, avro_body(plain, record))
    status_attacks = _decoder_attacks(registry, FULFILLMENT_STATUS_CHANGED_SCHEMA, valid_status)

    produce_records(
        system.bootstrap_servers, system.order_topic, [(name, value) for name, value in order_attacks.items()]
    )
    produce_records(system.bootstrap_servers, system.fulfillment_topic, list(status_attacks.items()))
    valid = post_orders(system.orders.url, 3)
    wait_all_terminal(system.orders.url, valid, timeout=60)
    for url in (f"{system.orders.url}/health/ready", f"{system.fulfillment.url}/api/fulfillment/health"):
        assert httpx.get(url, timeout=5).status_code == 200

    for topic, attacks in (
        (system.env["fulfillment"][ORDER_EVENTS.dead_letter_env], order_attacks),
        (system.env["order"][FULFILLMENT_EVENTS.dead_letter_env], status_attacks),
    ):
        parked = read_topic(system.bootstrap_servers, topic, stop=lambda rs, n=len(attacks): len(rs) >= n, timeout=30)
        kinds = {r.key().decode(): dict(r.headers())[ERROR_TYPE].decode() for r in parked}
        assert set(kinds) == set(attacks)
        assert kinds["zero-size array of 2**62 items"] == kinds["record nested 200,000 deep"] == "UnsafeWriterSchema"
        if "decimal of 400 KB" in kinds:
            assert kinds["decimal of 400 KB"] == "UndecodableRecord"
