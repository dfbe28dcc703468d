"""A stand-in service process for tests of how a service's output is shown (`python -m
tests.integration.chatty_service`): it answers GET /health/live on HOST:PORT like the services, writes a line to
stdout and one to stderr at start (NAME from the environment in each), a line with a byte that is not UTF-8, and
on SIGTERM a last line without a line end before it exits 0."""

from __future__ import annotations

import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/health/live" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    """Serve until SIGTERM, writing the lines the module docstring names."""
    name = os.environ.get("NAME", "chatty")
    server = ThreadingHTTPServer((os.environ["HOST"], int(os.environ["PORT"])), _Health)

    def stop(_signum: int, _frame: FrameType | None) -> None:
        sys.stdout.write(f"{name} stopping")  # no line end: the last line of a process that exits mid-line
        sys.stdout.flush()
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    print(f"{name} started on stdout", flush=True)
    print(f"{name} warns on stderr", file=sys.stderr, flush=True)
    sys.stdout.buffer.write(f"{name} sent \xff".encode("latin-1") + b"\n")
    sys.stdout.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()
