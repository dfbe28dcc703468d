"""Each service serves exactly its committed OpenAPI document, and its routes implement exactly that document.

How the comparison works, and what it deliberately leaves out, is explained in httpapi/openapi.py. The apps are
built in-process without their lifespan: nothing here needs Kafka, the registry or a running service.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from contract_models import fulfillment_api, order_api
from fulfillment_service.app import create_app as create_fulfillment_app
from fulfillment_service.settings import FulfillmentServiceSettings
from httpapi.openapi import ASYNCAPI_PATH, api_routes, load_document, operations_of_app, operations_of_spec
from infra.ports import free_port
from order_service.app import create_app as create_order_app
from order_service.settings import OrderServiceSettings

ROOT = Path(__file__).resolve().parents[2]
SPECS = {
    "order-service": ROOT / "schemas/openapi/order-service.yaml",
    "fulfillment-service": ROOT / "schemas/openapi/fulfillment-service.yaml",
}
MODELS: dict[str, ModuleType] = {"order-service": order_api, "fulfillment-service": fulfillment_api}
OPERATIONS = [
    pytest.param(service, path, method, id=f"{service}:{method.upper()} {path}")
    for service, spec in SPECS.items()
    for path, method in operations_of_spec(load_document(spec))
]


def build_app(service: str, data_dir: Path, **settings: Any) -> FastAPI:
    # Nothing listens on these ports: the apps are only built, never started.
    common = {
        "kafka_bootstrap_servers": f"127.0.0.1:{free_port()}",
        "schema_registry_url": f"http://127.0.0.1:{free_port()}",
        "database_url": f"sqlite:///{data_dir}/{service}.db",
        **settings,
    }
    if service == "order-service":
        return create_order_app(OrderServiceSettings(**common))
    return create_fulfillment_app(
        FulfillmentServiceSettings(provider_database_url=f"sqlite:///{data_dir}/provider.db", **common)
    )


@pytest.fixture(scope="module")
def apps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, FastAPI]]:
    data_dir = tmp_path_factory.mktemp("apps")
    yield {service: build_app(service, data_dir) for service in SPECS}


@pytest.mark.parametrize("service", SPECS)
def test_openapi_json_and_docs_serve_the_committed_spec(apps: dict[str, FastAPI], service: str) -> None:
    client = TestClient(apps[service])
    served = client.get("/openapi.json")
    assert served.status_code == 200
    assert served.json() == load_document(SPECS[service])
    docs = client.get("/docs")
    assert docs.status_code == 200 and "/openapi.json" in docs.text


def test_order_service_serves_the_asyncapi_document(apps: dict[str, FastAPI]) -> None:
    served = TestClient(apps["order-service"]).get(ASYNCAPI_PATH)
    assert served.status_code == 200
    assert served.headers["content-type"].startswith("application/yaml")
    assert served.text == (ROOT / "schemas/asyncapi/asyncapi.yaml").read_text()


@pytest.mark.parametrize("service", SPECS)
def test_every_spec_operation_has_a_route_and_every_route_is_in_the_spec(
    apps: dict[str, FastAPI], service: str
) -> None:
    promised = set(operations_of_spec(load_document(SPECS[service])))
    implemented = set(operations_of_app(apps[service], MODELS[service]))
    assert implemented - promised == set(), "routes the spec does not describe"
    assert promised - implemented == set(), "spec operations without a route"


@pytest.mark.parametrize(("service", "path", "method"), OPERATIONS)
def test_operation_matches_the_spec(apps: dict[str, FastAPI], service: str, path: str, method: str) -> None:
    promised = operations_of_spec(load_document(SPECS[service]))[(path, method)]
    implemented = operations_of_app(apps[service], MODELS[service])[(path, method)]
    assert implemented.parameters == promised.parameters
    assert implemented.request_body == promised.request_body
    assert implemented.responses.keys() == promised.responses.keys(), "status codes"
    for status, content in promised.responses.items():
        assert implemented.responses[status].keys() == content.keys(), f"media types of {status}"
        for media_type, schema in content.items():
            assert implemented.responses[status][media_type] == schema, f"{status} {media_type}"


def test_provider_control_route_stays_out_of_the_contract(tmp_path: Path) -> None:
    app = build_app("fulfillment-service", tmp_path, provider_control_enabled=True)
    routes = {(path, method) for path, method, _ in api_routes(app)}
    spec = load_document(SPECS["fulfillment-service"])
    assert routes - set(operations_of_spec(spec)) == {("/admin/provider", "put")}
    assert set(operations_of_app(app, fulfillment_api)) == set(operations_of_spec(spec))
    assert "/admin/provider" not in TestClient(app).get("/openapi.json").json()["paths"]


# The comparison must notice what a client would notice.


def _order_spec() -> dict[str, Any]:
    return copy.deepcopy(load_document(SPECS["order-service"]))


def test_a_changed_parameter_constraint_is_a_mismatch(apps: dict[str, FastAPI]) -> None:
    spec = _order_spec()
    limit = next(p for p in spec["paths"]["/api/orders"]["get"]["parameters"] if p["name"] == "limit")
    limit["schema"]["maximum"] = 500
    implemented = operations_of_app(apps["order-service"], order_api)[("/api/orders", "get")]
    assert implemented.parameters != operations_of_spec(spec)[("/api/orders", "get")].parameters


def test_a_changed_response_schema_is_a_mismatch(apps: dict[str, FastAPI]) -> None:
    spec = _order_spec()
    spec["components"]["schemas"]["Order"]["required"].remove("status")
    implemented = operations_of_app(apps["order-service"], order_api)[("/api/orders/{orderId}", "get")]
    assert implemented.responses["200"] != operations_of_spec(spec)[("/api/orders/{orderId}", "get")].responses["200"]


def test_a_changed_request_body_is_a_mismatch(apps: dict[str, FastAPI]) -> None:
    spec = _order_spec()
    spec["components"]["schemas"]["CreateOrderItem"]["properties"]["quantity"]["maximum"] = 99
    implemented = operations_of_app(apps["order-service"], order_api)[("/api/orders", "post")]
    assert implemented.request_body != operations_of_spec(spec)[("/api/orders", "post")].request_body


def test_an_undocumented_route_is_a_mismatch(tmp_path: Path) -> None:
    app = build_app("order-service", tmp_path)

    @app.delete("/api/orders/{orderId}")
    async def delete_order(orderId: str) -> None:
        return None

    assert ("/api/orders/{orderId}", "delete") in set(operations_of_app(app, order_api)) - set(
        operations_of_spec(load_document(SPECS["order-service"]))
    )
