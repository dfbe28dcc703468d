"""Wires the Order Service: database, outbox relay, fulfillment projection, HTTP API."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from contract_models.order_api import Health
from httpapi.app import contract_app
from httpapi.health import dependency_report, overall_status
from httpapi.json_body import DecimalJSONResponse
from messaging.clients import make_consumer, make_producer
from messaging.consuming import BatchConsumerWorker
from messaging.dead_letter import DeadLetterPublisher
from messaging.event_codecs import order_created_codec, status_changed_codec
from messaging.health import dependency_probes
from messaging.outbox import OutboxRelay
from messaging.registry import registry_client
from messaging.topics import create_topics_in_background
from order_service import store
from order_service.api import order_router
from order_service.projection import FulfillmentProjection
from order_service.settings import OrderServiceSettings
from order_service.status_waiter import StatusWaiter
from order_service.unit_of_work import SqlOrderUnitOfWork
from order_service.use_cases import OrderService
from persistence.engine import make_engine
from persistence.migrations import upgrade_to_head

log = logging.getLogger(__name__)


def create_app(settings: OrderServiceSettings | None = None) -> FastAPI:
    settings = settings or OrderServiceSettings()
    engine = make_engine(settings.database_url, settings.sqlite_synchronous)
    upgrade_to_head(engine, Path(__file__).parent / "migrations")
    registry = registry_client(settings.schema_registry_url)
    order_codec = order_created_codec(registry, settings.order_events_topic)
    fulfillment_codec = status_changed_codec(registry, settings.fulfillment_events_topic)
    waiter = StatusWaiter()
    producer = make_producer(settings, "order-service-outbox")
    relay = OutboxRelay(engine, store.outbox, producer, {"OrderCreated": order_codec})
    uow = SqlOrderUnitOfWork(engine, settings.order_events_topic, on_event_written=relay.wake)
    service = OrderService(uow, waiter, settings.idempotency_key_ttl_seconds, max_event_bytes=settings.max_event_bytes)
    projection = BatchConsumerWorker(
        functools.partial(make_consumer, settings, settings.consumer_group, "order-service-projection"),
        settings.fulfillment_events_topic,
        fulfillment_codec,
        DeadLetterPublisher(make_producer(settings, "order-service-dlq"), settings.fulfillment_events_dlq_topic),
        FulfillmentProjection(engine, waiter.notify_threadsafe),
        name="fulfillment-projection",
    )
    probes = dependency_probes(producer, settings.order_events_topic, settings.schema_registry_url)
    stopping = threading.Event()

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        waiter.bind(asyncio.get_running_loop())
        create_topics_in_background(settings, stopping)
        relay.start()
        projection.start()
        janitor = asyncio.create_task(_purge_keys_periodically(service))
        try:
            yield
        finally:
            stopping.set()
            janitor.cancel()
            await uow.stop()
            await run_in_threadpool(projection.stop)
            await run_in_threadpool(relay.stop)
            engine.dispose()

    app = contract_app(
        "Order Service", "order-service", lifespan, max_body_bytes=settings.max_body_bytes, asyncapi=True
    )
    app.include_router(order_router(service))

    @app.get("/health/live", response_model=Health, response_model_exclude_none=True, operation_id="live")
    async def live() -> dict[str, Any]:
        return {"status": "ok"}

    @app.get(
        "/health/ready",
        response_model=None,
        operation_id="ready",
        responses={200: {"model": Health}, 503: {"model": Health}},
    )
    async def ready() -> DecimalJSONResponse:
        def check() -> dict[str, Any]:
            deps = dependency_report(engine, probes)
            backlog = relay.backlog() if deps["database"]["status"] == "ok" else None
            return {"status": overall_status(deps), "dependencies": deps, "outboxBacklog": backlog}

        body = await run_in_threadpool(check)
        return DecimalJSONResponse(body, status_code=503 if body["status"] == "down" else 200)

    app.state.relay = relay
    app.state.projection = projection
    app.state.engine = engine
    return app


async def _purge_keys_periodically(service: OrderService, every_seconds: float = 600.0) -> None:
    while True:
        try:
            await service.purge_expired_keys()
        except Exception:
            log.exception("purging idempotency keys failed")
        await asyncio.sleep(every_seconds)
