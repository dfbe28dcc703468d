"""The mock shipping provider's estimated delivery: later for a country other than its home country
(PROVIDER_HOME_COUNTRY), as before for one at home and for an order without an address."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import pytest

from fulfillment_service.domain import Destination
from fulfillment_service.settings import FulfillmentServiceSettings
from fulfillment_service.shipping import (
    ABROAD_DELIVERY_DAYS,
    DEFAULT_HOME_COUNTRY,
    HOME_DELIVERY_DAYS,
    MockShippingProvider,
    ProviderBehaviour,
)
from persistence.engine import make_engine

DAY = 86_400.0
PARIS = Destination("Marie Curie", ("36 Quai de Bethune",), "Paris", "75004", "FR")
BERLIN = Destination("Lise Meitner", ("Unter den Linden 6", "Hof 2"), "Berlin", "10117", "DE")


def days_to_delivery(provider: MockShippingProvider, destinations: list[Destination | None]) -> list[float]:
    """Days from each call to its shipment's estimated delivery, one order per destination."""

    async def main() -> list[float]:
        provider.start()
        try:
            days = []
            for n, destination in enumerate(destinations):
                called_at = time.time()
                shipment = await provider.create_shipment(f"order-{n}", destination)
                days.append((shipment.estimated_delivery.timestamp() - called_at) / DAY)
            return days
        finally:
            await provider.stop()

    return asyncio.run(main())


def within(days: float, bounds: tuple[float, float]) -> bool:
    return bounds[0] <= days <= bounds[1] + 0.001  # the call itself takes a moment


@pytest.fixture
def mock_provider(tmp_path: Path):
    def build(home_country: str = DEFAULT_HOME_COUNTRY) -> MockShippingProvider:
        behaviour = ProviderBehaviour(min_latency_ms=0, max_latency_ms=0, failure_rate=0.0)
        engine = make_engine(f"sqlite:///{tmp_path}/ledger-{home_country}.db")
        return MockShippingProvider(engine, behaviour, random.Random(7), home_country=home_country)

    return build


def test_delivery_is_estimated_later_abroad_than_at_home_or_without_an_address(mock_provider):
    home = [BERLIN, None] * 20
    days = days_to_delivery(mock_provider(), [*home, *[PARIS] * 20])

    at_home, abroad = days[: len(home)], days[len(home) :]
    assert all(within(d, HOME_DELIVERY_DAYS) for d in at_home), at_home
    assert all(within(d, ABROAD_DELIVERY_DAYS) for d in abroad), abroad
    assert max(at_home) < min(abroad)


def test_the_home_country_is_a_setting_holding_an_assigned_code(mock_provider, monkeypatch):
    paris, berlin = days_to_delivery(mock_provider("FR"), [PARIS, BERLIN])
    assert within(paris, HOME_DELIVERY_DAYS) and within(berlin, ABROAD_DELIVERY_DAYS)

    assert FulfillmentServiceSettings().provider_home_country == "DE"
    monkeypatch.setenv("PROVIDER_HOME_COUNTRY", "FR")
    assert FulfillmentServiceSettings().provider_home_country == "FR"
    for refused in ("fr", "XK", "France"):
        monkeypatch.setenv("PROVIDER_HOME_COUNTRY", refused)
        with pytest.raises(ValueError, match="ISO 3166-1"):
            FulfillmentServiceSettings()
