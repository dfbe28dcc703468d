"""Work done for a client only while it is connected: a long poll ends when its client goes away.

A request handler that waits (a long poll) would otherwise wait out its whole timeout for a client that closed its
connection, holding its waiter and re-reads, and be logged as answered; since the connection is gone, no limit on
connections bounds how many such requests one client leaves behind. The ASGI HTTP spec
(https://asgi.readthedocs.io/en/latest/specs/www.html#disconnect-receive-event) says receive() returns
`http.disconnect` once the client is gone; uvicorn does so as soon as it sees the connection closed or reset.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any, TypeVar

from starlette.requests import ClientDisconnect, Request

T = TypeVar("T")


async def unless_client_leaves(request: Request, work: Coroutine[Any, Any, T]) -> T:
    """work's result, unless request's client disconnects first: then work is cancelled (its cleanup runs) and
    starlette's ClientDisconnect raised, which httpapi.error_boundary turns into no answer (logged and counted as
    499, observability.http_metrics).

    For a request whose body was read already or that has none (a GET; a body sent anyway is read and dropped,
    and an error reading it, such as httpapi.body_limit's for one over the limit, is raised instead). work runs
    as a task in a copy of the current context (log fields, the request's span).
    """
    task = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait((task, gone), return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        gone.cancel()
    if task.cancelled():
        if gone.done() and not gone.cancelled() and (refused := gone.exception()) is not None:
            raise refused  # reading the request failed (a body over the limit): answered as any such failure
        raise ClientDisconnect
    return task.result()


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass  # a GET's empty body; the next message is the disconnect
