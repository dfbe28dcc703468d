"""The composition roots: every part built by name and replaceable by a fake, nothing migrated or started until
the app's lifespan begins, and the services run without Kafka or the registry (they are only probed)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import inspect, select

from events.topology import FULFILLMENT_SERVICE, ORDER_SERVICE, TOPICS, Service
from events.wiring import publisher
from fulfillment_service import store as fulfillment_store
from fulfillment_service.app import create_app as create_fulfillment_app
from fulfillment_service.bootstrap import bootstrap as bootstrap_fulfillment
from fulfillment_service.settings import FulfillmentServiceSettings
from infra.ports import free_port
from order_service import store as order_store
from order_service.app import create_app as create_order_app
from order_service.settings import OrderServiceSettings
from outbox.table import OutboxEntry
from tests.sample_events import order_created, status_changed
from tests.unit.fake_shipping import FakeShippingProvider


def nowhere() -> dict[str, str]:
    """Kafka and a registry that are not there: start-up must not need them."""
    return {
        "kafka_bootstrap_servers": f"127.0.0.1:{free_port()}",
        "schema_registry_url": f"http://127.0.0.1:{free_port()}",
    }


def tables(database: Path) -> set[str]:
    from persistence.engine import make_engine

    engine = make_engine(f"sqlite:///{database}")
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_order_service_migrates_in_its_lifespan_and_serves_health_without_kafka(tmp_path: Path) -> None:
    database = tmp_path / "orders.db"
    settings = OrderServiceSettings(database_url=f"sqlite:///{database}", create_topics=False, **nowhere())
    app = create_order_app(settings)
    assert "orders" not in tables(database)  # building the app migrates nothing
    with TestClient(app) as client:
        assert {"orders", "outbox", "idempotency_keys"} <= tables(database)
        assert client.get("/health/live").json() == {"status": "ok"}
        ready = client.get("/health/ready")
        assert ready.status_code == 200
        body = ready.json()
        assert body["status"] == "degraded" and body["dependencies"]["database"]["status"] == "ok"
        assert body["dependencies"]["kafka"]["status"] == "down" and body["outboxBacklog"] == 0


def test_a_fake_provider_given_by_name_is_the_one_the_fulfillment_use_cases_call(tmp_path: Path) -> None:
    settings = FulfillmentServiceSettings(
        database_url=f"sqlite:///{tmp_path}/fulfillment.db",
        provider_database_url=f"sqlite:///{tmp_path}/provider.db",
        create_topics=False,
        **nowhere(),
    )
    provider = FakeShippingProvider()
    components = bootstrap_fulfillment(settings, provider=provider)
    order_id = uuid.uuid4()
    event = order_created(orderId=order_id)

    async def scenario() -> None:
        await components.start()  # migrates; a provider without start()/stop() is left to itself
        try:
            await components.fulfiller.handle_order_created(event)
        finally:
            await components.stop()

    asyncio.run(scenario())
    assert provider.calls == [str(order_id)]
    engine = components.engine
    with engine.connect() as conn:
        stored = conn.execute(select(fulfillment_store.fulfillments.c.status)).scalars().all()
        # Shipped, and its events wait in the outbox for Kafka.
        assert stored == ["Shipped"] and conn.execute(select(fulfillment_store.outbox.c.id)).all()
    engine.dispose()


def test_fulfillment_health_reports_breaker_and_consumer(tmp_path: Path) -> None:
    settings = FulfillmentServiceSettings(
        database_url=f"sqlite:///{tmp_path}/fulfillment.db",
        provider_database_url=f"sqlite:///{tmp_path}/provider.db",
        create_topics=False,
        **nowhere(),
    )
    with TestClient(create_fulfillment_app(settings, provider=FakeShippingProvider())) as client:
        body = client.get("/api/fulfillment/health").json()
    assert body["breaker"] == "closed" and body["inFlight"] == 0 and body["consumerLag"] is None
    # Without a broker the group's figures are unknown, and say why, rather than zero.
    assert body["consumer"]["lag"] is None and body["consumer"]["lagTotal"] is None and body["consumer"]["error"]
    assert not body["consumer"]["stalled"]
    assert body["dependencies"]["database"]["status"] == "ok"


def test_fulfillment_health_reports_its_own_parked_status_events_and_event_schema(tmp_path: Path) -> None:
    settings = FulfillmentServiceSettings(
        database_url=f"sqlite:///{tmp_path}/fulfillment.db",
        provider_database_url=f"sqlite:///{tmp_path}/provider.db",
        create_topics=False,
        **nowhere(),
    )
    app = create_fulfillment_app(settings, provider=FakeShippingProvider())
    with TestClient(app) as client:
        before = client.get("/api/fulfillment/health").json()
        from persistence.engine import make_engine

        engine = make_engine(settings.database_url)
        with engine.begin() as conn:
            entry = OutboxEntry.of("fulfillment-events", "order-1", status_changed())
            conn.execute(
                fulfillment_store.outbox.insert(),
                [
                    {
                        **entry.columns(),
                        "attempts": 1,
                        "parked_at": entry.created_at,
                        "failure_reason": "MSG_SIZE_TOO_LARGE",
                    }
                ],
            )
        engine.dispose()
        after = client.get("/api/fulfillment/health").json()
    assert before["outboxParked"] == 0 and before["outboxBacklog"] == 0
    # The registry is not there: the schema's registration is unknown, which alone degrades nothing.
    assert before["eventSchema"]["status"] == "unknown"
    assert after["outboxParked"] == 1 and after["outboxParkedReason"] == "MSG_SIZE_TOO_LARGE"
    assert after["status"] == "degraded"
    assert any("parked" in reason for reason in after["reasons"])


def test_the_breaker_frees_a_lost_probe_20_s_after_the_provider_call_timeout(tmp_path: Path) -> None:
    settings = FulfillmentServiceSettings(
        database_url=f"sqlite:///{tmp_path}/fulfillment.db",
        provider_database_url=f"sqlite:///{tmp_path}/provider.db",
        provider_timeout_seconds=7.5,
        create_topics=False,
        **nowhere(),
    )
    components = bootstrap_fulfillment(settings, provider=FakeShippingProvider())
    try:
        # Not the breaker's own default of 60 s: a probe that outlived its call timeout by the lease margin
        # lost its caller, and half-open must not wait longer than that for it.
        assert components.breaker.probe_timeout_seconds == 27.5
    finally:
        components.engine.dispose()


def test_python_m_each_service_serves_the_app_built_from_the_environment_settings(monkeypatch) -> None:
    import fulfillment_service.__main__ as fulfillment_main
    import order_service.__main__ as order_main

    monkeypatch.setenv("HOST", "127.0.0.9")
    monkeypatch.setenv("PORT", "6123")
    monkeypatch.setenv("LOG_LEVEL", "warning")
    monkeypatch.setenv("DATABASE_URL", "sqlite:///from-the-environment.db")
    monkeypatch.setenv("SHUTDOWN_GRACE_SECONDS", "7")
    for module in (order_main, fulfillment_main):
        built: list[Any] = []
        served: list[tuple[Any, ...]] = []
        monkeypatch.setattr(module, "create_app", lambda settings, built=built: built.append(settings) or "app")
        monkeypatch.setattr(module, "serve", lambda *args, served=served, **kwargs: served.append(args))
        module.main()
        (settings,) = built
        assert settings.database_url == "sqlite:///from-the-environment.db"
        assert served[0][:4] == ("app", "127.0.0.9", 6123, "warning")
    assert served[0][4] == 7 + 5  # the Fulfillment Service drains in-flight orders before uvicorn gives up


def test_each_service_relays_every_event_the_topology_says_it_produces(tmp_path: Path) -> None:
    from order_service.bootstrap import bootstrap as bootstrap_order

    order = bootstrap_order(
        OrderServiceSettings(database_url=f"sqlite:///{tmp_path}/o.db", create_topics=False, **nowhere())
    )
    fulfillment = bootstrap_fulfillment(
        FulfillmentServiceSettings(
            database_url=f"sqlite:///{tmp_path}/f.db",
            provider_database_url=f"sqlite:///{tmp_path}/p.db",
            create_topics=False,
            **nowhere(),
        )
    )
    for service, components in ((ORDER_SERVICE, order), (FULFILLMENT_SERVICE, fulfillment)):
        produced = {event.name for d in TOPICS if d.producer == service for event in d.events}
        assert components.relay.event_types == produced
    with pytest.raises(ValueError, match="produces no declared topic"):
        publisher(
            OrderServiceSettings(**nowhere()),
            Service("Audit", "audit"),
            order.engine,
            order_store.outbox,
            None,  # type: ignore[arg-type]  # refused before the registry or producer is used
            None,  # type: ignore[arg-type]
        )
