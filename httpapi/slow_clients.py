"""Deadlines for clients that open a connection and then send nothing, or too little, too slowly.

uvicorn closes an idle keep-alive connection after `timeout_keep_alive`, but has no deadline for a request
that never arrives: a fresh connection that stays silent, a request head sent a byte at a time (slowloris)
or a body that stalls half way each hold a socket and a file descriptor for as long as the client likes, and
a few hundred of them exhaust the process's descriptors so that every other request fails.

`deadline_protocol()` returns uvicorn's httptools protocol with those deadlines added (uvicorn takes a
protocol class as its `http` setting):

* head: the request line and headers must be complete within `head_seconds` of the connection opening or
  of the previous response;
* body: while a body is being read, no gap between its chunks may exceed `body_idle_seconds`.

A connection that sent nothing is closed quietly; one in the middle of a request gets `408 Request Timeout`
(RFC 9110 §15.5.9) as problem+json and is closed.
"""

from __future__ import annotations

import asyncio
import logging
import resource

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from httpapi.json_body import dumps
from httpapi.problems import PROBLEM_JSON

log = logging.getLogger(__name__)


class _DeadlineProtocol(HttpToolsProtocol):
    head_seconds = 10.0
    body_idle_seconds = 30.0

    _deadline: asyncio.TimerHandle | None = None
    _request_started = False
    _reading_body = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.head_seconds)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._reading_body and not self._request_started and self._deadline is None:
            self._arm(self.head_seconds)  # the first bytes of a request after a keep-alive pause
        self._request_started = True
        super().data_received(data)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._reading_body = True
        self._arm(self.body_idle_seconds)

    def on_body(self, body: bytes) -> None:
        super().on_body(body)
        self._arm(self.body_idle_seconds)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._reading_body = False
        self._request_started = False
        self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self._reading_body:
            self._arm(self.head_seconds)

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        responding = self.cycle is not None and self.cycle.response_started and not self.cycle.response_complete
        if responding:
            return  # the request is in; writing the answer is the application's business
        if self._request_started or self._reading_body:
            self._answer_408()
        self.transport.close()

    def _answer_408(self) -> None:
        body = dumps(
            {
                "type": "about:blank",
                "title": "Request Timeout",
                "status": 408,
                "detail": "The request did not arrive in time.",
            }
        )
        head = (
            b"HTTP/1.1 408 Request Timeout\r\ncontent-type: "
            + PROBLEM_JSON.encode()
            + b"\r\ncontent-length: "
            + str(len(body)).encode()
            + b"\r\nconnection: close\r\n\r\n"
        )
        self.transport.write(head + body)


def deadline_protocol(head_seconds: float, body_idle_seconds: float) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol with the two deadlines above, in seconds."""
    return type(
        "DeadlineHttpToolsProtocol",
        (_DeadlineProtocol,),
        {"head_seconds": head_seconds, "body_idle_seconds": body_idle_seconds},
    )


def raise_open_file_limit() -> int:
    """Raise this process's soft limit on open files to its hard limit (each connection holds one);
    returns the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-file limit from %d to %d: %s", soft, hard, exc)
    return soft
