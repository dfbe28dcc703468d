"""Schemathesis against both running services (real broker and registry), driven by the committed specs.

Every built-in check is on: server errors, status codes, content types, response schemas and headers,
negative_data_rejection (schema-violating requests must be refused) and positive_data_acceptance (valid
ones must be accepted), plus missing_required_header, unsupported_method and the others. Each operation gets
the coverage phase (boundary and negated values) and the fuzzing phase with CONTRACT_EXAMPLES cases (default
100; `make contract` runs 1,000); the Order Service also gets stateful runs that follow the spec's links
(POST /api/orders -> GET /api/orders/{orderId} with the new order's id).

A few rules of the contract are prose, not JSON Schema, so a generated "valid" request can still break them.
`obey_prose_rules` makes requests keep them, touching only values that are schema-valid (so a negative case
keeps its violation):

* `totalAmount` "must equal the sum of quantity * price": it is set to that sum (dropped when a JSON double
  cannot carry it exactly);
* an `Idempotency-Key` reused "with another body is a 422": the key is made specific to the body (the same
  body keeps the same key, so replays are still exercised);
* `cursor` is "the nextCursor of the previous page": a valid cursor becomes one a real page handed out;
* `waitFor`/`timeout` hold the response up to 30 s by design: the wait is capped at 0.2 s to keep runs short.

Half of the valid order ids become ids of real orders, so 200 responses are checked as well as 404s.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from schemathesis import Case
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import ignored_auth

from harness.order_bodies import order_body
from harness.orders import wait_all_terminal
from harness.system import running_system
from harness.tokens import TokenIssuer

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ORDER_SPEC = ROOT / "schemas/openapi/order-service.yaml"
FULFILLMENT_SPEC = ROOT / "schemas/openapi/fulfillment-service.yaml"
EXAMPLES = int(os.environ.get("CONTRACT_EXAMPLES", "100"))
MAX_WAIT_SECONDS = 0.2
STEPS_PER_SCENARIO = 10  # calls in one stateful sequence
MAX_STATEFUL_RUNS = 5  # runs of the state machine to spend its budget of steps (a run can end early: Flaky)
ACCEPTED = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]  # positive_data_acceptance's default
# negative_data_rejection's default (schemathesis.config._checks)
REJECTED = ["400", "401", "403", "404", "405", "406", "409", "415", "422", "428", "429", "5xx"]
# Cases each operation ran, for the summary printed at the end (tests/contract/conftest.py).
CASES: Counter[str] = Counter()


def load(spec: Path) -> Any:
    config = SchemathesisConfig.from_dict(
        {
            "request-timeout": 30,
            # A body over the documented 1 MiB limit is refused with the documented 413, valid or not.
            "checks": {
                "enabled": True,
                "positive_data_acceptance": {"expected-statuses": [*ACCEPTED, "413"]},
                "negative_data_rejection": {"expected-statuses": [*REJECTED, "413"]},
            },
            "generation": {"max-examples": EXAMPLES, "mode": "all", "database": "none"},
            "phases": {"examples": {"enabled": True}, "coverage": {"enabled": True}, "fuzzing": {"enabled": True}},
        }
    )
    return schemathesis.openapi.from_path(spec, config=config)


ORDER_SCHEMA = load(ORDER_SPEC)
FULFILLMENT_SCHEMA = load(FULFILLMENT_SPEC)


@dataclass(frozen=True)
class Seeded:
    """Where the services run, and real orders and page cursors for requests that must name existing things."""

    orders_url: str
    fulfillment_url: str
    order_ids: list[str]
    cursors: list[str]
    auth: dict[str, str]  # the Authorization header of an operator's token

    def pick(self, values: list[str], seed: str) -> str:
        # Chosen by the generated value, so a case always runs the same way (Hypothesis replays cases).
        return values[int(hashlib.sha256(seed.encode()).hexdigest(), 16) % len(values)]


@pytest.fixture(scope="module")
def seeded(stack: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    """Both services running with authentication on (tokens of harness.tokens' issuer), with a few fulfilled
    orders. Schemathesis sends an operator's token on every request (its ignored_auth check also sends none, and
    an invalid one, and expects the 401 the spec gives)."""
    issuer = TokenIssuer()
    headers = issuer.headers()
    with running_system(stack, tmp_path_factory.mktemp("conformance"), **issuer.service_env()) as system:
        # The stateful machine is built after collection, so it takes its base URL from the schema.
        ORDER_SCHEMA.config.update(base_url=system.orders.url, headers=headers)
        FULFILLMENT_SCHEMA.config.update(headers=headers)
        with httpx.Client(base_url=system.orders.url, timeout=10, headers=headers) as client:
            order_ids = [
                client.post("/api/orders", json=order_body(customer=f"seed-{i}")).json()["orderId"] for i in range(4)
            ]
            cursors = [client.get("/api/orders", params={"limit": n}).json()["nextCursor"] for n in (1, 2, 3)]
        wait_all_terminal(system.orders.url, order_ids, timeout=60, headers=headers)
        yield Seeded(system.orders.url, system.fulfillment.url, order_ids, cursors, headers)


@ORDER_SCHEMA.parametrize()
def test_order_service_conforms(case: Case, seeded: Seeded) -> None:
    obey_prose_rules(case, seeded)
    case.call_and_validate(base_url=seeded.orders_url)
    CASES[f"order-service {case.operation.label}"] += 1


@FULFILLMENT_SCHEMA.parametrize()
def test_fulfillment_service_conforms(case: Case, seeded: Seeded) -> None:
    obey_prose_rules(case, seeded)
    case.call_and_validate(base_url=seeded.fulfillment_url)
    CASES[f"fulfillment-service {case.operation.label}"] += 1


def test_order_service_stateful_links(seeded: Seeded) -> None:
    """Sequences of calls along the spec's links: a created order is readable at once, by its new id."""

    failures: list[str] = []

    def steps() -> int:
        return sum(n for label, n in CASES.items() if label.startswith("order-service stateful "))

    class Links(ORDER_SCHEMA.as_state_machine()):  # type: ignore[misc]
        def before_call(self, case: Case) -> None:
            obey_prose_rules(case, seeded)
            # A key sent again (hypothesis replays choice sequences across examples) is a replay, answered 200
            # instead of 201, so the order never joins the "201" bundle and the next draw from it sees another
            # size: hypothesis stops with FlakyStrategyDefinition. Replays are covered by the stateless tests.
            key = (case.headers or {}).get("Idempotency-Key")
            if case.operation.label == "POST /api/orders" and isinstance(key, str) and 1 <= len(key) <= 200:
                case.headers = {**case.headers, "Idempotency-Key": f"{key[:183]}-{uuid.uuid4().hex[:16]}"}
            CASES[f"order-service stateful {case.operation.label}"] += 1

        def validate_response(self, response: Any, case: Case, **kwargs: Any) -> None:
            # The machine generates credentials of its own, which the operator's token configured for every request
            # replaces on the wire; ignored_auth would take the token for the generated credentials ("invalid auth
            # accepted"). The stateless runs check that a missing or invalid token is refused.
            case.validate_response(
                response, excluded_checks=[ignored_auth], transport_kwargs=kwargs or None, recorder=self.recorder
            )

        def step(self, input: Any) -> Any:
            # Whatever a step raises (a failed check, a lost connection) is collected, not raised: the services'
            # state moves on between calls, so hypothesis could not replay the sequence that failed (the
            # responses, and so the bundles it draws from, differ) and would report FlakyStrategyDefinition
            # instead of the failure. The example is then dropped as invalid, which hypothesis never replays.
            try:
                return super().step(input)
            except hypothesis.errors.HypothesisException:
                raise
            except (Exception, BaseExceptionGroup) as exc:  # schemathesis' FailureGroup is a BaseExceptionGroup
                case = input.case
                failures.append(
                    f"{case.operation.label} {case.path_parameters} {case.query}: {type(exc).__name__}: {exc}"
                )
                hypothesis.reject()

    # The machine's draws depend on the services' answers (which bundles hold what: the order list grows, orders
    # move on), so hypothesis may stop a run with Flaky when one sequence of draws met other answers than before.
    # As schemathesis' own runner does (engine/run/stateful/_executor.py, _classify_flaky), that ends the run, not
    # the test: every failure is collected by step() already. Runs go on until the budget of steps is spent.
    budget, runs = max(10, EXAMPLES // 10) * STEPS_PER_SCENARIO, 0
    while steps() < budget and runs < MAX_STATEFUL_RUNS:
        runs += 1
        try:
            Links.run(
                settings=hypothesis.settings(
                    max_examples=max(10, EXAMPLES // 10),
                    stateful_step_count=STEPS_PER_SCENARIO,
                    deadline=None,
                    database=None,
                    phases=[hypothesis.Phase.generate],
                    suppress_health_check=list(hypothesis.HealthCheck),
                )
            )
        except hypothesis.errors.Flaky:
            continue
        break
    assert not failures, "\n\n".join(failures[:5])
    followed = CASES["order-service stateful GET /api/orders/{orderId}"]
    assert followed > 0, "no stateful step read an order: the POST -> GET link was never followed"


def obey_prose_rules(case: Case, seeded: Seeded) -> None:
    """Make schema-valid values also satisfy the rules the spec states in prose (module docstring).

    A part that changes is replaced by a changed copy, never changed in place: hypothesis hands out the same
    objects again (explicit examples, replayed choices), and a value changed in place would make the same draw
    send another request (a key grown by each suffix until it is too long). A part that does not change is not
    assigned: schemathesis takes an assigned part for an edit and judges the case's validity again (an absent
    optional body then counts as invalid, so a valid request answered 202 would be reported as accepted).
    """
    label = case.operation.label
    if label == "POST /api/orders" and isinstance(case.body, dict):
        body = copy.deepcopy(case.body)
        _total_matches_items(body)
        if body != case.body:
            case.body = body
        key = (case.headers or {}).get("Idempotency-Key")
        if isinstance(key, str) and 1 <= len(key) <= 200:
            digest = hashlib.sha256(json.dumps(case.body, sort_keys=True, default=str).encode()).hexdigest()[:16]
            case.headers = {**case.headers, "Idempotency-Key": f"{key[:183]}-{digest}"}
    query = case.query if isinstance(case.query, dict) else {}
    if label == "GET /api/orders" and isinstance(query.get("cursor"), str) and 1 <= len(query["cursor"]) <= 500:
        case.query = {**query, "cursor": seeded.pick(seeded.cursors, query["cursor"])}
    if label == "GET /api/orders/{orderId}":
        timeout = query.get("timeout")
        if isinstance(timeout, int | float) and not isinstance(timeout, bool) and MAX_WAIT_SECONDS < timeout <= 30:
            case.query = {**query, "timeout": MAX_WAIT_SECONDS}
    order_id = (case.path_parameters or {}).get("orderId")
    if isinstance(order_id, str) and _is_uuid(order_id) and int(hashlib.sha256(order_id.encode()).hexdigest(), 16) % 2:
        case.path_parameters = {**case.path_parameters, "orderId": seeded.pick(seeded.order_ids, order_id)}


def _is_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value.lower()
    except ValueError:
        return False


def _total_matches_items(body: dict[str, Any]) -> None:
    total = body.get("totalAmount")
    if not _is_money(total) or not isinstance(body.get("items"), list):
        return
    try:
        exact = sum((Decimal(repr(i["price"])) * Decimal(repr(i["quantity"])) for i in body["items"]), Decimal(0))
    except (TypeError, KeyError, ArithmeticError, ValueError):
        return  # items are invalid anyway: the order is refused whatever the total says
    if Decimal(repr(float(exact))) == exact:
        body["totalAmount"] = float(exact)
    else:
        del body["totalAmount"]


def _is_money(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    amount = Decimal(repr(value))
    # A multiple of 0.01: at most two decimals (repr has no trailing zeros beyond "1.0").
    return amount.is_finite() and amount >= 0 and int(amount.as_tuple().exponent) >= -2
