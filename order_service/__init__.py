"""Order Service: accepts orders over REST and publishes OrderCreated events through an outbox."""
