"""Where Kafka and the Schema Registry are, read from the environment."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class KafkaSettings(BaseSettings):
    """KAFKA_BOOTSTRAP_SERVERS (host:port[,host:port...]) and SCHEMA_REGISTRY_URL (the Confluent API base URL).

    The topics are the event topology's (events.settings.EventSettings adds them).
    """

    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    schema_registry_url: str = "http://127.0.0.1:8081/apis/ccompat/v7"
