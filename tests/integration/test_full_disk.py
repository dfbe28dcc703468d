"""The Order Service on a database whose disk fills up: it says so (readiness down, POST 503 with Retry-After)
instead of reporting ok, and takes orders again once space is free, without a restart. The database lives on a
small tmpfs of its own (chaos.disk), which needs root or CAP_SYS_ADMIN; Kafka and the registry are not needed."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from chaos.disk import small_disk
from fulfillment_service.app import create_app as create_fulfillment_app
from fulfillment_service.settings import FulfillmentServiceSettings
from harness.order_bodies import order_body
from infra.ports import free_port
from order_service.app import create_app as create_order_app
from order_service.settings import OrderServiceSettings


def _nowhere() -> dict[str, str]:
    return {
        "kafka_bootstrap_servers": f"127.0.0.1:{free_port()}",
        "schema_registry_url": f"http://127.0.0.1:{free_port()}",
        "create_topics": "false",
    }


def test_order_readiness_is_down_while_the_disk_is_full_and_intake_reopens_once_it_is_not(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk", size_mib=16) as disk:
        database = disk.path / "orders.db"
        app = create_order_app(OrderServiceSettings(database_url=f"sqlite:///{database}", **_nowhere()))
        with TestClient(app) as client:
            assert client.get("/health/ready").json()["dependencies"]["database"] == {"status": "ok"}
            disk.fill_under(database)

            ready = client.get("/health/ready")
            assert ready.status_code == 503
            assert ready.json()["status"] == "down"
            assert "database or disk is full" in ready.json()["dependencies"]["database"]["detail"]
            refused = client.post("/api/orders", json=order_body(), headers={"Idempotency-Key": "disk-1"})
            assert refused.status_code == 503 and refused.headers["Retry-After"]
            assert refused.headers["content-type"] == "application/problem+json"

            disk.remove_filler()
            assert client.get("/health/ready").json()["dependencies"]["database"] == {"status": "ok"}
            accepted = client.post("/api/orders", json=order_body(), headers={"Idempotency-Key": "disk-1"})
            assert accepted.status_code == 201


def test_fulfillment_health_is_down_while_its_database_disk_is_full(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk", size_mib=16) as disk:
        database = disk.path / "fulfillment.db"
        settings = FulfillmentServiceSettings(
            database_url=f"sqlite:///{database}",
            provider_database_url=f"sqlite:///{tmp_path}/provider.db",
            **_nowhere(),
        )
        with TestClient(create_fulfillment_app(settings)) as client:
            assert client.get("/api/fulfillment/health").json()["dependencies"]["database"] == {"status": "ok"}
            disk.fill_under(database)
            health = client.get("/api/fulfillment/health")
            assert health.status_code == 503 and health.json()["status"] == "down"
            disk.remove_filler()
            assert client.get("/api/fulfillment/health").json()["dependencies"]["database"] == {"status": "ok"}
