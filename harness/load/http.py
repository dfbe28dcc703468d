"""A minimal keep-alive HTTP/1.1 client over httptools: requests as prepared bytes, answers as status codes.

Small and cheap on purpose: the generator must not be what limits or blurs a measurement. A connection
carries one request at a time (no pipelining); the pool hands connections out in arrival order.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Mapping

import httptools

# A server closes a connection idle for its keep-alive timeout (uvicorn's default, which the services keep: 5 s);
# a request written at that moment is lost with the connection (RFC 9112 §9.3.1 leaves the retry to the client).
# The pool retires connections idle for less than that, as HTTP clients' "keep-alive expiry" does.
KEEPALIVE_EXPIRY_SECONDS = 3.0


def build_request(host: str, path: str, body: bytes, headers: Mapping[str, str] | None = None) -> bytes:
    """The bytes of a JSON POST to path on host (``host:port``), with any extra headers."""
    extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n{extra}"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def build_get(host: str, target: str) -> bytes:
    """The bytes of a keep-alive GET of target (path and query, already percent-encoded) on host (``host:port``)."""
    return f"GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()


class Connection(asyncio.Protocol):
    """One keep-alive connection with at most one request outstanding; only the status is read."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        # httptools looks up the callbacks (on_body, ...) here, once: subclasses may add more.
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[int] | None = None
        self._keep_alive = True
        self.idle_since = time.monotonic()  # when the pool last got it back (time.monotonic)

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """asyncio: the socket is open; keep its transport for send."""
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        """asyncio: feed response bytes to the parser; a malformed response fails the request and closes."""
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionError(f"bad response: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        """asyncio: the socket closed; an outstanding request fails with ConnectionError."""
        self.closed = True
        self._fail(ConnectionError(str(exc) if exc else "connection closed"))

    # httptools callback
    def on_message_complete(self) -> None:
        """httptools: a whole response arrived; resolve the request with its status, close unless keep-alive."""
        self._keep_alive = self._parser.should_keep_alive()
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(self._parser.get_status_code())
        if not self._keep_alive:
            self.close()

    def send(self, request: bytes) -> asyncio.Future[int]:
        """Write a request; the future gets the response status (ConnectionError if the connection dies)."""
        assert self.transport is not None and self._waiter is None
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return self._waiter

    def close(self) -> None:
        """Close the connection; an answer still outstanding fails with ConnectionError."""
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _fail(self, exc: Exception) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)


class ReadingConnection(Connection):
    """A connection that also keeps the last response's body and whether it was an idempotent replay."""

    def __init__(self) -> None:
        super().__init__()
        self.body = b""  # of the last complete response
        self.replayed = False  # its Idempotent-Replayed header was "true"
        self._chunks: list[bytes] = []

    def on_message_begin(self) -> None:
        """httptools: a new response starts; forget the last one's body and replay flag."""
        self._chunks = []
        self.replayed = False

    def on_header(self, name: bytes, value: bytes) -> None:
        """httptools: one response header; only Idempotent-Replayed is kept."""
        if name.lower() == b"idempotent-replayed":
            self.replayed = value.strip().lower() == b"true"

    def on_body(self, body: bytes) -> None:
        """httptools: one chunk of the response body."""
        self._chunks.append(body)

    def on_message_complete(self) -> None:
        """httptools: the response is whole; keep its body, then resolve the request as Connection does."""
        self.body = b"".join(self._chunks)
        super().on_message_complete()


class Pool:
    """Up to size connections to host:port; requests beyond that wait in arrival order for one to come free.

    A connection idle for KEEPALIVE_EXPIRY_SECONDS is closed rather than reused (the server may be closing it).
    """

    def __init__(self, host: str, port: int, size: int, protocol: Callable[[], Connection] = Connection) -> None:
        self._host = host
        self._port = port
        self._size = size
        self._protocol = protocol
        self._idle: list[Connection] = []
        self._waiters: deque[asyncio.Future[Connection | None]] = deque()
        self.open = 0
        self.opened_total = 0

    async def _connect(self) -> Connection:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(self._protocol, self._host, self._port)
        self.opened_total += 1
        return conn

    async def prewarm(self, count: int) -> None:
        """Open up to count connections now (in slices of 200, so the server's accept backlog copes)."""
        count = min(count, self._size)
        for start in range(0, count, 200):
            batch = min(200, count - start)
            self.open += batch
            results = await asyncio.gather(*(self._connect() for _ in range(batch)), return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException):
                    self.open -= 1
                else:
                    self._idle.append(result)

    async def acquire(self) -> Connection:
        """A connection of the caller's own: an idle one, a new one, or the next to come free.

        Raises OSError when a new connection cannot be opened.
        """
        while True:
            while self._idle:
                conn = self._idle.pop()
                if not conn.closed and time.monotonic() - conn.idle_since < KEEPALIVE_EXPIRY_SECONDS:
                    return conn
                conn.close()
                self.open -= 1
            if self.open < self._size:
                self.open += 1
                try:
                    return await self._connect()
                except BaseException:
                    self.open -= 1
                    self._hand_over(None)
                    raise
            waiter: asyncio.Future[Connection | None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                conn = await waiter
            except asyncio.CancelledError:
                # Timed out in the queue; a connection handed over in the same tick must not leak.
                if waiter.done() and not waiter.cancelled() and waiter.result() is not None:
                    self.release(waiter.result())  # type: ignore[arg-type]
                raise
            if conn is not None:
                return conn
            # None: a slot came free (a connection died); loop round and open one.

    def release(self, conn: Connection) -> None:
        """Give a connection back (a closed one frees its slot)."""
        if conn.closed:
            self.open -= 1
            self._hand_over(None)
        else:
            self._hand_over(conn)

    def _hand_over(self, conn: Connection | None) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        if conn is not None:
            conn.idle_since = time.monotonic()
            self._idle.append(conn)

    def close(self) -> None:
        """Close every idle connection."""
        for conn in self._idle:
            conn.close()
        self._idle.clear()
