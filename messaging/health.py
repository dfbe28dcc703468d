"""Cheap, cached probes of Kafka and the Schema Registry for health endpoints."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from confluent_kafka import Producer

from messaging.client_errors import SecurityErrors
from messaging.registry import registry_http_client


@dataclass
class ProbeResult:
    """One probe's answer: ok, and when not ok a one-line reason shown in the health body. refused: the
    dependency refuses this service's credentials or certificate, a configuration error that waiting will not
    cure (health is down then, not degraded)."""

    ok: bool
    detail: str | None = None
    refused: bool = False


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

    @property
    def last(self) -> ProbeResult:
        """The latest answer, without probing."""
        return self._result


def broker_probe(
    producer: Producer, topic: str, timeout: float = 1.0, errors: SecurityErrors | None = None
) -> CachedProbe:
    """Kafka is up when a metadata request for topic (timeout in seconds) names at least one broker.

    errors: the producer's error callback; while it holds an authentication or TLS error the probe is refused
    with that reason (naming the settings to check). Never raises: an error becomes a not-ok ProbeResult.
    """

    def probe() -> ProbeResult:
        started = time.monotonic()
        try:
            metadata = producer.list_topics(topic, timeout=timeout)
        except Exception as exc:
            refusal = errors.reason() if errors is not None else None
            if refusal is not None:
                return ProbeResult(False, refusal, refused=True)
            return ProbeResult(False, f"kafka unreachable: {exc}")
        if not metadata.brokers:
            return ProbeResult(False, "kafka: no broker answered")
        if errors is not None:
            errors.clear(older_than=started)
        return ProbeResult(True)

    return CachedProbe(probe)


def registry_probe(conf: Mapping[str, Any], timeout: float = 1.0) -> CachedProbe:
    """The registry conf names (messaging.settings.registry_client_config: url, the Confluent API base, and the
    credentials and CA bundle) is up when GET /subjects answers below 500 within timeout seconds.

    Never raises: an unreachable registry or a 5xx becomes a not-ok ProbeResult; 401 or 403 (the credentials
    are refused) and a certificate that does not verify become a refused one naming the setting to check.
    """
    client = registry_http_client(conf, timeout)  # one client: building one per call costs milliseconds of CPU
    url = str(conf["url"]).rstrip("/")

    def probe() -> ProbeResult:
        try:
            response = client.get(f"{url}/subjects")
        except httpx.ConnectError as exc:
            if "CERTIFICATE_VERIFY_FAILED" in str(exc) or "SSL" in str(exc):
                detail = f"schema registry's certificate not trusted (check SCHEMA_REGISTRY_CA_LOCATION): {exc}"
                return ProbeResult(False, detail, refused=True)
            return ProbeResult(False, f"schema registry unreachable: {exc}")
        except httpx.HTTPError as exc:
            return ProbeResult(False, f"schema registry unreachable: {exc}")
        if response.status_code in (401, 403):
            detail = (
                f"schema registry refused the credentials with {response.status_code} "
                "(check SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO)"
            )
            return ProbeResult(False, detail, refused=True)
        if response.status_code >= 500:
            return ProbeResult(False, f"schema registry answered {response.status_code}")
        return ProbeResult(True)

    return CachedProbe(probe)


def dependency_probes(
    producer: Producer, topic: str, registry: Mapping[str, Any], errors: SecurityErrors | None = None
) -> dict[str, CachedProbe]:
    """The probes a service's health endpoint reports, by the name it reports them under: Kafka through
    producer (errors: its error callback) and the registry registry names (registry_client_config)."""
    return {"kafka": broker_probe(producer, topic, errors=errors), "schemaRegistry": registry_probe(registry)}


def refused(probes: Mapping[str, CachedProbe]) -> bool:
    """Whether a probe's latest answer is a refusal of this service's credentials or certificate."""
    return any(probe.last.refused for probe in probes.values())
