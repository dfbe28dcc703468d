"""Benchmark harness: open-loop load generator, ceilings, scenarios and reports (see README.md)."""
