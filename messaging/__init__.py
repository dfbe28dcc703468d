"""Kafka and Schema Registry plumbing shared by both services: settings, topics, Avro codec, producer,
consumer and dead-letter routing (the transactional outbox is its own package, outbox/)."""
