"""observability-cost: CPU per order with metrics and tracing off, metrics on, and both on, in one run.

Each variant is a fresh pair of services at the same open-loop rate (300/s for half the steady duration);
the variants run interleaved for ROUNDS rounds so drift on a shared machine spreads over all of them, and
each variant's figure is the median over its rounds. While metrics are on, the benchmark scrapes both
services' /metrics every SCRAPE_INTERVAL_S as Prometheus would, so the scrapes' cost is counted.
"""

from __future__ import annotations

import contextlib
import statistics
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from bench.environment import BenchRun, Environment
from harness.load import LoadSpec

RATE = 300.0
ROUNDS = 2
SCRAPE_INTERVAL_S = 5.0
SERVICES = ("order-service", "fulfillment-service")
# Environment of both services per variant. OTEL_SDK_DISABLED is the OpenTelemetry SDK's standard switch.
VARIANTS: dict[str, dict[str, str]] = {
    "off": {"METRICS_ENABLED": "false", "OTEL_SDK_DISABLED": "true"},
    "metrics": {"METRICS_ENABLED": "true", "OTEL_SDK_DISABLED": "true"},
    "metrics+tracing": {"METRICS_ENABLED": "true", "OTEL_SDK_DISABLED": "false"},
}


@contextmanager
def scraping(urls: list[str], interval: float) -> Iterator[None]:
    """GET every url every interval seconds (as a Prometheus server would) until the block ends."""
    stop = threading.Event()

    def scrape() -> None:
        with httpx.Client(timeout=interval) as client:
            while not stop.wait(interval):
                for url in urls:
                    # A missed scrape costs the service nothing; the figures are CPU, not scrapes.
                    with contextlib.suppress(httpx.HTTPError):
                        client.get(url)

    thread = threading.Thread(target=scrape, name="metrics-scraper", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _measure_variant(bench: BenchRun, name: str, env_vars: dict[str, str], duration: float) -> dict[str, Any]:
    with Environment(bench, name, env_vars) as env:
        env.warm_load(RATE, bench.profile.steady_connections)
        spec = LoadSpec(env.order_url, rate=RATE, duration=duration, connections=64, tag=env.tag)
        metrics_on = env_vars.get("METRICS_ENABLED") == "true"
        urls = [f"{env.order_url}/metrics", f"{env.system.fulfillment.url}/metrics"] if metrics_on else []
        with scraping(urls, SCRAPE_INTERVAL_S):
            figures = env.measure(spec, kind="steady", profile=False)
    procs = figures["processes"]
    return {
        "ok": figures["load"]["ok"],
        "cpuMsPerOrder": {service: procs.get(service, {}).get("cpuMsPerOrder") for service in SERVICES},
        "othersCpuPercent": procs.get("machine", {}).get("othersCpuPercentDuringRun"),
    }


def run(bench: BenchRun) -> dict[str, Any]:
    """The variants' CPU ms per order per service (median of ROUNDS) and their overhead over 'off' in percent.

    Shape: {"kind": "observability-cost", "rate": 300, "seconds": s, "variants": {variant: {"rounds": [...],
    "cpuMsPerOrder": {service: ms, "total": ms}}}, "overheadPercent": {variant: {service: %, "total": %}}}.
    """
    duration = max(5.0, bench.profile.steady_s / 2)
    rounds: dict[str, list[dict[str, Any]]] = {variant: [] for variant in VARIANTS}
    for round_no in range(ROUNDS):
        for variant, env_vars in VARIANTS.items():
            label = f"observability-{variant.replace('+', '-')}-{round_no + 1}"
            rounds[variant].append(_measure_variant(bench, label, env_vars, duration))
    variants: dict[str, Any] = {}
    for variant, measured in rounds.items():
        per_service = {service: _median([m["cpuMsPerOrder"][service] for m in measured]) for service in SERVICES}
        both = [per_service[s] for s in SERVICES]
        per_service["total"] = round(sum(both), 3) if all(v is not None for v in both) else None
        variants[variant] = {"rounds": measured, "cpuMsPerOrder": per_service}
    base = variants["off"]["cpuMsPerOrder"]
    overhead = {
        variant: {key: _percent(value, base[key]) for key, value in figures["cpuMsPerOrder"].items()}
        for variant, figures in variants.items()
        if variant != "off"
    }
    return {
        "kind": "observability-cost",
        "rate": RATE,
        "seconds": duration,
        "variants": variants,
        "overheadPercent": overhead,
    }


def markdown(s: dict[str, Any]) -> list[str]:
    """The report's section for this scenario's figures (lines of Markdown)."""
    lines = [
        "",
        f"### Cost of metrics and tracing ({s['rate']:g}/s for {s['seconds']:g} s, median of {ROUNDS} interleaved "
        f"rounds; /metrics scraped every {SCRAPE_INTERVAL_S:g} s while on)",
        "",
        "| variant | order-service CPU ms/order | fulfillment CPU ms/order | both | overhead vs off | others' CPU |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for variant, figures in s["variants"].items():
        cpu = figures["cpuMsPerOrder"]
        over = (s["overheadPercent"].get(variant) or {}).get("total")
        others = "/".join(f"{r['othersCpuPercent']}" for r in figures["rounds"])
        lines.append(
            f"| {variant} | {cpu['order-service']} | {cpu['fulfillment-service']} | {cpu['total']} | "
            f"{'-' if over is None else f'{over:+.1f} %'} | {others} % |"
        )
    return lines


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 3) if present else None


def _percent(value: float | None, base: float | None) -> float | None:
    return None if value is None or not base else round(100 * (value - base) / base, 1)
