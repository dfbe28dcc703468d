"""What the tests, the benchmark and the chaos runs share: the system under test and the ways to drive and read it.

- ``harness.system``: both services as processes on a stack, with their own topics, groups and databases.
- ``harness.orders``: order bodies, the Order Service's terminal statuses, waiting for orders to finish.
- ``harness.topics``: reading Kafka topics from the beginning.
- ``harness.load``: the open-loop load generator (in a process of its own, or on a background thread).
- ``harness.reconcile``: what clients were promised against what the system did (lost, duplicated).
- ``harness.waiting``: polling with a deadline.
"""
