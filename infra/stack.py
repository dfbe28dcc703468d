"""The local infrastructure: a Kafka broker (``infra.broker``) and an Apicurio Registry (``infra.registry``).

Both are plain JVM processes started from the download cache (see ``infra.fetch``). State lives in one
directory per stack, so a restart keeps topics, offsets and schemas:

    <dir>/kafka/       the broker's configuration, data and log
    <dir>/registry/    the registry's log (its schemas live in a Kafka topic)

``python -m infra.run`` runs a stack (and the services) from the command line.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Self

from infra.broker import DEFAULT_CONTROLLER_PORT, DEFAULT_KAFKA_PORT, Broker
from infra.fetch import ensure_downloads
from infra.ports import free_port
from infra.registry import DEFAULT_REGISTRY_PORT, Registry


class LocalStack:
    """Kafka broker plus Schema Registry sharing one state directory; a context manager (start, stop)."""

    def __init__(
        self,
        directory: Path,
        kafka_port: int = DEFAULT_KAFKA_PORT,
        controller_port: int = DEFAULT_CONTROLLER_PORT,
        registry_port: int = DEFAULT_REGISTRY_PORT,
    ) -> None:
        self.directory = Path(directory).resolve()
        self.broker = Broker(self.directory / "kafka", kafka_port, controller_port)
        self.registry = Registry(self.directory / "registry", self.broker.bootstrap_servers, registry_port)

    @classmethod
    def ephemeral(cls, directory: Path) -> LocalStack:
        """A stack on currently free ports, so it can run beside one on the standard ports."""
        ports: set[int] = set()
        while len(ports) < 3:
            ports.add(free_port())
        kafka_port, controller_port, registry_port = sorted(ports)
        return cls(directory, kafka_port, controller_port, registry_port)

    @property
    def bootstrap_servers(self) -> str:
        """``host:port`` of the broker for Kafka clients."""
        return self.broker.bootstrap_servers

    @property
    def registry_url(self) -> str:
        """The registry's Confluent-compatible API URL."""
        return self.registry.url

    def start(self) -> None:
        """Start the broker, then the registry (it stores its data in Kafka).

        Raises FetchError when the downloads are missing and cannot be fetched, and StackError (from
        ``infra.jvm``) when a process does not come up; a broker already started is stopped again then.
        """
        ensure_downloads()
        self.broker.start()
        try:
            self.registry.start()
        except BaseException:
            self.broker.stop()
            raise

    def stop(self) -> None:
        """Stop the registry, then the broker. Idempotent."""
        try:
            self.registry.stop()
        finally:
            self.broker.stop()

    def kill(self) -> None:
        """SIGKILL both processes (registry first), ignoring errors: for throwaway stacks whose data is not kept."""
        for component in (self.registry, self.broker):
            with contextlib.suppress(Exception):  # best effort: the stack is being thrown away
                component.kill()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
