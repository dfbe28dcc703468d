"""Where Kafka and the Schema Registry are and how to connect to them, read from the environment; and the one
place the client configurations of both are built from it (kafka_client_config, registry_client_config)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from messaging.client_properties import check_client_properties, parse_client_properties

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]

_SASL = ("SASL_PLAINTEXT", "SASL_SSL")
_TLS = ("SSL", "SASL_SSL")
# librdkafka's ssl.ca.location takes "probe" (look for the system's CA bundle) besides a path.
_PROBE = "probe"
_FILES = (
    "kafka_ssl_ca_location",
    "kafka_ssl_certificate_location",
    "kafka_ssl_key_location",
    "schema_registry_ca_location",
)


class KafkaSettings(BaseSettings):
    """Kafka and the Schema Registry: where they are and how clients authenticate to them.

    Each field is read from the environment variable of its upper-cased name:

    - KAFKA_BOOTSTRAP_SERVERS: host:port[,host:port...].
    - KAFKA_SECURITY_PROTOCOL: PLAINTEXT (default), SSL, SASL_PLAINTEXT or SASL_SSL (librdkafka's
      security.protocol). SASL_* needs KAFKA_SASL_MECHANISM (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512),
      KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD.
    - KAFKA_SSL_CA_LOCATION: the CA bundle (PEM) the brokers' certificates are checked against (default: the
      system's); KAFKA_SSL_CERTIFICATE_LOCATION and KAFKA_SSL_KEY_LOCATION (both or neither, PEM) for mutual TLS,
      KAFKA_SSL_KEY_PASSWORD when the key is encrypted. Only with SSL or SASL_SSL.
    - KAFKA_CLIENT_PROPERTIES: further librdkafka properties for every client, a JSON object or k=v,k=v, applied
      over each client's own settings (messaging.client_properties; the properties the project owns are refused).
    - KAFKA_TOPIC_REPLICATION_FACTOR, KAFKA_TOPIC_MIN_INSYNC_REPLICAS: of every topic the project creates
      (default 1 and 1, for one local broker; min.insync.replicas may not exceed the replication factor).
    - SCHEMA_REGISTRY_URL: the registry's Confluent API base URL; SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO
      (user:password) for HTTP basic authentication; SCHEMA_REGISTRY_CA_LOCATION: the CA bundle (PEM) an https
      registry's certificate is checked against (default: the system's).

    Passwords are SecretStr: shown as ********** in repr and logs; the pass-through properties are left out of
    repr and dumps as they may hold secrets too. Raises pydantic.ValidationError naming the environment variable for a
    combination that cannot connect (a SASL protocol without credentials, credentials or TLS files the protocol
    would not use, a file that does not exist, an owned pass-through property).
    The topics are the event topology's (events.settings.EventSettings adds them).
    """

    # hide_input_in_errors: a refused value (KAFKA_CLIENT_PROPERTIES, a password) is never echoed in the error.
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", hide_input_in_errors=True)

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_security_protocol: SecurityProtocol = "PLAINTEXT"
    kafka_sasl_mechanism: SaslMechanism | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_ca_location: str | None = None
    kafka_ssl_certificate_location: str | None = None
    kafka_ssl_key_location: str | None = None
    kafka_ssl_key_password: SecretStr | None = None
    kafka_client_properties: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict, repr=False, exclude=True)
    kafka_topic_replication_factor: int = Field(1, ge=1)
    kafka_topic_min_insync_replicas: int = Field(1, ge=1)
    schema_registry_url: str = "http://127.0.0.1:8081/apis/ccompat/v7"
    schema_registry_basic_auth_user_info: SecretStr | None = None
    schema_registry_ca_location: str | None = None

    @field_validator("kafka_security_protocol", "kafka_sasl_mechanism", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator(
        "kafka_sasl_mechanism",
        "kafka_sasl_username",
        "kafka_sasl_password",
        "kafka_ssl_ca_location",
        "kafka_ssl_certificate_location",
        "kafka_ssl_key_location",
        "kafka_ssl_key_password",
        "schema_registry_basic_auth_user_info",
        "schema_registry_ca_location",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("kafka_client_properties", mode="before")
    @classmethod
    def _properties(cls, value: Any) -> Any:
        if isinstance(value, str):
            return parse_client_properties(value)
        if isinstance(value, Mapping):
            properties = {str(k): str(v) for k, v in value.items()}
            check_client_properties(properties)
            return properties
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        protocol = self.kafka_security_protocol
        if protocol in _SASL:
            missing = [
                name
                for name, value in (
                    ("KAFKA_SASL_MECHANISM", self.kafka_sasl_mechanism),
                    ("KAFKA_SASL_USERNAME", self.kafka_sasl_username),
                    ("KAFKA_SASL_PASSWORD", self.kafka_sasl_password),
                )
                if value is None
            ]
            if missing:
                raise ValueError(f"KAFKA_SECURITY_PROTOCOL={protocol} needs {', '.join(missing)}")
        else:
            _unused(
                protocol,
                "SASL",
                kafka_sasl_mechanism=self.kafka_sasl_mechanism,
                kafka_sasl_username=self.kafka_sasl_username,
                kafka_sasl_password=self.kafka_sasl_password,
            )
        if protocol not in _TLS:
            _unused(
                protocol,
                "TLS",
                kafka_ssl_ca_location=self.kafka_ssl_ca_location,
                kafka_ssl_certificate_location=self.kafka_ssl_certificate_location,
                kafka_ssl_key_location=self.kafka_ssl_key_location,
                kafka_ssl_key_password=self.kafka_ssl_key_password,
            )
        if (self.kafka_ssl_certificate_location is None) != (self.kafka_ssl_key_location is None):
            raise ValueError(
                "mutual TLS needs both KAFKA_SSL_CERTIFICATE_LOCATION and KAFKA_SSL_KEY_LOCATION, or neither"
            )
        if self.kafka_ssl_key_password is not None and self.kafka_ssl_key_location is None:
            raise ValueError("KAFKA_SSL_KEY_PASSWORD is set without KAFKA_SSL_KEY_LOCATION")
        for name in _FILES:
            _exists(name, getattr(self, name))
        user_info = self.schema_registry_basic_auth_user_info
        if user_info is not None and ":" not in user_info.get_secret_value():
            raise ValueError("SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO must be user:password")
        if self.kafka_topic_min_insync_replicas > self.kafka_topic_replication_factor:
            raise ValueError(
                f"KAFKA_TOPIC_MIN_INSYNC_REPLICAS ({self.kafka_topic_min_insync_replicas}) exceeds "
                f"KAFKA_TOPIC_REPLICATION_FACTOR ({self.kafka_topic_replication_factor}): no write could succeed"
            )
        return self


def _unused(protocol: str, kind: str, **values: Any) -> None:
    given = [name.upper() for name, value in values.items() if value is not None]
    if given:
        raise ValueError(f"{', '.join(given)} set, but KAFKA_SECURITY_PROTOCOL={protocol} does not use {kind}")


def _exists(name: str, location: str | None) -> None:
    if location is None or (name == "kafka_ssl_ca_location" and location == _PROBE):
        return
    if not os.path.exists(location):
        raise ValueError(f"{name.upper()}: {location} does not exist")


def kafka_client_config(settings: KafkaSettings, **client: Any) -> dict[str, Any]:
    """The librdkafka configuration of a client of the cluster settings name: bootstrap servers and security
    (security.protocol, sasl.*, ssl.*), then client (the client's own properties, e.g. group.id, acks; use
    `**{"dotted.name": value}`), then KAFKA_CLIENT_PROPERTIES last. Every Kafka client the project creates
    (producers, consumers, admin clients) is configured through this function.

    The result holds the SASL and key passwords in clear (librdkafka needs them): never log it.
    """
    conf: dict[str, Any] = {
        "bootstrap.servers": settings.kafka_bootstrap_servers,
        "security.protocol": settings.kafka_security_protocol.lower(),
    }
    if settings.kafka_sasl_mechanism is not None:
        conf["sasl.mechanism"] = settings.kafka_sasl_mechanism
    if settings.kafka_sasl_username is not None:
        conf["sasl.username"] = settings.kafka_sasl_username
    if settings.kafka_sasl_password is not None:
        conf["sasl.password"] = settings.kafka_sasl_password.get_secret_value()
    for key, value in (
        ("ssl.ca.location", settings.kafka_ssl_ca_location),
        ("ssl.certificate.location", settings.kafka_ssl_certificate_location),
        ("ssl.key.location", settings.kafka_ssl_key_location),
    ):
        if value is not None:
            conf[key] = value
    if settings.kafka_ssl_key_password is not None:
        conf["ssl.key.password"] = settings.kafka_ssl_key_password.get_secret_value()
    conf.update(client)
    conf.update(settings.kafka_client_properties)
    return conf


def registry_client_config(settings: KafkaSettings, url: str | None = None) -> dict[str, Any]:
    """The configuration of a Schema Registry client, in confluent-kafka's SchemaRegistryClient keys: url
    (default SCHEMA_REGISTRY_URL), basic.auth.user.info and ssl.ca.location where set. Every registry client the
    project creates is configured through this function (messaging.registry turns it into a SchemaRegistryClient
    or an httpx client).

    The result holds the password in clear: never log it.
    """
    conf: dict[str, Any] = {"url": url or settings.schema_registry_url}
    if settings.schema_registry_basic_auth_user_info is not None:
        conf["basic.auth.user.info"] = settings.schema_registry_basic_auth_user_info.get_secret_value()
    if settings.schema_registry_ca_location is not None:
        conf["ssl.ca.location"] = settings.schema_registry_ca_location
    return conf


def kafka_settings(target: str | KafkaSettings) -> KafkaSettings:
    """target itself, or for a bootstrap address the settings of the environment (KAFKA_SECURITY_PROTOCOL, ...)
    with that address: how tools and test helpers that are handed an address reach a secured cluster."""
    return target if isinstance(target, KafkaSettings) else KafkaSettings(kafka_bootstrap_servers=target)


def settings_from_env(env: Mapping[str, str]) -> KafkaSettings:
    """The KafkaSettings of a process started with env (environment variable -> value) over this process's own
    environment, as infra.services starts the services. Raises pydantic.ValidationError as KafkaSettings does."""
    fields = KafkaSettings.model_fields
    return KafkaSettings(**{k.lower(): v for k, v in env.items() if k.lower() in fields})
