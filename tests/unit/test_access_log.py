"""The access log: one line per request with its route template (never the raw path), the status the client got
and the time taken; the probes' requests below INFO."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient

from contract_models.order_api import Problem
from httpapi.app import contract_app
from observability.metrics import Metrics
from tests.unit.log_capture import json_lines


def app_with_routes() -> FastAPI:
    """The shared app of both services (metrics on), with a route that answers and one that fails."""
    app = contract_app(
        "Order Service", "order-service", None, max_body_bytes=1000, metrics=Metrics(), problem_model=Problem
    )
    router = APIRouter()

    @router.get("/api/things/{thingId}")
    async def thing(thingId: str) -> dict[str, Any]:
        return {"id": thingId}

    @router.post("/api/things")
    async def fail() -> None:
        raise RuntimeError("boom")

    app.include_router(router)
    return app


def test_each_request_is_one_line_with_its_route_template_status_and_duration() -> None:
    with json_lines("httpapi.access") as lines, TestClient(app_with_routes(), raise_server_exceptions=False) as client:
        assert client.get("/api/things/secret-42").status_code == 200
        assert client.post("/api/things", json={}).status_code == 500
        assert client.get("/no/such/path").status_code == 404
        assert client.get("/metrics").status_code == 200

    found, failed, unmatched, probe = lines.all()
    assert (found["event"], found["route"], found["status"], found["level"]) == (
        "GET /api/things/{thingId} 200",
        "/api/things/{thingId}",
        200,
        "info",
    )
    assert "secret-42" not in str(found) and found["duration_ms"] > 0 and found["method"] == "GET"
    assert (failed["route"], failed["status"]) == ("/api/things", 500)
    assert (unmatched["route"], unmatched["status"]) == ("unmatched", 404)
    assert (probe["route"], probe["level"]) == ("/metrics", "debug")  # a probe: below INFO
