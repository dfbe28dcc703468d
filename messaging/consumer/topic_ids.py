"""Topic ids as the broker reports them (Kafka KIP-516: every creation of a topic gets a new id)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from confluent_kafka import TopicCollection
from confluent_kafka.admin import AdminClient

from messaging.settings import KafkaSettings, kafka_client_config

log = logging.getLogger(__name__)

# Answers the current topic id of a topic (base64 text, as Kafka's tools print it), None when unknown.
TopicIdLookup = Callable[[str], str | None]


class TopicIds:
    """Looks topic ids up with AdminClient.describe_topics (confluent-kafka >= 2.3).

    The admin client (of the cluster settings name) connects on first use. Each lookup waits at most timeout
    seconds; a topic that does not exist (deleted, not yet created) or a broker that does not answer gives None.
    """

    def __init__(self, settings: KafkaSettings, timeout: float = 5.0) -> None:
        self._conf = kafka_client_config(settings, logger=logging.getLogger("kafka.client"))
        self._timeout = timeout
        self._admin: AdminClient | None = None

    def __call__(self, topic: str) -> str | None:
        """The current id of topic, or None when the broker cannot tell now."""
        try:
            if self._admin is None:
                self._admin = AdminClient(self._conf)
            future = self._admin.describe_topics(TopicCollection([topic]), request_timeout=self._timeout)[topic]
            return str(future.result(timeout=self._timeout + 1).topic_id)
        except Exception as exc:  # unknown topic, timeout, broker away: the caller decides without an id
            log.debug("topic id of %s unavailable: %s", topic, exc)
            return None
