"""Reading whole topics in the tests, the benchmark and the chaos runs: messaging.topic_reader's TopicReader on
a broker named by its settings or its bootstrap servers (then with the security settings of the environment,
messaging.settings.kafka_settings), waiting for the topics to exist."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from confluent_kafka import Message

from messaging.settings import KafkaSettings, kafka_settings
from messaging.topic_reader import TopicReader


def topic_reader(bootstrap_servers: str | KafkaSettings, topics: list[str]) -> TopicReader:
    """A reader of every partition of topics on the broker at bootstrap_servers (close() it when done)."""
    return TopicReader(kafka_settings(bootstrap_servers), topics, "harness-reader")


def read_topic(
    bootstrap_servers: str | KafkaSettings, topic: str, stop: Callable[[list[Any]], bool], timeout: float
) -> list[Message]:
    """Every record of topic from the beginning, until stop(records) or timeout seconds (see TopicReader)."""
    with topic_reader(bootstrap_servers, [topic]) as reader:
        return reader.read_until(stop, timeout)


def read_to_end(bootstrap_servers: str | KafkaSettings, topic: str, timeout: float = 120.0) -> list[Message]:
    """Every record of topic, from the beginning up to the end it had when reading started (see TopicReader)."""
    with topic_reader(bootstrap_servers, [topic]) as reader:
        return reader.read_to_end(timeout)
