"""A minimal app served exactly as the services are (httpapi.serve), for tests of the HTTP edge.

python -m tests.integration.edge_app PORT HEAD_SECONDS BODY_IDLE_SECONDS
"""

from __future__ import annotations

import sqlite3
import sys

from fastapi import FastAPI, Request
from sqlalchemy.exc import OperationalError

from contract_models.order_api import Problem
from httpapi.app import contract_app
from httpapi.serve import serve
from observability.metrics import Metrics


def edge_app() -> FastAPI:
    app = contract_app(
        "Edge",
        "order-service",
        lambda _app: _no_lifespan(),
        max_body_bytes=1_048_576,
        metrics=Metrics(),
        problem_model=Problem,
    )

    @app.get("/ok")
    async def ok() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/file")
    async def file() -> dict[str, int]:
        with open(__file__, "rb") as handle:  # needs a descriptor of its own
            return {"bytes": len(handle.read())}

    @app.get("/storage")
    async def storage() -> None:
        raise OperationalError("INSERT", {}, sqlite3.OperationalError("database or disk is full"))

    @app.get("/boom")
    async def boom() -> None:
        raise ValueError("unexpected")

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    return app


class _no_lifespan:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None


if __name__ == "__main__":
    port, head, idle, body, connections = int(sys.argv[1]), *map(float, sys.argv[2:5]), int(sys.argv[5])
    serve(
        edge_app(),
        "127.0.0.1",
        port,
        "info",
        1,
        head_timeout_seconds=head,
        body_idle_timeout_seconds=idle,
        body_timeout_seconds=body,
        max_connections=connections,
    )
