"""Schema Registry access (Confluent API; Apicurio answers it under /apis/ccompat/v7)."""

from __future__ import annotations

import json
import re
import ssl
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from messaging.settings import KafkaSettings, registry_client_config


def registry_client(target: KafkaSettings | str) -> SchemaRegistryClient:
    """A client of the registry target names, with a 5 s timeout per request: its settings (SCHEMA_REGISTRY_URL,
    SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO, SCHEMA_REGISTRY_CA_LOCATION), or its Confluent API base URL with the
    credentials and CA of this process's environment."""
    conf = registry_client_config(target) if isinstance(target, KafkaSettings) else registry_url_config(target)
    # Short timeout: callers retry, and a hung registry must not stall a relay or consumer for long.
    return SchemaRegistryClient({**conf, "timeout": 5})


def registry_url_config(url: str) -> dict[str, Any]:
    """registry_client_config for the registry at url (its Confluent API base URL), with the credentials and
    CA bundle of this process's environment (SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO, SCHEMA_REGISTRY_CA_LOCATION):
    how tools handed a registry URL reach a secured registry."""
    return registry_client_config(KafkaSettings(), url)


def registry_http_client(conf: Mapping[str, Any], timeout: float, **options: Any) -> httpx.Client:
    """An httpx client that authenticates and checks certificates as conf (registry_client_config's keys: url,
    basic.auth.user.info, ssl.ca.location) says, as confluent-kafka's SchemaRegistryClient does; options are
    further httpx.Client arguments (headers...). Requests still name the full URL (conf["url"] + path)."""
    user_info = conf.get("basic.auth.user.info")
    auth = tuple(str(user_info).split(":", 1)) if user_info else None
    ca = conf.get("ssl.ca.location")
    verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca) if ca else True
    return httpx.Client(timeout=timeout, auth=auth, verify=verify, **options)  # type: ignore[arg-type]


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


# Confluent's content type for request bodies (Apicurio's ccompat API takes it too).
_SCHEMA_JSON = {"Content-Type": "application/vnd.schemaregistry.v1+json"}
# Registry API query parameters of every lookup and registration: compare schemas as the registry normalizes
# them, not as exact text. Without it Apicurio finds no schema registered under another layout (a pretty-printed
# file, the services' compact text) and a lookup answers 404 for ever; with it, a registration of another layout
# of a registered schema gets the registered id and stores no new version, and the stored text stays as first
# registered (checked against Apicurio 3.0.9). confluent-kafka's serializer asks the same with
# `normalize.schemas` (NORMALIZED_SERIALIZER_CONF).
NORMALIZE = {"normalize": "true"}
NORMALIZED_SERIALIZER_CONF = {"normalize.schemas": True}
# How a registry names the fields it finds incompatible in a 409 body. Apicurio: "list of diff types:
# [customerName at /fields/5]"; Confluent: "details: [{errorType:'READER_FIELD_MISSING_DEFAULT_VALUE',
# description:'The field 'x' at path '/fields/3' ...', additionalInfo:'x'}]" (also as JSON).
_FIELD_PATTERNS = (
    re.compile(r"([A-Za-z_][\w.]*) at /fields/"),
    re.compile(r"additionalInfo\W{1,4}([A-Za-z_]\w*)"),
    re.compile(r"[Ff]ield '([A-Za-z_]\w*)'"),
)


class SchemaRefused(Exception):
    """The registry refuses a writer schema under its subject (HTTP 409: incompatible with the versions there
    under the subject's compatibility level; 422: not a valid schema). Waiting will not help; changing the
    schema or the subject will.

    subject, status (409 or 422), message (the registry's own words) and fields (the field names the message
    names as incompatible, in order, possibly none).
    """

    def __init__(self, subject: str, status: int, message: str) -> None:
        self.subject = subject
        self.status = status
        self.message = message
        self.fields = refused_fields(message)
        named = f" (fields: {', '.join(self.fields)})" if self.fields else ""
        super().__init__(f"registry refuses the schema for {subject}: {status} {message[:400]}{named}")


class SchemaNotRegistered(SchemaRefused):
    """The writer schema is not registered under its subject and the writer may not register it
    (AUTO_REGISTER_SCHEMAS=false: the deploy pipeline registers schemas, `make schema-register`). The registry's
    "look up schema under subject" (POST /subjects/{subject}) answered 404. Registering the schema cures it, so
    it holds the events back rather than parking them; status is 404, fields is empty.
    """

    def __init__(self, subject: str, message: str) -> None:
        super().__init__(
            subject,
            404,
            f"the schema is not registered under {subject} and AUTO_REGISTER_SCHEMAS is false: register it "
            f"(make schema-register) before deploying this writer; registry: {message}",
        )


def refused_fields(message: str) -> list[str]:
    """The field names a registry's refusal message names as incompatible (Apicurio's and Confluent's
    wordings), without repeats, in order of appearance; [] when it names none."""
    found: list[str] = []
    for pattern in _FIELD_PATTERNS:
        for match in pattern.finditer(message):
            name = match.group(1)
            if name not in found:
                found.append(name)
    return found


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:1000]
    return str(body.get("message", body)) if isinstance(body, dict) else str(body)


def _unavailable(response: httpx.Response) -> SchemaRegistryError:
    return SchemaRegistryError(response.status_code, -1, _error_message(response))


class SubjectRegistration:
    """The registration of one writer schema under one subject, asked of the registry without any cache
    (confluent-kafka's client caches ids, so it would never notice a registry that lost them).

    conf: the registry client's configuration (messaging.settings.registry_client_config: url, the Confluent API
    base URL, and the credentials and CA bundle). Every call raises SchemaRegistryError (status None or >= 500:
    the registry is unavailable, see is_registry_unavailable) for what is neither an answer nor a refusal.
    """

    def __init__(self, conf: Mapping[str, Any], subject: str, schema: str, timeout: float = 5.0) -> None:
        self.url = str(conf["url"]).rstrip("/")
        self.subject = subject
        self.schema = schema
        self._client = registry_http_client(conf, timeout)

    def registered_id(self) -> int | None:
        """The id the schema has under the subject, None when it is not registered there (or the subject does
        not exist): POST /subjects/{subject}?normalize=true (NORMALIZE), 404 = not there."""
        path = f"/subjects/{quote(self.subject, safe='')}"
        response = self._request("POST", path, {"schema": self.schema}, NORMALIZE)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise _unavailable(response)
        return int(response.json()["id"])

    def register(self) -> int:
        """Register the schema under the subject (a no-op returning the id if it is there). Raises SchemaRefused
        on 409/422. Normalized (NORMALIZE), as lookups are."""
        path = f"/subjects/{quote(self.subject, safe='')}/versions"
        response = self._request("POST", path, {"schema": self.schema}, NORMALIZE)
        if response.status_code in (409, 422):
            raise SchemaRefused(self.subject, response.status_code, _error_message(response))
        if response.status_code != 200:
            raise _unavailable(response)
        return int(response.json()["id"])

    def carry_over(self, source: str) -> list[int]:
        """Register every version of the subject source under this subject, oldest first, so this subject
        starts with source's history (registering a schema the subject holds already adds no version, so
        carrying over again changes nothing). source is left as it is. Returns the ids registered, in order ([]
        when source has no versions). Raises SchemaRefused when this subject refuses one of them (409/422).
        """
        base = f"/subjects/{quote(source, safe='')}/versions"
        response = self._request("GET", base)
        if response.status_code == 404:
            return []
        if response.status_code != 200:
            raise _unavailable(response)
        ids = []
        target = f"/subjects/{quote(self.subject, safe='')}/versions"
        for version in sorted(int(v) for v in response.json()):
            found = self._request("GET", f"{base}/{version}")
            if found.status_code == 404:  # deleted meanwhile: nothing to carry over
                continue
            if found.status_code != 200:
                raise _unavailable(found)
            registered = self._request("POST", target, {"schema": found.json()["schema"]}, NORMALIZE)
            if registered.status_code in (409, 422):
                raise SchemaRefused(self.subject, registered.status_code, _error_message(registered))
            if registered.status_code != 200:
                raise _unavailable(registered)
            ids.append(int(registered.json()["id"]))
        return ids

    def has_compatibility(self) -> bool:
        """Whether the subject has a compatibility level of its own (GET /config/{subject}; 404 = none)."""
        response = self._request("GET", f"/config/{quote(self.subject, safe='')}")
        if response.status_code == 404:
            return False
        if response.status_code != 200:
            raise _unavailable(response)
        return True

    def knows_id(self, schema_id: int) -> bool:
        """Whether the registry still resolves schema_id to this schema (GET /schemas/ids/{id}; a 404 or other
        content means the registry lost or reassigned it)."""
        response = self._request("GET", f"/schemas/ids/{schema_id}")
        if response.status_code == 404:
            return False
        if response.status_code != 200:
            raise _unavailable(response)
        try:
            return bool(json.loads(response.json()["schema"]) == json.loads(self.schema))
        except (ValueError, KeyError, TypeError):
            return False

    def close(self) -> None:
        """Close the HTTP connections."""
        self._client.close()

    def _request(
        self, method: str, path: str, body: dict[str, Any] | None = None, params: Mapping[str, str] | None = None
    ) -> httpx.Response:
        try:
            return self._client.request(method, self.url + path, json=body, headers=_SCHEMA_JSON, params=params)
        except httpx.HTTPError as exc:
            raise SchemaRegistryError(None, -1, f"{type(exc).__name__}: {exc}") from exc  # type: ignore[arg-type]
