"""What a Kafka client's error callback (librdkafka's error_cb) reports about its credentials and certificates:
errors that waiting will not cure, kept so health can name the setting to fix."""

from __future__ import annotations

import logging
import threading
import time

from confluent_kafka import KafkaError

log = logging.getLogger(__name__)

# librdkafka's local error codes for a refused login and a failed TLS handshake, and the settings behind them.
_SETTINGS = {
    KafkaError._AUTHENTICATION: "KAFKA_SASL_USERNAME / KAFKA_SASL_PASSWORD / KAFKA_SASL_MECHANISM",
    KafkaError._SSL: "KAFKA_SSL_CA_LOCATION / KAFKA_SSL_CERTIFICATE_LOCATION / KAFKA_SSL_KEY_LOCATION",
}


class SecurityErrors:
    """An error_cb (pass it as a client's `error_cb`) that remembers the last authentication or TLS error.

    reason() is that error with the settings to check, e.g. "kafka refused the connection's credentials
    (check KAFKA_SASL_USERNAME / ...): SASL authentication error: ...", until clear() (the client has since
    talked to the broker), or None. The first error of each kind is logged, at ERROR (librdkafka reports one per
    connection attempt). Other errors (broker away,
    timeouts) are outages the client rides out: ignored here. Thread-safe.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reason: str | None = None
        self._at = 0.0
        self._logged: set[int] = set()

    def __call__(self, error: KafkaError) -> None:
        """librdkafka's error callback."""
        setting = _SETTINGS.get(error.code())
        if setting is None:
            return
        kind = "credentials" if error.code() == KafkaError._AUTHENTICATION else "TLS handshake"
        reason = f"kafka refused the connection's {kind} (check {setting}): {error.str()}"
        with self._lock:
            self._reason, self._at = reason, time.monotonic()
            first = error.code() not in self._logged
            self._logged.add(error.code())
        if first:
            log.error("%s", reason)

    def reason(self) -> str | None:
        """The last authentication or TLS error since clear(), with the settings to check; None without one."""
        with self._lock:
            return self._reason

    def clear(self, older_than: float) -> None:
        """Forget the error if it was seen before older_than (time.monotonic()): the client got through since."""
        with self._lock:
            if self._at < older_than:
                self._reason = None
