"""The hostile-client drivers of the chaos runs measure what a server does to them: against a small asyncio
server that closes silent connections, answers stalled heads with 408 and holds long polls for their timeout."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest

from chaos.clients import HeldWave, hold_connections, long_poll_flood, run_driver_apart, watch_process
from harness.load.records import CONNECTION_ERROR

DEADLINE_S = 0.3


async def _edge(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Closes a connection silent for DEADLINE_S, answers a head not complete by then with 408."""
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), DEADLINE_S)
    except asyncio.IncompleteReadError:
        head = None
    except TimeoutError:
        if reader._buffer:  # type: ignore[attr-defined]  # part of a head arrived
            writer.write(b"HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n")
        writer.close()
        return
    if head is None:
        writer.close()
        return
    target = head.split(b" ")[1].decode()
    await _answer(target, writer)
    writer.close()


async def _answer(target: str, writer: asyncio.StreamWriter) -> None:
    parts = urlsplit(target)
    query = parse_qs(parts.query)
    await asyncio.sleep(float(query["timeout"][0]))
    body = orjson.dumps({"orderId": parts.path.rsplit("/", 1)[1], "status": "Fulfilled"})
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body))
    await writer.drain()


async def _with_server(client: Callable[[int], Awaitable[object]]) -> object:
    server = await asyncio.start_server(_edge, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        return await client(port)


def test_silent_and_half_sent_connections_record_when_and_how_the_server_closed_them() -> None:
    wave = asyncio.run(_with_server(lambda port: hold_connections("127.0.0.1", port, 8, 4, give_up_s=5)))
    assert isinstance(wave, HeldWave)
    assert len(wave.connections) == 12 and not wave.connect_errors and wave.still_open == 0
    assert sum(c.partial for c in wave.connections) == 4
    assert {c.status for c in wave.connections if c.partial} == {408}
    assert {c.status for c in wave.connections if not c.partial} == {None}
    assert all(DEADLINE_S * 0.8 <= (c.closed_after_s or 0) < DEADLINE_S + 1 for c in wave.connections)
    assert wave.closed_within(DEADLINE_S + 1) == 12


def test_connections_the_server_never_closes_are_reported_still_open() -> None:
    async def run() -> HeldWave:
        async def keep(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read()  # until the client closes
            # Since Python 3.12 leaving `async with server` waits for every connection's transport to close, and
            # after the client's FIN the server side stays half-open until closed here.
            writer.close()

        server = await asyncio.start_server(keep, "127.0.0.1", 0)
        async with server:
            started = time.monotonic()
            wave = await hold_connections("127.0.0.1", server.sockets[0].getsockname()[1], 3, 1, give_up_s=0.3)
            assert time.monotonic() - started < 3
            return wave

    wave = asyncio.run(run())
    assert wave.still_open == 4 and wave.closed_within(10) == 0


def test_a_long_poll_flood_keeps_every_client_busy_and_times_each_poll() -> None:
    polls = asyncio.run(
        _with_server(
            lambda port: long_poll_flood("127.0.0.1", port, ["a", "b", "c"], 20, "Pending", 0.2, duration_s=0.5)
        )
    )
    assert isinstance(polls, list)
    assert len(polls) >= 20 * 2  # each client polled again after its first answer
    assert {p.status for p in polls} == {200} and {p.order_status for p in polls} == {"Fulfilled"}
    assert {p.order_id for p in polls} == {"a", "b", "c"}
    assert all(0.2 <= p.elapsed_s < 1.2 for p in polls)


def test_a_flood_against_no_server_records_connection_errors() -> None:
    async def run() -> object:
        server = await asyncio.start_server(_edge, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        return await long_poll_flood("127.0.0.1", port, ["a"], 2, "Pending", 0.1, duration_s=0.2)

    polls = asyncio.run(run())
    assert isinstance(polls, list) and polls
    assert {p.status for p in polls} == {CONNECTION_ERROR}


def test_a_flood_needs_orders() -> None:
    with pytest.raises(ValueError):
        asyncio.run(long_poll_flood("127.0.0.1", 1, [], 1, "Pending", 0.1, 0.1))


def test_process_watch_measures_cpu_and_descriptors() -> None:
    with watch_process(os.getpid(), interval_s=0.01) as usage:
        deadline = time.process_time() + 0.2
        while time.process_time() < deadline:
            pass
    assert usage.cpu_seconds >= 0.15
    assert 0 < usage.cpu_percent <= 100 * (os.cpu_count() or 1)
    assert usage.peak_open_files > 0


def test_a_driver_runs_apart_in_a_child_process_and_returns_its_result() -> None:
    polls = run_driver_apart(long_poll_flood, "127.0.0.1", 9, ["a"], 1, "Pending", 0.1, 0.1)  # nothing listens
    assert polls and {p.status for p in polls} == {CONNECTION_ERROR}
    with pytest.raises(ValueError):
        run_driver_apart(long_poll_flood, "127.0.0.1", 9, [], 1, "Pending", 0.1, 0.1)
