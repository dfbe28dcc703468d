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

import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
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
# The JWKS: kept this long (seconds), so a key the identity provider withdraws stops working within it; fetched
# again for an unknown key id at most every JWKS_REFRESH_SECONDS; after a failed fetch not asked again for
# JWKS_RETRY_SECONDS (tokens of unknown keys are refused meanwhile); a document over MAX_JWKS_BYTES is refused.
JWKS_LIFESPAN_SECONDS = 300
JWKS_REFRESH_SECONDS = 30
JWKS_RETRY_SECONDS = 10
MAX_JWKS_BYTES = 1_048_576
# What verifying a token can raise for a token that is not valid here: pyjwt's own errors (an InvalidKeyError is
# not an InvalidTokenError), and the TypeError/ValueError of a key of another kind than the token's algorithm names.
_REFUSED_TOKEN_ERRORS = (jwt.PyJWTError, TypeError, ValueError)


class AuthSettings(BaseSettings):
    """API authentication, from the environment (AUTH_*). Either jwks_url or public_key is required when enabled.

    AUTH_ENABLED (default false), AUTH_JWKS_URL (the identity provider's JWKS document), AUTH_PUBLIC_KEY (a PEM
    public key, instead of a JWKS), AUTH_ISSUER and AUTH_AUDIENCE (required when enabled: a token of another
    issuer or for another API is refused), AUTH_ALGORITHMS (comma-separated, asymmetric only; default RS256,ES256),
    AUTH_CUSTOMER_CLAIM (default customer_id), AUTH_LEEWAY_SECONDS (default 30), AUTH_JWKS_TIMEOUT_SECONDS
    (default 5).
    """

    model_config = SettingsConfigDict(env_prefix="auth_", extra="ignore", hide_input_in_errors=True)

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
        self._jwks = JWKSClient(settings.jwks_url, settings.jwks_timeout_seconds) if settings.jwks_url else None
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


class JWKSClient(jwt.PyJWKClient):
    """pyjwt's JWKS client with the bounds a service needs (pyjwt's own fetch has none of them):

    * keys live as long as the JWKS document is cached (JWKS_LIFESPAN_SECONDS): no per-key cache, whose entries
      pyjwt never expires (jpadilla/pyjwt#1051), so a withdrawn key stops working within the lifespan;
    * one fetch takes at most about timeout_seconds in all (a server trickling bytes is cut off), reads at most
      MAX_JWKS_BYTES, and follows no redirect;
    * after a failed fetch none is tried for JWKS_RETRY_SECONDS, so a flood of tokens with unknown key ids neither
      hammers a failing identity provider nor waits on it request after request.
    Raises jwt.PyJWKClientConnectionError when the document cannot be had, jwt.PyJWKClientError/PyJWKSetError
    for one that is not a JWK set."""

    def __init__(self, url: str, timeout_seconds: float) -> None:
        super().__init__(
            url,
            cache_keys=False,
            cache_jwk_set=True,
            lifespan=JWKS_LIFESPAN_SECONDS,
            timeout=timeout_seconds,
            cooldown_duration=JWKS_REFRESH_SECONDS,
        )
        self._failed_at: float | None = None

    def fetch_data(self) -> Any:
        """The JWKS document (see the class); cached, as pyjwt's own fetch_data does."""
        if self._failed_at is not None and time.monotonic() - self._failed_at < JWKS_RETRY_SECONDS:
            raise jwt.PyJWKClientConnectionError("the JWKS could not be fetched a moment ago; not asked again yet")
        try:
            payload = self._as_jwk_set_payload(_fetch_bounded(self.uri, self.timeout))
            if self.jwk_set_cache is not None:
                self.jwk_set_cache.put(payload)  # parses the keys: PyJWKSetError when none is usable
        except (httpx.HTTPError, ValueError, TimeoutError) as exc:
            self._failed_at = time.monotonic()
            raise jwt.PyJWKClientConnectionError(f"fetching the JWKS failed: {type(exc).__name__}: {exc}") from exc
        except jwt.PyJWTError:
            self._failed_at = time.monotonic()  # a document without usable keys is a failed fetch too
            raise
        self._failed_at = None
        self._last_successful_fetch = time.monotonic()
        return payload


def _fetch_bounded(url: str, timeout_seconds: float) -> Any:
    """GET url as JSON within about timeout_seconds in all, at most MAX_JWKS_BYTES. Raises httpx.HTTPError,
    TimeoutError, ValueError (too large, not JSON)."""
    deadline = time.monotonic() + timeout_seconds
    body = bytearray()
    with (
        httpx.Client(timeout=timeout_seconds, follow_redirects=False) as client,
        client.stream("GET", url, headers={"Accept": "application/json"}) as response,
    ):
        response.raise_for_status()
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > MAX_JWKS_BYTES:
                raise ValueError(f"the JWKS is larger than {MAX_JWKS_BYTES} bytes")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the JWKS took longer than {timeout_seconds} s")
    return json.loads(body)


def _scopes(claims: dict[str, Any]) -> frozenset[str]:
    scope, scp = claims.get("scope"), claims.get("scp")
    if isinstance(scope, str):
        # RFC 6749 §3.3: scope tokens are separated by spaces (%x20) only; any other character belongs to a token.
        return frozenset(token for token in scope.split(" ") if token)
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
        except _REFUSED_TOKEN_ERRORS as exc:
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
