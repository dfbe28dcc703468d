"""Can the current event schemas be registered without breaking a consumer?

    python -m tools.schema_check [--registry URL] [--local-only] [--seed-history]

Two checks with one verdict, for every schema in schemas/avro/:

* local (no registry): the current schema, as reader, must resolve every released version in
  schemas/avro/history/<Name>.v<N>.avsc, as writer (`avro.compatibility.ReaderWriterCompatibilityChecker`):
  that is BACKWARD_TRANSITIVE, the level the services set on their subjects.
* registry: the Schema Registry is asked whether the schema is compatible with the versions registered under
  its subject as the topology names it (`order-events-orderprocessing.events.OrderCreated`,
  `fulfillment-events-value`, ...), at the subject's level, which must be
  BACKWARD_TRANSITIVE. The registry is --registry, else $SCHEMA_REGISTRY_URL, else an ephemeral local stack
  started for the run. When it answers "incompatible" without saying why (Apicurio's compatibility endpoint
  does), the schema is submitted for registration: the registry refuses it with a 409 that names the
  differences, which are printed. With --seed-history an empty subject first gets the released versions,
  so the check compares against something (the ephemeral stack always starts empty).

Exit status 0 when everything is compatible, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import avro.schema
import httpx
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from events.topology import COMPATIBILITY, TOPICS, EventType, TopicDeclaration, subject_name

AVRO_DIR = Path(__file__).resolve().parent.parent / "schemas" / "avro"
HISTORY_DIR = AVRO_DIR / "history"
# The topic each event is published on (default names), by its schema file: what the check covers by default.
EVENT_TOPICS = {event.schema_file: topic.name for topic in TOPICS for event in topic.events}
# The declaration and event type of each schema file the topology declares.
_DECLARED: dict[str, tuple[TopicDeclaration, EventType]] = {
    event.schema_file: (topic, event) for topic in TOPICS for event in topic.events
}
_CONTENT_TYPE = {"Content-Type": "application/vnd.schemaregistry.v1+json"}


@dataclass(frozen=True)
class EventSchema:
    """A current schema, its subject and its released versions (oldest first)."""

    name: str
    subject: str
    text: str
    history: list[tuple[int, str]]


def event_schemas(avro_dir: Path = AVRO_DIR, topics: dict[str, str] = EVENT_TOPICS) -> list[EventSchema]:
    """Every event schema with its subject and released versions.

    topics: {schema file in avro_dir: the topic it is published on}; the subject is the event's on that topic
    per the topology's subject strategy (TopicNameStrategy for a file the topology does not declare).
    """
    events = []
    for file, topic in sorted(topics.items()):
        path = avro_dir / file
        name = path.stem
        history = []
        for released in (avro_dir / "history").glob(f"{name}.v*.avsc"):
            match = re.fullmatch(rf"{re.escape(name)}\.v(\d+)\.avsc", released.name)
            if match:
                history.append((int(match.group(1)), released.read_text()))
        declared = _DECLARED.get(file)
        subject = declared[0].subject(topic, declared[1]) if declared else subject_name(topic)
        events.append(EventSchema(name, subject, path.read_text(), sorted(history)))
    return events


def local_incompatibilities(reader: str, writer: str) -> list[str]:
    """Why data written with writer cannot be read with reader; empty when it can."""
    result = ReaderWriterCompatibilityChecker().get_compatibility(avro.schema.parse(reader), avro.schema.parse(writer))
    if result.compatibility is SchemaCompatibilityType.compatible:
        return []
    kinds = ", ".join(sorted(kind.value for kind in result.incompatibilities))
    return [f"{kinds}: {'; '.join(sorted(result.messages))} (at {', '.join(sorted(result.locations))})"]


def incompatibilities(new: str, old: str, level: str = COMPATIBILITY) -> list[str]:
    """Why new may not follow old at a registry compatibility level (checked against old alone).

    BACKWARD: new, as reader, resolves data written with old. FORWARD: old resolves data written with new.
    FULL: both. NONE: anything goes. Checking every released version makes any of them transitive.
    """
    problems = []
    if level.startswith(("BACKWARD", "FULL")):
        problems += [f"cannot read data written with it: {r}" for r in local_incompatibilities(new, old)]
    if level.startswith(("FORWARD", "FULL")):
        problems += [
            f"its readers cannot read data written with the new schema: {r}" for r in local_incompatibilities(old, new)
        ]
    return problems


def check_local(events: list[EventSchema], level: str = COMPATIBILITY) -> list[str]:
    """Problems found without a registry: the current schema against every released version, at level."""
    problems = []
    for event in events:
        for version, released in event.history:
            for reason in incompatibilities(event.text, released, level):
                problems.append(f"{event.subject}: {event.name} vs released v{version} ({level}): {reason}")
    return problems


class Registry:
    """The few calls of the Confluent Schema Registry API this check needs."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(timeout=30, headers=_CONTENT_TYPE)

    def versions(self, subject: str) -> list[int]:
        """The subject's registered version numbers, [] for an unknown subject; httpx.HTTPStatusError otherwise."""
        response = self._http.get(f"{self.url}/subjects/{subject}/versions")
        if response.status_code == 404:
            return []
        response.raise_for_status()
        return list(response.json())

    def compatibility_level(self, subject: str) -> str:
        """The subject's compatibility level, or the global one when the subject has none (registry answers 404).

        Raises httpx.HTTPStatusError on any other error answer.
        """
        response = self._http.get(f"{self.url}/config/{subject}")
        if response.status_code == 404:
            response = self._http.get(f"{self.url}/config")
        response.raise_for_status()
        body = response.json()
        return str(body.get("compatibilityLevel") or body.get("compatibility"))

    def set_compatibility_level(self, subject: str, level: str) -> None:
        """Set the subject's level (e.g. BACKWARD_TRANSITIVE); httpx.HTTPStatusError if refused."""
        self._http.put(f"{self.url}/config/{subject}", json={"compatibility": level}).raise_for_status()

    def register(self, subject: str, schema: str) -> httpx.Response:
        """POST schema (Avro JSON text) as a new version; the raw answer, so a 409 (incompatible) can be reported."""
        return self._http.post(f"{self.url}/subjects/{subject}/versions", json={"schema": schema})

    def is_compatible(self, subject: str, schema: str) -> tuple[bool, list[str]]:
        """Against every registered version as the subject's level says; the registry's reasons, if any."""
        response = self._http.post(
            f"{self.url}/compatibility/subjects/{subject}/versions",
            params={"verbose": "true"},
            json={"schema": schema},
        )
        response.raise_for_status()
        body = response.json()
        return bool(body["is_compatible"]), [str(m) for m in body.get("messages") or []]

    def close(self) -> None:
        """Close the HTTP client."""
        self._http.close()


def seed_history(registry: Registry, events: list[EventSchema]) -> list[str]:
    """Register the released versions under every empty subject, at BACKWARD_TRANSITIVE."""
    seeded = []
    for event in events:
        if registry.versions(event.subject):
            continue
        registry.set_compatibility_level(event.subject, COMPATIBILITY)
        for version, text in event.history:
            response = registry.register(event.subject, text)
            if response.status_code >= 400:
                raise RuntimeError(f"{event.subject}: cannot register released v{version}: {response.text}")
            seeded.append(f"{event.subject}: registered released v{version}")
    return seeded


def check_registry(registry: Registry, events: list[EventSchema]) -> tuple[list[str], list[str]]:
    """(problems, notes) from asking the registry about every current schema."""
    problems, notes = [], []
    for event in events:
        versions = registry.versions(event.subject)
        if not versions:
            notes.append(f"{event.subject}: no versions registered; nothing to be compatible with")
            continue
        level = registry.compatibility_level(event.subject)
        if level != COMPATIBILITY:
            problems.append(f"{event.subject}: compatibility level is {level}, the services need {COMPATIBILITY}")
            continue
        compatible, reasons = registry.is_compatible(event.subject, event.text)
        if compatible:
            notes.append(f"{event.subject}: {event.name} is compatible with versions {versions} ({level})")
            continue
        if not reasons:
            reasons = [_rejection(registry.register(event.subject, event.text))]
        problems.append(
            f"{event.subject}: {event.name} is incompatible with the registered versions {versions} ({level}): "
            + "; ".join(reasons)
        )
    return problems, notes


def _rejection(response: httpx.Response) -> str:
    """The registry's reason for refusing a registration (a 409 carries the differences)."""
    if response.status_code < 400:
        return f"the registry said incompatible, yet registered it (HTTP {response.status_code}): {response.text}"
    try:
        body: Any = response.json()
    except ValueError:
        return f"HTTP {response.status_code}: {response.text}"
    return str(body.get("message", body))


@contextmanager
def ephemeral_registry() -> Iterator[str]:
    """A Kafka broker and Apicurio Registry of our own, for the length of the check."""
    from infra.stack import LocalStack

    with tempfile.TemporaryDirectory(prefix="schema-check-") as tmp, LocalStack.ephemeral(Path(tmp)) as stack:
        yield stack.registry_url


def run(registry_url: str | None, local_only: bool, seed: bool, events: list[EventSchema] | None = None) -> int:
    """The whole check, printed; returns the exit status."""
    events = event_schemas() if events is None else events
    problems = check_local(events)
    print(f"local: {len(events)} schemas against {sum(len(e.history) for e in events)} released versions")
    if not local_only:
        with _registry(registry_url) as url:
            registry = Registry(url)
            try:
                for line in seed_history(registry, events) if seed else []:
                    print(line)
                remote, notes = check_registry(registry, events)
            finally:
                registry.close()
        for note in notes:
            print(f"registry {url}: {note}")
        problems += remote
    for problem in problems:
        print(f"INCOMPATIBLE {problem}", file=sys.stderr)
    if problems:
        return 1
    print("all event schemas are backward compatible with every released version")
    return 0


@contextmanager
def _registry(url: str | None) -> Iterator[str]:
    if url:
        yield url
        return
    print("no --registry or SCHEMA_REGISTRY_URL: starting a local Kafka and Schema Registry")
    with ephemeral_registry() as started:
        yield started


def main(argv: list[str] | None = None) -> int:
    """The command line (``--registry``, ``--local-only``, ``--seed-history``); exit status 0 when all is compatible."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--registry", default=os.environ.get("SCHEMA_REGISTRY_URL"), help="Confluent API base URL")
    parser.add_argument("--local-only", action="store_true", help="skip the registry; local check only")
    parser.add_argument("--seed-history", action="store_true", help="register released versions in empty subjects")
    args = parser.parse_args(argv)
    return run(args.registry, args.local_only, args.seed_history)


if __name__ == "__main__":
    sys.exit(main())
