"""Administering topics the way an operator would: delete a topic and create it again under the same name."""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import KafkaException, TopicCollection
from confluent_kafka.admin import AdminClient, ConfigResource, ConfigSource, NewTopic

from harness.waiting import poll, wait_until
from messaging.settings import KafkaSettings, kafka_client_config, kafka_settings


@dataclass(frozen=True)
class Recreation:
    """A topic deleted and created again: its partition count and its topic id before and after (Kafka
    topic ids, KIP-516: a new id for every creation)."""

    topic: str
    partitions: int
    old_id: str
    new_id: str


def topic_id(admin: AdminClient, topic: str, timeout: float = 10.0) -> str | None:
    """The topic id of topic (base64 text), None while it does not exist."""
    try:
        description = admin.describe_topics(TopicCollection([topic]))[topic].result(timeout=timeout)
    except KafkaException:
        return None
    return str(description.topic_id)


def recreate_topic(kafka: str | KafkaSettings, topic: str, timeout: float = 60.0) -> Recreation:
    """Delete topic and create it again with the same partition count and configuration, empty.

    kafka: the cluster (messaging.settings.kafka_settings: an address takes its security from the environment).
    Waits (at most timeout seconds per step) until the broker no longer knows the old topic and knows the
    new one. Raises AssertionError when a step does not finish in time, KafkaException when the broker refuses.
    """
    admin = AdminClient(kafka_client_config(kafka_settings(kafka)))
    old_id = wait_until(lambda: topic_id(admin, topic), timeout, message=f"topic {topic} to exist")
    partitions = len(admin.list_topics(topic, timeout=timeout).topics[topic].partitions)
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    entries = admin.describe_configs([resource])[resource].result(timeout=timeout)
    config = {
        name: entry.value
        for name, entry in entries.items()
        if entry.source == ConfigSource.DYNAMIC_TOPIC_CONFIG and entry.value is not None
    }
    admin.delete_topics([topic], operation_timeout=timeout)[topic].result(timeout=timeout)
    wait_until(lambda: topic_id(admin, topic) is None, timeout, message=f"topic {topic} to be deleted")

    def create() -> bool:
        try:
            admin.create_topics([NewTopic(topic, partitions, 1, config=config)])[topic].result(timeout=timeout)
        except KafkaException as exc:
            if "already exists" not in str(exc) and "marked for deletion" not in str(exc):
                raise
            return "already exists" in str(exc)
        return True

    wait_until(create, timeout, interval=0.5, message=f"topic {topic} to be created again")
    new_id = wait_until(lambda: topic_id(admin, topic), timeout, message=f"topic {topic} to exist again")
    assert new_id != old_id
    # Leaders of every partition are elected before records can be written.
    poll(lambda: all(p.leader >= 0 for p in admin.list_topics(topic, timeout=5).topics[topic].partitions.values()), 30)
    return Recreation(topic, partitions, old_id, new_id)
