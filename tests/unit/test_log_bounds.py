"""What a client sends cannot make the log large or forge lines in it, through any library's logger: values are
cut to a bound, a call site writes at most 10 warnings a minute (then one line counting the rest), and plain text
escapes control characters."""

from __future__ import annotations

import io
import json
import logging

from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from observability.log_bounds import MAX_VALUE_CHARS
from observability.log_rate_limit import SiteRateLimit
from observability.logs import configure_logging
from tests.unit.log_capture import OwnLogger

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _json_log(log_format: str = "json") -> io.StringIO:
    stream = io.StringIO()
    configure_logging("info", log_format, service="order-service", stream=stream)
    return stream


def test_a_63_kb_baggage_header_makes_one_short_line(restore_logging: None) -> None:
    stream = _json_log()
    W3CBaggagePropagator().extract({"baggage": "k=" + "\xff" * 63_000})
    lines = stream.getvalue().splitlines()
    assert 1 <= len(lines) <= 2
    assert all(len(line) < 6 * MAX_VALUE_CHARS + 500 for line in lines)  # \u00ff: six characters in JSON
    assert any("[truncated, " in json.loads(line)["event"] for line in lines)


def test_a_header_of_many_bad_members_logs_ten_warnings_a_minute_per_site(restore_logging: None) -> None:
    stream = _json_log()
    for _ in range(3):  # three requests, each with 4,000 members the baggage parser refuses one by one
        W3CBaggagePropagator().extract({"baggage": ",".join(["x"] * 4_000)})
    warnings = [json.loads(line) for line in stream.getvalue().splitlines()]
    by_site: dict[str, int] = {}
    for line in warnings:
        by_site[line["event"][:40]] = by_site.get(line["event"][:40], 0) + 1
    assert len(warnings) <= 10 * 3  # the parser has three warning sites
    assert max(by_site.values()) <= 10


def test_an_invalid_tracestate_member_of_48_kb_is_cut(restore_logging: None) -> None:
    stream = _json_log()
    TraceContextTextMapPropagator().extract({"traceparent": TRACEPARENT, "tracestate": "a=b,c" * 1_500})
    TraceContextTextMapPropagator().extract({"traceparent": TRACEPARENT, "tracestate": "a=\x01" + "z" * 48_000})
    lines = stream.getvalue().splitlines()
    assert lines and all(len(line) < MAX_VALUE_CHARS + 500 for line in lines)


def test_after_the_interval_one_line_counts_what_was_dropped() -> None:
    capture = OwnLogger()
    now = [0.0]
    capture.handler.addFilter(SiteRateLimit(capture.handler, limit=10, interval=60, clock=lambda: now[0]))
    logger = capture.logger
    for index in range(25):
        logger.warning("refused member %s", index)  # one call site
    logger.error("another site")
    for index in range(30):
        logger.info("request %s", index)  # below WARNING: never limited
    assert len(capture.text.splitlines()) == 10 + 1 + 30
    now[0] = 61.0
    logger.info("a line of any site after the interval")
    lines = capture.lines()
    summary = lines[-2]
    assert summary["level"] == "warning" and summary["logger"] == logger.name
    assert summary["dropped_records"] == 15 and summary["dropped_seconds"] == 60
    assert "refused member %s" in summary["event"] and "15 more records" in summary["event"]
    assert lines[-1]["event"] == "a line of any site after the interval"
    logger.warning("refused member %s", 99)  # a new interval: written again
    assert capture.lines()[-1]["event"] == "refused member 99"


def test_a_console_line_cannot_be_forged_or_carry_terminal_escapes() -> None:
    capture = OwnLogger(as_json=False)
    logger = capture.logger
    logger.warning("member %s refused", "x\n2030-01-01T00:00:00Z [error   ] forged\r\x1b[31m\u2028")
    logger.info("with a field", extra={"header": "a\nb"})
    try:
        raise ValueError("bad input\nforged line")
    except ValueError:
        logger.exception("failed")
    text = capture.text
    lines = text.splitlines()
    assert "\\n2030-01-01" in lines[0] and "\\x1b[31m" in lines[0] and "\\u2028" in lines[0]
    assert "\x1b" not in text and "\r" not in text and "\u2028" not in text
    assert "header=a\\nb" in lines[1]
    assert lines[2].startswith(logger.name) or "failed" in lines[2]
    assert all(line.startswith("    ") for line in lines[3:])  # the traceback: no line at the left margin
    assert any("ValueError: bad input" in line for line in lines[3:])


def test_the_registry_clients_http_lines_are_quiet(restore_logging: None) -> None:
    stream = _json_log()
    logging.getLogger("httpx2").info('HTTP Request: GET http://registry/subjects "HTTP/1.1 200 OK"')
    logging.getLogger("httpx").info("HTTP Request: GET ...")
    logging.getLogger("httpx2").warning("retrying")
    assert [json.loads(line)["event"] for line in stream.getvalue().splitlines()] == ["retrying"]
