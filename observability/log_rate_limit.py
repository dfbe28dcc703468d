"""A limit on how often one place in the code may log a warning, for every logger of the process.

A warning a client can trigger (a library refusing a header it sent, a parser refusing its request) is logged
once per request by code the services do not own, so an unbounded stream of requests would be an unbounded
stream of lines. `SiteRateLimit` is a logging.Filter on the handler every record goes through
(observability.logs), so it sees the records of every logger, the libraries' included:

* a call site is the logger's name with the source file and line of the logging call (the `LogRecord` fields
  `name`, `pathname`, `lineno`, as the standard library finds them); for a structlog record, whose caller is
  structlog's own code, also the event text;
* at WARNING and above, at most `limit` records per site in an interval of `interval` seconds (by default 10 a
  minute) are written; the rest of the interval's records of that site are counted and dropped;
* once the interval has passed, one summary record says how many were dropped: a WARNING of the site's logger,
  `"<n> more records like this were dropped in the last 60 s: <message template>"` with the fields
  `dropped_records`, `dropped_site` (`<logger> <file>:<line>`) and `dropped_seconds`. It is written before the
  site's next record, or with the first record of any site after the interval;
* records below WARNING are never limited (the access log writes one INFO line per request by design).

Sites are kept in a bounded table (MAX_SITES); when it is full, sites whose interval has passed are forgotten
first, then the oldest.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

LIMIT = 10
INTERVAL_SECONDS = 60.0
MAX_SITES = 4_096
_SUMMARY = "_rate_limit_summary"  # marks the summary records this filter writes itself
_TEMPLATE_CHARS = 200

Site = tuple[str, str, int, str]


@dataclass
class _Window:
    started: float
    written: int
    dropped: int
    template: str


class SiteRateLimit(logging.Filter):
    """Lets at most limit records at WARNING or above per call site through per interval seconds, then writes
    one summary of the dropped ones through handler (see the module docstring). clock: monotonic seconds."""

    def __init__(
        self,
        handler: logging.Handler,
        limit: int = LIMIT,
        interval: float = INTERVAL_SECONDS,
        *,
        max_sites: int = MAX_SITES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._handler = handler
        self._limit = limit
        self._interval = interval
        self._max_sites = max_sites
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: OrderedDict[Site, _Window] = OrderedDict()
        self._next_sweep = float("inf")  # when the first window with dropped records ends

    def filter(self, record: logging.LogRecord) -> bool:
        """True when record is to be written (logging.Filter's protocol); writes the summaries that are due."""
        if getattr(record, _SUMMARY, False):
            return True
        now = self._clock()
        due: list[tuple[Site, _Window]] = []
        allowed = True
        with self._lock:
            if now >= self._next_sweep:
                due = self._take_ended(now)
            if record.levelno >= logging.WARNING:
                allowed = self._count(_site(record), record, now, due)
        for site, window in due:
            self._handler.handle(self._summary(site, window))
        return allowed

    def _count(self, site: Site, record: logging.LogRecord, now: float, due: list[tuple[Site, _Window]]) -> bool:
        window = self._windows.get(site)
        if window is not None and now - window.started >= self._interval:
            del self._windows[site]
            if window.dropped:
                due.append((site, window))
            window = None
        if window is None:
            if len(self._windows) >= self._max_sites:
                self._make_room(now, due)
            template = record.msg if isinstance(record.msg, str) else site[3]
            self._windows[site] = _Window(now, 1, 0, template[:_TEMPLATE_CHARS])
            return True
        if window.written < self._limit:
            window.written += 1
            return True
        if not window.dropped:
            self._next_sweep = min(self._next_sweep, window.started + self._interval)
        window.dropped += 1
        return False

    def _take_ended(self, now: float) -> list[tuple[Site, _Window]]:
        """Remove the windows that have ended with dropped records; sets the next sweep time."""
        ended = [
            (site, window)
            for site, window in self._windows.items()
            if window.dropped and now - window.started >= self._interval
        ]
        for site, _window in ended:
            del self._windows[site]
        pending = [w.started + self._interval for w in self._windows.values() if w.dropped]
        self._next_sweep = min(pending, default=float("inf"))
        return ended

    def _make_room(self, now: float, due: list[tuple[Site, _Window]]) -> None:
        for site, window in list(self._windows.items()):
            if now - window.started >= self._interval:
                del self._windows[site]
                if window.dropped:
                    due.append((site, window))
        while len(self._windows) >= self._max_sites:
            site, window = self._windows.popitem(last=False)
            if window.dropped:
                due.append((site, window))

    def _summary(self, site: Site, window: _Window) -> logging.LogRecord:
        name, path, line, _event = site
        record = logging.LogRecord(
            name,
            logging.WARNING,
            path,
            line,
            "%d more records like this were dropped in the last %d s: %s",
            (window.dropped, round(self._interval), window.template),
            None,
        )
        record.dropped_records = window.dropped
        record.dropped_site = f"{name} {path}:{line}"
        record.dropped_seconds = self._interval
        setattr(record, _SUMMARY, True)
        return record


def _site(record: logging.LogRecord) -> Site:
    """The call site of record: logger, file, line, and for a structlog record (its msg is the event dict) the
    event text, since its file and line are structlog's."""
    event = ""
    if isinstance(record.msg, dict):
        event = str(record.msg.get("event", ""))[:_TEMPLATE_CHARS]
    return record.name, record.pathname, record.lineno, event
