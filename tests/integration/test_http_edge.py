"""The HTTP edge as a client meets it on a real server: slow and silent clients time out, errors are
answered on the connection they came on, and logs do not flood."""

from __future__ import annotations

import http.client
import json
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.waiting import wait_until
from infra.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
HEAD_SECONDS = 1.0
BODY_IDLE_SECONDS = 1.0
BODY_SECONDS = 3.0
MAX_CONNECTIONS = 50


def _serve(
    port: int,
    log: Path,
    open_files: int | None = None,
    head_seconds: float = HEAD_SECONDS,
    max_connections: int = MAX_CONNECTIONS,
) -> subprocess.Popen[bytes]:
    def limit() -> None:
        if open_files is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))

    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.integration.edge_app",
            *map(str, (port, head_seconds, BODY_IDLE_SECONDS, BODY_SECONDS, max_connections)),
        ],
        cwd=ROOT,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        preexec_fn=limit,
    )
    wait_until(lambda: _answers(port), 30, message="the edge app to listen")
    return process


def _answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/ok", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def edge(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    port = free_port()
    log = tmp_path / "edge.log"
    process = _serve(port, log)
    try:
        yield port, log
    finally:
        process.terminate()
        process.wait(10)


def _read_until_closed(conn: socket.socket, timeout: float) -> bytes:
    conn.settimeout(timeout)
    chunks = []
    while chunk := conn.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_a_silent_connection_is_closed_after_the_head_deadline(edge):
    port, _ = edge
    with socket.create_connection(("127.0.0.1", port)) as conn:
        started = time.monotonic()
        assert _read_until_closed(conn, timeout=10) == b""
        assert HEAD_SECONDS * 0.8 <= time.monotonic() - started < HEAD_SECONDS + 3


@pytest.mark.parametrize(
    "partial",
    [
        b"GET /ok HTTP/1.1\r\nHost: x\r\nX-Slow: ",  # a head that never ends (slowloris)
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
    ],
)
def test_a_request_that_stalls_gets_408_and_is_closed(edge, partial):
    port, _ = edge
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.sendall(partial)
        started = time.monotonic()
        answer = _read_until_closed(conn, timeout=10)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
    assert b"application/problem+json" in answer
    assert time.monotonic() - started < max(HEAD_SECONDS, BODY_IDLE_SECONDS) + 3


def test_a_body_that_keeps_coming_is_not_cut_off(edge):
    port, _ = edge
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 4\r\n\r\n")
        for byte in b"abcd":  # every chunk within the idle deadline, the whole longer than it
            time.sleep(BODY_IDLE_SECONDS / 2)
            conn.sendall(bytes([byte]))
        assert _read_until_closed(conn, timeout=10).startswith(b"HTTP/1.1 200")


def test_errors_are_answered_on_the_same_connection_and_logged_once(edge):
    port, log = edge
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.connect()
    first_socket = conn.sock
    try:
        for _ in range(50):
            for path, status in (("/storage", 503), ("/boom", 500), ("/ok", 200)):
                conn.request("GET", path)
                response = conn.getresponse()
                response.read()
                assert response.status == status
                assert not response.will_close  # the server keeps the connection
                if status == 503:
                    assert response.getheader("retry-after") == "5"
                    assert response.getheader("content-type").startswith("application/problem+json")
        assert conn.sock is first_socket  # one connection served every request
    finally:
        conn.close()
    text = log.read_text()
    assert text.count("Traceback") == 2, text[-3000:]  # one per kind of failure, not one per request
    assert "Exception in ASGI application" not in text


def _exchange(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.sendall(request)
        return _read_until_closed(conn, timeout=10)


POST_ECHO = b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"


def _problem_status(answer: bytes) -> int:
    head, _, _ = answer.partition(b"\r\n\r\n")
    assert b"application/problem+json" in head.lower(), answer[:300]
    return int(head.split(b" ", 2)[1])


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /ok HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 2_000_000 + b"\r\n\r\n", 431),
        (b"GET /ok HTTP/1.1\r\nHost: x\r\n" + b"X-Many: 1\r\n" * 100_000 + b"\r\n", 431),
        (b"GET /ok HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n", 431),  # parsed in one chunk
        (b"GET /ok?" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 431),
        (b"GET /ok?limit=1&limit=2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 422),
        (b"GET /ok?" + b"&".join(b"a%d=1" % i for i in range(8000)) + b" HTTP/1.1\r\nHost: x\r\n\r\n", 422),
        (POST_ECHO + b"Idempotency-Key: a1\r\nIdempotency-Key: b2\r\nContent-Length: 2\r\n\r\n{}", 400),
        (b"GET /\xf0\x9f\x91\xbd HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"GET /ok HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400),
        (b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
        (POST_ECHO + b"Content-Encoding: gzip\r\nContent-Length: 2\r\n\r\n{}", 415),
        (POST_ECHO + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),
        (b"GET /ok?customerId=%FF%FE HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 400),
        (b"GET /%FF HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 400),
        (b"GET /ok/ HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n", 404),
    ],
)
def test_requests_the_edge_refuses_get_a_problem_answer(edge, request_bytes, status):
    port, _ = edge
    started = time.process_time()
    answer = _exchange(port, request_bytes)
    assert _problem_status(answer) == status, answer[:300]
    assert b"evil.example" not in answer
    assert time.process_time() - started < 1


def test_a_websocket_upgrade_is_an_ordinary_request(edge):
    port, _ = edge
    answer = _exchange(
        port,
        b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, close\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]


def test_a_body_trickled_within_the_idle_deadline_still_ends_at_the_body_deadline(edge):
    port, _ = edge
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
        started = time.monotonic()
        answer = b""
        conn.settimeout(BODY_IDLE_SECONDS / 2)
        while not answer and time.monotonic() - started < BODY_SECONDS + 5:
            try:
                conn.sendall(b" ")
                answer = conn.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
    assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
    assert BODY_SECONDS * 0.8 < time.monotonic() - started < BODY_SECONDS + 3


def test_requests_beyond_the_connection_limit_get_503_at_once(edge):
    port, _ = edge
    held = [socket.create_connection(("127.0.0.1", port)) for _ in range(MAX_CONNECTIONS + 5)]
    try:
        answer = _exchange(port, b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert _problem_status(answer) == 503
    finally:
        for conn in held:
            conn.close()
    wait_until(lambda: _answers(port), 10, message="requests served again once the connections closed")


def test_silent_connections_beyond_the_open_file_limit_do_not_lock_out_others(tmp_path):
    port = free_port()
    process = _serve(port, tmp_path / "edge.log", open_files=256)
    silent: list[socket.socket] = []
    try:
        for _ in range(300):  # more than the process can hold open at once
            try:
                silent.append(socket.create_connection(("127.0.0.1", port), timeout=2))
            except OSError:
                break
        started = time.monotonic()
        wait_until(lambda: _answers(port), HEAD_SECONDS + 10, interval=0.2, message="a normal request served")
        assert time.monotonic() - started < HEAD_SECONDS + 10
    finally:
        for conn in silent:
            conn.close()
        process.terminate()
        process.wait(10)


def test_silent_connections_never_take_the_descriptors_others_and_the_service_need(tmp_path):
    # A head deadline far beyond the test: only making room can free the silent connections' descriptors.
    port = free_port()
    process = _serve(port, tmp_path / "edge.log", open_files=256, head_seconds=60, max_connections=4096)
    silent: list[socket.socket] = []
    try:
        for _ in range(300):  # more than the process can hold open at once
            silent.append(socket.create_connection(("127.0.0.1", port), timeout=2))
            silent[-1].sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\n" if len(silent) % 3 == 0 else b"")
        started = time.monotonic()
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            assert client.get("/ok").status_code == 200
            assert client.get("/file").status_code == 200  # the service can still open files
        assert time.monotonic() - started < 2
        open_silent = 0
        for conn in silent:
            conn.settimeout(0.001)
            try:
                open_silent += conn.recv(1) != b""
            except TimeoutError:
                open_silent += 1
            except OSError:
                pass
        assert 0 < open_silent < 256  # the oldest were closed to make room, the newest held
    finally:
        for conn in silent:
            conn.close()
        process.terminate()
        process.wait(10)


def _refused_counts(port: int) -> dict[str, float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    counts = {}
    for line in text.splitlines():
        if line.startswith("orderprocessing_http_requests_refused_total{"):
            labels, value = line.rsplit(" ", 1)
            counts[labels.split('reason="', 1)[1].split('"', 1)[0]] = float(value)
    return counts


def test_a_refusal_is_final_counted_by_reason_and_logged_within_the_limit(edge):
    port, log = edge
    too_large = b"GET /ok HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 66_000 + b"\r\n\r\n"
    for _ in range(20):
        assert _exchange(port, too_large).startswith(b"HTTP/1.1 431")
    for request in (b"get /ok HTTP/1.1\r\nHost: x\r\n\r\n", b"GET /ok HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n"):
        assert _exchange(port, request).startswith(b"HTTP/1.1 400")
    with socket.create_connection(("127.0.0.1", port)) as conn:  # half a head: 408 at the head deadline
        conn.sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\n")
        assert _read_until_closed(conn, timeout=10).startswith(b"HTTP/1.1 408")
    # A refusal followed by more requests on the same connection: answered once, nothing after it.
    answer = _exchange(port, too_large + b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n" * 3)
    assert answer.count(b"HTTP/1.1 ") == 1 and answer.startswith(b"HTTP/1.1 431")

    counts = _refused_counts(port)
    assert counts == {
        "malformed": 2,
        "head_timeout": 1,
        "body_timeout": 0,
        "head_too_large": 21,
        "over_connection_limit": 0,
    }
    text = log.read_text()
    for failure in ("Traceback", "Fatal error", "AttributeError", "write_eof", "Invalid HTTP request received"):
        assert failure not in text, text[-3000:]
    refusals = [json.loads(line) for line in text.splitlines() if "request refused before the application" in line]
    assert 1 <= len(refusals) <= 10  # 24 refusals, one place in the code: ten lines a minute
    assert {line["reason"] for line in refusals} <= set(counts) and refusals[0]["level"] == "warning"
