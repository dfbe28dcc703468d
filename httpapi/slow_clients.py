"""Bounds for clients that send too little, too slowly, or too much before the application sees a request.

uvicorn closes an idle keep-alive connection after `timeout_keep_alive`, but has no deadline for a request
that never completes and no limit on the size of a request head: a fresh connection that stays silent, a
head sent a byte at a time (slowloris), a body trickled in a byte at a time (R.U.D.Y.) each hold a socket
and a descriptor for as long as the client likes; a head of tens of megabytes costs the parser seconds of
CPU. `bounded_protocol()` returns uvicorn's httptools protocol (uvicorn takes a protocol class as its
`http` setting) with:

* head deadline: the request line and headers complete within `head_seconds` of the connection opening or
  of the previous response;
* head size: at most `max_head_bytes` (431, RFC 6585 §5);
* body deadlines: no gap between body chunks over `body_idle_seconds`, and the whole body within
  `body_seconds`;
* a request the parser refuses (bad framing, invalid characters) gets a problem+json 400 instead of
  uvicorn's plain-text one;
* beyond `max_connections` open connections a request gets 503 at once (uvicorn's own limit answers in
  plain text);
* descriptor headroom: each connection holds a descriptor, and a process out of descriptors can neither
  accept (the event loop then closes new connections at once: libuv's EMFILE handling) nor open its database
  files or broker connections. Beyond `descriptor_cap` open connections (the open-file limit less
  `RESERVED_DESCRIPTORS`) a new connection makes room: the connection that has waited longest for a request
  head (silent, half a head, or idle between requests) is closed, so silent clients can never take the
  descriptors that real clients and the service's own work need.
* pipelined requests (HTTP/1.1, RFC 9112 §9.3.2): a request read while an earlier one on the connection is still
  being answered waits in uvicorn's queue without a head deadline running against it, and when the connection is
  lost the request being answered is told too (uvicorn tells only the newest request on the connection), so its
  application sees `http.disconnect` and its answer is dropped instead of written to a closed transport.

A connection that sent nothing is closed quietly; one in the middle of a request gets `408 Request Timeout`
(RFC 9110 §15.5.9) as problem+json, and is closed.

A refusal (400, 408, 431, 503) is final: the answer is written once, the connection reads and drops whatever
else arrives until it closes, and no parser callback acts after it (the parser may still be inside the chunk that
caused the refusal, and would otherwise go on to the message's end on a request that was never started). Each
refusal is counted by its reason (REFUSAL_REASONS: `malformed`, `head_timeout`, `body_timeout`,
`head_too_large`, `over_connection_limit`) through the protocol's `on_refused` (the services count them in
`orderprocessing_http_requests_refused_total{reason}`, observability.http_metrics) and logged at WARNING from one
place, so the log's per-site limit (observability.log_rate_limit) bounds these lines however many clients are
refused; uvicorn's own "Invalid HTTP request received." line is not written.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import sys
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import ClassVar

import httptools
from starlette.types import ASGIApp
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from httpapi.json_body import dumps
from httpapi.problems import PROBLEM_JSON

log = logging.getLogger(__name__)

LINGER_SECONDS = 2.0
# Descriptors kept free of connections for the service's own work: database files (SQLite: the database, its
# WAL and shared memory, per pooled connection), Kafka and registry connections, logs, the event loop's own.
RESERVED_DESCRIPTORS = 128
SHED_LOG_SECONDS = 60.0
# The services' bounds (httpapi.serve): a head within 10 s, no body pause over 10 s, a whole body within 60 s.
HEAD_SECONDS = 10.0
BODY_IDLE_SECONDS = 10.0
BODY_SECONDS = 60.0

_REASONS = {
    400: b"Bad Request",
    408: b"Request Timeout",
    431: b"Request Header Fields Too Large",
    503: b"Service Unavailable",
}
MALFORMED = "malformed"
HEAD_TIMEOUT = "head_timeout"
BODY_TIMEOUT = "body_timeout"
HEAD_TOO_LARGE = "head_too_large"
OVER_CONNECTION_LIMIT = "over_connection_limit"
REFUSAL_REASONS = (MALFORMED, HEAD_TIMEOUT, BODY_TIMEOUT, HEAD_TOO_LARGE, OVER_CONNECTION_LIMIT)


class _BoundedProtocol(HttpToolsProtocol):
    head_seconds = HEAD_SECONDS
    body_idle_seconds = BODY_IDLE_SECONDS
    body_seconds = BODY_SECONDS
    max_head_bytes = 65_536
    max_connections = 4096
    descriptor_cap = sys.maxsize
    # Per server (each bounded_protocol() class has its own): connections waiting for a request head, the
    # longest waiting first.
    _awaiting_head: ClassVar[OrderedDict[_BoundedProtocol, None]] = OrderedDict()
    _shed = 0
    _shed_logged_at = -SHED_LOG_SECONDS
    on_refused: ClassVar[Callable[[str], None] | None] = None

    _deadline: asyncio.TimerHandle | None = None
    _request_started = False
    _reading_body = False
    _head_bytes = 0
    _parsed_head = 0
    _body_until = 0.0
    _refused = False
    _answering: RequestResponseCycle | None = None  # the request whose application runs (older than self.cycle
    # while a pipelined request waits behind it)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.head_seconds)
        self._awaiting_head[self] = None
        if len(self.connections) > self.descriptor_cap:
            self._make_room()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._awaiting_head.pop(self, None)
        super().connection_lost(exc)
        answering = self._answering
        if answering is not None and answering is not self.cycle and not answering.response_complete:
            answering.disconnected = True
            answering.message_event.set()

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: ASGIApp) -> None:  # type: ignore[override]
        self._answering = cycle
        super()._start_asgi_task(cycle, app)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # after a refusal: read and drop what the client still sends (see _refuse)
        if not self._reading_body:
            if not self._request_started and self._deadline is None:
                self._arm(self.head_seconds)  # the first bytes of a request after a keep-alive pause
            self._request_started = True
            self._head_bytes += len(data)
        self._feed(data)
        # Still in the head after this chunk: every byte counted so far belongs to it.
        head_incomplete = self._request_started and not self._reading_body
        if head_incomplete and self._head_bytes > self.max_head_bytes and not self.transport.is_closing():
            self._refuse(431, HEAD_TOO_LARGE, f"The request head exceeds {self.max_head_bytes} bytes.")

    def _feed(self, data: bytes) -> None:
        """uvicorn's HttpToolsProtocol.data_received, with a request the parser refuses answered by _refuse
        (uvicorn would log a line of its own for each, and then answer)."""
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._refuse(400, MALFORMED, f"The request is not valid HTTP/1.1: {_parser_error(exc)}")
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()

    def on_message_begin(self) -> None:
        if not self._refused:
            super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        if self._refused:
            return
        # Counted from the parser's callbacks too: a head that arrives in one chunk is parsed whole before
        # data_received could look at its size.
        self._parsed_head += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._refused:
            return
        self._parsed_head += len(name) + len(value) + 4  # ": " and CRLF
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._refused:
            return
        self._awaiting_head.pop(self, None)
        if self._parsed_head > self.max_head_bytes:
            self._refuse(431, HEAD_TOO_LARGE, f"The request head exceeds {self.max_head_bytes} bytes.")
            return
        if len(self.connections) > self.max_connections:
            self._refuse(
                503,
                OVER_CONNECTION_LIMIT,
                f"More than {self.max_connections} connections are open; try again shortly.",
            )
            return
        self._reading_body = True
        self._body_until = time.monotonic() + self.body_seconds
        super().on_headers_complete()
        self._arm(self.body_idle_seconds)

    def on_body(self, body: bytes) -> None:
        if self._refused:
            return
        super().on_body(body)
        self._arm(min(self.body_idle_seconds, max(0.0, self._body_until - time.monotonic())))

    def on_message_complete(self) -> None:
        if self._refused:
            return
        super().on_message_complete()
        self._reading_body = False
        self._request_started = False
        self._head_bytes = 0
        self._parsed_head = 0
        self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        busy = self.cycle is not None and not self.cycle.response_complete  # a pipelined request went on
        if not self._refused and not self._reading_body and not busy and not self.transport.is_closing():
            self._arm(self.head_seconds)
            self._awaiting_head.pop(self, None)
            self._awaiting_head[self] = None  # waits for the next head from now on

    def _make_room(self) -> None:
        """Close the connection that has waited longest for a request head (not this new one). When every other
        connection is busy with a request, nothing is closed: this one goes on (and gets 503 beyond
        max_connections)."""
        awaiting = type(self)._awaiting_head
        for victim in list(awaiting):
            if victim is self:
                return
            del awaiting[victim]
            if not victim.transport.is_closing():
                victim._disarm()
                victim.transport.close()
                self._count_shed()
                return

    def _count_shed(self) -> None:
        cls = type(self)
        cls._shed += 1
        now = time.monotonic()
        if now - cls._shed_logged_at >= SHED_LOG_SECONDS:
            cls._shed_logged_at = now
            log.warning(
                "more than %d connections open (open-file limit less %d kept for the service): closed the one "
                "waiting longest for a request head; %d closed so since start",
                self.descriptor_cap,
                RESERVED_DESCRIPTORS,
                cls._shed,
            )

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if self._refused or self.transport.is_closing():
            return
        if self.cycle is not None and self.cycle.response_started and not self.cycle.response_complete:
            return  # the request is in; writing the answer is the application's business
        if self._reading_body:
            self._refuse(408, BODY_TIMEOUT, "The request did not arrive in time.")
        elif self._request_started:
            self._refuse(408, HEAD_TIMEOUT, "The request did not arrive in time.")
        else:
            self.transport.close()

    def _refuse(self, status: int, reason: str, detail: str) -> None:
        """Answer status as problem+json and close, unless the application already started answering; count
        and log the refusal under reason (one of REFUSAL_REASONS). Only the first call on a connection acts.

        The close lingers: the answer is followed by a FIN, and what the client still sends is read and
        dropped for LINGER_SECONDS. Closing at once with unread data makes the kernel reset the connection,
        and a client still sending its oversized head would lose the answer with it.
        """
        if self._refused:
            return
        self._refused = True
        self._disarm()
        self._awaiting_head.pop(self, None)
        self._report_refusal(status, reason)
        if self.transport.is_closing():
            return
        if self.cycle is not None and self.cycle.response_started:
            self.transport.close()
            return
        if self.cycle is not None:
            self.cycle.disconnected = True  # the application gets http.disconnect, and its answer is dropped
            self.cycle.message_event.set()
        title = _REASONS[status]
        body = dumps({"type": "about:blank", "title": title.decode(), "status": status, "detail": detail})
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
            % (status, title, PROBLEM_JSON.encode(), len(body))
            + body
        )
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)

    def _report_refusal(self, status: int, reason: str) -> None:
        counted = type(self).on_refused
        if counted is not None:
            counted(reason)
        client = f"{self.client[0]}:{self.client[1]}" if self.client else None
        log.warning(
            "request refused before the application: %d %s",
            status,
            reason,
            extra={"status": status, "reason": reason, "client": client},
        )


def _parser_error(exc: Exception) -> str:
    """The parser's reason for refusing a request (httptools: "Invalid method encountered"), without the bytes
    of the request it may quote."""
    return str(exc).split(":", 1)[0][:100] or type(exc).__name__


def bounded_protocol(
    head_seconds: float,
    body_idle_seconds: float,
    body_seconds: float,
    max_head_bytes: int = 65_536,
    max_connections: int = 4096,
    open_files: int | None = None,
    on_refused: Callable[[str], None] | None = None,
) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol with the bounds above (seconds, bytes), answering 503 to requests
    arriving while more than max_connections connections are open (one descriptor each). With open_files
    (the process's open-file limit), beyond open_files - RESERVED_DESCRIPTORS connections the one waiting
    longest for a request head is closed to make room for a new one. on_refused(reason) is called for each
    refused request (reason: one of REFUSAL_REASONS)."""
    limited = open_files is not None and 0 < open_files != resource.RLIM_INFINITY
    cap = max(1, open_files - RESERVED_DESCRIPTORS) if limited and open_files is not None else sys.maxsize
    return type(
        "BoundedHttpToolsProtocol",
        (_BoundedProtocol,),
        {
            "head_seconds": head_seconds,
            "body_idle_seconds": body_idle_seconds,
            "body_seconds": body_seconds,
            "max_head_bytes": max_head_bytes,
            "max_connections": max_connections,
            "descriptor_cap": cap,
            "_awaiting_head": OrderedDict(),
            "_shed": 0,
            "_shed_logged_at": -SHED_LOG_SECONDS,
            "on_refused": staticmethod(on_refused) if on_refused is not None else None,
        },
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
