"""The Order Service's HTTP contract for bad input, checked without Kafka (the outbox takes the events)."""

import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from order_service import store
from order_service.app import order_api
from order_service.status_waiter import StatusWaiter
from order_service.unit_of_work import SqlOrderUnitOfWork
from order_service.use_cases import OrderService
from persistence.engine import make_engine


@pytest.fixture
def env(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/orders.db")
    store.metadata.create_all(engine)
    service = OrderService(SqlOrderUnitOfWork(engine, "order-events"), StatusWaiter(), 86_400)
    app = order_api(service, max_body_bytes=1_048_576)
    with TestClient(app) as client:
        yield client, engine


def order(**overrides):
    body = {
        "customerId": "cust-1",
        "customerName": "Ada",
        "items": [{"productId": "p-1", "productName": "Lamp", "quantity": 2, "price": 19.99}],
    }
    body.update(overrides)
    return body


def item(**overrides):
    return {"productId": "p-1", "productName": "Lamp", "quantity": 1, "price": 1.0, **overrides}


def count(engine, table):
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def assert_problem(response, status, field=None):
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["title"]
    if field is not None:
        assert field in [e["field"] for e in body["errors"]], body


def test_valid_order_is_stored_with_its_event(env):
    client, engine = env
    response = client.post("/api/orders", json=order(customerId="  cust-1  "))
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "Pending" and body["customerId"] == "cust-1"
    assert body["totalAmount"] == 39.98
    assert response.headers["location"] == f"/api/orders/{body['orderId']}"
    assert count(engine, store.orders) == 1 and count(engine, store.outbox) == 1
    assert client.get(f"/api/orders/{body['orderId']}").json()["orderId"] == body["orderId"]


def test_money_stays_exact(env):
    client, _ = env
    items = [item(price=0.1, quantity=3), item(price=0.2)]
    response = client.post(
        "/api/orders", content=json.dumps(order(items=items)), headers={"content-type": "application/json"}
    )
    assert response.status_code == 201
    assert '"totalAmount":0.50' in response.text or '"totalAmount":0.5' in response.text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (order(customerId=""), "customerId"),
        (order(customerId="   "), "customerId"),
        (order(customerName="x" * 201), "customerName"),
        (order(items=[]), "items"),
        (order(items=[item()] * 1001), "items"),
        (order(items=[item(quantity=0)]), "items[0].quantity"),
        (order(items=[item(quantity=10_001)]), "items[0].quantity"),
        (order(items=[item(quantity=1.5)]), "items[0].quantity"),
        (order(items=[item(quantity="2")]), "items[0].quantity"),
        (order(items=[item(price=-1)]), "items[0].price"),
        (order(items=[item(price=1_000_000.01)]), "items[0].price"),
        (order(items=[item(price=1.999)]), "items[0].price"),
        (order(items=[item(price="1.00")]), "items[0].price"),
        (order(items=[item(productId="")]), "items[0].productId"),
        (order(items=[item(productName=None)]), "items[0].productName"),
        (order(unexpected=True), "unexpected"),
        (order(items=[item(color="red")]), "items[0].color"),
        (order(totalAmount=1.00), "totalAmount"),
        ({"customerName": "Ada", "items": [item()]}, "customerId"),
        ([1, 2], "body"),
    ],
)
def test_invalid_orders_are_rejected_with_the_field(env, body, field):
    client, engine = env
    response = client.post("/api/orders", json=body)
    assert_problem(response, 422, field)
    assert count(engine, store.orders) == 0


def test_limits_at_the_edge_are_accepted(env):
    client, _ = env
    items = [item(quantity=10_000, price=1_000_000)] + [item(price=0)] * 999
    response = client.post("/api/orders", json=order(customerName="x" * 200, items=items))
    assert response.status_code == 201, response.text
    assert response.json()["totalAmount"] == 10_000_000_000


def test_matching_client_total_is_accepted(env):
    client, _ = env
    assert client.post("/api/orders", json=order(totalAmount=39.98)).status_code == 201


def test_malformed_json_is_400(env):
    client, _ = env
    response = client.post("/api/orders", content=b'{"customerId": ', headers={"content-type": "application/json"})
    assert_problem(response, 400, "body")


def test_wrong_content_type_is_415(env):
    client, _ = env
    response = client.post("/api/orders", content=json.dumps(order()), headers={"content-type": "text/plain"})
    assert_problem(response, 415)


def test_body_over_one_mib_is_413(env):
    client, engine = env
    huge = order(customerName="x" * (1_048_576 + 10))
    response = client.post("/api/orders", content=json.dumps(huge), headers={"content-type": "application/json"})
    assert_problem(response, 413)
    assert count(engine, store.orders) == 0


def test_unknown_and_malformed_ids(env):
    client, _ = env
    assert_problem(client.get("/api/orders/00000000-0000-4000-8000-000000000000"), 404)
    assert client.get("/api/orders/not-a-uuid").status_code in (404, 422)
    assert client.get("/api/orders/not-a-uuid").headers["content-type"].startswith("application/problem+json")


def test_idempotency_key_replays_and_guards_the_body(env):
    client, engine = env
    first = client.post("/api/orders", json=order(), headers={"Idempotency-Key": "k-1"})
    again = client.post("/api/orders", json=order(), headers={"Idempotency-Key": "k-1"})
    assert first.status_code == again.status_code == 201
    assert again.json()["orderId"] == first.json()["orderId"]
    assert again.headers["idempotent-replayed"] == "true"
    assert count(engine, store.orders) == 1 and count(engine, store.outbox) == 1
    other = client.post("/api/orders", json=order(customerName="Bob"), headers={"Idempotency-Key": "k-1"})
    assert_problem(other, 422, "Idempotency-Key")
    assert count(engine, store.orders) == 1


def test_listing_pages_by_cursor_and_filters(env):
    client, _ = env
    ids = [client.post("/api/orders", json=order(customerId=f"c{i % 2}")).json()["orderId"] for i in range(5)]
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/orders", params=params).json()
        seen += [o["orderId"] for o in page["items"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    only_c0 = client.get("/api/orders", params={"customerId": "c0"}).json()["items"]
    assert {o["customerId"] for o in only_c0} == {"c0"} and len(only_c0) == 3
    assert client.get("/api/orders", params={"status": "Fulfilled"}).json()["items"] == []
    assert_problem(client.get("/api/orders", params={"cursor": "garbage"}), 422, "cursor")
    assert_problem(client.get("/api/orders", params={"limit": 0}), 422, "limit")


def test_wait_for_times_out_with_current_order(env):
    client, _ = env
    order_id = client.post("/api/orders", json=order()).json()["orderId"]
    response = client.get(f"/api/orders/{order_id}", params={"waitFor": "Fulfilled", "timeout": 0.3})
    assert response.status_code == 200 and response.json()["status"] == "Pending"
    bad = client.get(f"/api/orders/{order_id}", params={"waitFor": "Shipped"})
    assert_problem(bad, 422)
    assert bad.json()["errors"][0]["field"].startswith("waitFor")
