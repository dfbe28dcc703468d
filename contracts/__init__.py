"""Rules over the contracts' data that the schemas' types cannot state, written once for both services.

`contract_models` (generated) says what shape a request or event has; the modules here say when one is
acceptable: the order rules, used by the Order Service's API and by the Fulfillment Service before it
acts on an `OrderCreated`, and the fulfillment-event rules, used by the Order Service's projection.
"""
