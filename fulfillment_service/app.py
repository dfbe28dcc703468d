"""Wires the Fulfillment Service: database, provider, concurrent consumer, retry scheduler, relay, HTTP."""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from contract_models.fulfillment_api import Health
from events.codecs import codec_for
from events.topology import DEAD_LETTER_HEADERS, FULFILLMENT_EVENTS, ORDER_EVENTS
from fulfillment_service import store
from fulfillment_service.api import fulfillment_router, provider_control_router
from fulfillment_service.resilience import BackoffPolicy, CircuitBreaker
from fulfillment_service.scheduler import RetryScheduler
from fulfillment_service.settings import FulfillmentServiceSettings
from fulfillment_service.shipping import MockShippingProvider, ProviderBehaviour
from fulfillment_service.unit_of_work import SqlUnitOfWork
from fulfillment_service.use_cases import Fulfiller
from httpapi.app import contract_app
from httpapi.health import dependency_report, overall_status
from httpapi.json_body import DecimalJSONResponse
from messaging.clients import make_consumer, make_producer
from messaging.consumer.dispatch import KeyOrderedDispatcher
from messaging.consumer.runtime import ConsumerRuntime
from messaging.dead_letter import DeadLetterPublisher
from messaging.health import dependency_probes
from messaging.registry import registry_client
from messaging.topics import create_topics_in_background
from outbox.relay import OutboxRelay
from persistence.engine import make_engine
from persistence.group_commit import GroupCommitter
from persistence.migrations import upgrade_to_head

log = logging.getLogger(__name__)


def create_app(settings: FulfillmentServiceSettings | None = None) -> FastAPI:
    """The service (settings from the environment unless given), migrated; its lifespan runs the workers."""
    settings = settings or FulfillmentServiceSettings()
    engine = make_engine(settings.database_url, settings.sqlite_synchronous)
    upgrade_to_head(engine, Path(__file__).parent / "migrations")
    registry = registry_client(settings.schema_registry_url)
    orders, fulfillment = settings.topic(ORDER_EVENTS), settings.topic(FULFILLMENT_EVENTS)
    order_codec = codec_for(registry, ORDER_EVENTS, orders.name)
    status_codec = codec_for(registry, FULFILLMENT_EVENTS, fulfillment.name)
    producer = make_producer(settings, "fulfillment-service-outbox")
    relay = OutboxRelay(engine, store.outbox, producer, {FULFILLMENT_EVENTS.event.name: status_codec})
    behaviour = ProviderBehaviour(
        settings.provider_min_latency_ms, settings.provider_max_latency_ms, settings.provider_failure_rate
    )
    provider = MockShippingProvider(make_engine(settings.provider_database_url), behaviour)
    breaker = CircuitBreaker(settings.breaker_failure_threshold, settings.breaker_reset_seconds)
    backoff = BackoffPolicy(
        settings.retry_max_attempts,
        settings.retry_deadline_seconds,
        settings.retry_initial_delay_seconds,
        settings.retry_max_delay_seconds,
    )
    db = GroupCommitter(engine, "fulfillment-db")
    uow = SqlUnitOfWork(db, fulfillment.name, on_event_written=relay.wake)
    fulfiller = Fulfiller(
        uow, provider, breaker, backoff, settings.provider_timeout_seconds, settings.delivery_after_seconds
    )
    scheduler = RetryScheduler(uow, fulfiller)
    intake = ConsumerRuntime(
        functools.partial(make_consumer, settings, settings.consumer_group, "fulfillment-service"),
        orders.name,
        order_codec,
        DeadLetterPublisher(
            make_producer(settings, "fulfillment-service-dlq"), orders.dead_letter, DEAD_LETTER_HEADERS
        ),
        KeyOrderedDispatcher(fulfiller.handle_order_created, key_of=ORDER_EVENTS.key_of),
        max_in_flight=settings.max_in_flight,
    )
    probes = dependency_probes(producer, orders.name, settings.schema_registry_url)
    stopping = threading.Event()

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if settings.create_topics:
            create_topics_in_background(settings.kafka_bootstrap_servers, settings.topic_specs(), stopping)
        db.start()
        provider.start()
        relay.start()
        intake.start()
        scheduler.start()
        try:
            yield
        finally:
            # SIGTERM: stop fetching, let in-flight orders finish (bounded), commit, flush events.
            stopping.set()
            grace = settings.shutdown_grace_seconds
            await intake.stop(grace)
            await scheduler.stop(grace / 2)
            await db.stop()
            await provider.stop()
            await run_in_threadpool(relay.stop)
            engine.dispose()

    app = contract_app("Fulfillment Service", "fulfillment-service", lifespan, max_body_bytes=1_048_576)
    app.include_router(fulfillment_router(engine))
    if settings.provider_control_enabled:
        app.include_router(provider_control_router(behaviour))

    @app.get(
        "/api/fulfillment/health",
        response_model=None,
        operation_id="fulfillmentHealth",
        responses={200: {"model": Health}, 503: {"model": Health}},
    )
    async def health() -> DecimalJSONResponse:
        deps = await run_in_threadpool(dependency_report, engine, probes)
        status = overall_status(deps, degraded=breaker.state != "closed")
        body = {
            "status": status,
            "dependencies": deps,
            "breaker": breaker.state.value,
            "consumerLag": intake.lag(),
            "inFlight": intake.in_flight,
        }
        return DecimalJSONResponse(body, status_code=503 if status == "down" else 200)

    app.state.intake = intake
    app.state.fulfiller = fulfiller
    app.state.provider = provider
    app.state.breaker = breaker
    return app
