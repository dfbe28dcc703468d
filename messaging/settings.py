"""Connection and topic settings, read from the environment (one place for both services)."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class KafkaSettings(BaseSettings):
    """Where Kafka and the Schema Registry are, and which topics carry the events."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    schema_registry_url: str = "http://127.0.0.1:8081/apis/ccompat/v7"
    order_events_topic: str = "order-events"
    fulfillment_events_topic: str = "fulfillment-events"
    order_events_dlq_topic: str = "order-events.dlq"
    fulfillment_events_dlq_topic: str = "fulfillment-events.dlq"
    order_events_partitions: int = 1
    fulfillment_events_partitions: int = 1
    topic_retention_ms: int = 604_800_000
    # Topics are created at start-up; a deployment that manages topics itself can switch this off.
    create_topics: bool = True
