"""Whether health told the truth: both services' health sampled through a scenario, set against the orders
that were stuck meanwhile.

An order is stuck at time t when it was accepted more than STUCK_AFTER_S before t and was not yet terminal at
t. STUCK_AFTER_S is the Order Service's STALE_ORDER_SECONDS (60 s: the time after which an order without
progress counts as stale, readiness says so and its OrderCreated is published again) plus 5 s for the figures
to be read. Recoveries the system bounds itself below that time (a killed instance's orders waiting out their
30 s call lease, a rejoin) are not stuck. Stuck-while-ok is the time during which some order was stuck and
both services' health said `ok`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from harness.load import Accepted
from harness.system import System
from order_service.settings import OrderServiceSettings

STUCK_AFTER_S = OrderServiceSettings.model_fields["stale_order_seconds"].default + 5.0
# How often health is sampled (seconds).
SAMPLE_INTERVAL_S = 1.0


@dataclass(frozen=True)
class HealthSample:
    """One sample (epoch s): whether each service's health said `ok` (unreachable counts as not ok)."""

    at: float
    orders_ok: bool
    fulfillment_ok: bool

    @property
    def all_ok(self) -> bool:
        """Both said ok."""
        return self.orders_ok and self.fulfillment_ok


class HealthWatch:
    """Samples system's health every SAMPLE_INTERVAL_S on a thread of its own, from start() until stop()."""

    def __init__(self, system: System) -> None:
        self._system = system
        self.samples: list[HealthSample] = []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-health-watch", daemon=True)

    def start(self) -> None:
        """Start sampling."""
        self._thread.start()

    def stop(self) -> list[HealthSample]:
        """Stop sampling; the samples taken, oldest first."""
        self._stopping.set()
        self._thread.join(10)
        return self.samples

    def _run(self) -> None:
        with httpx.Client(timeout=5.0) as client:
            while not self._stopping.is_set():
                at = time.time()
                orders = _ok(client, self._system.orders.url + "/health/ready")
                fulfillment = _ok(client, self._system.fulfillment.url + "/api/fulfillment/health")
                self.samples.append(HealthSample(at, orders, fulfillment))
                self._stopping.wait(SAMPLE_INTERVAL_S)


def _ok(client: httpx.Client, url: str) -> bool:
    try:
        response = client.get(url)
        return response.status_code == 200 and response.json().get("status") == "ok"
    except (httpx.HTTPError, ValueError):
        return False


def stuck_while_ok_seconds(
    samples: list[HealthSample],
    accepted: Mapping[str, Accepted],
    finished_at: Mapping[str, float],
    stuck_after_s: float = STUCK_AFTER_S,
) -> float:
    """Seconds during which an accepted order was stuck (accepted more than stuck_after_s earlier, not terminal:
    finished_at has the epoch s each terminal order finished) while every service's health said ok. Each sample
    stands for the time until the next one (the last for SAMPLE_INTERVAL_S)."""
    accepted_times = sorted((a.accepted_at, finished_at.get(i, float("inf"))) for i, a in accepted.items())
    total = 0.0
    for index, sample in enumerate(samples):
        if not sample.all_ok:
            continue
        cutoff = sample.at - stuck_after_s
        if any(finished > sample.at for at, finished in accepted_times if at <= cutoff):
            following = samples[index + 1].at if index + 1 < len(samples) else sample.at + SAMPLE_INTERVAL_S
            total += following - sample.at
    return round(total, 1)
