"""The optional shippingAddress of POST /api/orders: validated like every other field (422 naming the field),
trimmed, stored, returned by GET and the list, carried on OrderCreated; orders without one stay as before."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from contract_models.events import OrderCreated
from contracts.order_rules import check_order_created
from contracts.violation import RuleViolation
from order_service import store
from order_service.app import order_api
from order_service.status_waiter import StatusWaiter
from order_service.unit_of_work import SqlOrderUnitOfWork
from order_service.use_cases import OrderService
from persistence.engine import make_engine
from tests.unit.test_order_validation import assert_problem, order

COUNTRY_MESSAGE = "must be an assigned ISO 3166-1 alpha-2 country code in upper case, e.g. DE"


@pytest.fixture
def env(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/orders.db")
    store.metadata.create_all(engine)
    service = OrderService(SqlOrderUnitOfWork(engine, "order-events"), StatusWaiter(), 86_400)
    with TestClient(order_api(service, max_body_bytes=1_048_576)) as client:
        yield client, engine


def address(**overrides):
    return {
        "recipientName": "Ada Lovelace",
        "addressLines": ["12 St James's Square", "Flat 3"],
        "city": "London",
        "postalCode": "SW1Y 4JH",
        "country": "GB",
        **overrides,
    }


def events(engine) -> list[OrderCreated]:
    with engine.connect() as conn:
        payloads = conn.execute(select(store.outbox.c.payload).order_by(store.outbox.c.id)).scalars().all()
    return [OrderCreated.model_validate_json(payload) for payload in payloads]


def test_an_address_is_trimmed_stored_returned_and_put_on_the_event(env):
    client, engine = env
    sent = address(
        recipientName="  Ada Lovelace ",
        addressLines=[" 12 St James's Square", "Flat 3\t"],
        city=" London ",
        postalCode=" SW1Y 4JH  ",
    )
    response = client.post("/api/orders", json=order(shippingAddress=sent))

    assert response.status_code == 201, response.text
    created = response.json()
    assert created["shippingAddress"] == address()
    order_id = created["orderId"]
    assert client.get(f"/api/orders/{order_id}").json()["shippingAddress"] == address()
    assert client.get("/api/orders").json()["items"][0]["shippingAddress"] == address()
    (event,) = events(engine)
    assert event.shippingAddress is not None and event.shippingAddress.model_dump() == address()
    check_order_created(event)  # what the Fulfillment Service checks before it acts


def test_an_order_without_an_address_has_none_everywhere(env):
    client, engine = env
    response = client.post("/api/orders", json=order())

    assert response.status_code == 201
    assert response.json()["shippingAddress"] is None
    assert client.get(f"/api/orders/{response.json()['orderId']}").json()["shippingAddress"] is None
    (event,) = events(engine)
    assert event.shippingAddress is None


@pytest.mark.parametrize(
    ("shipping_address", "field", "message"),
    [
        (address(country="QQ"), "shippingAddress.country", COUNTRY_MESSAGE),  # user-assigned
        (address(country="XX"), "shippingAddress.country", COUNTRY_MESSAGE),
        (address(country="XK"), "shippingAddress.country", COUNTRY_MESSAGE),  # user-assigned, not in ISO 3166-1
        (address(country="de"), "shippingAddress.country", COUNTRY_MESSAGE),  # lower case
        (address(country=" DE"), "shippingAddress.country", COUNTRY_MESSAGE),  # codes are not trimmed
        (address(country="DEU"), "shippingAddress.country", COUNTRY_MESSAGE),  # alpha-3
        (address(country=49), "shippingAddress.country", COUNTRY_MESSAGE),
        (address(addressLines=["a", "b", "c", "d"]), "shippingAddress.addressLines", None),
        (address(addressLines=[]), "shippingAddress.addressLines", None),
        (address(addressLines="12 Main St"), "shippingAddress.addressLines", None),
        (address(addressLines=["ok", "   "]), "shippingAddress.addressLines[1]", None),
        (address(addressLines=["x" * 201]), "shippingAddress.addressLines[0]", None),
        (address(recipientName="x" * 201), "shippingAddress.recipientName", None),
        (address(recipientName=" \t "), "shippingAddress.recipientName", None),
        (address(recipientName="Ada\x00"), "shippingAddress.recipientName", None),
        (address(city="x" * 101), "shippingAddress.city", None),
        (address(city=""), "shippingAddress.city", None),
        (address(postalCode="1" * 21), "shippingAddress.postalCode", None),
        (address(postalCode="   "), "shippingAddress.postalCode", None),
        (address(postalCode="10115!"), "shippingAddress.postalCode", None),
        (address(postalCode="10115\n"), "shippingAddress.postalCode", None),
        # fullwidth digits are not ASCII
        (address(postalCode="\uff11\uff10\uff11\uff11\uff15"), "shippingAddress.postalCode", None),
        (address(floor=3), "shippingAddress.floor", "unknown field"),
        ({k: v for k, v in address().items() if k != "city"}, "shippingAddress.city", None),
        (None, "shippingAddress", "must be an object"),
        ("12 Main St, Berlin", "shippingAddress", None),
    ],
)
def test_a_bad_address_is_refused_naming_the_field(env, shipping_address, field, message):
    client, engine = env
    response = client.post("/api/orders", json=order(shippingAddress=shipping_address))

    assert_problem(response, 422, field)
    if message is not None:
        assert {"field": field, "message": message} in response.json()["errors"]
    assert events(engine) == []


@pytest.mark.parametrize(
    "shipping_address",
    [
        address(addressLines=["x" * 200] * 3, recipientName="y" * 200, city="z" * 100, postalCode="1" * 20),
        address(addressLines=["1 Rue de Rivoli"], country="FR", postalCode="75001"),
        address(country="NO", postalCode="0150"),  # NO stays Norway
        address(country="US", postalCode="20500-0003"),
        address(postalCode="-1"),
    ],
)
def test_addresses_at_the_limits_are_accepted(env, shipping_address):
    client, _ = env
    response = client.post("/api/orders", json=order(shippingAddress=shipping_address))

    assert response.status_code == 201, response.text
    assert response.json()["shippingAddress"] == shipping_address


def test_the_idempotency_key_binds_the_address(env):
    client, _ = env
    headers = {"Idempotency-Key": "k-1"}
    first = client.post("/api/orders", json=order(shippingAddress=address()), headers=headers)
    again = client.post("/api/orders", json=order(shippingAddress=address(city=" London")), headers=headers)
    moved = client.post("/api/orders", json=order(shippingAddress=address(city="Paris")), headers=headers)
    without = client.post("/api/orders", json=order(), headers=headers)

    assert first.status_code == 201 and again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true" and again.json()["orderId"] == first.json()["orderId"]
    assert_problem(moved, 422)
    assert_problem(without, 422)


def test_an_event_with_an_untrimmed_or_unassigned_address_breaks_the_order_rules(env):
    client, engine = env
    client.post("/api/orders", json=order(shippingAddress=address()))
    (event,) = events(engine)
    assert event.shippingAddress is not None
    shipping = event.shippingAddress
    untrimmed = event.model_copy(update={"shippingAddress": shipping.model_copy(update={"city": " L"})})
    unassigned = event.model_copy(update={"shippingAddress": shipping.model_copy(update={"country": "ZZ"})})

    with pytest.raises(RuleViolation, match="trimmed"):
        check_order_created(untrimmed)
    with pytest.raises(RuleViolation, match=r"shippingAddress\.country"):
        check_order_created(unassigned)
