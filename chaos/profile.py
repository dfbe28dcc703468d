"""How hard and how long: the full-length chaos run, or the short smoke run `make test` runs; and the load."""

from __future__ import annotations

from dataclasses import dataclass, replace

from harness.load import LoadSpec
from harness.orders import PICKUP_SLA_S


@dataclass(frozen=True)
class Profile:
    """How hard and how long: the full-length run, or a short smoke run for `make test`."""

    name: str
    rate: float  # orders per second
    warmup_s: float  # steady load before the first fault
    tail_s: float  # load after the last fault
    drain_timeout_s: float  # after the load stopped
    broker_down_s: float
    kills: int
    kill_gap_s: tuple[float, float]  # random pause before each kill
    registry_down_s: float
    provider_outage_s: float
    poison_records: int
    poison_spread_s: float
    pause_s: float
    oversized_records: int  # dlq-oversize: records too large for a dead-letter copy as they are
    # silent-connections: waves of silent and half-sent connections follow each other for at least this long
    # (each wave lasts until the server closed it, about its head deadline)
    silent_connections_s: float
    long_poll_flood_s: float  # long-poll-flood: how long the polls go on (and the baseline measured before)
    long_poll_timeout_s: float  # long-poll-flood: each poll's timeout parameter
    disk_full_s: float  # a database's filesystem full, counted from when the service first says so
    pickup_sla_s: float = PICKUP_SLA_S


FULL = Profile(
    name="full",
    rate=200,
    warmup_s=10,
    tail_s=10,
    drain_timeout_s=180,
    broker_down_s=30,
    kills=10,
    # Long enough between kills for the restarted service to work off the requests queued meanwhile.
    kill_gap_s=(3.0, 8.0),
    registry_down_s=30,
    provider_outage_s=60,
    poison_records=1000,
    poison_spread_s=10,
    pause_s=20,
    oversized_records=20,
    silent_connections_s=30,
    long_poll_flood_s=30,
    long_poll_timeout_s=10,
    disk_full_s=30,
)

SMOKE = Profile(
    name="smoke",
    rate=40,
    warmup_s=1,
    tail_s=1,
    drain_timeout_s=90,
    broker_down_s=3,
    kills=2,
    kill_gap_s=(0.5, 2.0),
    registry_down_s=3,
    provider_outage_s=4,
    poison_records=1000,
    poison_spread_s=3,
    pause_s=3,
    oversized_records=3,
    silent_connections_s=1,
    long_poll_flood_s=10,
    long_poll_timeout_s=4,
    disk_full_s=4,
)


def with_rate(profile: Profile, rate: float | None) -> Profile:
    """profile at another load rate (orders per second); the same profile for None."""
    return profile if rate is None else replace(profile, rate=rate)


def load_spec(order_service_url: str, rate: float) -> LoadSpec:
    """The steady load under every fault: open loop at rate, each order retried with its Idempotency-Key.

    At most 16 requests are on the wire (later arrivals queue in the client, so retries after an outage
    do not stampede the restarted service); an order gets 60 s from its intended send time, 10 s an attempt.
    """
    return LoadSpec(
        order_service_url,
        rate=rate,
        duration=1800,  # an upper bound: the scenario stops the load
        connections=16,
        items=2,
        customers=97,
        tag="chaos",
        timeout=60.0,
        attempt_timeout=10.0,
        idempotent_retries=True,
    )
