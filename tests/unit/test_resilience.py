from datetime import timedelta

from fulfillment_service.resilience import BackoffPolicy, BreakerState, CircuitBreaker
from harness.waiting import wait_until


def test_backoff_grows_and_is_bounded():
    policy = BackoffPolicy(max_attempts=5, deadline_seconds=60, initial=0.5, maximum=4)
    delays = [policy.delay(n).total_seconds() for n in range(1, 8)]
    assert delays[0] < 2
    assert all(d <= 4 for d in delays)
    assert max(delays[4:]) >= 2  # grew


def test_backoff_gives_up_on_attempts_or_deadline():
    policy = BackoffPolicy(max_attempts=3, deadline_seconds=10, initial=0.1, maximum=1)
    assert not policy.gives_up(2, timedelta(seconds=9))
    assert policy.gives_up(3, timedelta(0))
    assert policy.gives_up(1, timedelta(seconds=10))


def test_breaker_opens_half_opens_and_closes():
    breaker = CircuitBreaker(failure_threshold=3, reset_seconds=0.05)
    for _ in range(3):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state == BreakerState.open
    assert not breaker.allow()
    wait_until(lambda: breaker.state == BreakerState.half_open, 2, interval=0.01, message="half-open")
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # only one probe at a time
    breaker.record_success()
    assert breaker.state == BreakerState.closed


def test_failed_probe_reopens():
    breaker = CircuitBreaker(failure_threshold=1, reset_seconds=0.0)
    breaker.record_failure()
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.opened_count == 2


def test_a_lost_probe_does_not_hold_the_breaker_half_open_for_good():
    breaker = CircuitBreaker(failure_threshold=1, reset_seconds=0.0, probe_timeout_seconds=0.05)
    breaker.record_failure()
    assert breaker.allow()  # the probe; its caller never reports back
    assert not breaker.allow()
    wait_until(breaker.allow, 2, interval=0.01, message="a new probe (the lost one kept the breaker half-open)")
    breaker.record_success()
    assert breaker.state == BreakerState.closed
