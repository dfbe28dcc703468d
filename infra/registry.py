"""Apicurio Registry as a JVM child process, with Kafka-backed (kafkasql) storage and the Confluent API.

The registry keeps its schemas in a Kafka topic, so it has no state of its own and survives restarts as
long as the broker's data dir does. Its directory holds only its log (``registry.log``) and scratch files.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from infra.fetch import ensure_downloads
from infra.jvm import JavaService
from infra.ports import HOST, port_accepts

DEFAULT_REGISTRY_PORT = 8081
CCOMPAT_PATH = "/apis/ccompat/v7"


class Registry(JavaService):
    """Apicurio Registry on port, storing into the broker at bootstrap_servers; ready once /health/ready is 200.

    journal_topic names its storage topic (several registries on one broker stay apart by it); heap_mb is
    the JVM's maximum heap; timeouts are seconds.
    """

    name = "registry"

    def __init__(
        self,
        directory: Path,
        bootstrap_servers: str,
        port: int = DEFAULT_REGISTRY_PORT,
        *,
        journal_topic: str = "kafkasql-journal",
        heap_mb: int = 384,
        start_timeout: float = 90.0,
        stop_timeout: float = 30.0,
    ) -> None:
        super().__init__(directory, start_timeout=start_timeout, stop_timeout=stop_timeout)
        self.bootstrap_servers = bootstrap_servers
        self.port = port
        self.journal_topic = journal_topic
        self.heap_mb = heap_mb

    @property
    def base_url(self) -> str:
        """The registry's root URL (its own API, health endpoints)."""
        return f"http://{HOST}:{self.port}"

    @property
    def url(self) -> str:
        """Confluent-compatible Schema Registry API (what serializers are configured with)."""
        return self.base_url + CCOMPAT_PATH

    @property
    def log_file(self) -> Path:
        """The registry's output (appended across runs)."""
        return self.directory / "registry.log"

    def _ports(self) -> dict[str, int]:
        return {"Schema Registry": self.port}

    def _prepare(self, java: str) -> list[str]:
        jar = ensure_downloads().apicurio_jar
        props = {
            "quarkus.http.host": HOST,
            "quarkus.http.port": self.port,
            "apicurio.storage.kind": "kafkasql",
            "apicurio.kafkasql.bootstrap.servers": self.bootstrap_servers,
            "apicurio.kafkasql.topic": self.journal_topic,
            # Derived names keep several registries on one broker (tests) apart.
            "apicurio.kafkasql.snapshots.topic": f"{self.journal_topic}-snapshots",
            "apicurio.events.kafka.topic": f"{self.journal_topic}-events",
            "apicurio.storage.snapshot.location": self.directory / "snapshots",
            "apicurio.import.work-dir": self.directory,
            # CPU savers: the default re-reads the dynamic log config every second and
            # logs every HTTP request.
            "apicurio.logconfigjob.every": "60s",
            "quarkus.http.access-log.enabled": "false",
            # The in-memory SQL store behind kafkasql does not need a 20-connection pool.
            "apicurio.datasource.jdbc.initial-size": 2,
            "apicurio.datasource.jdbc.min-size": 2,
            "apicurio.datasource.jdbc.max-size": 10,
            # Startup reads the (usually empty) snapshots topic with one full poll; the 5 s
            # default made up half of the registry's start time.
            "apicurio.kafkasql.consumer.poll.timeout": 500,
        }
        return [
            java,
            f"-Xms{min(128, self.heap_mb)}m",
            f"-Xmx{self.heap_mb}m",
            "-XX:+UseSerialGC",
            # C1 only: starts about a second faster and the registry's load is tiny.
            "-XX:TieredStopAtLevel=1",
            "-Djava.awt.headless=true",
            *(f"-D{key}={value}" for key, value in props.items()),
            "-jar",
            str(jar),
        ]

    def _is_ready(self, deadline: float) -> bool:
        if not port_accepts(self.port):
            return False
        try:
            timeout = max(0.5, min(3.0, deadline - time.monotonic()))
            response = httpx.get(f"{self.base_url}/health/ready", timeout=timeout)
        except httpx.HTTPError:
            return False
        return response.status_code == 200
