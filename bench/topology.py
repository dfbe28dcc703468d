"""`--topology NxMxP[,...]`: the same steady load on N Order Service workers x M Fulfillment Service workers x P
partitions of both topics, one topology after another, and the "Topologies" table of the report.

Every topology gets fresh services (bench.environment) on fresh PostgreSQL databases of one server started for
these runs (infra.postgres; 1x1x1 too, so that the rows differ only in the topology): workers of one service
share its databases, which SQLite does not allow (httpapi.workers). WORKERS sets the processes of each service
on its one port; ORDER_EVENTS_PARTITIONS and FULFILLMENT_EVENTS_PARTITIONS the partitions of the topics the
services create. A service's CPU is summed over its supervisor and workers (bench.samplers.ProcessTree).
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from bench.environment import BenchRun, Environment
from harness.load import LoadSpec
from infra.ports import free_port
from infra.postgres import Postgres

DEFAULT_RATE = 1000.0  # orders/s offered to every topology unless --rate says otherwise
DATABASE_KINDS = ("order", "fulfillment", "provider")  # a topology's databases, each a new one
_SPEC = re.compile(r"^\s*(\d+)\s*x\s*(\d+)\s*x\s*(\d+)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Topology:
    """N Order Service workers, M Fulfillment Service workers, P partitions of order-events and
    fulfillment-events (each at least 1)."""

    order_workers: int
    fulfillment_workers: int
    partitions: int

    @property
    def label(self) -> str:
        """How the command line and the report write it: "NxMxP"."""
        return f"{self.order_workers}x{self.fulfillment_workers}x{self.partitions}"

    def service_env(self, databases: Mapping[str, str]) -> dict[str, dict[str, str]]:
        """The environment of each service (System.env keys) for this topology on databases, which maps
        "order", "fulfillment" and "provider" to database URLs."""
        partitions = {
            "ORDER_EVENTS_PARTITIONS": str(self.partitions),
            "FULFILLMENT_EVENTS_PARTITIONS": str(self.partitions),
        }
        return {
            "order": {**partitions, "WORKERS": str(self.order_workers), "DATABASE_URL": databases["order"]},
            "fulfillment": {
                **partitions,
                "WORKERS": str(self.fulfillment_workers),
                "DATABASE_URL": databases["fulfillment"],
                "PROVIDER_DATABASE_URL": databases["provider"],
            },
        }


def parse_topologies(values: Iterable[str]) -> list[Topology]:
    """The topologies of --topology values (each "NxMxP[,NxMxP...]", repeatable), in order, without repeats.

    ValueError naming the item for anything but three positive integers joined by "x".
    """
    topologies: list[Topology] = []
    for value in values:
        for item in filter(None, (part.strip() for part in value.split(","))):
            match = _SPEC.match(item)
            if not match or 0 in (counts := tuple(int(n) for n in match.groups())):
                raise ValueError(
                    f"topology {item!r} is not NxMxP: order-service workers x fulfillment workers x partitions, "
                    "each at least 1 (e.g. 2x2x2)"
                )
            topology = Topology(*counts)
            if topology not in topologies:
                topologies.append(topology)
    return topologies


Guard = Callable[[str, Callable[[], dict[str, Any]]], dict[str, Any]]


def run_topologies(
    bench: BenchRun, topologies: list[Topology], rate: float = DEFAULT_RATE, guard: Guard | None = None
) -> dict[str, Any]:
    """A steady run at rate orders/s for the profile's steady duration on each topology, with one PostgreSQL
    server for all of them; the figures by label, with the topology's counts under "topology". guard(name, run)
    runs each (bench.run.Bench.guarded: a topology that fails is recorded with its error and the others still
    run); without one an error propagates. PostgresError if the server does not start."""
    results: dict[str, Any] = {}
    # Outside the run directory: the server runs as the postgres user, which must reach its directory.
    directory = Path(tempfile.mkdtemp(prefix="orderproc-bench-pg-"))
    server = Postgres(directory / "pg", free_port())
    server.start()
    try:
        for topology in topologies:
            run = partial(_run_one, bench, server, topology, rate)
            figures = guard(f"topology {topology.label}", run) if guard else run()
            figures["topology"] = {
                "orderWorkers": topology.order_workers,
                "fulfillmentWorkers": topology.fulfillment_workers,
                "partitions": topology.partitions,
            }
            results[topology.label] = figures
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)
    return results


def _run_one(bench: BenchRun, server: Postgres, topology: Topology, rate: float) -> dict[str, Any]:
    """Warm up, then measure rate orders/s on fresh services in topology."""
    name = f"topology-{topology.label}"
    databases = {kind: server.create_database(f"{name}-{kind}".replace("-", "_")) for kind in DATABASE_KINDS}
    p = bench.profile
    with Environment(bench, name, service_env=topology.service_env(databases)) as env:
        env.warm_load(rate, p.steady_connections)
        spec = LoadSpec(env.order_url, rate=rate, duration=p.steady_s, connections=p.steady_connections, tag=env.tag)
        return env.measure(spec, kind="topology")


def markdown_section(topologies: Mapping[str, Any]) -> list[str]:
    """The report's "Topologies" section: one row per topology ([] when none ran)."""
    if not topologies:
        return []
    lines = [
        "",
        "## Topologies",
        "",
        "The same open-loop load on N Order Service workers x M Fulfillment Service workers x P partitions of both "
        "topics, each on fresh services and fresh PostgreSQL databases. CPU ms per order: the service's CPU summed "
        "over its supervisor and workers, from the start of the load until every order was terminal, per accepted "
        "order. Latencies in ms.",
        "",
        "| topology | offered | accepted /s | create P95 | pickup P95 | lag | order-service CPU ms/order "
        "| fulfillment CPU ms/order |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label, figures in topologies.items():
        if figures.get("error"):
            lines.append(f"| {label} | failed: `{str(figures['error'])[:200]}` |" + " |" * 6)
            continue
        spec = figures.get("spec") or {}
        load = figures.get("load") or {}
        verdict = (figures.get("lag") or {}).get("verdict")
        lag = "-" if not verdict else ("bounded" if verdict["bounded"] else f"unbounded: {verdict['reason']}")
        procs = figures.get("processes") or {}
        offered = f"{spec['rate']:g}/s x {spec['duration']:g} s" if spec.get("rate") else "-"
        lines.append(
            f"| {label} | {offered} | {_number(load.get('achievedPerSecond'))} | "
            f"{_number((load.get('latencyMs') or {}).get('p95'), 1)} | "
            f"{_number(((figures.get('events') or {}).get('pickupMs') or {}).get('p95'), 1)} | {lag} | "
            f"{_number((procs.get('order-service') or {}).get('cpuMsPerOrder'), 2)} | "
            f"{_number((procs.get('fulfillment-service') or {}).get('cpuMsPerOrder'), 2)} |"
        )
    return lines


def _number(value: Any, digits: int = 0) -> str:
    """A figure for the table: "-" when missing, else with digits decimals and thousands separators."""
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"
