"""OAuth 2.0 bearer-token authentication of API requests (RFC 6750) with JWT access tokens (RFC 9068).

Off unless AUTH_ENABLED is true. A request then needs `Authorization: Bearer <JWT>`: a token signed with a key of
the configured JWKS (AUTH_JWKS_URL, keys cached and refetched when a token names an unknown key id) or with the
configured public key (AUTH_PUBLIC_KEY, PEM), by an asymmetric algorithm (AUTH_ALGORITHMS; never `none` or an HMAC
one, so a public key can never be used as a shared secret), with the configured issuer (`iss`) and audience
(`aud`), unexpired (`exp` required, AUTH_LEEWAY_SECONDS of clock skew). Scopes come from the `scope` claim
(space-separated, RFC 9068 §2.2.3) or an `scp` list. A token with the customer claim (AUTH_CUSTOMER_CLAIM, default
`customer_id`) acts for that customer only; the operator scope acts for every customer.

Refusals are problem+json with `WWW-Authenticate` (RFC 6750 §3): 401 `invalid_token` for a missing, malformed,
badly signed, expired or foreign token (no detail on which, to a client), 403 `insufficient_scope` for a valid
token without the scope the operation needs. The reason is logged at INFO for operators.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import jwt
from fastapi import Request
from pydantic import SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.concurrency import run_in_threadpool

from httpapi.problems import ProblemError

log = logging.getLogger(__name__)

SCOPE_READ = "orders:read"
SCOPE_WRITE = "orders:write"
SCOPE_OPERATOR = "orders:operator"
ASYMMETRIC_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
# Longest Authorization header value read; a JWT of a real identity provider is a few kilobytes.
MAX_TOKEN_CHARS = 16_384


class AuthSettings(BaseSettings):
    """API authentication, from the environment (AUTH_*). Either jwks_url or public_key is required when enabled.

    AUTH_ENABLED (default false), AUTH_JWKS_URL (the identity provider's JWKS document), AUTH_PUBLIC_KEY (a PEM
    public key, instead of a JWKS), AUTH_ISSUER and AUTH_AUDIENCE (required when enabled: a token of another
    issuer or for another API is refused), AUTH_ALGORITHMS (comma-separated, asymmetric only; default RS256,ES256),
    AUTH_CUSTOMER_CLAIM (default customer_id), AUTH_LEEWAY_SECONDS (default 30), AUTH_JWKS_TIMEOUT_SECONDS
    (default 5).
    """

    model_config = SettingsConfigDict(env_prefix="auth_", extra="ignore")

    enabled: bool = False
    jwks_url: str | None = None
    public_key: SecretStr | None = None
    issuer: str | None = None
    audience: str | None = None
    algorithms: str = "RS256,ES256"
    customer_claim: str = "customer_id"
    leeway_seconds: float = 30.0
    jwks_timeout_seconds: float = 5.0

    @field_validator("algorithms")
    @classmethod
    def _asymmetric_only(cls, value: str) -> str:
        names = [name.strip() for name in value.split(",") if name.strip()]
        refused = [name for name in names if name not in ASYMMETRIC_ALGORITHMS]
        if not names or refused:
            raise ValueError(f"AUTH_ALGORITHMS: only {', '.join(ASYMMETRIC_ALGORITHMS)} (refused: {refused})")
        return ",".join(names)

    def check(self) -> None:
        """Raise ValueError naming the setting that is missing when authentication is enabled."""
        if not self.enabled:
            return
        if not self.jwks_url and self.public_key is None:
            raise ValueError("AUTH_ENABLED is true but neither AUTH_JWKS_URL nor AUTH_PUBLIC_KEY is set")
        for name in ("issuer", "audience"):
            if not getattr(self, name):
                raise ValueError(f"AUTH_ENABLED is true but AUTH_{name.upper()} is not set")


@dataclass(frozen=True)
class Principal:
    """Who a request acts for: the token's subject, its scopes, and the customer it is limited to (None for an
    operator, or when authentication is off: every customer)."""

    subject: str | None
    scopes: frozenset[str]
    customer_id: str | None

    def may_see(self, customer_id: str) -> bool:
        """Whether this principal acts for customer_id."""
        return self.customer_id is None or self.customer_id == customer_id


ANONYMOUS = Principal(None, frozenset({SCOPE_READ, SCOPE_WRITE, SCOPE_OPERATOR}), None)


class TokenVerifier:
    """Verifies bearer tokens as AuthSettings describe; build once per service (it caches the JWKS)."""

    def __init__(self, settings: AuthSettings) -> None:
        settings.check()
        self._settings = settings
        self._algorithms = settings.algorithms.split(",")
        self._jwks = (
            jwt.PyJWKClient(settings.jwks_url, cache_keys=True, lifespan=300, timeout=settings.jwks_timeout_seconds)
            if settings.jwks_url
            else None
        )
        self._key = settings.public_key.get_secret_value() if settings.public_key is not None else None

    def verify(self, token: str) -> Principal:
        """The principal of a valid token. Raises jwt.InvalidTokenError (or jwt.PyJWKClientError for a key the
        JWKS does not have or cannot be fetched) for any other. Blocking when the JWKS must be fetched."""
        key: Any = self._jwks.get_signing_key_from_jwt(token).key if self._jwks is not None else self._key
        claims = jwt.decode(
            token,
            key,
            algorithms=self._algorithms,
            audience=self._settings.audience,
            issuer=self._settings.issuer,
            leeway=self._settings.leeway_seconds,
            options={"require": ["exp", "iss", "aud"]},
        )
        customer = claims.get(self._settings.customer_claim)
        scopes = _scopes(claims)
        if SCOPE_OPERATOR not in scopes and not (isinstance(customer, str) and customer):
            raise jwt.InvalidTokenError(f"no {self._settings.customer_claim} claim and no {SCOPE_OPERATOR} scope")
        subject = claims.get("sub")
        return Principal(
            subject if isinstance(subject, str) else None,
            scopes,
            None if SCOPE_OPERATOR in scopes else customer,
        )


def _scopes(claims: dict[str, Any]) -> frozenset[str]:
    scope, scp = claims.get("scope"), claims.get("scp")
    if isinstance(scope, str):
        return frozenset(scope.split())
    if isinstance(scp, list) and all(isinstance(item, str) for item in scp):
        return frozenset(scp)
    return frozenset()


def unauthorized(error: str | None = None) -> ProblemError:
    """401 with the RFC 6750 challenge; error (`invalid_token`) when a token was sent."""
    challenge = f'Bearer realm="orders", error="{error}"' if error else 'Bearer realm="orders"'
    return ProblemError(
        401,
        "Unauthorized",
        "A valid bearer token is required.",
        [{"field": "Authorization", "message": "missing or invalid bearer token"}],
        headers={"WWW-Authenticate": challenge},
    )


def forbidden(scope: str) -> ProblemError:
    """403 insufficient_scope naming the scope the operation needs (RFC 6750 §3.1)."""
    return ProblemError(
        403,
        "Forbidden",
        f"The token lacks the scope {scope}.",
        [{"field": "Authorization", "message": f"scope {scope} required"}],
        headers={"WWW-Authenticate": f'Bearer realm="orders", error="insufficient_scope", scope="{scope}"'},
    )


def requires(verifier: TokenVerifier | None, scope: str) -> Callable[[Request], Awaitable[Principal]]:
    """A FastAPI dependency answering the request's principal, refusing (401/403) a request without a valid token
    carrying scope (or operator scope). Without a verifier (authentication off) every request is ANONYMOUS."""

    async def principal(request: Request) -> Principal:
        if verifier is None:
            return ANONYMOUS
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if not header:
            raise unauthorized()
        if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_CHARS:
            log.info("request refused: not a bearer token", extra={"reason": "malformed Authorization header"})
            raise unauthorized("invalid_token")
        try:
            found = await run_in_threadpool(verifier.verify, token)
        except (jwt.InvalidTokenError, jwt.PyJWKClientError) as exc:
            log.info("request refused: invalid bearer token", extra={"reason": f"{type(exc).__name__}: {exc}"[:300]})
            raise unauthorized("invalid_token") from exc
        if scope not in found.scopes and SCOPE_OPERATOR not in found.scopes:
            raise forbidden(scope)
        return found

    return principal


def verifier_from(settings: AuthSettings) -> TokenVerifier | None:
    """The verifier settings ask for; None when authentication is off. Raises ValueError naming a missing
    setting."""
    return TokenVerifier(settings) if settings.enabled else None
