"""`make run` shows the services' output in the terminal as compose does: every line prefixed by its service's
name, the `|` aligned, lines whole, the last line out before stop() returns; the log files keep every byte.

The processes are real (infra.services.ServiceProcess runs tests.integration.chatty_service, a stand-in that
answers the health check and writes to stdout and stderr), so this is the pipe, the pump thread and the shutdown
that `make run` uses, without a broker."""

from __future__ import annotations

import io
from pathlib import Path

from harness.waiting import wait_until
from infra.ports import free_port
from infra.prefixed_output import Terminal
from infra.services import ServiceProcess

NAMES = ("order-service", "fulfillment-service")


def chatty(name: str, terminal: Terminal, logs: Path) -> ServiceProcess:
    return ServiceProcess(
        "tests.integration.chatty_service",
        free_port(),
        {"NAME": name},
        logs / f"{name}.log",
        "/health/live",
        echo=terminal.sink(name),
    )


def test_service_lines_reach_the_terminal_prefixed_and_aligned_and_the_log_file_unchanged(tmp_path: Path) -> None:
    screen = io.StringIO()
    terminal = Terminal(screen, NAMES)
    services = [chatty(name, terminal, tmp_path / "logs") for name in NAMES]
    for service in services:
        service.start(timeout=30)
    try:
        wait_until(
            lambda: all(f"{name} sent" in screen.getvalue() for name in NAMES), 10, message="both services' lines"
        )
    finally:
        for service in services:
            assert service.stop() == 0

    lines = screen.getvalue().splitlines()
    assert {line.index("|") for line in lines} == {len("fulfillment-service  ")}, lines
    for name, service in zip(NAMES, services, strict=True):
        prefix = f"{name:<20} | "
        shown = [line.removeprefix(prefix) for line in lines if line.startswith(prefix)]
        # stdout and stderr, each line whole, in the order written; the line cut off by the exit comes out too,
        # before stop() returned; a byte that is not UTF-8 shows as U+FFFD.
        assert sorted(shown[:2]) == sorted([f"{name} started on stdout", f"{name} warns on stderr"])
        assert shown[2:] == [f"{name} sent \ufffd", f"{name} stopping"]
        assert service.log_file.read_bytes().splitlines()[2:] == [
            f"{name} sent ".encode() + b"\xff",
            f"{name} stopping".encode(),
        ]
    assert len(lines) == 8, "every line once, nothing else"
