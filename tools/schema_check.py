"""Can the current event schemas be registered without breaking a producer or a consumer?

    python -m tools.schema_check [--registry URL] [--no-scratch] [--local-only]

Up to three checks with one verdict, for every schema in schemas/avro/, at the topology's level
(events.topology.COMPATIBILITY, FULL_TRANSITIVE: docs/adr/0001-event-schema-compatibility.md):

* local (no registry): the current schema against every released version in
  schemas/avro/history/<Name>.v<N>.avsc, both ways: the current schema reads data written with each released
  one, and each released one reads data written with the current one, as the Avro library's
  `ReaderWriterCompatibilityChecker` sees it and as the consumers' codec does (the check it applies to every
  writer schema, messaging.avro_safety.WriterSchemaCheck, with the reader's record name and decimals); plus the
  project's rules (tools.schema_rules: valid Avro, defaults of their field's type, every enum with a default
  that never changes). A file that is not valid Avro is refused naming it and why, and no registry is asked
  about its event.
* scratch registry: a Kafka broker and Apicurio Registry started for the run (infra.stack.LocalStack) get the
  released versions in order under a subject of the run's own at that level, then its compatibility API is
  asked about the current schema; when it says "incompatible" without saying why (Apicurio does), the schema
  is submitted there for registration, and the 409 naming the differences is printed. This registry is the
  check's own, so it may write to it.
* shared registry (--registry, else $SCHEMA_REGISTRY_URL; skipped when neither is set; its credentials and CA
  bundle from $SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO and $SCHEMA_REGISTRY_CA_LOCATION): READ ONLY. For each
  subject as the topology names it, one per (topic, event type) (`order-events-orderprocessing.events.
  OrderCreated`, `order-events-orderprocessing.events.OrderCancelled`, `fulfillment-events-value`, with the
  topics as ORDER_EVENTS_TOPIC etc. name them), its compatibility API is asked whether the current schema may
  follow the registered versions (at the subject's level), and the registered versions are fetched and checked
  locally at the topology's level, so a subject still at a weaker level does not let a schema through. A subject
  with no versions yet whose event had another subject before (order-events-value, carried over at the first
  write) is checked locally against that subject's versions. Nothing is registered and no level is set there:
  `make schema-register` does that, in the deploy pipeline.

Exit status 0 when everything is compatible, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import avro.schema
import httpx
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from events.topology import COMPATIBILITY, TOPICS, EventType, TopicDeclaration, subject_name
from messaging.avro_safety import IncompatibleDecimal, UnsafeWriterSchema, WriterSchemaCheck
from tools.registry_api import Registry
from tools.schema_rules import enum_default_changes, parse_problem, schema_problems

AVRO_DIR = Path(__file__).resolve().parent.parent / "schemas" / "avro"
HISTORY_DIR = AVRO_DIR / "history"
# The topic each event is published on (default names), by its schema file: what the check covers by default.
EVENT_TOPICS = {event.schema_file: topic.name for topic in TOPICS for event in topic.events}
# The declaration and event type of each schema file the topology declares.
_DECLARED: dict[str, tuple[TopicDeclaration, EventType]] = {
    event.schema_file: (topic, event) for topic in TOPICS for event in topic.events
}


@dataclass(frozen=True)
class EventSchema:
    """A current schema, its subject and its released versions (oldest first); history_subject: the subject the
    event had before, whose versions its subject takes over at the first write (None: none)."""

    name: str
    subject: str
    text: str
    history: list[tuple[int, str]]
    history_subject: str | None = None


def event_schemas(avro_dir: Path = AVRO_DIR, topics: dict[str, str] = EVENT_TOPICS) -> list[EventSchema]:
    """Every event schema with its subject and released versions.

    topics: {schema file in avro_dir: the topic it is published on}; the subject is the event's on that topic
    per the topology's subject strategy (TopicNameStrategy for a file the topology does not declare).
    """
    events = []
    for file, topic in sorted(topics.items()):
        path = avro_dir / file
        name = path.stem
        history = [(version, released.read_text()) for version, released in released_versions(avro_dir, name)]
        declared = _DECLARED.get(file)
        subject = declared[0].subject(topic, declared[1]) if declared else subject_name(topic)
        before = declared[0].history_subject(topic, declared[1]) if declared else None
        events.append(EventSchema(name, subject, path.read_text(), history, before))
    return events


def released_versions(avro_dir: Path, name: str) -> list[tuple[int, Path]]:
    """(N, file) of every released version of the event schema name: avro_dir/history/<name>.v<N>.avsc, oldest
    first (by N, so v10 follows v9)."""
    found = []
    for path in (avro_dir / "history").glob(f"{name}.v*.avsc"):
        match = re.fullmatch(rf"{re.escape(name)}\.v(\d+)\.avsc", path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def local_incompatibilities(reader: str, writer: str) -> list[str]:
    """Why data written with writer cannot be read with reader; empty when it can. Two checks: Avro schema
    resolution, as the Avro library's ReaderWriterCompatibilityChecker sees it, and the check a consumer reading
    with reader applies to the writer schema before decoding (messaging.avro_safety.WriterSchemaCheck, the
    codec's own: e.g. the record's full name, namespace included, and every decimal's precision and scale),
    which refuses some schemas Avro resolution and the registry take. Both schemas must be valid Avro
    (tools.schema_rules.parse_problem)."""
    problems = []
    result = ReaderWriterCompatibilityChecker().get_compatibility(avro.schema.parse(reader), avro.schema.parse(writer))
    if result.compatibility is not SchemaCompatibilityType.compatible:
        kinds = ", ".join(sorted(kind.value for kind in result.incompatibilities))
        problems.append(f"{kinds}: {'; '.join(sorted(result.messages))} (at {', '.join(sorted(result.locations))})")
    try:
        WriterSchemaCheck(reader)(writer)
    except (UnsafeWriterSchema, IncompatibleDecimal) as exc:
        problems.append(f"the consumer's codec dead-letters its records: {exc.kind}: {exc}")
    return problems


def incompatibilities(new: str, old: str, level: str = COMPATIBILITY) -> list[str]:
    """Why new may not follow old at a registry compatibility level (checked against old alone).

    BACKWARD: new, as reader, resolves data written with old. FORWARD: old resolves data written with new.
    FULL: both. NONE: anything goes. Checking every released version makes any of them transitive. At every
    level but NONE, an enum's default must also stay what it was (tools.schema_rules.enum_default_changes).
    """
    problems = [] if level == "NONE" else enum_default_changes(new, old)
    if level.startswith(("BACKWARD", "FULL")):
        problems += [f"cannot read data written with it: {r}" for r in local_incompatibilities(new, old)]
    if level.startswith(("FORWARD", "FULL")):
        problems += [
            f"its readers cannot read data written with the new schema: {r}" for r in local_incompatibilities(old, new)
        ]
    return problems


def check_local(events: list[EventSchema], level: str = COMPATIBILITY) -> list[str]:
    """Problems found without a registry: every schema file that is not valid Avro (naming the file and why), the
    current schema breaking the project's rules (tools.schema_rules: defaults of their field's type, an enum
    default on every enum), and, for an event whose files are all valid, the current schema against every
    released version at level (incompatibilities)."""
    problems = []
    for event in events:
        invalid = unreadable(event)
        problems += [f"{event.subject}: {file}: {reason}" for file, reason in invalid]
        problems += [
            f"{event.subject}: {event.name}.avsc: {reason}"
            for reason in schema_problems(event.text)
            if (f"{event.name}.avsc", reason) not in invalid
        ]
        if invalid:
            continue
        for version, released in event.history:
            for reason in incompatibilities(event.text, released, level):
                problems.append(f"{event.subject}: {event.name} vs released v{version} ({level}): {reason}")
    return problems


def unreadable(event: EventSchema) -> list[tuple[str, str]]:
    """(file, why) of every schema file of event that is not valid Avro (tools.schema_rules.parse_problem): the
    current `<Name>.avsc` and each `history/<Name>.v<N>.avsc`. No compatibility check runs on such an event."""
    files = [(f"{event.name}.avsc", event.text)]
    files += [(f"history/{event.name}.v{version}.avsc", text) for version, text in event.history]
    return [(file, reason) for file, text in files if (reason := parse_problem(text)) is not None]


def check_shared(
    registry: Registry, events: list[EventSchema], level: str = COMPATIBILITY
) -> tuple[list[str], list[str]]:
    """(problems, notes) from asking a shared registry about every current schema, writing nothing to it.

    A problem: the registry's compatibility API calls the schema incompatible with the registered versions (at
    the subject's level), or the schema is incompatible at level with a registered version (fetched and checked
    here). A subject with no versions, or at another level than level, is a note (schema-register fixes both); a
    subject with no versions whose event's history subject has some is checked locally against those.
    """
    problems, notes = [], []
    for event in events:
        versions = registry.versions(event.subject)
        if not versions and event.history_subject is not None and registry.versions(event.history_subject):
            found, note = _check_history_subject(registry, event, level)
            problems += found
            notes += note
            continue
        if not versions:
            notes.append(f"{event.subject}: no versions registered; `make schema-register` will register it")
            continue
        subject_level = registry.compatibility_level(event.subject)
        if subject_level != level:
            notes.append(f"{event.subject}: level is {subject_level}; `make schema-register` sets {level}")
        compatible, reasons = registry.is_compatible(event.subject, event.text)
        local = [
            f"registered v{version}: {reason}"
            for version in versions
            for reason in incompatibilities(event.text, registry.schema(event.subject, version), level)
        ]
        if not compatible:
            problems.append(
                f"{event.subject}: {event.name} is incompatible with the registered versions {versions} "
                f"({subject_level}, the registry's answer): " + "; ".join(reasons or local or ["it gave no reason"])
            )
        elif local:
            problems.append(
                f"{event.subject}: {event.name} is incompatible with the registered versions ({level}): "
                + "; ".join(local)
            )
        else:
            notes.append(f"{event.subject}: {event.name} is compatible with versions {versions} ({level})")
    return problems, notes


def _check_history_subject(registry: Registry, event: EventSchema, level: str) -> tuple[list[str], list[str]]:
    """(problems, notes) for an event whose subject is still empty: its schema against every version of the
    subject it had before (which its subject takes over at the first write), checked locally at level."""
    assert event.history_subject is not None
    versions = registry.versions(event.history_subject)
    local = [
        f"{event.history_subject} v{version}: {reason}"
        for version in versions
        for reason in incompatibilities(event.text, registry.schema(event.history_subject, version), level)
    ]
    if local:
        return [
            f"{event.subject}: {event.name} is incompatible with the versions it takes over ({level}): "
            + "; ".join(local)
        ], []
    return [], [
        f"{event.subject}: no versions yet; {event.name} is compatible with the versions of "
        f"{event.history_subject} {versions} it takes over ({level})"
    ]


def check_scratch(
    registry: Registry, events: list[EventSchema], level: str = COMPATIBILITY, run_id: str | None = None
) -> tuple[list[str], list[str]]:
    """(problems, notes) from a registry the check may write to: per event, the released versions registered in
    order under a subject of this run's own (`schema-check-<run_id>-<subject>`) at level, then the current schema
    offered to its compatibility API (and, when it says no without a reason, for registration, whose 409 names
    the differences)."""
    run_id = run_id or uuid.uuid4().hex[:12]
    problems, notes = [], []
    for event in events:
        if not event.history:
            notes.append(f"{event.subject}: no released versions; nothing to be compatible with")
            continue
        subject = f"schema-check-{run_id}-{event.subject}"
        registry.set_compatibility_level(subject, level)
        for version, text in event.history:
            response = registry.register(subject, text)
            if response.status_code >= 400:
                problems.append(
                    f"{event.subject}: released v{version} is not {level} with the versions released before it: "
                    + _rejection(response)
                )
        compatible, reasons = registry.is_compatible(subject, event.text)
        released = [version for version, _ in event.history]
        if compatible:
            notes.append(f"{event.subject}: {event.name} is compatible with released versions {released} ({level})")
            continue
        if not reasons:
            reasons = [_rejection(registry.register(subject, event.text))]
        problems.append(
            f"{event.subject}: {event.name} is incompatible with the registered versions {released} ({level}): "
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
    """A Kafka broker and Apicurio Registry of our own, for the length of the check; yields the registry URL."""
    from infra.stack import LocalStack

    with tempfile.TemporaryDirectory(prefix="schema-check-") as tmp, LocalStack.ephemeral(Path(tmp)) as stack:
        yield stack.registry_url


def run(
    shared_url: str | None,
    events: list[EventSchema] | None = None,
    *,
    scratch: bool = True,
    scratch_url: str | None = None,
    level: str = COMPATIBILITY,
) -> int:
    """The whole check, printed; returns the exit status (0 compatible, 1 not).

    shared_url: a registry to check against, read only (None: skipped). scratch: also check the history in a
    registry this check may write to: scratch_url, else one started for the run.
    """
    events = event_schemas() if events is None else events
    problems = check_local(events, level)
    print(f"local: {len(events)} schemas against {sum(len(e.history) for e in events)} released versions ({level})")
    events = [event for event in events if not unreadable(event)]  # refused above; no registry can judge them
    if scratch:
        with _scratch_registry(scratch_url) as url:
            found, notes = _ask(url, lambda registry: check_scratch(registry, events, level))
        for note in notes:
            print(f"scratch registry: {note}")
        problems += found
    if shared_url:
        found, notes = _ask(shared_url, lambda registry: check_shared(registry, events, level))
        for note in notes:
            print(f"registry {shared_url} (read only): {note}")
        problems += found
    for problem in problems:
        print(f"INCOMPATIBLE {problem}", file=sys.stderr)
    if problems:
        return 1
    print(f"all event schemas are {level} with every released and registered version")
    return 0


def _ask(url: str, check: Callable[[Registry], tuple[list[str], list[str]]]) -> tuple[list[str], list[str]]:
    registry = Registry(url)
    try:
        return check(registry)
    finally:
        registry.close()


@contextmanager
def _scratch_registry(url: str | None) -> Iterator[str]:
    if url:
        yield url
        return
    print("starting a local Kafka and Schema Registry of the check's own")
    with ephemeral_registry() as started:
        yield started


def deployed_topics() -> dict[str, str]:
    """{schema file: topic} as this environment names the topics (ORDER_EVENTS_TOPIC etc.; defaults otherwise)."""
    from events.settings import EventSettings

    settings = EventSettings()
    return {event.schema_file: settings.topic(d).name for d in TOPICS for event in d.events}


def main(argv: list[str] | None = None) -> int:
    """The command line (``--registry``, ``--no-scratch``, ``--local-only``); exit status 0 when all is compatible."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--registry", default=os.environ.get("SCHEMA_REGISTRY_URL"), help="shared registry (Confluent API), read only"
    )
    parser.add_argument("--no-scratch", action="store_true", help="skip the check in a registry of the check's own")
    parser.add_argument("--local-only", action="store_true", help="no registry at all; the local check only")
    args = parser.parse_args(argv)
    events = event_schemas(topics=deployed_topics())
    if args.local_only:
        return run(None, events, scratch=False)
    return run(args.registry, events, scratch=not args.no_scratch)


if __name__ == "__main__":
    sys.exit(main())
