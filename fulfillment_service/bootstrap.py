"""Builds the Fulfillment Service from its settings: every dependency by name, any of them replaceable.

    components = bootstrap(settings)                              # what `python -m fulfillment_service` runs
    components = bootstrap(settings, provider=FakeShippingProvider())  # a test's fake in place of one part

Each keyword left out is built from settings (and from the parts before it); one given is used as it is.
Components.start() migrates the database and starts the workers; Components.stop() drains and stops them.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from sqlalchemy import Engine

from contract_models.events import OrderCancelled, OrderCreated
from events.topology import FULFILLMENT_EVENTS, FULFILLMENT_SERVICE, ORDER_EVENTS
from events.wiring import create_topics, publisher, subscriber
from fulfillment_service import store
from fulfillment_service.metrics import report_breaker, report_in_flight
from fulfillment_service.queries import FulfillmentQueries
from fulfillment_service.resilience import BackoffPolicy, CircuitBreaker
from fulfillment_service.scheduler import RetryScheduler
from fulfillment_service.settings import FulfillmentServiceSettings
from fulfillment_service.shipping import MockShippingProvider, ProviderBehaviour, ShippingProvider
from fulfillment_service.unit_of_work import SqlFulfillmentReader, SqlUnitOfWork, UnitOfWork
from fulfillment_service.use_cases import LEASE_MARGIN, Fulfiller
from messaging.client_errors import SecurityErrors
from messaging.clients import make_producer
from messaging.consumer.dispatch import KeyOrderedDispatcher, TypeDispatcher
from messaging.consumer.runtime import ConsumerRuntime
from messaging.consumer.tracing import ConsumerSpans
from messaging.dead_letter_spool import DeadLetterSpool
from messaging.group_lag import GroupLag
from messaging.group_progress import GroupProgress
from messaging.health import CachedProbe, dependency_probes
from messaging.metrics import report_group_progress
from messaging.registry import registry_client
from messaging.settings import registry_client_config
from observability.metrics import Metrics
from outbox.metrics import report_outbox_health
from outbox.relay import OutboxRelay
from persistence.engine import make_engine
from persistence.group_commit import GroupCommitter
from persistence.migrations import upgrade_to_head

MIGRATIONS = Path(__file__).parent / "migrations"


@runtime_checkable
class _RunsInTheBackground(Protocol):
    """A part with work of its own on the event loop (the mock provider's ledger writer)."""

    def start(self) -> None: ...

    async def stop(self) -> None: ...


def migrate(engine: Engine) -> None:
    """Upgrade the service's database to the newest schema (its own migrations, the outbox and dead-letter spool
    branches). Blocking."""
    upgrade_to_head(engine, MIGRATIONS)


def probe_timeout_seconds(settings: FulfillmentServiceSettings) -> float:
    """How long the breaker's half-open probe may go unreported before it counts as failed (seconds).

    A probe is one provider call, bounded by PROVIDER_TIMEOUT_SECONDS; one that has not reported by the time its
    order would be due again (the call timeout plus the use cases' LEASE_MARGIN of 20 s) lost its caller.
    """
    return settings.provider_timeout_seconds + LEASE_MARGIN.total_seconds()


@dataclass
class Components:
    """The Fulfillment Service's parts, wired: the use cases (fulfiller) with their provider, breaker and
    unit of work, the intake consumer, the retry scheduler, the outbox relay, and what the HTTP edge reads
    (the read use case queries, the dependency probes, and the intake group's progress read from the broker),
    and the metric series GET /metrics serves.

    A provider with start() and stop() (the mock) is started and stopped with the service.
    """

    settings: FulfillmentServiceSettings
    engine: Engine
    committer: GroupCommitter
    behaviour: ProviderBehaviour
    provider: ShippingProvider
    breaker: CircuitBreaker
    fulfiller: Fulfiller
    scheduler: RetryScheduler
    intake: ConsumerRuntime
    relay: OutboxRelay
    probes: dict[str, CachedProbe]
    progress: GroupProgress
    metrics: Metrics
    queries: FulfillmentQueries
    _stopping: threading.Event = field(default_factory=threading.Event)

    async def start(self) -> None:
        """On the running loop: migrate the database, then start topic creation (in the background, it waits
        for Kafka), the group committer, the provider, the relay, the intake and the retry scheduler."""
        await asyncio.to_thread(migrate, self.engine)
        create_topics(self.settings, self._stopping)
        self.committer.start()
        if isinstance(self.provider, _RunsInTheBackground):
            self.provider.start()
        self.relay.start()
        self.intake.start()
        self.scheduler.start()

    async def stop(self) -> None:
        """SIGTERM: stop fetching, let in-flight orders finish (within SHUTDOWN_GRACE_SECONDS), commit their
        offsets, finish the writes, flush the events in flight, close the broker client of the health figures and
        the database."""
        self._stopping.set()
        grace = self.settings.shutdown_grace_seconds
        await self.intake.stop(grace)
        await self.scheduler.stop(grace / 2)
        await self.committer.stop()
        if isinstance(self.provider, _RunsInTheBackground):
            await self.provider.stop()
        await asyncio.to_thread(self.relay.stop)
        await asyncio.to_thread(self.progress.close)
        self.engine.dispose()


def bootstrap(
    settings: FulfillmentServiceSettings | None = None,
    *,
    engine: Engine | None = None,
    registry: SchemaRegistryClient | None = None,
    producer: Producer | None = None,
    relay: OutboxRelay | None = None,
    behaviour: ProviderBehaviour | None = None,
    provider: ShippingProvider | None = None,
    breaker: CircuitBreaker | None = None,
    retry_policy: BackoffPolicy | None = None,
    committer: GroupCommitter | None = None,
    uow: UnitOfWork | None = None,
    fulfiller: Fulfiller | None = None,
    scheduler: RetryScheduler | None = None,
    intake: ConsumerRuntime | None = None,
    probes: dict[str, CachedProbe] | None = None,
    progress: GroupProgress | None = None,
    metrics: Metrics | None = None,
    queries: FulfillmentQueries | None = None,
) -> Components:
    """The service's Components for settings (default: from the environment), with any part given used as is.

    Every part observes its series in metrics (one registry for the process, enabled by METRICS_ENABLED); the
    outbox, the breaker, the orders in flight and the intake group's lag are read into it at scrape time.

    Nothing talks to Kafka, the registry or the databases before Components.start() (which also has the mock
    provider create its ledger table); building only makes the directories of SQLite database files.
    """
    settings = settings or FulfillmentServiceSettings()
    if metrics is None:
        metrics = Metrics(settings.metrics_enabled)
    if engine is None:
        engine = make_engine(settings.database_url, settings.sqlite_synchronous)
    if registry is None:
        registry = registry_client(settings)
    kafka_errors = SecurityErrors()  # what the producer hears of refused credentials or certificates
    if producer is None:
        producer = make_producer(settings, "fulfillment-service-outbox", error_cb=kafka_errors)
    if relay is None:
        relay = publisher(settings, FULFILLMENT_SERVICE, engine, store.outbox, registry, producer, metrics)
    if behaviour is None:
        behaviour = ProviderBehaviour(
            settings.provider_min_latency_ms, settings.provider_max_latency_ms, settings.provider_failure_rate
        )
    if provider is None:
        provider = MockShippingProvider(
            make_engine(settings.provider_database_url), behaviour, home_country=settings.provider_home_country
        )
    if breaker is None:
        breaker = CircuitBreaker(
            settings.breaker_failure_threshold,
            settings.breaker_reset_seconds,
            probe_timeout_seconds=probe_timeout_seconds(settings),
        )
    if retry_policy is None:
        retry_policy = BackoffPolicy(
            settings.retry_max_attempts,
            settings.retry_deadline_seconds,
            settings.retry_initial_delay_seconds,
            settings.retry_max_delay_seconds,
        )
    if committer is None:
        committer = GroupCommitter(engine, "fulfillment-db")
    if uow is None:
        uow = SqlUnitOfWork(committer, settings.topic(FULFILLMENT_EVENTS).name, on_event_written=relay.wake)
    if fulfiller is None:
        fulfiller = Fulfiller(
            uow,
            provider,
            breaker,
            retry_policy,
            settings.provider_timeout_seconds,
            settings.delivery_after_seconds,
            metrics=metrics,
        )
    if scheduler is None:
        scheduler = RetryScheduler(uow, fulfiller)
    if intake is None:
        intake = subscriber(
            settings,
            ORDER_EVENTS,
            registry,
            TypeDispatcher(
                {
                    event_type: KeyOrderedDispatcher(
                        handler,
                        key_of=ORDER_EVENTS.key_of,
                        log_key=ORDER_EVENTS.key,
                        spans=ConsumerSpans(settings.consumer_group),
                    )
                    for event_type, handler in (
                        (OrderCreated, fulfiller.handle_order_created),
                        (OrderCancelled, fulfiller.handle_order_cancelled),
                    )
                }
            ),
            group=settings.consumer_group,
            client_id="fulfillment-service",
            dead_letter_client_id="fulfillment-service-dlq",
            spool=DeadLetterSpool(engine, store.dead_letter_spool),
            max_in_flight=settings.max_in_flight,
            metrics=metrics,
        )
    if probes is None:
        probes = dependency_probes(
            producer, settings.topic(ORDER_EVENTS).name, registry_client_config(settings), kafka_errors
        )
    if progress is None:
        topic = settings.topic(ORDER_EVENTS).name
        lag = GroupLag(settings, settings.consumer_group, topic)
        progress = GroupProgress(
            lag.read, topic, settings.consumer_group, settings.consumer_stall_seconds, close=lag.close
        )
    if queries is None:
        queries = FulfillmentQueries(SqlFulfillmentReader(engine))
    report_outbox_health(metrics, relay.health)
    report_breaker(metrics, breaker)
    report_in_flight(metrics, lambda: intake.in_flight)
    report_group_progress(metrics, progress)
    return Components(
        settings,
        engine,
        committer,
        behaviour,
        provider,
        breaker,
        fulfiller,
        scheduler,
        intake,
        relay,
        probes,
        progress,
        metrics,
        queries,
    )
