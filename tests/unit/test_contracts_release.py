"""tools/contracts_release.py on a temporary copy of schemas/: a compatible edit is recorded as the next
version, an incompatible one and a no-op are refused with nothing written, an OpenAPI break is refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from events.topology import ORDER_EVENTS
from tools.contracts_release import SCHEMAS_DIR, main


@pytest.fixture
def schemas(tmp_path: Path) -> Path:
    copy = tmp_path / "schemas"
    shutil.copytree(SCHEMAS_DIR, copy)
    assert main(["--schemas", str(copy)]) == 0  # bring the copy's released OpenAPI copies up to date
    return copy


def edit_order_created(schemas: Path, **field: Any) -> None:
    path = schemas / "avro" / "OrderCreated.avsc"
    schema = json.loads(path.read_text())
    schema["fields"].append(field)
    path.write_text(json.dumps(schema, indent=2))


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_compatible_event_change_is_recorded_as_the_next_version(
    schemas: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    history = schemas / "avro" / "history"
    released = {
        name: len(list(history.glob(f"{name}.v*.avsc"))) for name in ("OrderCreated", "FulfillmentStatusChanged")
    }
    edit_order_created(schemas, name="channel", type="string", default="web", doc="Where the order came from.")

    assert main(["--schemas", str(schemas)]) == 0

    version = released["OrderCreated"] + 1
    recorded = history / f"OrderCreated.v{version}.avsc"
    assert recorded.read_text() == (schemas / "avro" / "OrderCreated.avsc").read_text()
    assert not (history / f"FulfillmentStatusChanged.v{released['FulfillmentStatusChanged'] + 1}.avsc").exists()
    assert f"released avro/OrderCreated.avsc as avro/history/OrderCreated.v{version}.avsc" in capsys.readouterr().out
    assert main(["--schemas", str(schemas)]) == 1  # released already: a no-op now


def test_an_incompatible_event_change_is_refused_and_nothing_is_written(
    schemas: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    edit_order_created(schemas, name="channel", type="string")  # no default: v1 data has no channel
    before = files(schemas)

    assert main(["--schemas", str(schemas)]) == 1

    assert files(schemas) == before
    err = capsys.readouterr().err
    subject = ORDER_EVENTS.subject(event=ORDER_EVENTS.event_named("OrderCreated"))
    assert f"REFUSED event schema: {subject}: OrderCreated vs released v1 (FULL_TRANSITIVE)" in err
    assert "channel" in err


def test_a_field_removed_is_refused_at_full_transitive(schemas: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = schemas / "avro" / "OrderCreated.avsc"
    schema = json.loads(path.read_text())
    schema["fields"] = [f for f in schema["fields"] if f["name"] != "customerName"]
    path.write_text(json.dumps(schema, indent=2))

    assert main(["--schemas", str(schemas)]) == 1
    assert "its readers cannot read data written with the new schema" in capsys.readouterr().err


def test_a_no_op_release_is_refused(schemas: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = schemas / "avro" / "OrderCreated.avsc"
    path.write_text(json.dumps(json.loads(path.read_text())))  # formatting only
    before = files(schemas)

    assert main(["--schemas", str(schemas)]) == 1
    assert files(schemas) == before
    assert "nothing to release" in capsys.readouterr().err


def test_a_breaking_openapi_change_is_refused(schemas: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = schemas / "openapi" / "order-service.yaml"
    spec = yaml.safe_load(path.read_text())
    spec["components"]["schemas"]["OrderStatus"]["enum"].append("OnHold")  # at the released version: not a minor one
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    before = files(schemas)

    assert main(["--schemas", str(schemas)]) == 1
    assert files(schemas) == before
    assert "response-property-enum-value-added" in capsys.readouterr().err


def test_a_response_enum_value_added_in_a_minor_release_is_released(schemas: Path) -> None:
    path = schemas / "openapi" / "order-service.yaml"
    spec = yaml.safe_load(path.read_text())
    spec["components"]["schemas"]["OrderStatus"]["enum"].append("OnHold")
    major, minor, _patch = spec["info"]["version"].split(".")
    spec["info"]["version"] = f"{major}.{int(minor) + 1}.0"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))

    assert main(["--schemas", str(schemas)]) == 0
    assert (schemas / "openapi" / "released" / "order-service.yaml").read_text() == path.read_text()
