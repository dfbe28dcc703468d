"""The one backoff every retry loop uses (relay, consumer, handlers, topic creation)."""

import pytest

from messaging.backoff import Backoff


def test_backoff_doubles_to_its_maximum_and_starts_over_after_success():
    backoff = Backoff(first=0.2, maximum=1.0)
    assert [backoff.failed() for _ in range(5)] == [0.2, 0.4, 0.8, 1.0, 1.0]
    backoff.succeeded()
    assert backoff.delay == 0.0
    assert backoff.failed(first=0.5) == 0.5


def test_backoff_refuses_a_first_delay_above_its_maximum():
    with pytest.raises(ValueError):
        Backoff(first=6.0, maximum=5.0)
