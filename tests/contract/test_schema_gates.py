"""The schema gates bite: the real registry and the local check refuse the same breaking changes and let the
same compatible ones through.

Each test registers a base version under a subject of its own at a given level (BACKWARD_TRANSITIVE, or
FULL_TRANSITIVE, the level the services set), then offers a changed schema to the registry (compatibility
endpoint, then an actual registration) and to `tools.schema_check.incompatibilities` (the local check
`make schema-check` runs without a registry).
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from events.topology import COMPATIBILITY
from tools.registry_api import Registry
from tools.schema_check import event_schemas, incompatibilities, run

pytestmark = pytest.mark.integration

BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
BASE: dict[str, Any] = {
    "type": "record",
    "name": "GateProbe",
    "namespace": "test.gates",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "quantity", "type": "int"},
        {"name": "note", "type": "string"},
        {"name": "state", "type": {"type": "enum", "name": "State", "symbols": ["A", "B", "C"], "default": "A"}},
    ],
}
Edit = Callable[[list[dict[str, Any]]], list[dict[str, Any]]]


def changed(edit: Edit) -> str:
    schema = copy.deepcopy(BASE)
    schema["fields"] = edit(schema["fields"])
    return json.dumps(schema)


def replace(field: str, **changes: Any) -> Edit:
    return lambda fields: [{**f, **changes} if f["name"] == field else f for f in fields]


def state_enum(**enum: Any) -> Edit:
    return replace("state", type={"type": "enum", "name": "State", **enum})


BREAKING = {
    "change a field's type": replace("quantity", type="string"),
    "add a field without default": lambda fields: [*fields, {"name": "currency", "type": "string"}],
    "remove an enum symbol and the enum default": state_enum(symbols=["A", "B"]),
    "rename a field without an alias": replace("note", name="comment"),
}
COMPATIBLE = {
    "add a field with a default": lambda fields: [*fields, {"name": "currency", "type": "string", "default": "EUR"}],
    "add an enum symbol, with an enum default": state_enum(symbols=["A", "B", "C", "D"], default="A"),
    "rename a field with an alias": replace("note", name="comment", aliases=["note"]),
}


def remove_required_field(fields: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [f for f in fields if f["name"] != "note"]


@pytest.fixture
def registry(stack: Any) -> Iterator[Registry]:
    client = Registry(stack.registry_url)
    yield client
    client.close()


def subject_with(registry: Registry, level: str, *versions: str) -> str:
    subject = f"gate-{uuid.uuid4().hex[:12]}-value"
    registry.set_compatibility_level(subject, level)
    for version in versions:
        response = registry.register(subject, version)
        assert response.status_code == 200, response.text
    return subject


@pytest.mark.parametrize("edit", BREAKING.values(), ids=BREAKING.keys())
def test_breaking_change_is_refused_by_registry_and_local_check(registry: Registry, edit: Edit) -> None:
    base, new = json.dumps(BASE), changed(edit)
    subject = subject_with(registry, BACKWARD_TRANSITIVE, base)

    assert registry.is_compatible(subject, new)[0] is False
    refused = registry.register(subject, new)
    assert refused.status_code == 409
    assert subject in refused.json()["message"]  # the 409 names the subject and the differences
    assert registry.versions(subject) == [1]
    assert incompatibilities(new, base, BACKWARD_TRANSITIVE) != []


@pytest.mark.parametrize("edit", COMPATIBLE.values(), ids=COMPATIBLE.keys())
def test_compatible_change_passes_registry_and_local_check(registry: Registry, edit: Edit) -> None:
    base, new = json.dumps(BASE), changed(edit)
    subject = subject_with(registry, BACKWARD_TRANSITIVE, base)

    assert registry.is_compatible(subject, new)[0] is True
    assert incompatibilities(new, base, BACKWARD_TRANSITIVE) == []
    assert registry.register(subject, new).status_code == 200
    assert registry.versions(subject) == [1, 2]


def test_removing_a_field_without_default_is_refused_only_at_full_compatibility(registry: Registry) -> None:
    """Readers skip writer fields they do not know, so BACKWARD(_TRANSITIVE) allows the removal (consumers
    upgrade first); old readers still need the field, so FULL(_TRANSITIVE), which also checks them, refuses."""
    base, new = json.dumps(BASE), changed(remove_required_field)

    backward = subject_with(registry, BACKWARD_TRANSITIVE, base)
    assert registry.is_compatible(backward, new)[0] is True
    assert incompatibilities(new, base, BACKWARD_TRANSITIVE) == []

    full = subject_with(registry, "FULL_TRANSITIVE", base)
    assert registry.is_compatible(full, new)[0] is False
    assert registry.register(full, new).status_code == 409
    assert incompatibilities(new, base, "FULL_TRANSITIVE") != []


def test_transitive_check_covers_every_version_not_only_the_latest(registry: Registry) -> None:
    v1 = json.dumps(BASE)
    v2 = changed(lambda fields: [*fields, {"name": "currency", "type": "string", "default": "EUR"}])
    v3 = changed(lambda fields: [*fields, {"name": "currency", "type": "string"}])  # default dropped
    subject = subject_with(registry, BACKWARD_TRANSITIVE, v1, v2)

    assert incompatibilities(v3, v2) == []  # fine against the latest alone...
    assert incompatibilities(v3, v1) != []  # ...but v1 records have no currency
    assert registry.is_compatible(subject, v3)[0] is False
    assert registry.register(subject, v3).status_code == 409


def write_events(root: Path, current: str, released: list[str]) -> dict[str, str]:
    """An avro directory with one event schema and its history; returns {file: topic}."""
    (root / "history").mkdir(parents=True)
    (root / "GateProbe.avsc").write_text(current)
    for number, text in enumerate(released, start=1):
        (root / "history" / f"GateProbe.v{number}.avsc").write_text(text)
    return {"GateProbe.avsc": f"gate-{uuid.uuid4().hex[:12]}"}


def test_schema_check_fails_naming_the_subject_and_the_difference(
    stack: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    topics = write_events(tmp_path, changed(replace("quantity", type="string")), [json.dumps(BASE)])
    events = event_schemas(tmp_path, topics)

    assert run(None, events, scratch_url=stack.registry_url) == 1

    subject = f"{topics['GateProbe.avsc']}-value"
    err = capsys.readouterr().err.splitlines()
    local = [line for line in err if "vs released v1" in line]
    remote = [line for line in err if "incompatible with the registered versions" in line]
    # Both ways at FULL_TRANSITIVE: neither int nor string reads the other.
    assert len(local) == 2 and all(subject in line and "/fields/1/type" in line for line in local)
    # Apicurio's 409 details: reader type STRING is not compatible with writer type INT at /fields/1/type.
    assert len(remote) == 1 and subject in remote[0] and "/fields/1/type" in remote[0]


def test_schema_check_passes_for_a_compatible_schema(stack: Any, tmp_path: Path) -> None:
    topics = write_events(tmp_path, changed(COMPATIBLE["add a field with a default"]), [json.dumps(BASE)])
    assert run(None, event_schemas(tmp_path, topics), scratch_url=stack.registry_url) == 0


def test_committed_event_schemas_pass_against_the_registry(stack: Any) -> None:
    # The project's schemas and history, under subjects of this test's own (the services use the real ones).
    prefix = f"gate-{uuid.uuid4().hex[:8]}-"
    events = event_schemas(
        topics={
            "OrderCreated.avsc": f"{prefix}order-events",
            "OrderCancelled.avsc": f"{prefix}order-events",
            "FulfillmentStatusChanged.avsc": f"{prefix}fulfillment-events",
        }
    )
    history = Path(__file__).resolve().parents[2] / "schemas" / "avro" / "history"
    assert [len(e.history) for e in events] == [len(list(history.glob(f"{e.name}.v*.avsc"))) for e in events]
    assert sum(len(e.history) for e in events) >= 2  # every released version is checked, not none
    assert COMPATIBILITY == "FULL_TRANSITIVE"
    assert run(None, events, scratch_url=stack.registry_url) == 0
