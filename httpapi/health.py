"""Dependency report shared by the services' health endpoints."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from messaging.health import CachedProbe
from persistence.write_probe import probe_write


def dependency_report(engine: Engine, probes: dict[str, CachedProbe]) -> dict[str, dict[str, Any]]:
    """{name: {status: ok|down, detail}} for the database and each probe. Blocking: run in a thread.

    The database is ok only while it takes a write (persistence.write_probe): one that answers reads but cannot
    store anything (its disk full) is down, with the database's error as the detail.
    """
    deps: dict[str, dict[str, Any]] = {}
    try:
        probe_write(engine)
        deps["database"] = {"status": "ok"}
    except Exception as exc:
        deps["database"] = {"status": "down", "detail": str(exc)[:200]}
    for name, probe in probes.items():
        result = probe()
        deps[name] = {"status": "ok" if result.ok else "down", "detail": result.detail}
    return deps


def overall_status(deps: dict[str, dict[str, Any]], degraded: bool = False) -> str:
    """down without a database (nothing can be accepted), degraded when anything else is away."""
    if deps["database"]["status"] != "ok":
        return "down"
    if degraded or any(d["status"] != "ok" for d in deps.values()):
        return "degraded"
    return "ok"
