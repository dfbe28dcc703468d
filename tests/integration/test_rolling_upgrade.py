"""A rolling upgrade from the previous release to the current code, on one real broker and registry: the previous
release's services (its commit, from schemas/releases.json, checked out in a git worktree) run beside the current
ones on the same topics, groups and registry, in both orders, with load flowing. No order is lost, dead-lettered
or shipped twice, and every order ends Fulfilled; a released Fulfillment Service dead-letters an OrderCancelled
(docs/adr/0002), which, replayed after its upgrade, cancels the order."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from confluent_kafka import Message
from typer.testing import CliRunner

from events.topology import DEAD_LETTER_HEADERS, ORDER_EVENTS, TOPICS
from fulfillment_service.shipping import HOME_DELIVERY_DAYS
from harness.load import BackgroundLoad, LoadResult, LoadSpec, run_in_this_process
from harness.order_bodies import SHIPPING_ADDRESS, order_body
from harness.orders import wait_drained
from harness.reconcile import Reconciliation, ledger_requests, reconcile, sqlite_path, wait_outboxes_empty
from harness.released import (
    check_runs_release,
    previous_release_tree,
    released_service,
    served_openapi_version,
)
from harness.system import System, make_system
from harness.topics import read_to_end, read_topic
from harness.waiting import poll, wait_until
from infra.ports import free_port
from infra.services import ROOT
from repair.cli import app as repair
from tools.releases import Release, openapi_versions

pytestmark = pytest.mark.integration

# Every failed provider call is retried soon, without end within a test: every order ships, none fails.
# No stale-order republishing: only the replay may bring a dead-lettered cancellation back.
ENV = {
    "PROVIDER_CONTROL_ENABLED": "true",
    "RETRY_INITIAL_DELAY_SECONDS": "0.2",
    "RETRY_MAX_DELAY_SECONDS": "0.5",
    "RETRY_MAX_ATTEMPTS": "1000",
    "STALE_ORDER_SECONDS": "3600",
}
CURRENT_OPENAPI = openapi_versions(ROOT / "schemas" / "openapi")
CANCEL_PATH = "/api/orders/{orderId}/cancel"


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Release, Path]]:
    """The previous release and its code, checked out once for the module."""
    with previous_release_tree(tmp_path_factory.mktemp("released")) as pair:
        yield pair


def load_spec(url: str, addressed_every: int = 0) -> LoadSpec:
    """About 10 s of orders at 15/s, each retried with its Idempotency-Key."""
    return LoadSpec(
        url,
        rate=15,
        duration=10,
        connections=8,
        customers=17,
        tag="rolling",
        idempotent_retries=True,
        timeout=30,
        attempt_timeout=10,
        addressed_every=addressed_every,
    )


def load(url: str, addressed_every: int = 0) -> LoadResult:
    """load_spec's orders sent to their end."""
    return run_in_this_process(load_spec(url, addressed_every))


def settle(system: System, result: LoadResult) -> Reconciliation:
    """Wait until every accepted order is terminal and both outboxes are empty, then reconcile the run."""
    drain = wait_drained(system.orders.url, set(result.accepted), timeout=120)
    urls = [system.env[name]["DATABASE_URL"] for name in ("order", "fulfillment")]
    left = wait_outboxes_empty(
        [sqlite_path(url) for url in urls if url.startswith("sqlite:///")], time.monotonic() + 30
    )
    # On another database than SQLite, the Order Service's readiness counts its outbox.
    on_sqlite = urls[0].startswith("sqlite:///")
    if not on_sqlite and not poll(
        lambda: system.order_readiness()["outboxBacklog"] == 0, 30, 0.5, ignore=(httpx.HTTPError,)
    ):
        left[urls[0]] = system.order_readiness()["outboxBacklog"]
    return reconcile(
        accepted=result.accepted,
        order_service_url=system.orders.url,
        bootstrap_servers=system.bootstrap_servers,
        registry_url=system.registry_url,
        order_topic=system.order_topic,
        fulfillment_topic=system.fulfillment_topic,
        ledger_path=system.data_dir / "shipping-provider.db",
        fault_end=None,
        drain=drain,
        outbox_left=left,
    )


def dead_letters(system: System) -> dict[str, int]:
    """Records in each dead-letter topic of the system, by topic."""
    topics = [system.env["order"][topic.dead_letter_env] for topic in TOPICS]
    return {topic: len(read_to_end(system.bootstrap_servers, topic, timeout=30)) for topic in topics}


def assert_clean(system: System, result: LoadResult, verdict: Reconciliation) -> None:
    """Every order sent was accepted and is Fulfilled, none lost or shipped twice, nothing dead-lettered."""
    assert result.sent >= 100 and result.ok == result.sent, result.status_counts()
    assert verdict.drained and verdict.lost == 0, verdict.to_json()
    assert verdict.duplicated == 0, verdict.to_json()
    assert verdict.statuses == {"Fulfilled": len(result.accepted)}, verdict.to_json()
    assert verdict.poison_on_order_events == 0 and not verdict.outbox_left
    assert set(dead_letters(system).values()) == {0}


def test_current_order_service_with_the_released_fulfillment_service_then_its_upgrade(
    stack, tmp_path: Path, released: tuple[Release, Path]
) -> None:
    release, tree = released
    system = make_system(stack.bootstrap_servers, stack.registry_url, tmp_path, **ENV)
    system.create_topics()
    current_fulfillment = system.fulfillment
    system = dataclasses.replace(system, fulfillment=released_service(current_fulfillment, tree, release))
    system.start()
    try:
        check_runs_release(system.fulfillment, release)
        assert served_openapi_version(system.orders) == CURRENT_OPENAPI["order-service"]

        # Load, every second order with a shipping address: the released consumer reads OrderCreated v2 and
        # skips the address; every order ships once.
        result = load(system.orders.url, addressed_every=2)
        assert_clean(system, result, settle(system, result))
        with httpx.Client(base_url=system.orders.url, timeout=10) as client:
            orders = [client.get(f"/api/orders/{order_id}").json() for order_id in result.accepted]
        addressed = [o for o in orders if o["shippingAddress"] == SHIPPING_ADDRESS]
        assert len(addressed) >= len(orders) // 3 and all(o["status"] == "Fulfilled" for o in addressed)

        # A cancellation meets the released consumer: dead-lettered as UnsafeWriterSchema, the order still
        # Processing (its provider calls failing and retried) with the cancellation Requested.
        system.set_provider(failureRate=1.0)
        with httpx.Client(base_url=system.orders.url, timeout=40) as client:
            order_id = client.post("/api/orders", json=order_body(customer="rolling-cancel")).json()["orderId"]
            waited = client.get(f"/api/orders/{order_id}", params={"waitFor": "Processing", "timeout": 25}).json()
            assert waited["status"] == "Processing"
            assert client.post(f"/api/orders/{order_id}/cancel", json={"reason": "upgrade"}).status_code == 202

            parked = first_with_key(system, system.env["fulfillment"][ORDER_EVENTS.dead_letter_env], order_id)
            headers = {name: raw.decode() for name, raw in parked.headers() or []}
            assert headers[DEAD_LETTER_HEADERS.error_type] == "UnsafeWriterSchema", headers
            order = client.get(f"/api/orders/{order_id}").json()
            assert order["status"] == "Processing" and order["cancellation"]["outcome"] == "Requested"

            # Upgrade: the released service stops, the current one takes over its group, database and port,
            # its provider still failing. The replayed cancellation cancels the order; it never ships.
            system.fulfillment.stop()
            upgraded = dataclasses.replace(
                current_fulfillment, env={**current_fulfillment.env, "PROVIDER_FAILURE_RATE": "1.0"}
            )
            system = dataclasses.replace(system, fulfillment=upgraded)
            upgraded.start()
            assert served_openapi_version(upgraded) == CURRENT_OPENAPI["fulfillment-service"]

            replay = CliRunner().invoke(repair, ["dlq", "replay"], env=system.env["fulfillment"])
            assert replay.exit_code == 0, replay.output
            assert replay.output.splitlines()[-1] == "replayed 1, skipped 0, failed 0 of 1 selected"

            final = wait_until(
                lambda: (o := client.get(f"/api/orders/{order_id}").json())["status"] != "Processing" and o,
                timeout=60,
                message="the cancelled order to leave Processing",
            )
        assert final["status"] == "Cancelled" and final["cancellation"]["outcome"] == "Cancelled", final
        assert final["cancellation"]["reason"] == "upgrade"
        fulfillment = httpx.get(f"{upgraded.url}/api/fulfillment/orders/{order_id}", timeout=10).json()
        assert fulfillment["status"] == "Cancelled"
        assert order_id not in ledger_requests(system.data_dir / "shipping-provider.db")
    finally:
        system.stop()
        current_fulfillment.stop()


def first_with_key(system: System, topic: str, order_id: str) -> Message:
    """The first record of topic keyed order_id, waiting up to 60 s for it; AssertionError if none comes."""
    key = order_id.encode()
    records = read_topic(system.bootstrap_servers, topic, stop=lambda rs: any(r.key() == key for r in rs), timeout=60)
    found = [r for r in records if r.key() == key]
    assert found, f"no record keyed {order_id} in {topic}"
    return found[0]


def test_released_order_service_with_the_current_fulfillment_service(
    stack, tmp_path: Path, released: tuple[Release, Path]
) -> None:
    release, tree = released
    system = make_system(stack.bootstrap_servers, stack.registry_url, tmp_path, **ENV)
    system.create_topics()
    system = dataclasses.replace(system, orders=released_service(system.orders, tree, release))
    system.start()
    try:
        check_runs_release(system.orders, release)
        assert served_openapi_version(system.fulfillment) == CURRENT_OPENAPI["fulfillment-service"]
        paths = httpx.get(system.orders.url + "/openapi.json", timeout=10).json()["paths"]
        assert CANCEL_PATH not in paths  # the released Order Service knows no cancellation
        # Nor a shipping address: a client sending one is told so, nothing is stored.
        with_address = {**order_body(customer="rolling-address"), "shippingAddress": SHIPPING_ADDRESS}
        assert httpx.post(system.orders.url + "/api/orders", json=with_address, timeout=10).status_code == 422

        result = load(system.orders.url)
        assert_clean(system, result, settle(system, result))

        # The released producer's orders carry no address: each shipped within the home country's delivery time.
        with httpx.Client(base_url=system.fulfillment.url, timeout=10) as client:
            shipped = [client.get(f"/api/fulfillment/orders/{order_id}").json() for order_id in result.accepted]
        assert {f["status"] for f in shipped} == {"Shipped"}  # no simulated delivery: Shipped is where they stay
        days = [(parse(f["estimatedDelivery"]) - parse(f["updatedAt"])) / timedelta(days=1) for f in shipped]
        assert all(HOME_DELIVERY_DAYS[0] - 0.01 <= d <= HOME_DELIVERY_DAYS[1] for d in days), days
    finally:
        system.stop()


def parse(moment: str) -> datetime:
    """An API's ISO 8601 time."""
    return datetime.fromisoformat(moment.replace("Z", "+00:00"))


def test_both_order_service_versions_on_one_postgresql_database_during_the_switch(
    stack, tmp_path: Path, postgres, released: tuple[Release, Path]
) -> None:
    # The released Order Service runs on the database; the current one starts beside it (migrating the database
    # on), both take orders under load, then the released one stops. A released relay claims rows of the current
    # one's OrderCreated, whose payload has a field its model forbids (shippingAddress), and parks them: nothing is
    # lost, each is published once it is retried after the switch (order-repair outbox retry).
    release, tree = released
    system = make_system(stack.bootstrap_servers, stack.registry_url, tmp_path, **ENV)
    system.env["order"]["DATABASE_URL"] = postgres.create_database("orders")
    system.create_topics()
    current_orders = system.orders
    old = released_service(current_orders, tree, release)
    new = dataclasses.replace(current_orders, port=free_port(), log_file=current_orders.log_file.with_suffix(".new"))
    system = dataclasses.replace(system, orders=old)
    system.start()
    try:
        check_runs_release(old, release)
        new.start()
        assert served_openapi_version(new) == CURRENT_OPENAPI["order-service"]

        background = BackgroundLoad(load_spec(old.url))
        background.start()
        try:
            on_new = run_in_this_process(load_spec(new.url, addressed_every=2))
        finally:
            on_old = background.stop()
        old.stop()  # the switch is done: only the current Order Service runs
        assert on_old.ok == on_old.sent and on_new.ok == on_new.sent, (on_old.status_counts(), on_new.status_counts())

        database = system.env["order"]["DATABASE_URL"]
        listed = CliRunner().invoke(repair, ["outbox", "list", "--database-url", database, "--json"])
        assert listed.exit_code == 0, listed.output
        parked = [json.loads(line) for line in listed.output.splitlines() if line.startswith("{")]
        # Only the current Order Service's events are parked, each for the field the released model forbids.
        assert all(row["payload"]["orderId"] in on_new.accepted for row in parked), parked[:3]
        assert all("shippingAddress" in row["failure_reason"] for row in parked), parked[:3]
        for row in parked:
            retried = CliRunner().invoke(
                repair, ["outbox", "retry", "--database-url", database, "--id", str(row["id"])]
            )
            assert retried.exit_code == 0, retried.output

        system = dataclasses.replace(system, orders=new)
        both = LoadResult(on_new.spec, accepted={**on_old.accepted, **on_new.accepted})
        verdict = settle(system, both)
        assert verdict.drained and verdict.lost == 0 and verdict.duplicated == 0, verdict.to_json()
        assert verdict.statuses == {"Fulfilled": len(both.accepted)}, verdict.to_json()
        assert min(len(on_old.accepted), len(on_new.accepted)) >= 100
        assert set(dead_letters(system).values()) == {0}
        print(f"parked by the released relay and retried: {len(parked)} of {len(on_new.accepted)}")
    finally:
        system.stop()
        old.stop()
        new.stop()
