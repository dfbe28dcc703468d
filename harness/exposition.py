"""Prometheus's text exposition (what GET /metrics answers) read as plain values, for tests and tools."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

Labels = tuple[tuple[str, str], ...]


def parse_samples(text: str) -> dict[str, dict[Labels, float]]:
    """Every sample of text: sample name (`..._count`, `..._bucket` included) -> {sorted (label, value) pairs:
    value}. Raises ValueError for text that is not the exposition format (prometheus_client's parser)."""
    samples: dict[str, dict[Labels, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples
