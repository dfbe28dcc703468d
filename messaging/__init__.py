"""Kafka and Schema Registry plumbing, naming no project event: client configuration, the Avro codec, topic
creation from TopicSpecs, dead-letter publishing under the header names it is given, health probes, backoff,
and the consumer runtime (`consumer/`). Which topics and events exist is the event topology's (events/)."""
