"""Structured logs: one format for every line a service writes, JSON lines or plain text, through structlog.

    configure_logging("info", "auto", service="order-service")

The code base logs with the standard library (`logging.getLogger(__name__)`), and so do uvicorn and the Kafka
clients; structlog's `ProcessorFormatter` renders all of those records (and any structlog logger's) the same
way. `LOG_FORMAT` (observability/settings.py) picks the renderer:

* `json`: one JSON object per line with `timestamp` (ISO 8601, UTC), `level`, `logger`, `event` (the message),
  `service`, the context bound with structlog.contextvars (`orderId`), `trace_id` and `span_id` while an
  OpenTelemetry span is current, and the fields a call passed in `extra`. An exception is one field,
  `exception` (the traceback as text), so a record is always one line;
* `console`: structlog's ConsoleRenderer, for a human at a terminal;
* `auto` (the default): `json` unless the stream is a terminal.

Every line is bounded, whichever logger wrote it (libraries echo what clients send): a value is cut at 2,000
characters, a traceback at 16,000, and plain text escapes control characters (observability.log_bounds); a place
in the code logs at most 10 warnings a minute, then one line counting the ones it dropped
(observability.log_rate_limit).

Lines about an order carry `orderId`: whoever handles an order binds it (`bind_order` for the rest of a task,
such as an HTTP request or a consumed record, `order_context` for a block), and every line logged meanwhile, by
any logger on that thread or task, carries it. Threads do not inherit context variables: work handed to a
plain thread or an executor for an order runs in `contextvars.copy_context().run` (asyncio.to_thread copies it).
"""

from __future__ import annotations

import logging
import sys
import threading
import uuid
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any, Literal, TextIO

import structlog
from opentelemetry import trace

from observability.json_lines import UNSHOWN_EXTRAS, JsonLineFormatter
from observability.log_bounds import bound_values, escape_controls
from observability.log_rate_limit import SiteRateLimit

LogFormat = Literal["auto", "json", "console"]
ORDER_ID = "orderId"
# Libraries that log one INFO line per HTTP call (the registry client's, confluent-kafka's vendored httpx2 among
# them): their warnings are kept.
_CHATTY_HTTP_CLIENTS = ("httpx", "httpx2")


def configure_logging(
    level: str | int, log_format: str = "auto", *, service: str | None = None, stream: TextIO | None = None
) -> None:
    """Send every log record of the process to stream (default: stderr) in log_format, at level and above.

    level: a logging level name ("info", case-insensitive) or number. log_format: "json", "console" or
    "auto" (json unless stream is a terminal). service: the `service` field of every line (e.g.
    "order-service"; None leaves it out). Replaces the root logger's handlers (calling it again reconfigures),
    configures structlog's own loggers to go the same way, routes warnings and uncaught exceptions of threads
    into the log, limits warnings per call site (observability.log_rate_limit) and keeps the per-request lines
    of httpx and httpx2 (the registry client's) out below WARNING. Raises ValueError for another format or an
    unknown level name.
    """
    stream = stream if stream is not None else sys.stderr
    as_json = _wants_json(log_format, stream)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(log_formatter(as_json, service, colors=not as_json and _is_terminal(stream)))
    handler.addFilter(SiteRateLimit(handler))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    for name in _CHATTY_HTTP_CLIENTS:
        logging.getLogger(name).setLevel(logging.WARNING)  # one line per registry call otherwise
    logging.captureWarnings(True)
    threading.excepthook = _log_thread_exception
    structlog.configure(
        processors=[*_context_processors(service), structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def log_formatter(as_json: bool, service: str | None = None, *, colors: bool = False) -> logging.Formatter:
    """The formatter of every record: JSON lines when as_json (observability.json_lines, built for the per-order
    hot path), else structlog's console lines (with terminal colours when colors), every value within
    observability.log_bounds' limits. service: the `service` field (None: none)."""
    if as_json:
        return JsonLineFormatter(service)
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*_context_processors(service), structlog.stdlib.ExtraAdder(), _drop_extras],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            bound_values,
            escape_controls,
            structlog.dev.ConsoleRenderer(colors=colors),
        ],
    )


def add_trace_ids(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: `trace_id` (32 lower-case hex digits) and `span_id` (16) of the current
    OpenTelemetry span, as W3C Trace Context writes them; nothing while no valid span is current."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event_dict["trace_id"] = trace.format_trace_id(context.trace_id)
        event_dict["span_id"] = trace.format_span_id(context.span_id)
    return event_dict


def bind_order(order_id: uuid.UUID | str) -> None:
    """Bind `orderId` to every line logged from here to the end of the current task or thread's context (an
    HTTP request, one consumed record). Use order_context for a block of a longer-lived task."""
    structlog.contextvars.bind_contextvars(**{ORDER_ID: str(order_id)})


@contextmanager
def order_context(order_id: uuid.UUID | str) -> Iterator[None]:
    """Bind `orderId` to every line logged inside the block; what was bound before is restored after."""
    with log_context(**{ORDER_ID: str(order_id)}):
        yield


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Bind fields to every line logged inside the block; what was bound before under those names is restored
    after. (structlog's `bound_contextvars` does the same by copying the whole context twice; resetting the
    tokens of `bind_contextvars` restores exactly the values before, for a fraction of the cost.)"""
    tokens = structlog.contextvars.bind_contextvars(**fields)
    try:
        yield
    finally:
        structlog.contextvars.reset_contextvars(**tokens)


def _context_processors(service: str | None) -> list[Any]:
    """What every line gets, whichever logger wrote it: context, level, logger, time, service, trace ids."""
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
    ]
    if service is not None:
        processors.append(_add_service(service))
    processors.append(add_trace_ids)
    return processors


def _add_service(service: str) -> Any:
    def add_service(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        event_dict["service"] = service
        return event_dict

    return add_service


def _drop_extras(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in UNSHOWN_EXTRAS:
        event_dict.pop(key, None)
    return event_dict


def _wants_json(log_format: str, stream: TextIO) -> bool:
    if log_format == "json":
        return True
    if log_format == "console":
        return False
    if log_format == "auto":
        return not _is_terminal(stream)
    raise ValueError(f"log format {log_format!r} is not one of auto, json, console")


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def _log_thread_exception(args: threading.ExceptHookArgs) -> None:
    """An exception that ended a thread: one ERROR record (instead of a traceback printed past the log)."""
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else "?"
    exc_info = (args.exc_type, args.exc_value, args.exc_traceback) if args.exc_value is not None else None
    logging.getLogger("threading").error("uncaught exception in thread %s", name, exc_info=exc_info)
