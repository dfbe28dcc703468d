"""Both services against a secured cluster: Kafka over SASL_SSL with SCRAM-SHA-512 users and a certificate of a
private CA, the registry behind an nginx TLS reverse proxy that demands basic authentication. An order reaches
Fulfilled through them; a wrong Kafka password and wrong registry credentials each turn the Order Service's
readiness down (503) within seconds, naming the setting to check."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka.admin import AdminClient

from harness.order_bodies import order_body
from harness.orders import wait_terminal
from harness.system import System, make_system
from harness.tls import CertificateAuthority
from harness.waiting import wait_until
from infra.broker import Broker, SaslSslListener
from infra.fetch import ensure_downloads
from infra.ports import free_port
from infra.registry import CCOMPAT_PATH, Registry
from infra.tls_proxy import TlsProxy
from messaging.settings import kafka_client_config

pytestmark = pytest.mark.integration

KAFKA_USER, KAFKA_PASSWORD = "order-processing", "kafka-s3cret-pw"
REGISTRY_USER, REGISTRY_PASSWORD = "registry-client", "registry-s3cret-pw"
# How soon a refused credential must show in readiness (the probe asks once a second; SCRAM fails in < 1 s).
REFUSAL_SHOWN_WITHIN_S = 30.0


@dataclass
class SecuredCluster:
    """The SASL_SSL address, the https registry URL and the environment that reaches both."""

    bootstrap_servers: str
    registry_url: str
    env: dict[str, str]
    ca: Path


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredCluster]:
    ensure_downloads()
    directory = tmp_path_factory.mktemp("secured")
    authority = CertificateAuthority(directory / "tls")
    broker_cert = authority.issue("broker")
    proxy_cert = authority.issue("registry-proxy")
    listener = SaslSslListener(free_port(), broker_cert.keystore, {KAFKA_USER: KAFKA_PASSWORD})
    broker = Broker(directory / "kafka", free_port(), free_port(), start_timeout=150, sasl_ssl=listener)
    # The registry stores its schemas through the broker's PLAINTEXT listener, as an in-cluster component would.
    registry = Registry(directory / "registry", broker.bootstrap_servers, free_port(), start_timeout=150)
    users = {REGISTRY_USER: REGISTRY_PASSWORD}
    proxy = TlsProxy(directory / "proxy", free_port(), registry.base_url, proxy_cert.certificate, proxy_cert.key, users)
    broker.start()
    try:
        registry.start()
        try:
            with proxy:
                yield SecuredCluster(
                    broker.sasl_ssl_bootstrap_servers,
                    proxy.url + CCOMPAT_PATH,
                    {
                        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                        "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
                        "KAFKA_SASL_USERNAME": KAFKA_USER,
                        "KAFKA_SASL_PASSWORD": KAFKA_PASSWORD,
                        "KAFKA_SSL_CA_LOCATION": str(authority.certificate),
                        "SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO": f"{REGISTRY_USER}:{REGISTRY_PASSWORD}",
                        "SCHEMA_REGISTRY_CA_LOCATION": str(authority.certificate),
                    },
                    authority.certificate,
                )
        finally:
            registry.stop()
    finally:
        broker.stop()


def _system(secured: SecuredCluster, data_dir: Path, **changes: str) -> System:
    env = {**secured.env, **changes, "PROVIDER_FAILURE_RATE": "0", "PROVIDER_MAX_LATENCY_MS": "200"}
    return make_system(secured.bootstrap_servers, secured.registry_url, data_dir, **env)


def _readiness(system: System) -> dict[str, Any]:
    response = httpx.get(system.orders.url + "/health/ready", timeout=5)
    return {"code": response.status_code, **response.json()}


def test_the_proxy_and_the_listener_refuse_what_is_not_secured(secured: SecuredCluster) -> None:
    # The registry answers only over TLS with the password, so the services below cannot have gone around it.
    context = ssl.create_default_context(cafile=str(secured.ca))
    assert httpx.get(secured.registry_url + "/subjects", verify=context, timeout=10).status_code == 401
    with pytest.raises(httpx.ConnectError):
        httpx.get(secured.registry_url + "/subjects", timeout=10)  # the system's CAs do not know the private one
    # A PLAINTEXT client on the SASL_SSL listener gets no metadata.
    plain = AdminClient({"bootstrap.servers": secured.bootstrap_servers, "log_level": 0})
    with pytest.raises(Exception):  # noqa: B017 - librdkafka's transport error, whatever its wording
        plain.list_topics(timeout=3)


def test_an_order_is_fulfilled_over_sasl_ssl_and_an_authenticated_tls_registry(
    secured: SecuredCluster, tmp_path: Path
) -> None:
    system = _system(secured, tmp_path)
    system.start()
    try:
        with httpx.Client(base_url=system.orders.url, timeout=30) as client:
            created = client.post("/api/orders", json=order_body(customer="secured-1"))
            assert created.status_code == 201, created.text
            order_id = created.json()["orderId"]
            assert wait_terminal(client, order_id, timeout=120) == "Fulfilled"
        ready = wait_until(lambda: (r := _readiness(system))["status"] == "ok" and r, 30, message="readiness ok")
        assert ready["dependencies"]["kafka"]["status"] == "ok"
        assert ready["dependencies"]["schemaRegistry"]["status"] == "ok"
        # The topics the services created are on the secured cluster (the test's own client reaches it too).
        admin = AdminClient(kafka_client_config(system.kafka))
        assert system.order_topic in admin.list_topics(timeout=15).topics
    finally:
        system.stop()


@pytest.mark.parametrize(
    ("changes", "dependency", "setting"),
    [
        ({"KAFKA_SASL_PASSWORD": "not-the-password"}, "kafka", "KAFKA_SASL_PASSWORD"),
        (
            {"SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO": f"{REGISTRY_USER}:not-the-password"},
            "schemaRegistry",
            "SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO",
        ),
    ],
    ids=["kafka-password", "registry-password"],
)
def test_refused_credentials_turn_readiness_down_naming_the_setting(
    secured: SecuredCluster, tmp_path: Path, changes: dict[str, str], dependency: str, setting: str
) -> None:
    system = _system(secured, tmp_path, **changes)
    system.orders.start()
    try:

        def refused() -> dict[str, Any] | None:
            ready = _readiness(system)
            detail = ready["dependencies"][dependency].get("detail") or ""
            return ready if ready["code"] == 503 and setting in detail else None

        ready = wait_until(refused, REFUSAL_SHOWN_WITHIN_S, message=f"readiness down naming {setting}")
        assert ready["status"] == "down"
        assert ready["dependencies"][dependency]["status"] == "down"
        # The secret itself is not in the reason.
        assert "not-the-password" not in str(ready)
        assert "not-the-password" not in system.orders.log_file.read_text(errors="replace")
    finally:
        system.orders.stop()
