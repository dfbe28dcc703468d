"""How long and how big: the full benchmark run, or the shortened smoke run (--quick)."""

from __future__ import annotations

from dataclasses import dataclass

# The mock provider every scenario runs against: 100-500 ms, 10 % failures (the services' defaults, pinned).
PROVIDER = {"PROVIDER_MIN_LATENCY_MS": "100", "PROVIDER_MAX_LATENCY_MS": "500", "PROVIDER_FAILURE_RATE": "0.10"}


@dataclass(frozen=True)
class Profile:
    """Durations and sizes: the full run, or the shortened smoke run (--quick)."""

    name: str
    steady_s: float
    baseline_s: float  # per rate, for both ceilings
    capacity_s: float  # closed-loop saturation, order service and bare app alike
    burst_orders: int
    ramp_rates: tuple[float, ...]
    ramp_step_s: float
    drain_timeout_s: float
    steady_connections: int = 128
    capacity_connections: int = 64
    burst_connections: int = 1000
    sample_interval_s: float = 0.5
    warmup_orders: int = 10  # sent one by one and followed to a terminal status
    warmup_s: float = 5.0  # unmeasured load at the scenario's rate before each measured run
    long_orders: int = 1_000_000
    long_rate: float = 0.0  # 0: closed loop, every order created as fast as the service accepts it


FULL = Profile(
    name="full",
    steady_s=60,
    baseline_s=20,
    capacity_s=15,
    burst_orders=10_000,
    ramp_rates=(100, 200, 300, 400, 500, 600, 700, 800, 900, 1000, 1200, 1400, 1700, 2000, 2500, 3000),
    ramp_step_s=20,
    drain_timeout_s=180,
)
QUICK = Profile(
    name="quick",
    steady_s=10,
    baseline_s=5,
    capacity_s=5,
    burst_orders=2_000,
    ramp_rates=(100, 300, 600, 1000, 1500, 2000),
    ramp_step_s=5,
    drain_timeout_s=45,
    warmup_s=2,
)
