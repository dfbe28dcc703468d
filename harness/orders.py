"""Orders as a client sees them: request bodies, the terminal statuses, and waiting until orders are done.

The terminal statuses are the Order Service's own (``order_service.domain.TERMINAL``): Fulfilled and Failed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from harness.order_bodies import order_body
from harness.waiting import wait_until
from order_service.domain import TERMINAL, OrderStatus

# The statuses an order passes through before a terminal one, in that order.
OPEN_STATUSES: tuple[str, ...] = tuple(status.value for status in OrderStatus if status not in TERMINAL)
# `waitFor` of GET /api/orders/{id}: answer as soon as the order is terminal.
WAIT_FOR_TERMINAL = ",".join(status.value for status in OrderStatus if status in TERMINAL)
# The target for fulfillment to pick an accepted order up (seconds from OrderCreated to the first Pending event):
# the benchmark reports the share of orders within it, fault runs check that no order misses it.
PICKUP_SLA_S = 5.0


def post_orders(base_url: str, count: int, timeout: float = 5.0) -> list[str]:
    """POST count orders one after another; returns their ids. AssertionError on any answer but 201."""
    ids = []
    with httpx.Client(base_url=base_url, timeout=timeout) as client:
        for i in range(count):
            response = client.post("/api/orders", json=order_body(customer=f"cust-{i % 7}"))
            assert response.status_code == 201, response.text
            ids.append(response.json()["orderId"])
    return ids


def fetch_orders(
    base_url: str, order_ids: list[str], headers: dict[str, str] | None = None
) -> dict[str, dict[str, Any]]:
    """GET /api/orders/{id} for each id (with headers, e.g. Authorization): the response bodies by id."""
    with httpx.Client(base_url=base_url, timeout=10, headers=headers) as client:
        return {order_id: client.get(f"/api/orders/{order_id}").json() for order_id in order_ids}


def wait_all_terminal(
    base_url: str, order_ids: list[str], timeout: float, headers: dict[str, str] | None = None
) -> dict[str, dict[str, Any]]:
    """The orders' bodies once every one is terminal (read with headers); AssertionError after timeout seconds."""

    def done() -> dict[str, dict[str, Any]] | None:
        current = fetch_orders(base_url, order_ids, headers)
        return current if all(o.get("status") in TERMINAL for o in current.values()) else None

    return wait_until(done, timeout, interval=0.5, message="every order to reach Fulfilled or Failed")


def wait_terminal(client: httpx.Client, order_id: str, timeout: float, long_poll: float = 30.0) -> str:
    """Long-poll one order (client's base URL is the Order Service) until terminal or timeout seconds.

    Returns the last status seen, terminal or not; each request waits at most long_poll seconds.
    Raises httpx.HTTPError when the service does not answer.
    """
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        params = {"waitFor": WAIT_FOR_TERMINAL, "timeout": max(0.1, min(long_poll, left))}
        response = client.get(f"/api/orders/{order_id}", params=params)
        response.raise_for_status()
        status: str = response.json()["status"]
        if status in TERMINAL or left <= 0:
            return status


def list_orders(client: httpx.Client, status: str | None = None) -> dict[str, dict[str, Any]]:
    """Every order (with the given status) by id, following the pagination of GET /api/orders."""
    found: dict[str, dict[str, Any]] = {}
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 100}
        if status:
            params["status"] = status
        if cursor:
            params["cursor"] = cursor
        response = client.get("/api/orders", params=params)
        response.raise_for_status()
        page = response.json()
        for order in page["items"]:
            found[order["orderId"]] = order
        cursor = page.get("nextCursor")
        if not cursor:
            return found


def open_orders(client: httpx.Client, order_ids: set[str]) -> set[str]:
    """The given orders that are not terminal yet.

    Read in the order statuses advance, so an order that moves on between two pages is still seen.
    """
    open_ids: set[str] = set()
    for status in OPEN_STATUSES:
        open_ids |= set(list_orders(client, status))
    return order_ids & open_ids


@dataclass
class DrainOutcome:
    """How waiting for orders to finish ended."""

    drained: bool  # every order terminal
    waited_s: float
    open_orders: int  # orders not terminal when the wait ended


def wait_drained(
    base_url: str, order_ids: set[str], timeout: float, progress: Callable[[str], None] | None = None
) -> DrainOutcome:
    """Poll (listing by status, cheap for many orders) until none of order_ids is open, at most timeout seconds.

    A service that does not answer counts as "not yet"; progress, if given, is told how the wait goes.
    """
    started = time.monotonic()
    open_ids = set(order_ids)
    with httpx.Client(base_url=base_url, timeout=30) as client:
        while True:
            try:
                open_ids = open_orders(client, order_ids)
            except httpx.HTTPError as exc:
                if progress:
                    progress(f"order service not answering while draining: {exc}")
            else:
                if not open_ids:
                    return DrainOutcome(True, time.monotonic() - started, 0)
            waited = time.monotonic() - started
            if waited >= timeout:
                return DrainOutcome(False, waited, len(open_ids))
            if progress:
                progress(f"draining: {len(open_ids)} orders not terminal after {waited:.0f}s")
            time.sleep(0.5)
