"""Fulfillment Service settings, from the environment."""

from __future__ import annotations

from typing import Self

from pydantic import Field, field_validator, model_validator

from contract_models.order_api import CountryCode
from events.settings import EventSettings
from events.topology import FULFILLMENT_SERVICE
from fulfillment_service.shipping import DEFAULT_HOME_COUNTRY
from httpapi.workers import MAX_WORKERS, default_workers, resolve_workers
from observability.settings import ObservabilitySettings


class FulfillmentServiceSettings(EventSettings, ObservabilitySettings):
    """Every field reads the upper-case environment variable of the same name.

    WORKERS: server processes of this service on its one port, at most MAX_WORKERS (httpapi.workers: a supervisor
    opens the port and runs that many workers on it). Not set: half the machine's cores, at least 1
    (httpapi.workers.default_workers: the two services share the cores), but 1 while DATABASE_URL or
    PROVIDER_DATABASE_URL is SQLite. WORKERS > 1 is refused at start-up (a validation error naming the settings)
    while either is SQLite: the workers are members of one consumer group on order-events and share the exactly-once
    state (which orders were shipped, the provider's ledger), so each database must be one PostgreSQL database they
    all use. Only as many workers get work as order-events has partitions (ORDER_EVENTS_PARTITIONS, default 1); the
    others stand by and take over a partition on a rebalance. Each worker serves its own GET /metrics and health: a
    request to the port sees the one worker that accepted it; WORKER_METRICS_PORT gives each worker a metrics port
    of its own.
    1 is one process, no supervisor, as before the setting existed.
    """

    host: str = "127.0.0.1"
    port: int = 5002
    database_url: str = "sqlite:///var/fulfillment-service.db"
    sqlite_synchronous: str = "NORMAL"
    consumer_group: str = FULFILLMENT_SERVICE.group
    # Orders processed at once per instance. At 1,000 orders/s and up to 0.5 s per provider call about
    # 500 are in flight (Little's law); twice that absorbs bursts without unbounded memory.
    max_in_flight: int = 1000
    shutdown_grace_seconds: float = 20.0
    # Health is degraded while a partition of order-events has records waiting and the group's committed
    # offset on it has not moved for longer than this (seconds): the consumer is stuck.
    consumer_stall_seconds: float = 30.0
    log_level: str = "info"
    workers: int = Field(default_factory=default_workers, ge=1, le=MAX_WORKERS)
    # With WORKERS > 1: worker i also serves its own metrics on this port + i (httpapi.workers.serve_worker_metrics).
    worker_metrics_port: int | None = Field(None, ge=1, le=65535 - MAX_WORKERS)

    # Mock shipping provider (embedded); its ledger stands in for the provider's own records.
    provider_database_url: str = "sqlite:///var/shipping-provider.db"
    provider_min_latency_ms: int = 100
    provider_max_latency_ms: int = 500
    provider_failure_rate: float = 0.10
    provider_timeout_seconds: float = 10.0
    # Lets tests and chaos runs change the provider's behaviour at run time (PUT /admin/provider).
    provider_control_enabled: bool = False
    # The country the mock provider ships from (ISO 3166-1 alpha-2): delivery elsewhere is estimated later.
    provider_home_country: str = DEFAULT_HOME_COUNTRY
    # Simulated delivery: Shipped orders become Delivered this many seconds later (0 = off).
    delivery_after_seconds: float = 0.0

    # Retries of failed or timed-out provider calls.
    retry_max_attempts: int = 5
    retry_deadline_seconds: float = 300.0
    retry_initial_delay_seconds: float = 0.5
    retry_max_delay_seconds: float = 30.0

    # Circuit breaker around the provider.
    breaker_failure_threshold: int = 20
    breaker_reset_seconds: float = 5.0

    @model_validator(mode="after")
    def _workers_for_database(self) -> Self:
        """WORKERS as httpapi.workers.resolve_workers decides it for this service's databases."""
        requested = self.workers if "workers" in self.model_fields_set else None
        databases = {"database_url": self.database_url, "provider_database_url": self.provider_database_url}
        self.workers = resolve_workers(requested, databases)
        return self

    @field_validator("provider_home_country")
    @classmethod
    def _assigned_country(cls, value: str) -> str:
        """PROVIDER_HOME_COUNTRY must be an assigned ISO 3166-1 alpha-2 code, as the order contract spells them."""
        if value not in CountryCode.__members__.values():
            raise ValueError(f"{value!r} is not an assigned ISO 3166-1 alpha-2 code in upper case, e.g. DE")
        return value
