"""An identity provider of the tests' own: a signing key, the AUTH_* settings that make the services trust it, and
bearer tokens (JWT access tokens, RFC 9068) with the scopes and customer a test asks for."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from httpapi.auth import SCOPE_OPERATOR

ISSUER = "https://identity.test.invalid/"
AUDIENCE = "order-processing"


@dataclass
class TokenIssuer:
    """Signs ES256 tokens for ISSUER and AUDIENCE with a key made for this issuer alone."""

    key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))

    def service_env(self) -> dict[str, str]:
        """The environment that makes a service require tokens of this issuer (httpapi.auth.AuthSettings)."""
        public = self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return {
            "AUTH_ENABLED": "true",
            "AUTH_PUBLIC_KEY": public.decode(),
            "AUTH_ISSUER": ISSUER,
            "AUTH_AUDIENCE": AUDIENCE,
            "AUTH_ALGORITHMS": "ES256",
        }

    def token(self, scopes: str = SCOPE_OPERATOR, customer_id: str | None = None, ttl_seconds: int = 3600) -> str:
        """A bearer token with the space-separated scopes, for customer_id (None: no customer claim), valid for
        ttl_seconds."""
        now = int(time.time())
        claims: dict[str, object] = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": customer_id or "operator",
            "iat": now,
            "exp": now + ttl_seconds,
            "scope": scopes,
        }
        if customer_id is not None:
            claims["customer_id"] = customer_id
        return jwt.encode(claims, self.key, algorithm="ES256")

    def headers(self, scopes: str = SCOPE_OPERATOR, customer_id: str | None = None) -> dict[str, str]:
        """The Authorization header carrying token(scopes, customer_id)."""
        return {"Authorization": f"Bearer {self.token(scopes, customer_id)}"}
