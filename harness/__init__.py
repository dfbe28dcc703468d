"""What the tests, the benchmark and the chaos runs share: the system under test and the ways to drive and read it.

- ``harness.system``: both services as processes on a stack, with their own topics, groups and databases, and
  what they report (readiness, fulfillment health) or let change (the mock provider).
- ``harness.order_bodies``: the one builder of CreateOrderRequest bodies.
- ``harness.orders``: the Order Service's terminal statuses, waiting for orders to finish.
- ``harness.topics``: reading Kafka topics from the beginning (messaging.topic_reader on a broker address).
- ``harness.records``: raw records (wire format by hand, poison) and producing them to a topic.
- ``harness.load``: the load generator (open loop, or closed), in a process of its own or on a thread.
- ``harness.otlp_receiver``: an OTLP/HTTP trace receiver the services can export their spans to.
- ``harness.reconcile``: what clients were promised against what the system did (lost, duplicated).
- ``harness.percentiles``, ``harness.waiting``: latency percentiles; polling with a deadline.
"""
