"""Fulfillment under failures: every order terminal, none shipped twice, poison parked, crashes survived."""

from __future__ import annotations

import random
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from events.topology import DEAD_LETTER_HEADERS, ORDER_EVENTS
from harness.orders import TERMINAL, post_orders, wait_all_terminal
from harness.reconcile import ledger_requests, scan_fulfillment_events
from harness.records import poison_records, produce_records
from harness.system import running_system
from harness.topics import read_topic
from harness.waiting import wait_until
from infra.ports import free_port
from infra.services import fulfillment_service

pytestmark = pytest.mark.integration


def ledger(system) -> dict[str, int]:
    """Successful provider calls per order, from the provider's own records."""
    return ledger_requests(system.data_dir / "shipping-provider.db")


def tracking_numbers(system) -> dict[str, set[str]]:
    """Tracking numbers announced per order on fulfillment-events (read for 3 s, so late copies show too)."""
    records = read_topic(system.bootstrap_servers, system.fulfillment_topic, stop=lambda _: False, timeout=3)
    scan = scan_fulfillment_events(records, system.registry_url, system.fulfillment_topic)
    assert scan.undecodable == 0
    return scan.tracking


def assert_exactly_once(system, final: dict[str, dict]) -> None:
    shipped = [i for i, o in final.items() if o["status"] == "Fulfilled"]
    calls = ledger(system)
    assert all(calls.get(i) == 1 for i in shipped), {i: calls.get(i) for i in shipped if calls.get(i) != 1}
    announced = tracking_numbers(system)
    assert all(len(announced[i]) == 1 for i in shipped)
    assert all(final[i]["trackingNumber"] in announced[i] for i in shipped)


@pytest.fixture
def lossy_system(stack, tmp_path):
    with running_system(
        stack, tmp_path, PROVIDER_FAILURE_RATE="0.1", RETRY_INITIAL_DELAY_SECONDS="0.2", RETRY_MAX_DELAY_SECONDS="2"
    ) as system:
        yield system


def test_500_orders_with_failing_provider_all_end_exactly_once(lossy_system):
    system = lossy_system
    ids = post_orders(system.orders.url, 500)
    final = wait_all_terminal(system.orders.url, ids, timeout=180)
    assert not [o for o in final.values() if o["status"] not in TERMINAL]
    assert sum(o["status"] == "Fulfilled" for o in final.values()) > 450  # retries rescue most failures
    for order in final.values():
        if order["status"] == "Failed":
            assert order["failureReason"]
    assert_exactly_once(system, final)


def test_fulfillment_killed_mid_batch_loses_and_doubles_nothing(lossy_system):
    system = lossy_system
    ids = post_orders(system.orders.url, 200)
    wait_until(lambda: ledger(system), 30, interval=0.05, message="the first shipments")
    system.fulfillment.kill()  # mid-batch: orders picked up, some shipped, some in the provider call
    more = post_orders(system.orders.url, 100)
    system.fulfillment.start()
    final = wait_all_terminal(system.orders.url, ids + more, timeout=180)
    assert_exactly_once(system, final)


def test_provider_outage_opens_breaker_orders_wait_then_ship(stack, tmp_path):
    with running_system(
        stack,
        tmp_path,
        PROVIDER_FAILURE_RATE="0",
        PROVIDER_CONTROL_ENABLED="true",
        BREAKER_FAILURE_THRESHOLD="5",
        BREAKER_RESET_SECONDS="1",
        RETRY_MAX_ATTEMPTS="10",
        RETRY_INITIAL_DELAY_SECONDS="0.2",
        RETRY_MAX_DELAY_SECONDS="1",
    ) as system:
        system.set_provider(failureRate=1.0)
        ids = post_orders(system.orders.url, 60)
        opened = wait_until(
            lambda: system.fulfillment_health()["breaker"] != "closed", 30, message="the breaker to open"
        )
        assert opened
        health = system.fulfillment_health()
        assert health["status"] == "degraded"
        orders = httpx.get(f"{system.orders.url}/api/orders", params={"limit": 100}).json()["items"]
        assert not [o for o in orders if o["status"] in TERMINAL]  # waiting, not failed
        system.set_provider(failureRate=0.0)
        final = wait_all_terminal(system.orders.url, ids, timeout=120)
        assert {o["status"] for o in final.values()} == {"Fulfilled"}
        wait_until(
            lambda: system.fulfillment_health()["breaker"] == "closed",
            30,
            message="the breaker to close",
        )
        assert_exactly_once(system, final)


def one_poison_of_each_kind(system) -> dict[str, bytes]:
    """The value of one poison record by the error type it must be dead-lettered with."""
    registry = SchemaRegistryClient({"url": system.registry_url})
    made = poison_records(registry, 3, random.Random(7), subject=f"poison-{uuid.uuid4().hex[:6]}-value")
    return {record.error_type: record.value for record in made}


def test_poison_records_go_to_the_dlq_and_consumption_goes_on(system):
    poison = one_poison_of_each_kind(system)
    produce_records(system.bootstrap_servers, system.order_topic, poison.items())  # keyed by error type
    ids = post_orders(system.orders.url, 5)
    wait_all_terminal(system.orders.url, ids, timeout=60)

    dlq = read_topic(
        system.bootstrap_servers,
        system.env["fulfillment"][ORDER_EVENTS.dead_letter_env],
        stop=lambda rs: len(rs) >= 3,
        timeout=30,
    )
    parked = {r.key().decode(): (r, dict(r.headers())) for r in dlq}
    assert set(parked) == set(poison)
    for kind, (record, headers) in parked.items():
        assert record.value() == poison[kind]  # bytes untouched
        assert headers[DEAD_LETTER_HEADERS.error_type].decode() == kind
        assert headers[DEAD_LETTER_HEADERS.error_message]
        assert headers[DEAD_LETTER_HEADERS.original_topic].decode() == system.order_topic
        assert int(headers[DEAD_LETTER_HEADERS.original_partition]) == 0
        assert int(headers[DEAD_LETTER_HEADERS.original_offset]) >= 0
        assert int(headers[DEAD_LETTER_HEADERS.original_timestamp]) > 0
        assert int(headers[DEAD_LETTER_HEADERS.original_size]) == len(poison[kind])
        assert headers[DEAD_LETTER_HEADERS.truncated] == b"false"
    wait_until(
        lambda: system.fulfillment_health()["consumerLag"] == 0,
        30,
        message="the consumer to commit past the poison records",
    )


def test_two_instances_share_the_work_and_survive_a_kill(stack, tmp_path):
    with running_system(
        stack,
        tmp_path,
        ORDER_EVENTS_PARTITIONS="4",
        PROVIDER_FAILURE_RATE="0.1",
        RETRY_INITIAL_DELAY_SECONDS="0.2",
        RETRY_MAX_DELAY_SECONDS="2",
    ) as system:
        second = fulfillment_service(free_port(), system.env["fulfillment"], tmp_path / "logs")
        second.start()
        try:
            wait_until(lambda: system.fulfillment_health(second)["consumerLag"] is not None, 30, message="assignment")
            with ThreadPoolExecutor(1) as pool:
                posting = pool.submit(post_orders, system.orders.url, 400)
                wait_until(lambda: len(ledger(system)) > 50, 60, interval=0.05, message="shipments under way")
                second.kill()  # killed while the group rebalances work onto both members
                ids = posting.result()
            final = wait_all_terminal(system.orders.url, ids, timeout=180)
            assert_exactly_once(system, final)
        finally:
            second.stop()


def test_graceful_shutdown_drains_and_exits_zero(stack, tmp_path):
    with running_system(
        stack, tmp_path, PROVIDER_FAILURE_RATE="0", PROVIDER_MIN_LATENCY_MS="800", PROVIDER_MAX_LATENCY_MS="1200"
    ) as system:
        ids = post_orders(system.orders.url, 30)
        wait_until(
            lambda: system.fulfillment_health()["inFlight"] > 0,
            30,
            interval=0.05,
            message="orders in flight",
        )
        assert system.fulfillment.stop(timeout=60) == 0
        system.fulfillment.start()
        final = wait_all_terminal(system.orders.url, ids, timeout=90)
        assert_exactly_once(system, final)


def test_broker_loss_degrades_then_resumes_by_itself(private_stack, tmp_path):
    with running_system(private_stack, tmp_path, PROVIDER_FAILURE_RATE="0") as system:
        wait_all_terminal(system.orders.url, post_orders(system.orders.url, 3), timeout=60)
        private_stack.broker.stop()
        degraded = wait_until(
            lambda: (h := system.fulfillment_health())["status"] == "degraded" and h,
            30,
            message="health to say degraded",
        )
        assert degraded["dependencies"]["kafka"]["status"] == "down"
        ids = post_orders(system.orders.url, 20)  # accepted meanwhile
        probe = httpx.get(f"{system.fulfillment.url}/api/fulfillment/orders/{ids[0]}", timeout=10)
        assert probe.status_code == 404  # still answering
        private_stack.broker.start()
        wait_all_terminal(system.orders.url, ids, timeout=120)
        wait_until(lambda: system.fulfillment_health()["status"] == "ok", 30, message="recovery")


def test_simulated_delivery_follows_shipping(stack, tmp_path):
    with running_system(stack, tmp_path, PROVIDER_FAILURE_RATE="0", DELIVERY_AFTER_SECONDS="1") as system:
        (order_id,) = post_orders(system.orders.url, 1)
        shipped = wait_all_terminal(system.orders.url, [order_id], timeout=60)[order_id]
        delivered = wait_until(
            lambda: (
                (f := httpx.get(f"{system.fulfillment.url}/api/fulfillment/orders/{order_id}").json())["status"]
                == "Delivered"
                and f
            ),
            30,
            message="delivery",
        )
        assert delivered["trackingNumber"] == shipped["trackingNumber"]
        # The order stays Fulfilled; the Delivered event moved it nowhere else.
        assert httpx.get(f"{system.orders.url}/api/orders/{order_id}").json()["status"] == "Fulfilled"
