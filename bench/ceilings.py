"""The ceilings the scenarios are compared with, measured first in the same run on the same machine.

A bare FastAPI app (``python -m bench.baselines``) under the same load generator: open loop at each steady
rate and closed loop with the capacity settings; and raw Kafka produce -> consume round trips
(``python -m bench.baselines kafka``) on the run's broker, each in a process of its own.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.environment import BenchRun
from bench.figures import load_figures
from bench.samplers import MACHINE, ProcessSampler
from harness.load import LoadProcess, LoadSpec
from harness.percentiles import latency_summary
from infra.ports import free_port
from infra.services import ROOT, ServiceProcess


def measure_ceilings(bench: BenchRun, rates: list[float], capacity: bool) -> dict[str, Any]:
    """HTTP ceilings at each rate (and closed loop if capacity), then Kafka round trips at each rate."""
    p = bench.profile
    out: dict[str, Any] = {"http": {}, "kafka": {}}
    directory = bench.run_dir / "baselines"
    server = ServiceProcess("bench.baselines", free_port(), {}, directory / "logs" / "bare-fastapi.log", "/health/live")
    server.start()
    try:
        sampler = ProcessSampler(p.sample_interval_s)
        sampler.watch("bare-fastapi", server.pid)
        sampler.watch_machine()
        sampler.start()
        try:
            # A short unmeasured run first: the first requests of a fresh process are slower.
            _bare_load(directory, "warmup", LoadSpec(server.url, rate=200, duration=2), sampler)
            for rate in rates:
                spec = LoadSpec(server.url, rate=rate, duration=p.baseline_s, connections=p.steady_connections)
                out["http"][f"{rate:g}"] = _bare_load(directory, f"open-{rate:g}", spec, sampler)
            if capacity:
                spec = LoadSpec(server.url, mode="closed", duration=p.capacity_s, connections=p.capacity_connections)
                out["http"]["capacity"] = _bare_load(directory, "capacity", spec, sampler)
        finally:
            sampler.stop()
    finally:
        server.stop()
    for rate in rates:
        out["kafka"][f"{rate:g}"] = kafka_round_trips(bench.stack.bootstrap_servers, rate, p.baseline_s, directory)
    return out


def _bare_load(directory: Path, label: str, spec: LoadSpec, sampler: ProcessSampler) -> dict[str, Any]:
    process = LoadProcess(spec, directory / f"{label}.load.pkl", directory / "logs" / f"{label}.loadgen.log")
    before = time.time() - sampler.origin
    result = process.start().wait()
    sampler.sample_now()
    after = time.time() - sampler.origin
    figures = load_figures(result)
    cpu = sampler.series["bare-fastapi"].cpu_between(before, after)
    figures["serverCpuMsPerRequest"] = round(1000 * cpu / result.ok, 3) if cpu and result.ok else None
    figures["serverRssMb"] = sampler.series["bare-fastapi"].rss_mb[-1]
    busy = sampler.series[MACHINE].cpu_between(before, after)
    if busy is not None and cpu is not None and after > before:
        figures["othersCpuPercent"] = round(max(0.0, 100 * (busy - cpu - result.cpu_seconds) / (after - before)), 1)
    return figures


def kafka_round_trips(bootstrap_servers: str, rate: float, seconds: float, directory: Path) -> dict[str, Any]:
    """Produce -> consume latency at rate per second for seconds, in a child process; summary in ms."""
    result_file = directory / f"kafka-{rate:g}.json"
    command = [sys.executable, "-m", "bench.baselines", "kafka", "--bootstrap", bootstrap_servers]
    log_file = directory / "logs" / f"kafka-{rate:g}.log"
    with log_file.open("ab") as log_handle:
        subprocess.run(
            [*command, "--rate", str(rate), "--duration", str(seconds), "--result", str(result_file)],
            cwd=ROOT,
            check=True,
            timeout=seconds + 120,
            stdout=log_handle,
            stderr=subprocess.STDOUT,
        )
    raw = json.loads(result_file.read_text())
    latencies = [v for v in raw["latencies"] if v is not None and not math.isnan(v)]
    return {
        "rate": rate,
        "duration": seconds,
        "sent": raw["sent"],
        "received": raw["received"],
        "latencyMs": latency_summary(latencies),
    }
