"""What the services tell their operators: structured logs that do not flood, metrics."""
