"""httpapi.liveness_probe, the image's HEALTHCHECK: alive exactly while the service answers HTTP on its route."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from fulfillment_service.settings import FulfillmentServiceSettings
from httpapi import liveness_probe
from httpapi.liveness_probe import SERVICES, main, service_of
from order_service.settings import OrderServiceSettings

ROOT = Path(__file__).resolve().parents[2]
SPECS = {"order-service": "order-service.yaml", "fulfillment-service": "fulfillment-service.yaml"}
SETTINGS = {"order-service": OrderServiceSettings, "fulfillment-service": FulfillmentServiceSettings}


class Answer:
    """What the stand-in service answers: status per path (others 404)."""

    statuses: dict[str, int] = {}  # noqa: RUF012 - set per test, read by the handler thread


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(Answer.statuses.get(self.path, 404))
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[int]:
    """A local HTTP server on a free port; yields the port."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port = httpd.server_address[1]
    httpd.server_close()
    return port


@pytest.mark.parametrize(
    ("service", "status", "alive"),
    [
        ("order-service", 200, True),
        ("order-service", 503, False),
        ("fulfillment-service", 200, True),
        ("fulfillment-service", 503, True),  # database down: answering, a restart cures nothing
    ],
)
def test_alive_follows_the_answer_on_the_liveness_route(server, monkeypatch, capsys, service, status, alive):
    Answer.statuses = {SERVICES[service].path: status}
    monkeypatch.setenv("PORT", str(server))
    assert main([service]) == (0 if alive else 1)
    assert f"{SERVICES[service].path}: {status}" in capsys.readouterr().out


def test_order_service_without_its_route_is_not_alive(server, monkeypatch):
    Answer.statuses = {}
    monkeypatch.setenv("PORT", str(server))
    assert main(["order-service"]) == 1


@pytest.mark.parametrize("service", SERVICES)
def test_nothing_listening_is_not_alive(monkeypatch, capsys, service):
    monkeypatch.setenv("PORT", str(free_port()))
    assert main([service]) == 1
    assert "NOT alive" in capsys.readouterr().out


def test_service_is_read_from_pid_1(server, monkeypatch, tmp_path):
    cmdline = tmp_path / "cmdline"
    cmdline.write_bytes(b"python\0-m\0order_service\0")
    monkeypatch.setattr(liveness_probe, "PID1_CMDLINE", cmdline)
    monkeypatch.setenv("PORT", str(server))
    Answer.statuses = {"/health/live": 200}
    assert main([]) == 0
    Answer.statuses = {}
    assert main([]) == 1


@pytest.mark.parametrize(
    ("argv", "service"),
    [
        (["python", "-m", "order_service"], "order-service"),
        (["/usr/local/bin/python3.11", "-m", "fulfillment_service"], "fulfillment-service"),
        (["/usr/local/bin/python", "/usr/local/bin/fulfillment-service"], "fulfillment-service"),
        (["order-service"], "order-service"),
        (["python", "-m", "repair", "list"], None),
        ([], None),
    ],
)
def test_service_of_a_command_line(argv, service):
    assert service_of(argv) == service


def test_a_command_that_serves_nothing_is_not_probed(monkeypatch, tmp_path):
    cmdline = tmp_path / "cmdline"
    cmdline.write_bytes(b"python\0-m\0repair\0list\0")
    monkeypatch.setattr(liveness_probe, "PID1_CMDLINE", cmdline)
    assert main([]) == 0


def test_unknown_service_is_a_usage_error():
    assert main(["inventory-service"]) == 2


@pytest.mark.parametrize("service", SERVICES)
def test_probe_matches_the_service_defaults_and_its_spec(service, monkeypatch):
    monkeypatch.delenv("PORT", raising=False)
    assert SERVICES[service].default_port == SETTINGS[service]().port
    spec = yaml.safe_load((ROOT / "schemas" / "openapi" / SPECS[service]).read_text())
    assert "get" in spec["paths"][SERVICES[service].path], f"{service} serves no GET {SERVICES[service].path}"
