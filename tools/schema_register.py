"""Register the current event schemas in a shared Schema Registry, for a deploy pipeline.

    python -m tools.schema_register [--registry URL]      # `make schema-register`

For every topic of the event topology (named as this environment names them: ORDER_EVENTS_TOPIC, ...), sets
the subject's compatibility level to the topology's (events.topology.COMPATIBILITY, FULL_TRANSITIVE), then
registers the event's schema: the exact text the services write with (contract_models.events, generated from
schemas/avro/), so a producer running with AUTO_REGISTER_SCHEMAS=false finds its id by looking it up.

Idempotent: a schema already registered under the subject keeps its version and id (the registry answers a
repeated registration with the same id); setting the level again changes nothing. The registry is --registry,
else $SCHEMA_REGISTRY_URL. Run `make schema-check` first: a registry at FULL_TRANSITIVE refuses (409) a schema
incompatible with any registered version, and this tool then exits 1 naming the registry's reason.

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
    """The outcome for one subject: the schema's id (None when refused) and version, or the refusal's reason."""

    subject: str
    event: str
    schema_id: int | None
    versions: list[int]
    refusal: str | None = None


def subjects(settings: EventSettings | None = None) -> list[tuple[str, str, str]]:
    """(subject, event name, schema text) for every declared topic, as settings name the topics."""
    settings = settings or EventSettings()
    return [
        (
            d.subject(settings.topic(d).name),
            d.event.name,
            str(getattr(generated, f"{d.event.module_name.upper()}_SCHEMA")),
        )
        for d in TOPICS
    ]


def register_all(
    registry: Registry, targets: list[tuple[str, str, str]], level: str = COMPATIBILITY
) -> list[Registration]:
    """Set level on each subject, then register its schema. Raises httpx.HTTPError when the registry cannot be
    reached or refuses to set the level."""
    outcomes = []
    for subject, event, schema in targets:
        registry.set_compatibility_level(subject, level)
        response = registry.register(subject, schema)
        if response.status_code in (409, 422):
            outcomes.append(Registration(subject, event, None, registry.versions(subject), response.text[:2000]))
            continue
        response.raise_for_status()
        outcomes.append(Registration(subject, event, int(response.json()["id"]), registry.versions(subject)))
    return outcomes


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
