"""Prometheus metrics of one service process: its registry, the series the code declares, and the figures read
at scrape time.

Every series is named `orderprocessing_<what>_<unit>` (PREFIX; Prometheus naming conventions: snake_case, base
units `_seconds` and `_bytes`, counters end in `_total`). Each service process has a registry of its own
(`Metrics`), so the series of the Order Service and of the Fulfillment Service are told apart by the scrape
target, not by a label; two apps built in one process (tests) never share a series.

Series come in two kinds:

* observed where the event happens: `counter`, `gauge`, `histogram` (prometheus-client's classes, registered in
  this registry; asking twice for one name returns the same series, so shared components may declare theirs
  each time they are built);
* read at scrape time, so nothing polls in the background: `collect_at_scrape` registers a blocking function
  that yields metric families (a prometheus-client custom Collector), and `refresh_at_scrape` an async one that
  sets gauges before the exposition is written. A source that fails is left out of that scrape, logged once
  per interval and counted in `orderprocessing_metrics_source_errors_total{source}`; the other series are served.

Label values must come from bounded sets (route templates, status codes, error types), never from order ids.

A scrape (`scrape()`, what GET /metrics serves) costs the process: the refreshers, the collectors (database and
broker reads) and the rendering of every series. So that scrapers, however many and however often, never stall
the API, scrapes share renderings: the exposition is rendered on a worker thread, never on the event loop; scrapes
that arrive while one is being rendered wait for that one and get it; and a rendering is served again to the
scrapes of the next `scrape_cache_seconds` (SCRAPE_CACHE_SECONDS, 1 s, well below any scrape interval). Figures
read at scrape time are therefore up to that old.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from observability.throttled_log import ThrottledLog

log = logging.getLogger(__name__)

PREFIX = "orderprocessing_"
# The text exposition format, version 0.0.4 (what the OpenAPI documents promise at GET /metrics).
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

# Bucket bounds in seconds: request handling up to the 30 s long poll; work that waits on a broker or a remote
# call, up to minutes while something is away.
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
WAIT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)

# How long one rendering of the exposition serves later scrapes (see the module docstring).
SCRAPE_CACHE_SECONDS = 1.0

M = TypeVar("M", Counter, Gauge, Histogram)

# No `_created` series beside every counter and histogram: the text format 0.0.4 has no use for them, and they
# would double the series a scrape carries. (A process-wide switch of prometheus-client.)
disable_created_metrics()


class _ScrapeCollector(Collector):
    """A custom Collector over collect(); a failure leaves its series out of the scrape (see module docstring)."""

    def __init__(self, source: str, collect: Callable[[], Iterable[Metric]], failed: Callable[[str, Exception], None]):
        self._source = source
        self._collect = collect
        self._failed = failed

    def describe(self) -> Iterable[Metric]:
        # Without it the registry would call collect() when registering, reading the source before any scrape.
        return []

    def collect(self) -> Iterable[Metric]:
        try:
            return list(self._collect())
        except Exception as exc:
            self._failed(self._source, exc)
            return []


class Metrics:
    """The metric series of one service process, in a registry of its own.

    enabled: whether the service serves them (METRICS_ENABLED); series are declared and observed either way
    (an increment costs well under a microsecond), but with enabled False nothing is read at scrape time
    because nothing is scraped. scrape_cache_seconds: how long a rendering serves later scrapes (0: each scrape
    not overlapping another renders anew).
    """

    def __init__(self, enabled: bool = True, scrape_cache_seconds: float = SCRAPE_CACHE_SECONDS) -> None:
        self.enabled = enabled
        self._cache_seconds = scrape_cache_seconds
        self._last: tuple[float, bytes] | None = None  # (monotonic time rendered, exposition)
        self._rendering: asyncio.Future[bytes] | None = None
        self.renderings = 0  # how many times scrape() rendered the exposition
        self.registry = CollectorRegistry(auto_describe=True)
        self._series: dict[str, Counter | Gauge | Histogram] = {}
        self._refreshers: list[tuple[str, Callable[[], Awaitable[None]]]] = []
        self._errors = ThrottledLog(log)
        self._source_errors = self.counter(
            "metrics_source_errors_total",
            "Scrapes in which a source of figures read at scrape time failed and its series were left out.",
            ["source"],
        )

    def counter(self, name: str, documentation: str, labels: Sequence[str] = ()) -> Counter:
        """The counter PREFIX + name (which must end in `_total`) with these label names; the same object for
        the same name. Raises ValueError for a name without `_total` or declared before as another kind."""
        if not name.endswith("_total"):
            raise ValueError(f"a counter's name ends in _total: {name}")
        # prometheus-client adds `_total` to a counter's samples itself; the family is named without it.
        return self._declare(
            Counter, name, documentation, labels, lambda full: Counter(full, documentation, labels, registry=None)
        )

    def gauge(self, name: str, documentation: str, labels: Sequence[str] = ()) -> Gauge:
        """The gauge PREFIX + name with these label names; the same object for the same name."""
        return self._declare(
            Gauge, name, documentation, labels, lambda full: Gauge(full, documentation, labels, registry=None)
        )

    def histogram(
        self, name: str, documentation: str, labels: Sequence[str] = (), buckets: Sequence[float] = WAIT_BUCKETS
    ) -> Histogram:
        """The histogram PREFIX + name (in base units, e.g. `_seconds`) with these label names and bucket upper
        bounds; the same object for the same name."""
        return self._declare(
            Histogram,
            name,
            documentation,
            labels,
            lambda full: Histogram(full, documentation, labels, buckets=buckets, registry=None),
        )

    def collect_at_scrape(self, source: str, collect: Callable[[], Iterable[Metric]]) -> None:
        """Have collect() (blocking; it runs on a worker thread) yield metric families at every scrape; source
        names it in the error counter and the log. Build the families with `family`."""
        self.registry.register(_ScrapeCollector(source, collect, self._failed))
        # The error counter is collected after every source, so a scrape reports its own failures.
        self.registry.unregister(self._source_errors)
        self.registry.register(self._source_errors)

    def refresh_at_scrape(self, source: str, refresh: Callable[[], Awaitable[None]]) -> None:
        """Await refresh() (on the event loop; it sets gauges declared here) before every scrape."""
        self._refreshers.append((source, refresh))

    async def refresh(self) -> None:
        """Run every refresher; one that fails is counted and logged, and its gauges keep their last value."""
        for source, refresh in self._refreshers:
            try:
                await refresh()
            except Exception as exc:
                self._failed(source, exc)

    async def scrape(self) -> bytes:
        """The exposition for a scrape (CONTENT_TYPE): the last rendering while it is under scrape_cache_seconds
        old, else the one being rendered, else a new one (refresh(), then exposition() on a worker thread). A
        scrape that is cancelled (its client left) does not cancel the rendering the others wait for."""
        last = self._last
        if last is not None and time.monotonic() - last[0] < self._cache_seconds:
            return last[1]
        rendering = self._rendering
        if rendering is None or rendering.get_loop() is not asyncio.get_running_loop():
            rendering = self._rendering = asyncio.ensure_future(self._render())
        return await asyncio.shield(rendering)

    async def _render(self) -> bytes:
        try:
            await self.refresh()
            body = await asyncio.to_thread(self.exposition)
            self.renderings += 1
            self._last = (time.monotonic(), body)
            return body
        finally:
            self._rendering = None

    def exposition(self) -> bytes:
        """Every series in the text format 0.0.4 (CONTENT_TYPE). Blocking: runs the scrape-time collectors."""
        return generate_latest(self.registry)

    def sample(self, name: str, **labels: str) -> float | None:
        """The current value of sample PREFIX + name with exactly these labels (e.g. "orders_created_total",
        "http_server_request_duration_seconds_count"), None when there is none. Blocking, as a scrape."""
        return self.registry.get_sample_value(PREFIX + name, labels)

    def _failed(self, source: str, exc: Exception) -> None:
        self._source_errors.labels(source).inc()
        self._errors.error(source, f"reading the figures of {source} for /metrics failed", exc)

    def _declare(
        self, kind: type[M], name: str, documentation: str, labels: Sequence[str], make: Callable[[str], M]
    ) -> M:
        full = PREFIX + name
        found = self._series.get(full)
        if found is None:
            made = make(full)
            self.registry.register(made)
            self._series[full] = made
            return made
        if not isinstance(found, kind) or tuple(found._labelnames) != tuple(labels):
            raise ValueError(f"{full} is declared already as a {type(found).__name__} with labels {found._labelnames}")
        return found


def family(kind: str, name: str, documentation: str, labels: Sequence[str] = ()) -> Any:
    """An empty metric family PREFIX + name for a scrape-time collector: kind "gauge" or "counter"; add samples
    with .add_metric([label values...], value)."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    cls = {"gauge": GaugeMetricFamily, "counter": CounterMetricFamily}[kind]
    return cls(PREFIX + name, documentation, labels=list(labels))
