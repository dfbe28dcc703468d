"""Cheap, cached probes of Kafka and the Schema Registry for health endpoints."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from confluent_kafka import Producer


@dataclass
class ProbeResult:
    """One probe's answer: ok, and when not ok a one-line reason shown in the health body."""

    ok: bool
    detail: str | None = None


class CachedProbe:
    """Runs a probe at most once per ttl seconds; health checks arrive often and must stay fast."""

    def __init__(self, probe: Callable[[], ProbeResult], ttl: float = 1.0) -> None:
        self._probe = probe
        self._ttl = ttl
        self._at = 0.0
        self._result = ProbeResult(False, "not checked yet")

    def __call__(self) -> ProbeResult:
        now = time.monotonic()
        if now - self._at >= self._ttl:
            self._result = self._probe()
            self._at = time.monotonic()
        return self._result


def broker_probe(producer: Producer, topic: str, timeout: float = 1.0) -> CachedProbe:
    """Kafka is up when a metadata request for topic (timeout in seconds) names at least one broker.

    Never raises: an error becomes a not-ok ProbeResult.
    """

    def probe() -> ProbeResult:
        try:
            metadata = producer.list_topics(topic, timeout=timeout)
        except Exception as exc:
            return ProbeResult(False, f"kafka unreachable: {exc}")
        if not metadata.brokers:
            return ProbeResult(False, "kafka: no broker answered")
        return ProbeResult(True)

    return CachedProbe(probe)


def registry_probe(url: str, timeout: float = 1.0) -> CachedProbe:
    """The registry at url (Confluent API base) is up when GET /subjects answers below 500 within timeout seconds.

    Never raises: an unreachable registry or a 5xx becomes a not-ok ProbeResult.
    """
    client = httpx.Client(timeout=timeout)  # one client: building one per call costs milliseconds of CPU

    def probe() -> ProbeResult:
        try:
            response = client.get(f"{url.rstrip('/')}/subjects")
        except httpx.HTTPError as exc:
            return ProbeResult(False, f"schema registry unreachable: {exc}")
        if response.status_code >= 500:
            return ProbeResult(False, f"schema registry answered {response.status_code}")
        return ProbeResult(True)

    return CachedProbe(probe)


def dependency_probes(producer: Producer, topic: str, registry_url: str) -> dict[str, CachedProbe]:
    """The probes a service's health endpoint reports, by the name it reports them under."""
    return {"kafka": broker_probe(producer, topic), "schemaRegistry": registry_probe(registry_url)}
