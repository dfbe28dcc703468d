"""Builds the Order Service from its settings: every dependency by name, any of them replaceable.

    components = bootstrap(settings)                        # what `python -m order_service` runs
    components = bootstrap(settings, producer=FakeProducer())  # a test's fake in place of one part

Each keyword left out is built from settings (and from the parts before it); one given is used as it is.
Components.start() migrates the database and starts the workers; Components.stop() stops them.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from sqlalchemy import Engine

from events.topology import FULFILLMENT_EVENTS, ORDER_EVENTS, ORDER_SERVICE
from events.wiring import create_topics, publisher, subscriber
from messaging.client_errors import SecurityErrors
from messaging.clients import make_producer
from messaging.consumer.dispatch import BatchDispatcher
from messaging.consumer.runtime import ConsumerRuntime
from messaging.consumer.tracing import ConsumerSpans
from messaging.dead_letter_spool import DeadLetterSpool
from messaging.health import CachedProbe, dependency_probes
from messaging.registry import registry_client
from messaging.settings import registry_client_config
from observability.metrics import Metrics
from observability.throttled_log import ThrottledLog
from order_service import store
from order_service.metrics import report_stale_orders
from order_service.projection import FulfillmentProjection
from order_service.settings import OrderServiceSettings
from order_service.status_waiter import StatusWaiter
from order_service.unit_of_work import OrderUnitOfWork, SqlOrderUnitOfWork
from order_service.use_cases import OrderService
from outbox.metrics import report_outbox_health
from outbox.relay import OutboxRelay
from persistence.engine import make_engine
from persistence.migrations import upgrade_to_head

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
# How long the projection's batch under way may take to finish at shutdown (seconds).
PROJECTION_STOP_GRACE = 10.0
# How often expired idempotency keys are deleted (seconds).
KEY_PURGE_INTERVAL = 600.0
# Orders without progress are looked for at least this often (seconds), and four times per stale time.
REPUBLISH_SCAN_INTERVAL = 15.0


def migrate(engine: Engine) -> None:
    """Upgrade the service's database to the newest schema (its own migrations, the outbox and dead-letter spool
    branches). Blocking."""
    upgrade_to_head(engine, MIGRATIONS)


@dataclass
class Components:
    """The Order Service's parts, wired: the use cases (service), their unit of work, the outbox
    relay, the fulfillment projection (a batch consumer), the probes health reports and the metric series
    GET /metrics serves."""

    settings: OrderServiceSettings
    engine: Engine
    uow: OrderUnitOfWork
    service: OrderService
    waiter: StatusWaiter
    relay: OutboxRelay
    projection: ConsumerRuntime
    probes: dict[str, CachedProbe]
    metrics: Metrics
    _stopping: threading.Event = field(default_factory=threading.Event)
    _jobs: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self) -> None:
        """On the running loop: migrate the database, then start topic creation (in the background, it waits
        for Kafka), ask the registry about the event schema (a refusal closes order intake, an unreachable
        registry does not), start the relay, the projection, the purge of expired idempotency keys and the
        republication of OrderCreated for orders without progress."""
        await asyncio.to_thread(migrate, self.engine)
        self.waiter.bind(asyncio.get_running_loop())
        create_topics(self.settings, self._stopping)
        # Before serving: an event schema the registry refuses is known before the first order comes.
        await asyncio.to_thread(self.relay.check_schemas)
        self.relay.start()
        self.projection.start()
        stale_after = timedelta(seconds=self.settings.stale_order_seconds)
        max_interval = timedelta(seconds=self.settings.republish_max_interval_seconds)
        self._jobs = [
            asyncio.create_task(
                _every(KEY_PURGE_INTERVAL, "purging idempotency keys", self.service.purge_expired_keys)
            ),
            asyncio.create_task(
                _every(
                    min(self.settings.stale_order_seconds / 4, REPUBLISH_SCAN_INTERVAL),
                    "republishing orders without progress",
                    functools.partial(self.service.republish_stale_orders, stale_after, max_interval),
                )
            ),
        ]

    async def stop(self) -> None:
        """Stop taking work, finish the writes and the projection's batch under way, publish what the relay
        has in flight, and close the database."""
        self._stopping.set()
        for job in self._jobs:
            job.cancel()
        await self.uow.stop()
        await self.projection.stop(PROJECTION_STOP_GRACE)
        await asyncio.to_thread(self.relay.stop)
        self.engine.dispose()


def bootstrap(
    settings: OrderServiceSettings | None = None,
    *,
    engine: Engine | None = None,
    registry: SchemaRegistryClient | None = None,
    producer: Producer | None = None,
    relay: OutboxRelay | None = None,
    uow: OrderUnitOfWork | None = None,
    waiter: StatusWaiter | None = None,
    service: OrderService | None = None,
    projection: ConsumerRuntime | None = None,
    probes: dict[str, CachedProbe] | None = None,
    metrics: Metrics | None = None,
) -> Components:
    """The service's Components for settings (default: from the environment), with any part given used as is.

    Every part observes its series in metrics (one registry for the process, enabled by METRICS_ENABLED); the
    outbox and the orders without progress are read into it at scrape time.

    Builds nothing that talks to Kafka, the registry or the database yet: that starts with Components.start().
    """
    settings = settings or OrderServiceSettings()
    if metrics is None:
        metrics = Metrics(settings.metrics_enabled)
    if engine is None:
        engine = make_engine(settings.database_url, settings.sqlite_synchronous)
    if registry is None:
        registry = registry_client(settings)
    kafka_errors = SecurityErrors()  # what the producer hears of refused credentials or certificates
    if producer is None:
        producer = make_producer(settings, "order-service-outbox", error_cb=kafka_errors)
    if relay is None:
        # OrderCreated and OrderCancelled going out are steps of the order an operator follows: one INFO line each.
        relay = publisher(
            settings,
            ORDER_SERVICE,
            engine,
            store.outbox,
            registry,
            producer,
            metrics,
            announce={event.name for event in ORDER_EVENTS.events},
        )
    if uow is None:
        uow = SqlOrderUnitOfWork(engine, settings.topic(ORDER_EVENTS).name, on_event_written=relay.wake)
    if waiter is None:
        waiter = StatusWaiter(uow.get_many)
    if service is None:
        service = OrderService(
            uow,
            waiter,
            settings.idempotency_key_ttl_seconds,
            max_event_bytes=settings.max_event_bytes,
            schema_refusal=relay.schema_refusal,
            retry_after_seconds=max(1, math.ceil(settings.schema_check_interval_seconds)),
            metrics=metrics,
        )
    if projection is None:
        projection = subscriber(
            settings,
            FULFILLMENT_EVENTS,
            registry,
            BatchDispatcher(
                FulfillmentProjection(uow, waiter.notify_threadsafe), spans=ConsumerSpans(settings.consumer_group)
            ),
            group=settings.consumer_group,
            client_id="order-service-projection",
            dead_letter_client_id="order-service-dlq",
            spool=DeadLetterSpool(engine, store.dead_letter_spool),
            watermark_interval=None,  # nobody asks this consumer for its lag
            metrics=metrics,
        )
    if probes is None:
        probes = dependency_probes(
            producer, settings.topic(ORDER_EVENTS).name, registry_client_config(settings), kafka_errors
        )
    report_outbox_health(metrics, relay.health)
    stale_after = timedelta(seconds=settings.stale_order_seconds)
    report_stale_orders(metrics, functools.partial(service.stale_orders, stale_after))
    return Components(settings, engine, uow, service, waiter, relay, projection, probes, metrics)


async def _every(seconds: float, what: str, job: Callable[[], Awaitable[object]]) -> None:
    """Run job every seconds until cancelled; a failure is logged (once per interval) and the next run comes."""
    failures = ThrottledLog(log)
    while True:
        await asyncio.sleep(seconds)
        try:
            await job()
        except Exception as exc:
            failures.error(type(exc).__name__, f"{what} failed", exc)
