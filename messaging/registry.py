"""Schema Registry access (Confluent API; Apicurio answers it under /apis/ccompat/v7)."""

from __future__ import annotations

import httpx
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError


def registry_client(url: str) -> SchemaRegistryClient:
    """A client of the registry at url (its Confluent API base URL), with a 5 s timeout per request."""
    # Short timeout: callers retry, and a hung registry must not stall a relay or consumer for long.
    return SchemaRegistryClient({"url": url, "timeout": 5})


def set_compatibility(client: SchemaRegistryClient, subject: str, level: str) -> None:
    """Set subject's compatibility level (e.g. BACKWARD_TRANSITIVE). Raises SchemaRegistryError."""
    client.set_compatibility(subject_name=subject, level=level)


def is_registry_unavailable(exc: BaseException) -> bool:
    """True when the registry could not answer (down, hung, 5xx): the request may work later.

    False for a definite answer such as 404 "no schema with that id", which will never change.
    """
    if isinstance(exc, SchemaRegistryError):
        return exc.http_status_code is None or exc.http_status_code >= 500
    return isinstance(exc, (OSError, TimeoutError, httpx.TransportError)) or _is_vendored_transport_error(exc)


def _is_vendored_transport_error(exc: BaseException) -> bool:
    # confluent-kafka ships its own copy of httpx; match its transport errors by name.
    return any(cls.__name__ in {"TransportError", "TimeoutException", "NetworkError"} for cls in type(exc).__mro__)
