"""Helpers the integration, contract and end-to-end tests share: a running system and Kafka readers."""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import Consumer, TopicPartition

from infra.ports import free_port
from infra.services import ServiceProcess, fulfillment_service, order_service, service_env

TERMINAL = {"Fulfilled", "Failed"}


@dataclass
class System:
    """Both services running against one stack, with their own topics, groups and databases."""

    orders: ServiceProcess
    fulfillment: ServiceProcess
    env: dict[str, dict[str, str]]
    data_dir: Path
    bootstrap_servers: str
    registry_url: str

    @property
    def order_topic(self) -> str:
        return self.env["order"]["ORDER_EVENTS_TOPIC"]

    @property
    def fulfillment_topic(self) -> str:
        return self.env["order"]["FULFILLMENT_EVENTS_TOPIC"]

    def start(self) -> None:
        self.orders.start()
        self.fulfillment.start()

    def stop(self) -> None:
        for service in (self.fulfillment, self.orders):
            service.stop()


def make_system(
    bootstrap_servers: str, registry_url: str, data_dir: Path, prefix: str | None = None, **extra: str
) -> System:
    prefix = f"t{uuid.uuid4().hex[:8]}-" if prefix is None else prefix
    env = service_env(bootstrap_servers, registry_url, data_dir, prefix, **extra)
    logs = data_dir / "logs"
    return System(
        order_service(free_port(), env["order"], logs),
        fulfillment_service(free_port(), env["fulfillment"], logs),
        env,
        data_dir,
        bootstrap_servers,
        registry_url,
    )


@contextlib.contextmanager
def running_system(stack: Any, data_dir: Path, prefix: str | None = None, **extra: str) -> Iterator[System]:
    """Both services started on stack, stopped on leaving (KEEP_LOGS=1 prints the end of their logs)."""
    system = make_system(stack.bootstrap_servers, stack.registry_url, data_dir, prefix, **extra)
    system.start()
    try:
        yield system
    finally:
        system.stop()
        if os.environ.get("KEEP_LOGS"):
            print(system.orders.tail(), system.fulfillment.tail())


def new_order(customer: str = "cust-1", n_items: int = 1) -> dict[str, Any]:
    return {
        "customerId": customer,
        "customerName": "Ada Lovelace",
        "items": [
            {"productId": f"p-{i}", "productName": f"Product {i}", "quantity": i + 1, "price": 19.99}
            for i in range(n_items)
        ],
    }


def post_orders(base_url: str, count: int, timeout: float = 5.0) -> list[str]:
    """POST count orders; asserts each is a 201 and returns the order ids."""
    ids = []
    with httpx.Client(base_url=base_url, timeout=timeout) as client:
        for i in range(count):
            response = client.post("/api/orders", json=new_order(f"cust-{i % 7}"))
            assert response.status_code == 201, response.text
            ids.append(response.json()["orderId"])
    return ids


def wait_until(condition: Callable[[], Any], timeout: float, interval: float = 0.1, message: str = "") -> Any:
    """Poll until condition() is truthy; fail with message after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message or condition}")
        time.sleep(interval)


def statuses(base_url: str, order_ids: list[str]) -> dict[str, dict[str, Any]]:
    with httpx.Client(base_url=base_url, timeout=10) as client:
        return {order_id: client.get(f"/api/orders/{order_id}").json() for order_id in order_ids}


def wait_all_terminal(base_url: str, order_ids: list[str], timeout: float) -> dict[str, dict[str, Any]]:
    def done() -> dict[str, dict[str, Any]] | None:
        current = statuses(base_url, order_ids)
        return current if all(o.get("status") in TERMINAL for o in current.values()) else None

    return wait_until(done, timeout, interval=0.5, message="every order to reach Fulfilled or Failed")


def read_topic(bootstrap_servers: str, topic: str, stop: Callable[[list[Any]], bool], timeout: float) -> list[Any]:
    """Every record of topic from the beginning, until stop(records) or timeout."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": f"reader-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    records: list[Any] = []
    try:
        metadata = wait_until(lambda: _topic_metadata(consumer, topic), 30, message=f"topic {topic}")
        consumer.assign([TopicPartition(topic, p, 0) for p in metadata.partitions])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not stop(records):
            for message in consumer.consume(500, timeout=0.5):
                if message.error() is None:
                    records.append(message)
    finally:
        consumer.close()
    return records


def _topic_metadata(consumer: Consumer, topic: str) -> Any:
    try:
        found = consumer.list_topics(topic, timeout=5).topics.get(topic)
    except Exception:
        return None
    return found if found is not None and found.error is None and found.partitions else None


def iter_keys(records: list[Any]) -> Iterator[str]:
    for record in records:
        yield record.key().decode()
