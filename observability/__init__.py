"""What the services tell their operators: logs that do not flood."""
