"""Order Service settings, from the environment."""

from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator

from events.settings import EventSettings
from events.topology import ORDER_SERVICE
from httpapi.workers import MAX_WORKERS, default_workers, resolve_workers
from observability.settings import ObservabilitySettings


class OrderServiceSettings(EventSettings, ObservabilitySettings):
    """Every field reads the upper-case environment variable of the same name.

    WORKERS: server processes of this service on its one port, at most MAX_WORKERS (httpapi.workers: a supervisor
    opens the port and runs that many workers on it). Not set: half the machine's cores, at least 1
    (httpapi.workers.default_workers: the two services share the cores), but 1 with a SQLite DATABASE_URL. WORKERS >
    1 is refused at start-up (a validation error naming the setting) while DATABASE_URL is SQLite: the workers are
    replicas of one service and need what replicas need, one PostgreSQL database (outbox rows claimed with `FOR
    UPDATE SKIP LOCKED`, the projection's consumer group on fulfillment-events, long polls that reread the
    database), which SQLite's one-process-per-file use in this service does not give. Each worker serves its own GET
    /metrics: a scrape of the port sees the one worker that accepted it; WORKER_METRICS_PORT gives each worker a
    metrics port of its own.
    1 is one process, no supervisor, as before the setting existed.
    """

    host: str = "127.0.0.1"
    port: int = 5001
    database_url: str = "sqlite:///var/order-service.db"
    sqlite_synchronous: str = "NORMAL"
    consumer_group: str = ORDER_SERVICE.group
    max_body_bytes: int = 1_048_576
    idempotency_key_ttl_seconds: int = 86_400
    # Largest OrderCreated record accepted (bytes): below the producer's message.max.bytes (librdkafka's
    # default, 1,000,000) with room for the key and headers, so every accepted order can be published.
    max_event_bytes: int = 990_000
    # An unfinished order without fulfillment progress for this long (seconds) counts as stuck in health, and
    # its OrderCreated is published again, then after twice as long, and so on up to the max interval.
    stale_order_seconds: float = 60.0
    republish_max_interval_seconds: float = 3600.0
    log_level: str = "info"
    workers: int = Field(default_factory=default_workers, ge=1, le=MAX_WORKERS)
    # With WORKERS > 1: worker i also serves its own metrics on this port + i (httpapi.workers.serve_worker_metrics).
    worker_metrics_port: int | None = Field(None, ge=1, le=65535 - MAX_WORKERS)

    @model_validator(mode="after")
    def _workers_for_database(self) -> Self:
        """WORKERS as httpapi.workers.resolve_workers decides it for this service's databases."""
        requested = self.workers if "workers" in self.model_fields_set else None
        self.workers = resolve_workers(requested, {"database_url": self.database_url})
        return self
