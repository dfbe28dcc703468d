"""Kafka and Schema Registry plumbing shared by both services: settings, topics, Avro codec, producer,
consumer, dead-letter routing and the transactional outbox relay."""
