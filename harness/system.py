"""The system under test: both services as processes on one stack, with their own topics, groups and databases."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx

from events.topology import FULFILLMENT_EVENTS, ORDER_EVENTS, RETENTION_MS, TOPICS
from infra.ports import free_port
from infra.services import ServiceProcess, fulfillment_service, order_service, service_env
from messaging.settings import KafkaSettings, settings_from_env
from messaging.topics import TopicSpec, ensure_topics


class Stack(Protocol):
    """Where the services find Kafka and the registry (``infra.stack.LocalStack`` or anything alike)."""

    @property
    def bootstrap_servers(self) -> str:
        """Kafka's bootstrap list, "host:port[,host:port...]"."""
        ...

    @property
    def registry_url(self) -> str:
        """The registry's Confluent-compatible base URL (Apicurio: ``.../apis/ccompat/v7``)."""
        ...


@dataclass
class System:
    """Both services running against one stack; env holds each service's environment ("order", "fulfillment")."""

    orders: ServiceProcess
    fulfillment: ServiceProcess
    env: dict[str, dict[str, str]]
    data_dir: Path
    bootstrap_servers: str
    registry_url: str

    @property
    def kafka(self) -> KafkaSettings:
        """Kafka and the registry as the services reach them (their environment over this process's): the
        settings for the tests' own clients of the system's cluster."""
        return settings_from_env(self.env["order"])

    @property
    def order_topic(self) -> str:
        """The topic OrderCreated events go to."""
        return self.env["order"][ORDER_EVENTS.topic_env]

    @property
    def fulfillment_topic(self) -> str:
        """The topic FulfillmentStatusChanged events go to."""
        return self.env["order"][FULFILLMENT_EVENTS.topic_env]

    def create_topics(self, *, dead_letters: bool = True) -> None:
        """Create this system's topics (one partition each) as the services do at start-up unless CREATE_TOPICS
        is off; dead_letters=False leaves the dead-letter topics out. KafkaException if the broker refuses."""
        env = self.env["order"]
        names = [topic.topic_env for topic in TOPICS]
        if dead_letters:
            names += [topic.dead_letter_env for topic in TOPICS]
        ensure_topics(self.kafka, [TopicSpec(env[name], 1, RETENTION_MS) for name in names], timeout=30)

    def dead_letters(self) -> dict[str, Any]:
        """The Fulfillment Service's dead letters as its health reports them: {"published": n, "spooled": m}."""
        return self.fulfillment_health()["deadLetters"]

    def start(self) -> None:
        """Start the Order Service, then the Fulfillment Service; each returns once healthy."""
        self.orders.start()
        self.fulfillment.start()

    def stop(self) -> None:
        """Stop both services gracefully (SIGTERM, SIGKILL after their grace period)."""
        for service in (self.fulfillment, self.orders):
            service.stop()

    def order_readiness(self, timeout: float = 5.0) -> dict[str, Any]:
        """The Order Service's /health/ready body (dependencies, outboxBacklog); httpx.HTTPError if unreachable."""
        return httpx.get(self.orders.url + "/health/ready", timeout=timeout).json()

    def fulfillment_health(self, service: ServiceProcess | None = None, timeout: float = 5.0) -> dict[str, Any]:
        """A Fulfillment Service's health body (breaker, consumerLag, inFlight); by default this system's one."""
        target = service or self.fulfillment
        return httpx.get(target.url + "/api/fulfillment/health", timeout=timeout).json()

    def set_provider(self, timeout: float = 10.0, **changes: float) -> dict[str, Any]:
        """Change the mock provider's behaviour at run time (PUT /admin/provider, PROVIDER_CONTROL_ENABLED), e.g.
        failureRate=1.0; no changes reads it. Returns the behaviour now in force; httpx.HTTPStatusError if refused."""
        response = httpx.put(self.fulfillment.url + "/admin/provider", json=changes, timeout=timeout)
        response.raise_for_status()
        return response.json()


def make_system(
    bootstrap_servers: str,
    registry_url: str,
    data_dir: Path,
    prefix: str | None = None,
    database_dirs: Mapping[str, Path] | None = None,
    **extra: str,
) -> System:
    """Both services on free ports (not started), databases and logs in data_dir.

    prefix goes before every topic and group name (a random one by default, "" for the standard names);
    database_dirs puts a database (by name, infra.services.DATABASES) in another directory, e.g. a small
    filesystem of its own; extra are further environment variables for both services, e.g.
    PROVIDER_FAILURE_RATE="0". Each service runs one process (WORKERS=1) unless extra sets WORKERS, or a test
    sets it in env afterwards: the default depends on the machine's cores (httpapi.workers), a test's must not.
    ValueError for an unknown database name.
    """
    extra.setdefault("WORKERS", "1")
    prefix = f"t{uuid.uuid4().hex[:8]}-" if prefix is None else prefix
    env = service_env(bootstrap_servers, registry_url, data_dir, prefix, database_dirs, **extra)
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
def running_system(stack: Stack, data_dir: Path, prefix: str | None = None, **extra: str) -> Iterator[System]:
    """Both services started on stack, stopped on leaving (KEEP_LOGS=1 prints the end of their logs)."""
    system = make_system(stack.bootstrap_servers, stack.registry_url, data_dir, prefix, **extra)
    system.start()
    try:
        yield system
    finally:
        system.stop()
        if os.environ.get("KEEP_LOGS"):
            print(system.orders.tail(), system.fulfillment.tail())
