"""provider-outage: the mock shipping provider failing every call for provider_outage_s, then healthy again."""

from __future__ import annotations

from chaos.run import Run
from chaos.scenario import Scenario


def inject(run: Run) -> None:
    """Set the provider's failure rate to 100 % (PUT /admin/provider), hold, restore it."""
    normal = run.system.set_provider()

    def breaker() -> str | None:
        state = run.system.fulfillment_health()["breaker"]
        return f"breaker {state}" if state != "closed" else None

    with run.fault(f"shipping provider failing 100% for {run.profile.provider_outage_s:g}s") as fault:
        run.system.set_provider(failureRate=1.0)
        fault.evidence += run.hold(run.profile.provider_outage_s, breaker)
        # Healthy again means its normal behaviour, random failures included.
        run.system.set_provider(failureRate=normal["failureRate"])
    run.check("the circuit breaker opened during the outage", any("open" in e for e in fault.evidence))


SCENARIO = Scenario("provider-outage", "shipping provider failing 100%, then healthy", inject)
