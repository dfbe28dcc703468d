"""Several Order Service replicas on one PostgreSQL database: every event published once."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from harness.orders import post_orders, wait_all_terminal
from harness.system import make_system
from harness.topics import read_topic
from infra.ports import free_port
from infra.services import order_service

pytestmark = pytest.mark.integration

TOTAL = 500


def test_two_replicas_publish_each_order_once(stack, tmp_path, postgres):
    orders_db = postgres.create_database("orders")
    fulfillment_db = postgres.create_database("fulfillment")
    # Stale orders are never published again here: this counts the copies the outbox relays publish.
    system = make_system(
        stack.bootstrap_servers, stack.registry_url, tmp_path, PROVIDER_FAILURE_RATE="0", STALE_ORDER_SECONDS="3600"
    )
    system.env["order"]["DATABASE_URL"] = orders_db
    system.env["fulfillment"]["DATABASE_URL"] = fulfillment_db
    second = order_service(free_port(), system.env["order"], tmp_path / "logs")
    system.start()
    second.start()
    try:
        with ThreadPoolExecutor(2) as pool:
            halves = list(pool.map(lambda url: post_orders(url, TOTAL // 2), [system.orders.url, second.url]))
        ids = halves[0] + halves[1]
        assert len(set(ids)) == TOTAL
        wanted = set(ids)
        records = read_topic(
            stack.bootstrap_servers,
            system.order_topic,
            stop=lambda rs: len(rs) >= TOTAL and wanted <= {r.key().decode() for r in rs},
            timeout=90,
        )
        counts = Counter(r.key().decode() for r in records)
        assert set(counts) == wanted
        assert max(counts.values()) == 1, [k for k, v in counts.items() if v > 1][:5]
        # Both replicas read the same database: each sees every order, whichever accepted it.
        final = wait_all_terminal(second.url, ids[:50] + ids[-50:], timeout=120)
        assert {o["status"] for o in final.values()} == {"Fulfilled"}
    finally:
        second.stop()
        system.stop()
