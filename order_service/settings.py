"""Order Service settings, from the environment."""

from __future__ import annotations

from events.settings import EventSettings
from events.topology import ORDER_SERVICE
from observability.settings import ObservabilitySettings


class OrderServiceSettings(EventSettings, ObservabilitySettings):
    """Every field reads the upper-case environment variable of the same name."""

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
