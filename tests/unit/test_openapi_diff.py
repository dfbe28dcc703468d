"""The OpenAPI gate (tools/openapi_diff.py, oasdiff): each change that can break a client of the Order Service's
released API fails it, naming the change; additions and wider request rules pass; a response enum value added
passes only in a minor release, reported as one; the committed specs pass.

Every edit is made to the committed order-service.yaml, so the gate is shown to bite on the real document."""

from __future__ import annotations

import copy
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tools.openapi_diff import OPENAPI_DIR, diff_files, main, major_release, minor_release

ROOT = Path(__file__).resolve().parents[2]
SPEC: dict[str, Any] = yaml.safe_load((OPENAPI_DIR / "order-service.yaml").read_text())
Edit = Callable[[dict[str, Any]], None]


def schemas(spec: dict[str, Any]) -> dict[str, Any]:
    return spec["components"]["schemas"]


def create_order(spec: dict[str, Any]) -> dict[str, Any]:
    return spec["paths"]["/api/orders"]["post"]


def list_orders_param(spec: dict[str, Any], name: str) -> dict[str, Any]:
    return next(p for p in spec["paths"]["/api/orders"]["get"]["parameters"] if p.get("name") == name)


def liveness(spec: dict[str, Any]) -> dict[str, Any]:
    """The liveness operation: one that needs no token."""
    return spec["paths"]["/health/live"]["get"]


def require_token_on_the_api(spec: dict[str, Any]) -> None:
    spec["security"] = [{"bearerAuth": []}]
    del liveness(spec)["security"]  # it follows the document's requirement now


def wrap_created_in_one_of(spec: dict[str, Any]) -> None:
    media = create_order(spec)["responses"]["201"]["content"]["application/json"]
    media["schema"] = {"oneOf": [{"$ref": "#/components/schemas/Order"}, {"$ref": "#/components/schemas/Problem"}]}


def add_required_field_by_all_of(spec: dict[str, Any]) -> None:
    media = create_order(spec)["requestBody"]["content"]["application/json"]
    extra = {"type": "object", "required": ["channel"], "properties": {"channel": {"type": "string"}}}
    media["schema"] = {"allOf": [media["schema"], extra]}


def new_required_field(spec: dict[str, Any]) -> None:
    schemas(spec)["CreateOrderRequest"]["properties"]["currency"] = {"type": "string"}
    schemas(spec)["CreateOrderRequest"]["required"].append("currency")


# Each edit with the oasdiff check that must name it.
BREAKING: dict[str, tuple[Edit, str]] = {
    "new response enum value": (
        lambda s: schemas(s)["OrderStatus"]["enum"].append("OnHold"),
        "response-property-enum-value-added",
    ),
    "response header removed": (
        lambda s: create_order(s)["responses"]["201"].pop("headers"),
        "optional-response-header-removed",
    ),
    "response header type changed": (
        lambda s: create_order(s)["responses"]["503"]["headers"]["Retry-After"].update(schema={"type": "string"}),
        "response-header-type-changed",
    ),
    "security required on the API": (require_token_on_the_api, "api-security-anonymous-access-removed"),
    "security required on one operation": (
        lambda s: liveness(s).update(security=[{"bearerAuth": []}]),
        "api-security-anonymous-access-removed",
    ),
    "response wrapped in a oneOf": (wrap_created_in_one_of, "response-body-wrapped-in-one-of-original-preserved"),
    "required field added through allOf": (add_required_field_by_all_of, "request-body-all-of-added"),
    "new required request field": (new_required_field, "new-required-request-property"),
    "path removed": (lambda s: s["paths"].pop("/api/orders/{orderId}"), "api-path-removed-without-deprecation"),
    "request maximum tightened": (
        lambda s: schemas(s)["CreateOrderItem"]["properties"]["quantity"].update(maximum=100),
        "request-property-max-decreased",
    ),
    "query parameter maximum tightened": (
        lambda s: list_orders_param(s, "limit")["schema"].update(maximum=50),
        "request-parameter-max-decreased",
    ),
    "request header made required": (
        lambda s: create_order(s)["parameters"][0].update(required=True),
        "request-parameter-became-required",
    ),
    "response field removed": (
        lambda s: schemas(s)["Order"]["properties"].pop("totalAmount"),
        "response-required-property-removed",
    ),
    "response field type changed": (
        lambda s: schemas(s)["Order"]["properties"].update(totalAmount={"type": "string"}),
        "response-property-type-changed",
    ),
    "success response removed": (
        lambda s: create_order(s)["responses"].pop("201"),
        "response-success-status-removed",
    ),
    "optional response field removed": (
        lambda s: schemas(s)["Order"]["properties"].pop("trackingNumber"),
        "response-optional-property-removed",
    ),
    "optional nullable response object removed": (
        lambda s: schemas(s)["Order"]["properties"].pop("cancellation"),
        "response-optional-property-removed",
    ),
    "optional field of a nested response object removed": (
        lambda s: schemas(s)["Cancellation"]["properties"].pop("refusalReason"),
        "response-optional-property-removed",
    ),
}
COMPATIBLE: dict[str, Edit] = {
    "description changed": lambda s: create_order(s).update(description="Accepts an order."),
    "optional query parameter added": lambda s: s["paths"]["/api/orders"]["get"]["parameters"].append(
        {"name": "since", "in": "query", "required": False, "schema": {"type": "string"}}
    ),
    "request maximum widened": lambda s: schemas(s)["CreateOrderItem"]["properties"]["quantity"].update(maximum=100000),
    "response header added": lambda s: create_order(s)["responses"]["201"]["headers"].update(
        {"X-Order-Version": {"schema": {"type": "integer"}}}
    ),
    "path added": lambda s: s["paths"].update({"/api/ping": {"get": {"responses": {"200": {"description": "pong"}}}}}),
}


def gate(tmp_path: Path, edit: Edit) -> list[Any]:
    current = copy.deepcopy(SPEC)
    edit(current)
    released, changed = tmp_path / "released.yaml", tmp_path / "current.yaml"
    released.write_text(yaml.safe_dump(SPEC, sort_keys=False))
    changed.write_text(yaml.safe_dump(current, sort_keys=False))
    return diff_files(released, changed)


@pytest.mark.parametrize(("edit", "check"), BREAKING.values(), ids=BREAKING.keys())
def test_a_breaking_change_fails_the_gate_naming_it(tmp_path: Path, edit: Edit, check: str) -> None:
    found = gate(tmp_path, edit)
    assert check in {change.check for change in found}, [str(c) for c in found]


def carrier_default(spec: dict[str, Any]) -> None:
    schemas(spec)["Order"]["properties"]["carrier"]["default"] = "DHL"


def address_discriminator(spec: dict[str, Any]) -> None:
    schemas(spec)["Order"]["properties"]["shippingAddress"]["discriminator"] = {"propertyName": "country"}


# What a released document has and the current one takes away from a response, with the check that must name it.
REMOVED_FROM_RESPONSE: dict[str, tuple[Edit, str]] = {
    "response default value removed": (carrier_default, "response-property-default-value-removed"),
    "response discriminator removed": (address_discriminator, "response-property-discriminator-removed"),
}


@pytest.mark.parametrize(("released_has", "check"), REMOVED_FROM_RESPONSE.values(), ids=REMOVED_FROM_RESPONSE.keys())
def test_removing_what_a_client_reads_from_a_response_fails_the_gate(
    tmp_path: Path, released_has: Edit, check: str
) -> None:
    released_spec = copy.deepcopy(SPEC)
    released_has(released_spec)
    released, current = tmp_path / "released.yaml", tmp_path / "current.yaml"
    released.write_text(yaml.safe_dump(released_spec, sort_keys=False))
    current.write_text(yaml.safe_dump(SPEC, sort_keys=False))

    found = diff_files(released, current)

    assert check in {change.check for change in found}, [str(c) for c in found]
    assert all(change.level == "error" for change in found if change.check == check)


@pytest.mark.parametrize("edit", COMPATIBLE.values(), ids=COMPATIBLE.keys())
def test_a_compatible_change_passes_the_gate(tmp_path: Path, edit: Edit) -> None:
    assert [str(change) for change in gate(tmp_path, edit)] == []


def test_the_committed_specs_pass_against_their_released_versions() -> None:
    assert main([]) == 0


def test_cli_fails_and_names_the_change(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    released, current = tmp_path / "released", tmp_path / "current"
    shutil.copytree(ROOT / "schemas/openapi/released", released)
    current.mkdir()
    for spec in released.glob("*.yaml"):
        shutil.copy(spec, current / spec.name)
    spec = yaml.safe_load((current / "order-service.yaml").read_text())
    spec["components"]["schemas"]["OrderStatus"]["enum"].append("OnHold")
    (current / "order-service.yaml").write_text(yaml.safe_dump(spec))

    assert main(["--released", str(released), "--current", str(current)]) == 1
    err = capsys.readouterr().err
    assert "order-service.yaml: " in err and "BREAKING GET /api/orders" in err and "`OnHold`" in err


def _status_spec(version: str, statuses: list[str]) -> dict[str, Any]:
    schema = {"type": "object", "properties": {"status": {"type": "string", "enum": statuses}}}
    response = {"200": {"description": "ok", "content": {"application/json": {"schema": schema}}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "T", "version": version},
        "paths": {"/o": {"get": {"responses": response}}},
    }


def _diff(tmp_path: Path, released: dict[str, Any], current: dict[str, Any]) -> list[Any]:
    (tmp_path / "released.yaml").write_text(yaml.safe_dump(released, sort_keys=False))
    (tmp_path / "current.yaml").write_text(yaml.safe_dump(current, sort_keys=False))
    return diff_files(tmp_path / "released.yaml", tmp_path / "current.yaml")


def test_a_response_enum_value_added_without_a_minor_release_is_breaking(tmp_path: Path) -> None:
    (found,) = _diff(
        tmp_path,
        _status_spec("1.2.0", ["Pending", "Failed"]),
        _status_spec("1.2.1", ["Pending", "Failed", "Cancelled"]),
    )
    assert found.check == "response-property-enum-value-added" and "`Cancelled`" in found.what
    assert found.where == "GET /o"
    assert not found.released_as_minor


@pytest.mark.parametrize("version", ["1.3.0", "2.0.0"])
def test_a_response_enum_value_added_in_a_minor_or_major_release_is_reported_as_one(
    tmp_path: Path, version: str
) -> None:
    (found,) = _diff(tmp_path, _status_spec("1.2.0", ["Pending"]), _status_spec(version, ["Pending", "Cancelled"]))
    assert found.check == "response-property-enum-value-added"
    assert found.released_as_minor


def test_a_minor_release_allows_no_other_breaking_change(tmp_path: Path) -> None:
    released = _status_spec("1.2.0", ["Pending", "Failed"])
    current = _status_spec("1.3.0", ["Pending", "Failed", "Cancelled"])
    current["paths"]["/o"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]["properties"]["status"][
        "type"
    ] = "integer"
    found = _diff(tmp_path, released, current)
    assert {c.check for c in found if not c.released_as_minor} == {"response-property-type-changed"}


def test_the_cli_reports_a_minor_release_and_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    released, current = tmp_path / "released", tmp_path / "current"
    released.mkdir()
    current.mkdir()
    (released / "t.yaml").write_text(yaml.safe_dump(_status_spec("1.2.0", ["Pending"])))
    (current / "t.yaml").write_text(yaml.safe_dump(_status_spec("1.3.0", ["Pending", "Cancelled"])))

    assert main(["--released", str(released), "--current", str(current)]) == 0
    out = capsys.readouterr().out
    assert "t.yaml: MINOR RELEASE: GET /o: " in out and "`Cancelled`" in out


def _secured(spec: dict[str, Any]) -> dict[str, Any]:
    spec["components"] = {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}}
    spec["paths"]["/o"]["get"]["security"] = [{"bearer": ["orders:read"]}]
    return spec


@pytest.mark.parametrize("version", ["1.2.1", "1.3.0"])
def test_authentication_required_without_a_major_release_is_breaking(tmp_path: Path, version: str) -> None:
    (found,) = _diff(tmp_path, _status_spec("1.2.0", ["Pending"]), _secured(_status_spec(version, ["Pending"])))
    assert found.check == "api-security-anonymous-access-removed"
    assert not found.deliberate


def test_authentication_required_in_a_major_release_is_reported_as_one_and_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    released, current = tmp_path / "released", tmp_path / "current"
    released.mkdir()
    current.mkdir()
    (released / "t.yaml").write_text(yaml.safe_dump(_status_spec("1.3.0", ["Pending"])))
    (current / "t.yaml").write_text(yaml.safe_dump(_secured(_status_spec("2.0.0", ["Pending"]))))

    assert main(["--released", str(released), "--current", str(current)]) == 0
    assert "t.yaml: MAJOR RELEASE: GET /o: " in capsys.readouterr().out


def test_a_major_release_allows_no_other_breaking_change(tmp_path: Path) -> None:
    current = _secured(_status_spec("2.0.0", ["Pending"]))
    current["paths"]["/o"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]["properties"]["status"][
        "type"
    ] = "integer"
    found = _diff(tmp_path, _status_spec("1.3.0", ["Pending"]), current)
    assert {c.check for c in found if not c.deliberate} == {"response-property-type-changed"}


@pytest.mark.parametrize(
    ("released", "current", "major"),
    [("1.3.0", "2.0.0", True), ("1.9.9", "2.0.0", True), ("1.3.0", "1.4.0", False), ("2.0.0", "2.0.1", False)],
)
def test_major_release_follows_semantic_versioning(released: str, current: str, major: bool) -> None:
    assert major_release(released, current) is major


def _without_cancelled(node: Any) -> Any:
    """node (a parsed OpenAPI document or part of it) with the status value Cancelled taken out of every enum."""
    if isinstance(node, dict):
        return {key: _without_cancelled(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_without_cancelled(value) for value in node if value != "Cancelled"]
    return node


def test_the_committed_specs_add_cancelled_as_a_minor_release(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Against the documents as they were before Cancelled (1.2.0): the committed 1.3.0 ones pass, a minor release.
    for spec in OPENAPI_DIR.glob("*.yaml"):
        before = _without_cancelled(yaml.safe_load(spec.read_text()))
        before["info"]["version"] = "1.2.0"
        (tmp_path / spec.name).write_text(yaml.safe_dump(before, sort_keys=False))

    assert main(["--released", str(tmp_path), "--current", str(OPENAPI_DIR)]) == 0
    out = capsys.readouterr().out
    assert "order-service.yaml: MINOR RELEASE: GET /api/orders/{orderId}: " in out and "`Cancelled`" in out


@pytest.mark.parametrize(
    ("released", "current", "minor"),
    [
        ("1.2.0", "1.3.0", True),
        ("1.2.5", "1.3.0", True),
        ("1.9.0", "2.0.0", True),
        ("1.2.0", "1.2.1", False),
        ("1.3.0", "1.3.0", False),
        ("2.0.0", "1.9.0", False),
        ("1.2", "1.3", True),
        ("", "1.0.0", True),
    ],
)
def test_minor_release_follows_semantic_versioning(released: str, current: str, minor: bool) -> None:
    assert minor_release(released, current) is minor
