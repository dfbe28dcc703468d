"""Fulfillment Service: consumes OrderCreated events, ships each order exactly once, reports progress."""
