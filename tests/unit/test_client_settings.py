"""The Kafka and registry client configuration read from the environment (messaging.settings): every variable,
the pass-through properties, the refusal of owned properties, and secrets kept out of repr and logs."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError
from pydantic import ValidationError

from messaging.client_errors import SecurityErrors
from messaging.client_properties import OWNED_PROPERTIES, ClientPropertiesError, parse_client_properties
from messaging.clients import make_consumer, make_producer
from messaging.health import ProbeResult, broker_probe, refused, registry_probe
from messaging.registry import registry_client
from messaging.settings import (
    KafkaSettings,
    kafka_client_config,
    kafka_settings,
    registry_client_config,
    settings_from_env,
)
from messaging.topics import TopicSpec, ensure_topics

SECRET = "pa55-w0rd-never-shown"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in KafkaSettings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)


@pytest.fixture
def pem(tmp_path: Path) -> dict[str, str]:
    files = {}
    for name in ("ca", "cert", "key", "registry-ca"):
        path = tmp_path / f"{name}.pem"
        path.write_text("-----BEGIN CERTIFICATE-----\n")
        files[name] = str(path)
    return files


def _sasl_ssl(pem: dict[str, str], **more: str) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": "broker-1:9094,broker-2:9094",
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "KAFKA_SASL_USERNAME": "orders",
        "KAFKA_SASL_PASSWORD": SECRET,
        "KAFKA_SSL_CA_LOCATION": pem["ca"],
        **more,
    }


def _set(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> KafkaSettings:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return KafkaSettings()


def test_defaults_are_a_plaintext_local_broker_and_registry() -> None:
    settings = KafkaSettings()
    assert kafka_client_config(settings) == {"bootstrap.servers": "127.0.0.1:9092", "security.protocol": "plaintext"}
    assert registry_client_config(settings) == {"url": "http://127.0.0.1:8081/apis/ccompat/v7"}
    assert (settings.kafka_topic_replication_factor, settings.kafka_topic_min_insync_replicas) == (1, 1)


def test_every_kafka_variable_reaches_the_librdkafka_configuration(
    monkeypatch: pytest.MonkeyPatch, pem: dict[str, str]
) -> None:
    env = _sasl_ssl(
        pem,
        KAFKA_SSL_CERTIFICATE_LOCATION=pem["cert"],
        KAFKA_SSL_KEY_LOCATION=pem["key"],
        KAFKA_SSL_KEY_PASSWORD="key-" + SECRET,
        KAFKA_CLIENT_PROPERTIES='{"client.rack": "eu-1a", "socket.keepalive.enable": true, "linger.ms": 20}',
        KAFKA_TOPIC_REPLICATION_FACTOR="3",
        KAFKA_TOPIC_MIN_INSYNC_REPLICAS="2",
    )
    settings = _set(monkeypatch, env)
    assert kafka_client_config(settings, **{"group.id": "g", "linger.ms": 5}) == {
        "bootstrap.servers": "broker-1:9094,broker-2:9094",
        "security.protocol": "sasl_ssl",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "orders",
        "sasl.password": SECRET,
        "ssl.ca.location": pem["ca"],
        "ssl.certificate.location": pem["cert"],
        "ssl.key.location": pem["key"],
        "ssl.key.password": "key-" + SECRET,
        "group.id": "g",
        "linger.ms": "20",  # the pass-through is applied last, over the client's own value
        "client.rack": "eu-1a",
        "socket.keepalive.enable": "true",
    }
    assert (settings.kafka_topic_replication_factor, settings.kafka_topic_min_insync_replicas) == (3, 2)


def test_registry_variables_reach_the_registry_clients(monkeypatch: pytest.MonkeyPatch, pem: dict[str, str]) -> None:
    settings = _set(
        monkeypatch,
        {
            "SCHEMA_REGISTRY_URL": "https://registry.example:8443/apis/ccompat/v7",
            "SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO": f"svc:{SECRET}",
            "SCHEMA_REGISTRY_CA_LOCATION": pem["registry-ca"],
        },
    )
    conf = registry_client_config(settings)
    assert conf == {
        "url": "https://registry.example:8443/apis/ccompat/v7",
        "basic.auth.user.info": f"svc:{SECRET}",
        "ssl.ca.location": pem["registry-ca"],
    }
    # A tool handed only a URL takes the credentials from the environment.
    assert (
        registry_client_config(kafka_settings("x:1"), "https://other/apis")["basic.auth.user.info"] == f"svc:{SECRET}"
    )


def test_the_services_clients_are_built_from_the_one_configuration(
    monkeypatch: pytest.MonkeyPatch, pem: dict[str, str]
) -> None:
    built: list[dict[str, Any]] = []
    monkeypatch.setattr("messaging.clients.Producer", lambda conf: built.append(conf))
    monkeypatch.setattr("messaging.clients.Consumer", lambda conf: built.append(conf))
    settings = _set(monkeypatch, _sasl_ssl(pem, KAFKA_CLIENT_PROPERTIES="client.rack=eu-1b"))
    make_producer(settings, "outbox")
    make_consumer(settings, "group", "intake")
    for conf in built:
        assert conf["security.protocol"] == "sasl_ssl"
        assert conf["sasl.password"] == SECRET
        assert conf["client.rack"] == "eu-1b"
    assert built[0]["enable.idempotence"] is True and built[0]["acks"] == "all"
    assert built[1]["enable.auto.commit"] is False


def test_created_topics_take_the_replication_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    requested: list[Any] = []

    class Admin:
        def __init__(self, conf: dict[str, Any]) -> None:
            assert conf["bootstrap.servers"] == "b:9092"

        def list_topics(self, timeout: float) -> Any:
            return type("Metadata", (), {"topics": {}})()

        def create_topics(self, topics: list[Any], operation_timeout: float) -> dict[str, Any]:
            requested.extend(topics)
            return {}

    monkeypatch.setattr("messaging.topics.AdminClient", Admin)
    settings = KafkaSettings(
        kafka_bootstrap_servers="b:9092", kafka_topic_replication_factor=3, kafka_topic_min_insync_replicas=2
    )
    ensure_topics(settings, [TopicSpec("orders", 6, 1000)])
    (topic,) = requested
    assert (topic.topic, topic.num_partitions, topic.replication_factor) == ("orders", 6, 3)
    assert topic.config["min.insync.replicas"] == "2"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", {}),
        ("  ", {}),
        ("client.rack=eu-1a", {"client.rack": "eu-1a"}),
        (" client.rack = eu-1a , socket.timeout.ms=30000 ", {"client.rack": "eu-1a", "socket.timeout.ms": "30000"}),
        ("client.rack=a=b", {"client.rack": "a=b"}),
        ("topic.metadata.refresh.interval.ms=1000", {"topic.metadata.refresh.interval.ms": "1000"}),
        (
            '{"client.rack": "eu-1a", "socket.timeout.ms": 30000}',
            {"client.rack": "eu-1a", "socket.timeout.ms": "30000"},
        ),
        ('{"socket.keepalive.enable": false}', {"socket.keepalive.enable": "false"}),
    ],
)
def test_pass_through_properties_parse_from_json_or_key_value_pairs(text: str, expected: dict[str, str]) -> None:
    assert parse_client_properties(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("client.rack", "item 1 is not key=value"),
        ("=x", "is not key=value"),
        ("{not json", "is not a JSON object"),
        ('{"a.b": {"c": 1}}', "a.b must be a string, number or boolean"),
        ('{"a.b": 1, "a.b": 2}', "sets a.b twice"),
        ("a.b=1,a.b=2", "sets a.b twice"),
        ("Bad Name=1", "is not a librdkafka property name"),
    ],
)
def test_malformed_pass_through_properties_are_refused(text: str, message: str) -> None:
    with pytest.raises(ClientPropertiesError, match=re.escape(message)):
        parse_client_properties(text)


@pytest.mark.parametrize("owned", sorted(OWNED_PROPERTIES))
def test_owned_properties_are_refused_with_the_reason(monkeypatch: pytest.MonkeyPatch, owned: str) -> None:
    monkeypatch.setenv("KAFKA_CLIENT_PROPERTIES", f"client.rack=a,{owned}=false")
    with pytest.raises(ValidationError) as refused_error:
        KafkaSettings()
    text = str(refused_error.value)
    assert f"KAFKA_CLIENT_PROPERTIES may not set {owned} ({OWNED_PROPERTIES[owned]})" in text


@pytest.mark.parametrize(
    "text",
    [
        '{"request.required.acks": "0"}',  # librdkafka's alias of acks
        '{"topic.acks": "1"}',  # a topic property given globally
        '{"queuing.strategy": "lifo"}',
        '{"enable.ssl.certificate.verification": "false"}',
        "ssl.endpoint.identification.algorithm=none",
        "ssl.ca.pem=x",
        "sasl.oauthbearer.client.secret=x",
        "group.instance.id=same",
        "partitioner=random",
    ],
)
def test_aliases_and_families_of_owned_properties_are_refused(text: str) -> None:
    with pytest.raises(ClientPropertiesError, match="may not set"):
        parse_client_properties(text)


@pytest.mark.parametrize(
    "text", ["client.rack=a,hunter2secret", '{"client.rack": "a", "x": {"secret": "hunter2secret"}}', "{hunter2secret"]
)
def test_a_refused_pass_through_value_is_not_echoed(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setenv("KAFKA_CLIENT_PROPERTIES", text)
    with pytest.raises(ValidationError) as refused_error:
        KafkaSettings()
    assert "hunter2" not in str(refused_error.value) and "hunter2" not in repr(refused_error.value)


def test_disabling_idempotence_is_refused_clearly() -> None:
    with pytest.raises(ValidationError, match=re.escape("may not set enable.idempotence (producers are idempotent")):
        settings_from_env({"KAFKA_CLIENT_PROPERTIES": '{"enable.idempotence": false}'})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "SASL_SSL needs KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME, KAFKA_"),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_MECHANISM": "PLAIN", "KAFKA_SASL_USERNAME": "u"},
            "SASL_PLAINTEXT needs KAFKA_SASL_PASSWORD",
        ),
        ({"KAFKA_SASL_USERNAME": "u"}, "KAFKA_SASL_USERNAME set, but KAFKA_SECURITY_PROTOCOL=PLAINTEXT does not use"),
        (
            {
                "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                "KAFKA_SASL_MECHANISM": "PLAIN",
                "KAFKA_SASL_USERNAME": "u",
                "KAFKA_SASL_PASSWORD": "p",
                "KAFKA_SSL_CA_LOCATION": "/ca.pem",
            },
            "KAFKA_SSL_CA_LOCATION set, but KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT does not use TLS",
        ),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CA_LOCATION": "/nowhere/ca.pem"},
            "KAFKA_SSL_CA_LOCATION: /nowhe",
        ),
        ({"KAFKA_SECURITY_PROTOCOL": "KERBEROS"}, "kafka_security_protocol"),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "GSSAPI"}, "kafka_sasl_mechanism"),
        ({"SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO": "no-colon"}, "SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO must be user:pas"),
        (
            {"KAFKA_TOPIC_MIN_INSYNC_REPLICAS": "2"},
            "KAFKA_TOPIC_MIN_INSYNC_REPLICAS (2) exceeds KAFKA_TOPIC_REPLICATION",
        ),
        ({"KAFKA_TOPIC_REPLICATION_FACTOR": "0"}, "kafka_topic_replication_factor"),
    ],
)
def test_settings_that_cannot_connect_are_refused_naming_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        settings_from_env(env)


def test_mutual_tls_needs_certificate_and_key(pem: dict[str, str]) -> None:
    base = {"KAFKA_SECURITY_PROTOCOL": "SSL"}
    with pytest.raises(ValidationError, match="needs both KAFKA_SSL_CERTIFICATE_LOCATION and KAFKA_SSL_KEY_LOCATION"):
        settings_from_env({**base, "KAFKA_SSL_CERTIFICATE_LOCATION": pem["cert"]})
    with pytest.raises(ValidationError, match="KAFKA_SSL_KEY_PASSWORD is set without KAFKA_SSL_KEY_LOCATION"):
        settings_from_env({**base, "KAFKA_SSL_KEY_PASSWORD": "x"})
    settings = settings_from_env(
        {**base, "KAFKA_SSL_CERTIFICATE_LOCATION": pem["cert"], "KAFKA_SSL_KEY_LOCATION": pem["key"]}
    )
    assert kafka_client_config(settings)["ssl.key.location"] == pem["key"]


def test_lower_case_protocol_and_mechanism_are_read_and_blank_values_are_unset(pem: dict[str, str]) -> None:
    settings = settings_from_env(
        {
            **_sasl_ssl(pem),
            "KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
            "KAFKA_SASL_MECHANISM": "scram-sha-256",
            "SCHEMA_REGISTRY_CA_LOCATION": "",
        }
    )
    assert (settings.kafka_security_protocol, settings.kafka_sasl_mechanism) == ("SASL_SSL", "SCRAM-SHA-256")
    assert settings.schema_registry_ca_location is None


def test_secrets_are_not_in_repr_str_or_logs(
    monkeypatch: pytest.MonkeyPatch, pem: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    settings = _set(
        monkeypatch,
        _sasl_ssl(
            pem,
            KAFKA_SSL_CERTIFICATE_LOCATION=pem["cert"],
            KAFKA_SSL_KEY_LOCATION=pem["key"],
            KAFKA_SSL_KEY_PASSWORD=SECRET,
            KAFKA_CLIENT_PROPERTIES=f"client.rack={SECRET}",  # a pass-through value may be a secret
            SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO=f"svc:{SECRET}",
        ),
    )
    for shown in (repr(settings), str(settings), settings.model_dump_json()):
        assert SECRET not in shown
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("test").info("settings: %s %r", settings, settings)
        errors = SecurityErrors()
        errors(KafkaError(KafkaError._AUTHENTICATION, "SASL authentication error: invalid credentials"))
    assert SECRET not in caplog.text
    assert "KAFKA_SASL_PASSWORD" in caplog.text


def test_registry_client_carries_the_credentials_and_ca(monkeypatch: pytest.MonkeyPatch, pem: dict[str, str]) -> None:
    settings = _set(
        monkeypatch,
        {
            "SCHEMA_REGISTRY_URL": "https://registry.example/apis/ccompat/v7",
            "SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO": f"svc:{SECRET}",
        },
    )
    client = registry_client(settings)
    assert client.config()["basic.auth.user.info"] == f"svc:{SECRET}"
    assert client.config()["timeout"] == 5


class _Producer:
    def __init__(self, fails: bool) -> None:
        self.fails = fails

    def list_topics(self, topic: str, timeout: float) -> Any:
        if self.fails:
            raise RuntimeError("Failed to get metadata: Local: Broker transport failure")
        return type("Metadata", (), {"brokers": {1: object()}})()


def test_a_refused_kafka_login_makes_the_broker_probe_a_refusal_naming_the_settings() -> None:
    errors = SecurityErrors()
    producer = _Producer(fails=True)
    probe = broker_probe(producer, "orders", errors=errors)  # type: ignore[arg-type]
    assert probe() == ProbeResult(False, "kafka unreachable: Failed to get metadata: Local: Broker transport failure")
    assert not refused({"kafka": probe})
    errors(KafkaError(KafkaError._AUTHENTICATION, "SASL authentication error: Authentication failed"))
    errors(KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"))  # an outage: not a refusal
    probe = broker_probe(producer, "orders", errors=errors)  # type: ignore[arg-type]
    result = probe()
    assert result.refused and "KAFKA_SASL_PASSWORD" in (result.detail or "")
    assert refused({"kafka": probe})
    producer.fails = False  # the credentials were accepted since (e.g. the user was created on the cluster)
    probe = broker_probe(producer, "orders", errors=errors)  # type: ignore[arg-type]
    assert probe() == ProbeResult(True)
    assert errors.reason() is None


def test_the_registry_probe_reports_refused_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx

    def answer(request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"].startswith("Basic ")
        return httpx.Response(401)

    real = httpx.Client
    monkeypatch.setattr(
        "messaging.registry.httpx.Client", lambda **kw: real(**{**kw, "transport": httpx.MockTransport(answer)})
    )
    probe = registry_probe({"url": "https://registry.example/apis/ccompat/v7", "basic.auth.user.info": "u:p"})
    result = probe()
    assert result == ProbeResult(
        False,
        "schema registry refused the credentials with 401 (check SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO)",
        refused=True,
    )
