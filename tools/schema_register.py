"""Register the current event schemas in a shared Schema Registry, for a deploy pipeline.

    python -m tools.schema_register [--registry URL]      # `make schema-register`

For every event type of every topic of the event topology (the topics named as this environment names them:
ORDER_EVENTS_TOPIC, ...), sets its subject's compatibility level to the topology's (events.topology.COMPATIBILITY,
FULL_TRANSITIVE), carries over the versions of the subject the event had before (order-events-value for
OrderCreated, whose topic moved to one subject per event type: docs/adr/0002), oldest first, as the services do
at their first write when they may register, then registers the event's schema: the exact text the services
write with (contract_models.events, generated from schemas/avro/), so a producer running with
AUTO_REGISTER_SCHEMAS=false finds its id by looking it up.

Idempotent: a schema already registered under the subject keeps its version and id (the registry answers a
repeated registration with the same id); setting the level again changes nothing. The registry is --registry,
else $SCHEMA_REGISTRY_URL; a registry behind TLS and basic authentication is reached with
$SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO and $SCHEMA_REGISTRY_CA_LOCATION (tools.registry_api). Run
`make schema-check` first: a registry at FULL_TRANSITIVE refuses (409) a schema incompatible with any registered
version, and this tool then exits 1 naming the registry's reason.

Exit status 0 when every schema is registered, 1 when the registry refused one, 2 without a registry URL.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass

from contract_models import events as generated
from events.settings import EventSettings
from events.topology import COMPATIBILITY, TOPICS
from tools.registry_api import Registry


@dataclass(frozen=True)
class Registration:
    """The outcome for one subject: the schema's id (None when refused) and version, or the refusal's reason
    (of the schema, or of a version carried over)."""

    subject: str
    event: str
    schema_id: int | None
    versions: list[int]
    refusal: str | None = None


@dataclass(frozen=True)
class Target:
    """What to register: schema (text) of event under subject, after the versions of history_subject (None:
    the event has always had this subject)."""

    subject: str
    event: str
    schema: str
    history_subject: str | None = None


def subjects(settings: EventSettings | None = None) -> list[Target]:
    """The target of every event type of every declared topic, in the topology's order, as settings name the
    topics."""
    settings = settings or EventSettings()
    return [
        Target(
            d.subject(settings.topic(d).name, event),
            event.name,
            str(getattr(generated, f"{event.module_name.upper()}_SCHEMA")),
            d.history_subject(settings.topic(d).name, event),
        )
        for d in TOPICS
        for event in d.events
    ]


def register_all(registry: Registry, targets: list[Target], level: str = COMPATIBILITY) -> list[Registration]:
    """Set level on each subject, carry its history subject's versions over (registering a schema the subject
    holds adds nothing, so a re-run changes nothing), then register its schema. Raises httpx.HTTPError when the
    registry cannot be reached or refuses to set the level."""
    outcomes = []
    for target in targets:
        subject, event, schema = target.subject, target.event, target.schema
        registry.set_compatibility_level(subject, level)
        refusal = _carry_over(registry, target)
        if refusal is not None:
            outcomes.append(Registration(subject, event, None, registry.versions(subject), refusal))
            continue
        response = registry.register(subject, schema)
        if response.status_code in (409, 422):
            outcomes.append(Registration(subject, event, None, registry.versions(subject), response.text[:2000]))
            continue
        response.raise_for_status()
        outcomes.append(Registration(subject, event, int(response.json()["id"]), registry.versions(subject)))
    return outcomes


def _carry_over(registry: Registry, target: Target) -> str | None:
    """Register every version of target's history subject under its subject, oldest first; the refusal of one,
    or None."""
    if target.history_subject is None:
        return None
    for version in registry.versions(target.history_subject):
        response = registry.register(target.subject, registry.schema(target.history_subject, version))
        if response.status_code in (409, 422):
            return f"{target.history_subject} v{version} carried over: {response.text[:2000]}"
        response.raise_for_status()
    return None


def main(argv: list[str] | None = None) -> int:
    """The command line (``--registry``); exit status 0 when all are registered, 1 on a refusal, 2 without URL."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--registry", default=os.environ.get("SCHEMA_REGISTRY_URL"), help="Confluent API base URL")
    args = parser.parse_args(argv)
    if not args.registry:
        print("no --registry or SCHEMA_REGISTRY_URL: name the registry to register in", file=sys.stderr)
        return 2
    registry = Registry(args.registry)
    try:
        outcomes = register_all(registry, subjects())
    finally:
        registry.close()
    for outcome in outcomes:
        if outcome.refusal is None:
            print(
                f"{outcome.subject}: {outcome.event} registered, id {outcome.schema_id} "
                f"(versions {outcome.versions}, {COMPATIBILITY})"
            )
        else:
            print(f"REFUSED {outcome.subject}: {outcome.event}: {outcome.refusal}", file=sys.stderr)
    return 1 if any(o.refusal is not None for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
