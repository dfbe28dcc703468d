"""API authentication (httpapi.auth) on the Order API: bearer JWTs checked for signature, issuer, audience and
expiry, scopes per operation, a customer's token limited to its own orders; refusals are problem+json 401/403 with
the RFC 6750 challenge. Tokens are signed by a key made here; the JWKS case is served by a local HTTP server."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi.testclient import TestClient

from harness.waiting import wait_until
from httpapi.auth import AuthSettings, TokenVerifier
from order_service import store
from order_service.app import order_api
from order_service.status_waiter import StatusWaiter
from order_service.unit_of_work import SqlOrderUnitOfWork
from order_service.use_cases import OrderService
from persistence.engine import make_engine
from tests.unit.test_order_validation import order

ISSUER, AUDIENCE = "https://id.example.test/", "order-api"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PUBLIC_PEM = KEY.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def token(key: Any = KEY, algorithm: str = "RS256", headers: dict[str, Any] | None = None, **claims: Any) -> str:
    # Valid for a day: the module-level tokens below are made at import, maybe long before a full run reaches them.
    body = {"iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 86_400, "sub": "someone", **claims}
    return jwt.encode({k: v for k, v in body.items() if v is not None}, key, algorithm=algorithm, headers=headers)


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def settings(**overrides: Any) -> AuthSettings:
    values = {"enabled": True, "public_key": PUBLIC_PEM.decode(), "issuer": ISSUER, "audience": AUDIENCE}
    return AuthSettings(**{**values, **overrides})


@pytest.fixture
def client(tmp_path) -> Iterator[TestClient]:
    engine = make_engine(f"sqlite:///{tmp_path}/orders.db")
    store.metadata.create_all(engine)
    service = OrderService(SqlOrderUnitOfWork(engine, "order-events"), StatusWaiter(), 86_400)
    app = order_api(service, max_body_bytes=1_048_576, verifier=TokenVerifier(settings()))
    with TestClient(app) as test_client:
        yield test_client


ALICE = token(scope="orders:read orders:write", customer_id="alice")
BOB = token(scope="orders:read orders:write", customer_id="bob")
OPERATOR = token(scope="orders:operator")


def place(client: TestClient, customer: str, as_token: str) -> str:
    response = client.post("/api/orders", json=order(customerId=customer), headers=bearer(as_token))
    assert response.status_code == 201, response.text
    return response.json()["orderId"]


def assert_refused(response: Any, status: int, error: str | None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == status
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="orders"')
    if error:
        assert f'error="{error}"' in challenge


def test_a_request_without_a_token_is_401_with_the_challenge(client):
    assert_refused(client.post("/api/orders", json=order()), 401, None)
    assert_refused(client.get("/api/orders"), 401, None)


@pytest.mark.parametrize(
    "bad",
    {
        "expired": token(scope="orders:read", customer_id="alice", exp=int(time.time()) - 3600),
        "other issuer": token(scope="orders:read", customer_id="alice", iss="https://evil.example.test/"),
        "other audience": token(scope="orders:read", customer_id="alice", aud="another-api"),
        "no expiry": token(scope="orders:read", customer_id="alice", exp=None),
        "unsigned (alg none)": jwt.encode(
            {"iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 300, "scope": "orders:read"},
            None,
            algorithm="none",
        ),
        "another key": token(rsa.generate_private_key(public_exponent=65537, key_size=2048), scope="orders:read"),
        "not a JWT": "definitely-not-a-jwt",
        "no customer and no operator scope": token(scope="orders:read"),
    }.values(),
)
def test_a_token_that_is_not_valid_here_is_401_invalid_token(client, bad):
    assert_refused(client.get("/api/orders", headers=bearer(bad)), 401, "invalid_token")


def test_the_public_key_cannot_be_used_as_an_hmac_secret(client):
    # The "algorithm confusion" attack: a token signed with HS256 keyed by the server's public key.
    header = {"alg": "HS256", "typ": "JWT"}
    claims = {"iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 300, "scope": "orders:operator"}
    signing_input = b".".join(
        jwt.utils.base64url_encode(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
    )
    signature = jwt.utils.base64url_encode(hmac.new(PUBLIC_PEM, signing_input, hashlib.sha256).digest())
    forged = (signing_input + b"." + signature).decode()
    assert_refused(client.get("/api/orders", headers=bearer(forged)), 401, "invalid_token")


@pytest.mark.parametrize("scheme", ["Basic", "bearer-ish", ""])
def test_another_scheme_is_401_invalid_token(client, scheme):
    assert_refused(client.get("/api/orders", headers={"Authorization": f"{scheme} {ALICE}"}), 401, "invalid_token")


def test_an_oversized_token_is_refused_without_being_parsed(client):
    assert_refused(client.get("/api/orders", headers=bearer("a" * 20_000)), 401, "invalid_token")


def test_a_token_without_the_scope_is_403_insufficient_scope(client):
    reader = token(scope="orders:read", customer_id="alice")
    response = client.post("/api/orders", json=order(customerId="alice"), headers=bearer(reader))
    assert_refused(response, 403, "insufficient_scope")
    assert 'scope="orders:write"' in response.headers["www-authenticate"]


def test_scopes_may_come_as_an_scp_list(client):
    as_list = token(scp=["orders:read", "orders:write"], customer_id="alice")
    assert place(client, "alice", as_list)


def test_a_customer_places_reads_lists_and_cancels_only_its_own_orders(client):
    mine = place(client, "alice", ALICE)
    theirs = place(client, "bob", BOB)

    assert client.get(f"/api/orders/{mine}", headers=bearer(ALICE)).status_code == 200
    # Another customer's order is not found, as an unknown one: its existence is not told.
    other = client.get(f"/api/orders/{theirs}", headers=bearer(ALICE))
    assert other.status_code == 404 and other.headers["content-type"] == "application/problem+json"
    waited = client.get(f"/api/orders/{theirs}?waitFor=Fulfilled&timeout=5", headers=bearer(ALICE))
    assert waited.status_code == 404
    assert client.post(f"/api/orders/{theirs}/cancel", headers=bearer(ALICE)).status_code == 404
    assert client.get(f"/api/orders/{theirs}", headers=bearer(BOB)).json()["cancellation"] is None

    listed = client.get("/api/orders", headers=bearer(ALICE)).json()["items"]
    assert [item["orderId"] for item in listed] == [mine]
    refused = client.get("/api/orders?customerId=bob", headers=bearer(ALICE))
    assert refused.status_code == 403 and refused.json()["errors"][0]["field"] == "customerId"

    # An order for another customer is refused.
    response = client.post("/api/orders", json=order(customerId="bob"), headers=bearer(ALICE))
    assert response.status_code == 403 and response.json()["errors"][0]["field"] == "customerId"


def test_an_operator_sees_every_customer(client):
    mine, theirs = place(client, "alice", ALICE), place(client, "bob", BOB)
    listed = client.get("/api/orders", headers=bearer(OPERATOR)).json()["items"]
    assert {item["orderId"] for item in listed} == {mine, theirs}
    assert client.get(f"/api/orders/{theirs}", headers=bearer(OPERATOR)).status_code == 200


def test_a_customer_token_acts_for_its_customer_and_an_operator_token_for_all():
    verifier = TokenVerifier(settings())
    assert verifier.verify(ALICE).customer_id == "alice"
    assert verifier.verify(OPERATOR).customer_id is None


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"public_key": None}, "AUTH_JWKS_URL"),
        ({"issuer": None}, "AUTH_ISSUER"),
        ({"audience": None}, "AUTH_AUDIENCE"),
    ],
)
def test_a_missing_setting_is_named(overrides, named):
    with pytest.raises(ValueError, match=named):
        TokenVerifier(settings(**overrides))


@pytest.mark.parametrize("algorithms", ["HS256", "none", "RS256,HS512", ""])
def test_only_asymmetric_algorithms_are_accepted_in_settings(algorithms):
    with pytest.raises(ValueError, match="AUTH_ALGORITHMS"):
        settings(algorithms=algorithms)


class IdentityProvider:
    """A JWKS endpoint on a local HTTP server whose answer a test changes: the keys it publishes (by kid), or a
    raw body, or a body trickled a byte at a time."""

    def __init__(self) -> None:
        self.keys: dict[str, Any] = {}
        self.raw: bytes | None = None
        self.trickle_seconds: float | None = None
        self.fetches = 0
        provider = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                provider.fetches += 1
                body = provider.body()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if provider.trickle_seconds is None:
                    self.wfile.write(body)
                    return
                stop = threading.Event()
                for byte in body:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    if stop.wait(provider.trickle_seconds):
                        return

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"

    def publish(self, kid: str, key: ec.EllipticCurvePrivateKey) -> None:
        self.keys[kid] = {**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key())), "kid": kid, "use": "sig"}

    def body(self) -> bytes:
        return self.raw if self.raw is not None else json.dumps({"keys": list(self.keys.values())}).encode()


@pytest.fixture
def idp() -> Iterator[IdentityProvider]:
    provider = IdentityProvider()
    threading.Thread(target=provider.server.serve_forever, daemon=True).start()
    try:
        yield provider
    finally:
        provider.server.shutdown()
        provider.server.server_close()


def test_keys_come_from_the_jwks_and_are_cached(idp):
    key = ec.generate_private_key(ec.SECP256R1())
    idp.publish("k1", key)
    verifier = TokenVerifier(settings(public_key=None, jwks_url=idp.url))
    signed = token(key, "ES256", headers={"kid": "k1"}, scope="orders:read", customer_id="alice")
    for _ in range(5):
        assert verifier.verify(signed).customer_id == "alice"
    assert idp.fetches == 1
    unknown = token(key, "ES256", headers={"kid": "k2"}, scope="orders:read", customer_id="alice")
    with pytest.raises(jwt.PyJWKClientError):
        verifier.verify(unknown)


def test_a_key_withdrawn_from_the_jwks_stops_working_once_the_cached_document_expires(idp, monkeypatch):
    monkeypatch.setattr("httpapi.auth.JWKS_LIFESPAN_SECONDS", 0.5)
    old, new = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    idp.publish("old", old)
    verifier = TokenVerifier(settings(public_key=None, jwks_url=idp.url))
    signed = token(old, "ES256", headers={"kid": "old"}, scope="orders:operator")
    assert verifier.verify(signed).customer_id is None
    idp.keys.clear()
    idp.publish("new", new)  # the old key is withdrawn (compromised)

    def refused() -> bool:
        try:
            verifier.verify(signed)
        except jwt.PyJWTError:
            return True
        return False

    wait_until(refused, timeout=10, interval=0.1, message="the withdrawn key to be refused")


@pytest.mark.parametrize("body", [b"<html>not json</html>", b'{"keys": []}', b'{"keys": [{"kty": "XYZ", "kid": "x"}]}'])
def test_a_jwks_that_is_not_usable_refuses_tokens_with_401_and_is_not_fetched_per_request(idp, body, tmp_path):
    idp.raw = body
    app = order_api(
        OrderService(_uow(tmp_path), StatusWaiter(), 86_400),
        max_body_bytes=1_048_576,
        verifier=TokenVerifier(settings(public_key=None, jwks_url=idp.url)),
    )
    key = ec.generate_private_key(ec.SECP256R1())
    with TestClient(app) as client:
        for n in range(5):
            unknown = token(key, "ES256", headers={"kid": f"k{n}"}, scope="orders:read", customer_id="alice")
            assert_refused(client.get("/api/orders", headers=bearer(unknown)), 401, "invalid_token")
    assert idp.fetches == 1


def test_a_jwks_trickled_a_byte_at_a_time_is_given_up_within_about_its_timeout(idp):
    idp.publish("k1", ec.generate_private_key(ec.SECP256R1()))
    idp.trickle_seconds = 0.3
    verifier = TokenVerifier(settings(public_key=None, jwks_url=idp.url, jwks_timeout_seconds=1))
    signed = token(ec.generate_private_key(ec.SECP256R1()), "ES256", headers={"kid": "k1"}, scope="orders:read")
    started = time.monotonic()
    with pytest.raises(jwt.PyJWKClientConnectionError):
        verifier.verify(signed)
    assert time.monotonic() - started < 3  # the timeout (1 s) and one more read at most, not the whole trickle


@pytest.mark.parametrize("algorithm", ["ES256", "PS256"])
def test_a_token_naming_an_algorithm_of_another_key_kind_is_401_not_500(client, algorithm):
    # The configured key is RSA; a token claiming ES256 (with any signature) must not reach the key as a TypeError.
    header = jwt.utils.base64url_encode(json.dumps({"alg": algorithm, "typ": "JWT"}).encode())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 300, "scope": "orders:operator"}
    forged = b".".join([header, jwt.utils.base64url_encode(json.dumps(claims).encode()), b"c2lnbmF0dXJl"]).decode()
    assert_refused(client.get("/api/orders", headers=bearer(forged)), 401, "invalid_token")


@pytest.mark.parametrize("separator", ["\u00a0", "\x1f", "\t", "\n", "\u2003"])
def test_scopes_are_separated_by_spaces_only(client, separator):
    # RFC 6749 §3.3: "orders:read<NBSP>orders:operator" is one (unknown) scope, not operator rights.
    odd = token(scope=f"orders:read{separator}orders:operator", customer_id="alice")
    assert_refused(client.get("/api/orders", headers=bearer(odd)), 403, "insufficient_scope")


def _uow(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/orders.db")
    store.metadata.create_all(engine)
    return SqlOrderUnitOfWork(engine, "order-events")
