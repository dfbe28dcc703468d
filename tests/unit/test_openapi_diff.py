"""tools/openapi_diff.py: one test per rule, each with the change that must (or must not) be reported."""

from __future__ import annotations

import copy
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tools.openapi_diff import diff, main

ROOT = Path(__file__).resolve().parents[2]

BASE: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "Shop", "version": "1"},
    "paths": {
        "/items": {
            "post": {
                "parameters": [
                    {"name": "Request-Id", "in": "header", "required": False, "schema": {"type": "string"}},
                    {"name": "mode", "in": "query", "schema": {"type": "string", "enum": ["fast", "safe"]}},
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/NewItem"}}},
                },
                "responses": {
                    "201": {
                        "description": "created",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Item"}}},
                    },
                    "422": {"description": "invalid"},
                },
            },
            "get": {
                "parameters": [
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 100},
                    }
                ],
                "responses": {"200": {"description": "ok"}},
            },
        },
        "/items/{id}": {
            "get": {
                "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "ok"}},
            }
        },
    },
    "components": {
        "schemas": {
            "NewItem": {
                "type": "object",
                "required": ["name", "price"],
                "properties": {
                    "name": {"type": "string", "minLength": 1, "maxLength": 200},
                    "price": {"type": "number", "minimum": 0, "multipleOf": 0.01},
                    "note": {"type": ["string", "null"]},
                    "tags": {"type": "array", "maxItems": 10, "items": {"type": "string", "maxLength": 20}},
                },
            },
            "Item": {
                "type": "object",
                "required": ["id", "name"],
                "properties": {"id": {"type": "string"}, "name": {"type": "string"}, "price": {"type": "number"}},
            },
        }
    },
}


def changed(edit: Callable[[dict[str, Any]], None]) -> list[str]:
    current = copy.deepcopy(BASE)
    edit(current)
    return [str(change) for change in diff(BASE, current)]


def new_item(spec: dict[str, Any]) -> dict[str, Any]:
    return spec["components"]["schemas"]["NewItem"]


def item(spec: dict[str, Any]) -> dict[str, Any]:
    return spec["components"]["schemas"]["Item"]


def query(spec: dict[str, Any], path: str, method: str, name: str) -> dict[str, Any]:
    return next(p for p in spec["paths"][path][method]["parameters"] if p["name"] == name)


def test_identical_documents_have_no_breaking_changes() -> None:
    assert diff(BASE, copy.deepcopy(BASE)) == []


def test_removed_path() -> None:
    assert changed(lambda s: s["paths"].pop("/items/{id}")) == ["/items/{id}: path removed"]


def test_removed_method() -> None:
    assert changed(lambda s: s["paths"]["/items"].pop("get")) == ["GET /items: method removed"]


def test_removed_success_response() -> None:
    def edit(s: dict[str, Any]) -> None:
        s["paths"]["/items"]["post"]["responses"]["200"] = s["paths"]["/items"]["post"]["responses"].pop("201")

    assert changed(edit) == ["POST /items response 201: response removed"]


def test_removed_response_field() -> None:
    assert changed(lambda s: item(s)["properties"].pop("price")) == [
        "POST /items response 201 application/json.price: response field removed"
    ]


def test_response_field_no_longer_required() -> None:
    assert changed(lambda s: item(s)["required"].remove("name")) == [
        "POST /items response 201 application/json.name: response field no longer required (may be absent)"
    ]


def test_response_field_type_changed() -> None:
    assert changed(lambda s: item(s)["properties"]["price"].update(type="string")) == [
        "POST /items response 201 application/json.price: type changed from ['number'] to ['string']"
    ]


def test_new_required_request_field() -> None:
    def edit(s: dict[str, Any]) -> None:
        new_item(s)["properties"]["currency"] = {"type": "string"}
        new_item(s)["required"].append("currency")

    assert changed(edit) == ["POST /items request body application/json.currency: new required field"]


def test_optional_request_field_made_required() -> None:
    assert changed(lambda s: new_item(s)["required"].append("note")) == [
        "POST /items request body application/json.note: field made required"
    ]


def test_new_required_parameter() -> None:
    def edit(s: dict[str, Any]) -> None:
        s["paths"]["/items"]["get"]["parameters"].append(
            {"name": "shop", "in": "query", "required": True, "schema": {"type": "string"}}
        )

    assert changed(edit) == ["GET /items query parameter shop: new required parameter"]


def test_optional_parameter_made_required() -> None:
    assert changed(lambda s: query(s, "/items", "post", "Request-Id").update(required=True)) == [
        "POST /items header parameter Request-Id: parameter made required"
    ]


def test_removed_enum_value() -> None:
    assert changed(lambda s: query(s, "/items", "post", "mode")["schema"]["enum"].remove("safe")) == [
        "POST /items query parameter mode: enum values removed: ['safe']"
    ]


def test_tightened_maximum_and_minimum() -> None:
    def edit(s: dict[str, Any]) -> None:
        query(s, "/items", "get", "limit")["schema"].update(minimum=5, maximum=50)

    assert changed(edit) == [
        "GET /items query parameter limit: minimum tightened from 1 to 5",
        "GET /items query parameter limit: maximum tightened from 100 to 50",
    ]


def test_tightened_max_length_in_a_nested_array() -> None:
    assert changed(lambda s: new_item(s)["properties"]["tags"]["items"].update(maxLength=10)) == [
        "POST /items request body application/json.tags[]: maxLength tightened from 20 to 10"
    ]


def test_new_bound_where_there_was_none() -> None:
    assert changed(lambda s: new_item(s)["properties"]["price"].update(maximum=1000)) == [
        "POST /items request body application/json.price: maximum tightened from none to 1000"
    ]


def test_changed_request_type() -> None:
    assert changed(lambda s: new_item(s)["properties"]["name"].update(type="integer")) == [
        "POST /items request body application/json.name: type changed from ['string'] to ['integer']"
    ]


def test_null_no_longer_accepted() -> None:
    assert changed(lambda s: new_item(s)["properties"]["note"].update(type="string")) == [
        "POST /items request body application/json.note: type changed from ['null', 'string'] to ['string']"
    ]


def test_coarser_multiple_of() -> None:
    assert changed(lambda s: new_item(s)["properties"]["price"].update(multipleOf=0.05)) == [
        "POST /items request body application/json.price: multipleOf changed from 0.01 to 0.05"
    ]


def test_new_pattern() -> None:
    assert changed(lambda s: new_item(s)["properties"]["name"].update(pattern="^[a-z]+$")) == [
        "POST /items request body application/json.name: pattern changed from 'none' to '^[a-z]+$'"
    ]


def test_closed_request_object() -> None:
    assert changed(lambda s: new_item(s).update(additionalProperties=False)) == [
        "POST /items request body application/json: additional properties no longer allowed"
    ]


def test_removed_request_media_type() -> None:
    def edit(s: dict[str, Any]) -> None:
        content = s["paths"]["/items"]["post"]["requestBody"]["content"]
        content["application/merge-patch+json"] = content.pop("application/json")

    assert changed(edit) == ["POST /items request body application/json: media type removed"]


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda s: new_item(s)["properties"]["name"].update(maxLength=500), id="widened maxLength"),
        pytest.param(lambda s: query(s, "/items", "get", "limit")["schema"].pop("maximum"), id="dropped maximum"),
        pytest.param(lambda s: query(s, "/items", "post", "mode")["schema"]["enum"].append("slow"), id="enum added"),
        pytest.param(lambda s: new_item(s)["properties"].update(extra={"type": "string"}), id="optional field"),
        pytest.param(lambda s: item(s)["properties"].update(sku={"type": "string"}), id="response field added"),
        pytest.param(lambda s: s["paths"].update({"/shops": {"get": {"responses": {}}}}), id="path added"),
        pytest.param(lambda s: new_item(s)["properties"]["price"].update(multipleOf=0.001), id="finer multipleOf"),
        pytest.param(lambda s: new_item(s)["properties"]["name"].update(description="The name."), id="description"),
        pytest.param(lambda s: s["paths"]["/items"]["post"]["responses"].pop("422"), id="error response removed"),
    ],
)
def test_compatible_changes_are_not_reported(edit: Callable[[dict[str, Any]], None]) -> None:
    assert changed(edit) == []


def test_the_committed_specs_match_their_released_versions() -> None:
    assert main([]) == 0


def test_cli_fails_and_names_the_change(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    released, current = tmp_path / "released", tmp_path / "current"
    shutil.copytree(ROOT / "schemas/openapi/released", released)
    current.mkdir()
    for spec in released.glob("*.yaml"):
        shutil.copy(spec, current / spec.name)
    spec = yaml.safe_load((current / "order-service.yaml").read_text())
    spec["components"]["schemas"]["CreateOrderItem"]["properties"]["quantity"]["maximum"] = 100
    (current / "order-service.yaml").write_text(yaml.safe_dump(spec))

    assert main(["--released", str(released), "--current", str(current)]) == 1
    assert (
        "BREAKING POST /api/orders request body application/json.items[].quantity: maximum tightened from 10000 to 100"
        in capsys.readouterr().err
    )


def _status_spec(version: str, statuses: list[str]) -> dict[str, Any]:
    schema = {"type": "object", "properties": {"status": {"type": "string", "enum": statuses}}}
    response = {"200": {"description": "ok", "content": {"application/json": {"schema": schema}}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "T", "version": version},
        "paths": {"/o": {"get": {"responses": response}}},
    }


def test_a_response_enum_value_added_without_a_minor_release_is_breaking() -> None:
    (found,) = diff(
        _status_spec("1.2.0", ["Pending", "Failed"]), _status_spec("1.2.1", ["Pending", "Failed", "Cancelled"])
    )
    assert str(found) == (
        "GET /o response 200 application/json.status: response enum values added: ['Cancelled'] "
        "(clients of the released version may not know them)"
    )
    assert not found.released_as_minor


def test_a_response_enum_value_added_in_a_minor_release_is_reported_as_one(capsys: pytest.CaptureFixture[str]) -> None:
    (found,) = diff(_status_spec("1.2.0", ["Pending"]), _status_spec("1.3.0", ["Pending", "Cancelled"]))
    assert found.released_as_minor
    assert main([]) == 0  # the committed specs add Cancelled in 1.3.0: reported, not failed
    assert "MINOR RELEASE" in capsys.readouterr().out
