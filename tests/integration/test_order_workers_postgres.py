"""Both services as two worker processes each on one port (WORKERS=2), on PostgreSQL, with two partitions per
topic: every order accepted through the Order Service's shared port is published once and Fulfilled once."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from harness.orders import post_orders, wait_all_terminal
from harness.reconcile import scan_fulfillment_events
from harness.system import System, make_system
from harness.topics import read_topic
from harness.waiting import wait_until
from infra.ports import free_ports_in_a_row

pytestmark = pytest.mark.integration

TOTAL = 200


def test_two_workers_per_service_fulfil_every_order_exactly_once(stack, tmp_path, postgres):
    # Stale orders are never published again here: this counts the copies the workers' outbox relays publish.
    system = make_system(
        stack.bootstrap_servers,
        stack.registry_url,
        tmp_path,
        PROVIDER_FAILURE_RATE="0",
        STALE_ORDER_SECONDS="3600",
        WORKERS="2",
        ORDER_EVENTS_PARTITIONS="2",
        FULFILLMENT_EVENTS_PARTITIONS="2",
    )
    system.env["order"]["DATABASE_URL"] = postgres.create_database("orders")
    system.env["fulfillment"]["DATABASE_URL"] = postgres.create_database("fulfillment")
    system.env["fulfillment"]["PROVIDER_DATABASE_URL"] = postgres.create_database("provider")
    metrics_port = free_ports_in_a_row(2)  # worker i of the Order Service serves its own metrics on this + i
    system.env["order"]["WORKER_METRICS_PORT"] = str(metrics_port)
    system.start()
    try:
        # Each service is a supervisor and its two workers, all behind the service's one port.
        services = (system.orders, system.fulfillment)
        workers = wait_until(lambda: all(len(s.processes()) == 3 for s in services) and system_workers(system), 60)
        with ThreadPoolExecutor(4) as pool:
            batches = list(pool.map(lambda _: post_orders(system.orders.url, TOTAL // 4), range(4)))
        ids = [order_id for batch in batches for order_id in batch]
        assert len(set(ids)) == TOTAL
        wanted = set(ids)

        created = read_topic(
            stack.bootstrap_servers,
            system.order_topic,
            stop=lambda rs: wanted <= {r.key().decode() for r in rs},
            timeout=90,
        )
        published = Counter(r.key().decode() for r in created)
        assert set(published) == wanted
        assert max(published.values()) == 1, [k for k, v in published.items() if v > 1][:5]

        final = wait_all_terminal(system.orders.url, ids, timeout=120)
        assert {o["status"] for o in final.values()} == {"Fulfilled"}
        # Fulfilled exactly once: one tracking number and one Shipped event per order on fulfillment-events.
        progress = read_topic(
            stack.bootstrap_servers,
            system.fulfillment_topic,
            stop=lambda rs: len(rs) >= 2 * TOTAL and wanted <= {r.key().decode() for r in rs},
            timeout=60,
        )
        scan = scan_fulfillment_events(progress, stack.registry_url, system.fulfillment_topic)
        assert scan.undecodable == 0
        assert {order_id: len(numbers) for order_id, numbers in scan.tracking.items()} == dict.fromkeys(wanted, 1)
        assert {order_id: scan.statuses[order_id]["Shipped"] for order_id in wanted} == dict.fromkeys(wanted, 1)
        assert system_workers(system) == workers, "a worker was restarted"
        # Each worker counts the orders it accepted on a scrape target of its own; together they count every one
        # (the kernel may have handed all four client connections to one worker).
        counted = [orders_created(metrics_port + index) for index in range(2)]
        assert sum(counted) == TOTAL, counted
    finally:
        codes = [system.fulfillment.stop(), system.orders.stop()]
    assert codes == [0, 0]


def orders_created(port: int) -> int:
    """orderprocessing_orders_created_total as the worker serving metrics on port counts it."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    name = "orderprocessing_orders_created_total"
    samples = [line.split()[-1] for line in text.splitlines() if line.startswith(name)]
    return int(float(samples[0]))


def system_workers(system: System) -> set[int]:
    """The worker processes of both services (their supervisors' descendants)."""
    return {pid for service in (system.orders, system.fulfillment) for pid in service.processes()[1:]}
