"""Retry timing and the circuit breaker around the shipping provider."""

from __future__ import annotations

import logging
import random
import time
from datetime import timedelta
from enum import StrEnum

from tenacity import wait_exponential_jitter

log = logging.getLogger(__name__)


class BackoffPolicy:
    """Exponential backoff with jitter (tenacity's policy), bounded by attempts and a deadline.

    max_attempts counts provider calls per order; deadline_seconds, initial and maximum are seconds.
    """

    def __init__(self, max_attempts: int, deadline_seconds: float, initial: float, maximum: float) -> None:
        self.max_attempts = max_attempts
        self.deadline = timedelta(seconds=deadline_seconds)
        self._wait = wait_exponential_jitter(multiplier=initial, max=maximum, exp_base=2, jitter=initial)

    def delay(self, attempts_made: int) -> timedelta:
        """How long to wait before the next attempt, after attempts_made (>= 1) failed ones; at most maximum
        plus up to initial of jitter."""

        class _State:  # the part of tenacity's RetryCallState the wait strategy reads
            attempt_number = attempts_made

        return timedelta(seconds=float(self._wait(_State())))  # type: ignore[arg-type]

    def gives_up(self, attempts_made: int, elapsed: timedelta) -> bool:
        """True when attempts_made calls are the limit, or elapsed (since the order was picked up) has
        reached the deadline."""
        return attempts_made >= self.max_attempts or elapsed >= self.deadline


class BreakerState(StrEnum):
    """Where the circuit breaker stands; the value is what health reports."""

    closed = "closed"
    open = "open"
    half_open = "half_open"


class CircuitBreaker:
    """Opens after N consecutive failures; after reset_seconds lets one probe through (half-open);
    closes on the probe's success, reopens on its failure.

    A probe that reports neither within probe_timeout_seconds (its caller died, or forgot) counts as failed,
    so a lost probe can never keep the breaker half-open for good.
    """

    def __init__(self, failure_threshold: int, reset_seconds: float, probe_timeout_seconds: float = 60.0) -> None:
        self.failure_threshold = failure_threshold
        self.reset_seconds = reset_seconds
        self.probe_timeout_seconds = probe_timeout_seconds
        self._failures = 0
        self._opened_at = 0.0
        self._state = BreakerState.closed
        self._probe_in_flight = False
        self._probe_started_at = 0.0
        self.opened_count = 0

    @property
    def state(self) -> BreakerState:
        """closed, open, or half_open once an open breaker's reset_seconds have passed."""
        if self._state == BreakerState.open and time.monotonic() - self._opened_at >= self.reset_seconds:
            return BreakerState.half_open
        return self._state

    def allow(self) -> bool:
        """May a call go to the provider now? In half-open, only one probe at a time.

        The caller of an allowed call must report it: record_success() or record_failure(), the latter for
        any exception the call raised.
        """
        if self._probe_in_flight and time.monotonic() - self._probe_started_at > self.probe_timeout_seconds:
            self.record_failure()  # the probe was lost: reopen, and probe again after reset_seconds
        state = self.state
        if state == BreakerState.closed:
            return True
        if state == BreakerState.half_open and not self._probe_in_flight:
            self._probe_in_flight = True
            self._probe_started_at = time.monotonic()
            return True
        return False

    def retry_after(self) -> timedelta:
        """How long until a call may be tried again (with 0.05-0.5 s of jitter so waiting orders do not
        stampede)."""
        remaining = max(0.0, self.reset_seconds - (time.monotonic() - self._opened_at))
        return timedelta(seconds=remaining + random.uniform(0.05, 0.5))

    def record_success(self) -> None:
        """A call succeeded: the breaker closes and the failure count starts again (logged when it was open)."""
        if self._state != BreakerState.closed:
            log.info("circuit breaker closed: the provider answers again")
        self._failures = 0
        self._probe_in_flight = False
        self._state = BreakerState.closed

    def record_failure(self) -> None:
        """A call failed or timed out: opens the breaker at the threshold, or again after a failed probe (logged
        once per opening, not per failed call)."""
        self._failures += 1
        was_probe = self._probe_in_flight
        self._probe_in_flight = False
        if was_probe or (self._state == BreakerState.closed and self._failures >= self.failure_threshold):
            if self._state != BreakerState.open or was_probe:
                self.opened_count += 1
                log.warning(
                    "circuit breaker opened after %d consecutive provider failures; a probe in %g s",
                    self._failures,
                    self.reset_seconds,
                )
            self._state = BreakerState.open
            self._opened_at = time.monotonic()
