"""Due retries are claimed once on PostgreSQL too (READ COMMITTED, FOR UPDATE SKIP LOCKED)."""

import pytest

from tests.unit.test_retry_claims import assert_each_due_order_claimed_once

pytestmark = pytest.mark.integration


def test_two_instances_never_claim_the_same_order_on_postgres(postgres):
    assert_each_due_order_claimed_once(postgres.create_database("claims"))
