"""tools/contracts_release.py on a temporary copy of schemas/ in a git repository of its own: a compatible edit is
recorded as the next version and as a release of HEAD's commit, an incompatible one, a no-op and a tree with
uncommitted changes are refused with nothing written, an OpenAPI break is refused."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from events.topology import ORDER_EVENTS
from tools.contracts_release import SCHEMAS_DIR, main, plan
from tools.releases import load_releases, previous_release


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True).stdout.strip()


def commit_all(root: Path, message: str) -> str:
    git(root, "add", "-A")
    git(root, "-c", "user.name=Release", "-c", "user.email=release@example.com", "commit", "-q", "-m", message)
    return git(root, "rev-parse", "HEAD")


@pytest.fixture
def schemas(tmp_path: Path) -> Path:
    copy = tmp_path / "schemas"
    shutil.copytree(SCHEMAS_DIR, copy)
    git(tmp_path, "init", "-q")
    commit_all(tmp_path, "contracts")
    if not plan(copy).empty:  # bring the copy's released copies up to date, as the repository's next release would
        assert main(["--schemas", str(copy)]) == 0
        commit_all(tmp_path, "release")
    return copy


def edit_order_created(schemas: Path, commit: bool = True, **field: Any) -> None:
    path = schemas / "avro" / "OrderCreated.avsc"
    schema = json.loads(path.read_text())
    schema["fields"].append(field)
    path.write_text(json.dumps(schema, indent=2))
    if commit:
        commit_all(schemas.parent, f"OrderCreated: {field['name']}")


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


def test_a_release_records_heads_commit_and_every_contract_version(schemas: Path) -> None:
    before = load_releases(schemas)
    edit_order_created(schemas, name="channel", type="string", default="web", doc="Where the order came from.")
    head = git(schemas.parent, "rev-parse", "HEAD")

    assert main(["--schemas", str(schemas)]) == 0

    releases = load_releases(schemas)
    assert releases[:-1] == before
    latest = releases[-1]
    assert (latest.release, latest.commit) == (len(before) + 1, head)
    history = schemas / "avro" / "history"
    assert latest.events["OrderCreated"] == len(list(history.glob("OrderCreated.v*.avsc")))
    assert set(latest.events) == {p.stem for p in (schemas / "avro").glob("*.avsc")}
    order_api = yaml.safe_load((schemas / "openapi" / "order-service.yaml").read_text())
    assert latest.openapi["order-service"] == order_api["info"]["version"]
    # The code released is the commit's; a rolling upgrade to it starts from the release before.
    assert previous_release(releases, schemas) == (before[-1] if before else None)


def test_a_tree_with_uncommitted_changes_is_refused_and_nothing_is_written(
    schemas: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit_order_created(schemas, commit=False, name="channel", type="string", default="web", doc="Where it came from.")
    before = files(schemas)

    assert main(["--schemas", str(schemas)]) == 1

    assert files(schemas) == before
    err = capsys.readouterr().err
    assert "uncommitted changes" in err and "OrderCreated.avsc" in err


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


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            lambda t: t.replace('"orderprocessing.events"', '"orderprocessing.events.v3"', 1),
            "UnsafeWriterSchema: record orderprocessing.events.v3.OrderCreated is not one this consumer reads",
            id="namespace changed",
        ),
        pytest.param(lambda t: t[:-20], "OrderCreated.avsc: not JSON", id="not JSON"),
    ],
)
def test_a_schema_the_consumer_refuses_or_that_does_not_parse_is_refused_without_a_traceback(
    schemas: Path, capsys: pytest.CaptureFixture[str], text: Callable[[str], str], expected: str
) -> None:
    path = schemas / "avro" / "OrderCreated.avsc"
    path.write_text(text(path.read_text()))
    commit_all(schemas.parent, "OrderCreated edited")
    before = files(schemas)
    capsys.readouterr()

    assert main(["--schemas", str(schemas)]) == 1

    assert files(schemas) == before
    assert expected in capsys.readouterr().err


def test_a_field_removed_is_refused_at_full_transitive(schemas: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = schemas / "avro" / "OrderCreated.avsc"
    schema = json.loads(path.read_text())
    schema["fields"] = [f for f in schema["fields"] if f["name"] != "customerName"]
    path.write_text(json.dumps(schema, indent=2))
    commit_all(schemas.parent, "OrderCreated without customerName")

    assert main(["--schemas", str(schemas)]) == 1
    assert "its readers cannot read data written with the new schema" in capsys.readouterr().err


def test_a_no_op_release_is_refused(schemas: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = schemas / "avro" / "OrderCreated.avsc"
    path.write_text(json.dumps(json.loads(path.read_text())))  # formatting only
    commit_all(schemas.parent, "reformat")
    before = files(schemas)

    assert main(["--schemas", str(schemas)]) == 1
    assert files(schemas) == before
    assert "nothing to release" in capsys.readouterr().err


def test_a_breaking_openapi_change_is_refused(schemas: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = schemas / "openapi" / "order-service.yaml"
    spec = yaml.safe_load(path.read_text())
    spec["components"]["schemas"]["OrderStatus"]["enum"].append("OnHold")  # at the released version: not a minor one
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    commit_all(schemas.parent, "OnHold")
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
    commit_all(schemas.parent, "OnHold, minor release")

    assert main(["--schemas", str(schemas)]) == 0
    assert (schemas / "openapi" / "released" / "order-service.yaml").read_text() == path.read_text()
