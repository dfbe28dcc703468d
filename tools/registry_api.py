"""The calls of the Confluent Schema Registry API (Apicurio answers it under /apis/ccompat/v7) the contract tools
make: reads for `make schema-check`, writes for `make schema-register` and for the check's own ephemeral
registry. Every method raises httpx.HTTPError for a registry that cannot be reached, and httpx.HTTPStatusError
for an error answer it does not describe."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx

from messaging.registry import NORMALIZE, registry_http_client, registry_url_config

_CONTENT_TYPE = {"Content-Type": "application/vnd.schemaregistry.v1+json"}


class Registry:
    """A registry at url, its Confluent API base URL (e.g. http://127.0.0.1:8081/apis/ccompat/v7), reached as conf
    says (messaging.settings.registry_client_config's keys; default: url with the credentials and CA bundle of
    the environment, SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO and SCHEMA_REGISTRY_CA_LOCATION)."""

    def __init__(self, url: str, conf: Mapping[str, Any] | None = None) -> None:
        self.url = url.rstrip("/")
        self._http = registry_http_client(conf or registry_url_config(url), 30, headers=_CONTENT_TYPE)

    def subjects(self) -> list[str]:
        """Every subject (GET /subjects)."""
        response = self._http.get(f"{self.url}/subjects")
        response.raise_for_status()
        return [str(s) for s in response.json()]

    def versions(self, subject: str) -> list[int]:
        """The subject's registered version numbers, [] for an unknown subject (GET /subjects/{s}/versions)."""
        response = self._http.get(f"{self.url}/subjects/{_path(subject)}/versions")
        if response.status_code == 404:
            return []
        response.raise_for_status()
        return [int(v) for v in response.json()]

    def schema(self, subject: str, version: int) -> str:
        """The schema text of one version of the subject (GET /subjects/{s}/versions/{v})."""
        response = self._http.get(f"{self.url}/subjects/{_path(subject)}/versions/{version}")
        response.raise_for_status()
        return str(response.json()["schema"])

    def compatibility_level(self, subject: str) -> str:
        """The subject's compatibility level, or the global one when the subject has none (GET /config/{s} 404)."""
        response = self._http.get(f"{self.url}/config/{_path(subject)}")
        if response.status_code == 404:
            response = self._http.get(f"{self.url}/config")
        response.raise_for_status()
        body = response.json()
        return str(body.get("compatibilityLevel") or body.get("compatibility"))

    def set_compatibility_level(self, subject: str, level: str) -> None:
        """Set the subject's level (e.g. FULL_TRANSITIVE) with PUT /config/{s}."""
        self._http.put(f"{self.url}/config/{_path(subject)}", json={"compatibility": level}).raise_for_status()

    def register(self, subject: str, schema: str) -> httpx.Response:
        """POST schema (Avro JSON text) as a new version; the raw answer (200 with the id, also when the schema
        is there already, in any layout: normalized, messaging.registry.NORMALIZE; 409 incompatible, naming the
        differences; 422 invalid), so callers can report it."""
        return self._http.post(
            f"{self.url}/subjects/{_path(subject)}/versions", params=NORMALIZE, json={"schema": schema}
        )

    def lookup(self, subject: str, schema: str) -> int | None:
        """The id schema has under subject, None when it is not registered there ("look up schema under subject",
        POST /subjects/{s}, normalized: messaging.registry.NORMALIZE, so another layout of it is found; 404: not
        there). Writes nothing."""
        response = self._http.post(f"{self.url}/subjects/{_path(subject)}", params=NORMALIZE, json={"schema": schema})
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return int(response.json()["id"])

    def is_compatible(self, subject: str, schema: str) -> tuple[bool, list[str]]:
        """Whether schema may be registered next under subject, at the subject's level, against the versions the
        level names (POST /compatibility/subjects/{s}/versions; writes nothing); the registry's reasons, if it
        gives any (Apicurio gives none). A schema the registry calls invalid (422) is not compatible, for the
        reason it gives."""
        response = self._http.post(
            f"{self.url}/compatibility/subjects/{_path(subject)}/versions",
            params={"verbose": "true"},
            json={"schema": schema},
        )
        if response.status_code == 422:
            return False, [f"the registry calls it invalid (HTTP 422): {response.text[:2000]}"]
        response.raise_for_status()
        body = response.json()
        return bool(body["is_compatible"]), [str(m) for m in body.get("messages") or []]

    def close(self) -> None:
        """Close the HTTP client."""
        self._http.close()


def _path(subject: str) -> str:
    return quote(subject, safe="")
