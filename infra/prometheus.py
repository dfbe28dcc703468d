"""A throwaway Prometheus server for tests (Debian's package, installed on demand): it scrapes the given services
and answers PromQL over its HTTP API.

    with Prometheus(tmp_path / "prometheus", free_port(), {"order-service": "http://127.0.0.1:5001"}) as server:
        server.query('orderprocessing_orders_created_total{job="order-service"}')
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

import httpx
import yaml

from infra.debian import install_package
from infra.ports import HOST
from infra.supervision import stop_process


class PrometheusError(RuntimeError):
    """Prometheus could not be installed or started, or refused a query."""


def ensure_installed() -> str:
    """The prometheus binary, installing Debian's prometheus package (as root) when it is missing."""
    found = shutil.which("prometheus")
    if found is None:
        install_package("prometheus", PrometheusError)
        found = shutil.which("prometheus")
    if found is None:
        raise PrometheusError("the prometheus binary was not found after installing the package")
    return found


def scrape_config(targets: dict[str, str], interval_seconds: float = 1.0) -> dict[str, Any]:
    """A Prometheus configuration scraping GET /metrics of each target (job name -> base URL, http://host:port)
    every interval_seconds; the job name becomes each series' `job` label."""
    interval = f"{int(interval_seconds * 1000)}ms"
    return {
        "global": {"scrape_interval": interval, "scrape_timeout": interval, "evaluation_interval": interval},
        "scrape_configs": [
            {"job_name": job, "metrics_path": "/metrics", "static_configs": [{"targets": [urlsplit(url).netloc]}]}
            for job, url in targets.items()
        ],
    }


class Prometheus:
    """A Prometheus server on HOST:port with its configuration and data in directory, scraping targets (job name
    -> base URL) every scrape_interval seconds; a context manager that starts and stops it."""

    def __init__(self, directory: Path, port: int, targets: dict[str, str], scrape_interval: float = 1.0) -> None:
        self.directory = directory
        self.port = port
        self.targets = targets
        self.scrape_interval = scrape_interval
        self._binary = ensure_installed()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://{HOST}:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        """Write the configuration and start the server; PrometheusError unless it is ready within timeout s."""
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "prometheus.yml"
        config.write_text(yaml.safe_dump(scrape_config(self.targets, self.scrape_interval)))
        log = (self.directory / "prometheus.log").open("ab")
        self._process = subprocess.Popen(
            [
                self._binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={self.directory / 'data'}",
                f"--web.listen-address={HOST}:{self.port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self._process.poll() is not None:
                raise PrometheusError(f"prometheus exited with {self._process.returncode}: {self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise PrometheusError(f"prometheus not ready on port {self.port}: {self.log_tail()}")
            time.sleep(0.2)

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the server (SIGTERM, SIGKILL after timeout seconds)."""
        process, self._process = self._process, None
        stop_process(process, timeout)

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The instant vector promql evaluates to now (GET /api/v1/query): [{"metric": {labels}, "value": [t,
        "v"]}, ...]. Raises PrometheusError when the server refuses the query, httpx.HTTPError when it is away."""
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=10)
        body = response.json()
        if body.get("status") != "success":
            raise PrometheusError(f"query {promql!r} refused: {body.get('error')}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def value(self, promql: str) -> float | None:
        """The value of promql's single result, None when it has no result (yet)."""
        result = self.query(promql)
        if not result:
            return None
        if len(result) > 1:
            raise PrometheusError(f"query {promql!r} has {len(result)} results, not one")
        return float(result[0]["value"][1])

    def log_tail(self, lines: int = 20) -> str:
        """The end of the server's log."""
        path = self.directory / "prometheus.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, _type: type[BaseException] | None, _value: BaseException | None, _traceback: TracebackType | None
    ) -> None:
        self.stop()
