"""Local infrastructure for development and tests: Kafka broker and Schema Registry as JVM processes."""
