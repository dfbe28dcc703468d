"""Kafka and Schema Registry plumbing shared by both services, naming no project event (the topology in
events/ does): settings, topic creation, Avro codec, producer, consumer and dead-letter routing (the
transactional outbox is its own package, outbox/)."""
