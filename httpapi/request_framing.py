"""Refuses requests whose framing the services do not understand, before any route reads them.

* `Content-Encoding` other than `identity`: the services take no compressed bodies, and reading a gzip body
  as JSON, or a plain body that claims to be gzip, would be a guess: 415 (RFC 9110 §8.4.1, §15.5.16);
* `Transfer-Encoding` with a coding other than `chunked`: 501 (RFC 9112 §6.1);
* a path or query whose percent-escapes do not decode to UTF-8 (RFC 3986 §2.5; `%FF` would otherwise become
  U+FFFD and match nothing by accident): 400;
* a request header of SINGLE_HEADERS given more than once: 400; more than MAX_QUERY_PARAMETERS query
  parameters, or one given more than once: 422 naming it, as every other parameter that breaks its schema.
  Every parameter of the API documents is a single value (arrays are `explode: false`, one comma-separated
  value), and frameworks silently take the last or the first copy (`limit=1&limit=100`), so two copies are
  a request whose meaning is a guess.

Every refusal is problem+json naming the header or part of the URL.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, unquote_to_bytes

from starlette.types import ASGIApp, Receive, Scope, Send

from httpapi.problems import problem_response

_UNPROCESSABLE = "Invalid request"
# No operation of the API documents takes more than a handful of query parameters.
MAX_QUERY_PARAMETERS = 50
# Request headers that carry one value (RFC 9110 §5.3: a field may repeat only if its definition allows a list).
SINGLE_HEADERS = frozenset({b"content-type", b"content-length", b"idempotency-key", b"authorization", b"host"})


class RequestFraming:
    """ASGI middleware applying the rules above."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refusal = _refusal(scope)
            if refusal is not None:
                status, title, field, message = refusal
                response = problem_response(status, title, message, [{"field": field, "message": message}])
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _refusal(scope: Scope) -> tuple[int, str, str, str] | None:
    seen: set[bytes] = set()
    for name, value in scope.get("headers", ()):
        if name in SINGLE_HEADERS:
            if name in seen:
                header = name.decode("latin-1")
                return 400, "Bad Request", header, f"the {header} header is given more than once"
            seen.add(name)
        if name == b"content-encoding":
            codings = {c.strip().lower() for c in value.split(b",")} - {b"identity", b""}
            if codings:
                return 415, "Unsupported Media Type", "Content-Encoding", "encoded bodies are not accepted"
        elif name == b"transfer-encoding":
            codings = {c.strip().lower() for c in value.split(b",")} - {b"chunked", b""}
            if codings:
                return 501, "Not Implemented", "Transfer-Encoding", "only the chunked transfer coding is supported"
    for part, raw in (("path", scope.get("raw_path") or b""), ("query", scope.get("query_string") or b"")):
        try:
            unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8")
        except UnicodeDecodeError:
            return 400, "Bad Request", part, "percent-escapes must decode to UTF-8"
    query = (scope.get("query_string") or b"").decode()
    if query.count("&") >= MAX_QUERY_PARAMETERS:
        return 422, _UNPROCESSABLE, "query", f"more than {MAX_QUERY_PARAMETERS} query parameters"
    seen_names: set[str] = set()
    for name, _ in parse_qsl(query, keep_blank_values=True):
        if name in seen_names:
            return 422, _UNPROCESSABLE, f"query.{name}", f"the query parameter {name} is given more than once"
        seen_names.add(name)
    return None
