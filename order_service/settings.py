"""Order Service settings, from the environment."""

from __future__ import annotations

from messaging.settings import KafkaSettings


class OrderServiceSettings(KafkaSettings):
    """Every field reads the upper-case environment variable of the same name."""

    host: str = "127.0.0.1"
    port: int = 5001
    database_url: str = "sqlite:///var/order-service.db"
    sqlite_synchronous: str = "NORMAL"
    consumer_group: str = "order-service"
    max_body_bytes: int = 1_048_576
    idempotency_key_ttl_seconds: int = 86_400
    log_level: str = "info"
