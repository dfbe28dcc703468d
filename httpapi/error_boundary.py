"""The last word on an unexpected error: an answer on the same connection, and logs that do not flood.

Starlette's ServerErrorMiddleware answers an unhandled exception with a 500 and then re-raises it, so uvicorn
logs the whole traceback for every request and closes the connection, keep-alive or not. With a full disk
under the database that meant one traceback of about 110 lines per POST and a client pool of dropped
connections. `ErrorBoundary` sits inside that middleware and keeps both out:

* an error of the storage (SQLAlchemy's OperationalError: disk full, I/O error, database locked or
  unreachable; an OSError for a full disk or a failing device) is a condition that passes: 503 with
  `Retry-After`, as RFC 9110 §15.6.4 describes;
* anything else is a 500;
* both as problem+json on the connection the request came on, which stays open;
* each kind of failure (exception type and route) is logged with its traceback once per interval; the
  repeats within the interval are counted and reported in one line when the next one is logged.

An exception after the response started cannot be answered any more; it goes on to the server as before.
"""

from __future__ import annotations

import errno
import logging
from typing import Any

from sqlalchemy.exc import OperationalError
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from httpapi.problems import problem_response
from observability.throttled_log import ThrottledLog

log = logging.getLogger(__name__)

_STORAGE_ERRNOS = {errno.ENOSPC, errno.EIO, errno.EDQUOT, errno.EROFS}


def is_storage_unavailable(exc: BaseException) -> bool:
    """True for errors of the storage that pass with time: the database or its disk, not the request."""
    if isinstance(exc, OperationalError):
        return True
    return isinstance(exc, OSError) and exc.errno in _STORAGE_ERRNOS


class ErrorBoundary:
    """ASGI middleware: unexpected errors become problem+json answers (see the module docstring).

    retry_after_seconds: the Retry-After of a 503; log_interval_seconds: how often each kind is logged.
    """

    def __init__(self, app: ASGIApp, retry_after_seconds: int = 5, log_interval_seconds: float = 60.0) -> None:
        self.app = app
        self.retry_after = retry_after_seconds
        self.errors = ThrottledLog(log, log_interval_seconds)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except ClientDisconnect:
            return  # nobody is listening for an answer
        except Exception as exc:
            if started:
                raise
            await self._answer(exc, scope)(scope, receive, send)

    def _answer(self, exc: Exception, scope: Scope) -> Any:
        route = getattr(scope.get("route"), "path", None) or scope.get("path", "")
        kind = f"{type(exc).__module__}.{type(exc).__qualname__} {scope.get('method')} {route}"
        path = scope.get("path")
        if is_storage_unavailable(exc):
            self.errors.error(kind, f"storage unavailable for {scope.get('method')} {route}", exc)
            return problem_response(
                503,
                "Service Unavailable",
                "The service cannot store data just now; try again later.",
                None,
                path,
                headers={"Retry-After": str(self.retry_after)},
            )
        self.errors.error(kind, f"unexpected error in {scope.get('method')} {route}", exc)
        return problem_response(500, "Internal Server Error", "An unexpected error occurred.", None, path)
