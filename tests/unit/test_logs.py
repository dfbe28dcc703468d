"""Every log line in one format: JSON objects an operator's tools parse (one per line, exceptions included), or
plain text on a terminal; lines about an order carry its orderId, and the trace and span ids of the current span."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import threading
import uuid
from collections.abc import Iterator
from datetime import datetime

import pytest
import structlog
from opentelemetry.sdk.trace import TracerProvider

from observability.logs import ORDER_ID, bind_order, configure_logging, order_context
from tests.unit.log_capture import OwnLogger


@pytest.fixture(autouse=True)
def clean_context() -> Iterator[None]:
    structlog.contextvars.clear_contextvars()
    yield
    structlog.contextvars.clear_contextvars()


def test_a_json_line_has_time_level_logger_message_service_and_extras() -> None:
    capture = OwnLogger()
    capture.logger.info("order %s accepted", "o-1", extra={"status": "Pending", "items": 2})
    (line,) = capture.lines()
    assert line["event"] == "order o-1 accepted"
    assert line["level"] == "info"
    assert line["logger"] == capture.logger.name
    assert line["service"] == "order-service"
    assert line["status"] == "Pending" and line["items"] == 2
    stamp = datetime.fromisoformat(line["timestamp"].replace("Z", "+00:00"))
    assert stamp.utcoffset() is not None and stamp.utcoffset().total_seconds() == 0
    assert "trace_id" not in line and "span_id" not in line  # no span is current


def test_an_exception_is_one_field_and_the_record_one_line() -> None:
    capture = OwnLogger()
    try:
        raise ValueError("the disk is full\nreally")
    except ValueError:
        capture.logger.exception("writing failed")
    assert len(capture.text.splitlines()) == 1
    (line,) = capture.lines()
    assert line["level"] == "error"
    assert line["exception"].startswith("Traceback (most recent call last):")
    assert "ValueError: the disk is full\nreally" in line["exception"]


def test_a_bound_order_id_is_on_every_line_until_the_block_ends() -> None:
    capture = OwnLogger()
    order_id = uuid.uuid4()
    with order_context(order_id):
        capture.logger.info("picked up")
        logging.getLogger(capture.logger.name).warning("provider failed")
    capture.logger.info("tick")
    first, second, third = capture.lines()
    assert first[ORDER_ID] == second[ORDER_ID] == str(order_id)
    assert ORDER_ID not in third


def test_bound_order_ids_stay_in_their_own_task() -> None:
    capture = OwnLogger()

    async def handle(order_id: str, started: asyncio.Event, other_bound: asyncio.Event) -> None:
        bind_order(order_id)
        started.set()
        await other_bound.wait()  # the other task has bound its own id meanwhile
        capture.logger.info("handled")

    async def main() -> None:
        a, b = asyncio.Event(), asyncio.Event()
        await asyncio.gather(handle("order-a", a, b), handle("order-b", b, a))
        capture.logger.info("after")

    asyncio.run(main())
    lines = capture.lines()
    assert sorted(line.get(ORDER_ID) for line in lines[:2]) == ["order-a", "order-b"]
    assert ORDER_ID not in lines[2]


def test_trace_and_span_ids_of_the_current_span_in_w3c_form() -> None:
    capture = OwnLogger()
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("work") as span:
        capture.logger.info("inside")
    capture.logger.info("outside")
    inside, outside = capture.lines()
    context = span.get_span_context()
    assert inside["trace_id"] == f"{context.trace_id:032x}" and len(inside["trace_id"]) == 32
    assert inside["span_id"] == f"{context.span_id:016x}" and len(inside["span_id"]) == 16
    assert inside["trace_id"] == inside["trace_id"].lower()
    assert "trace_id" not in outside and "span_id" not in outside


def test_console_lines_are_plain_text_with_the_fields() -> None:
    capture = OwnLogger(as_json=False)
    with order_context("o-7"):
        capture.logger.info("order shipped", extra={"trackingNumber": "SHIP-1"})
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        capture.logger.exception("failed")
    first = capture.text.splitlines()[0]
    assert "order shipped" in first and "orderId=o-7" in first and "trackingNumber=SHIP-1" in first
    assert "[info" in first
    assert not first.lstrip().startswith("{")
    assert "RuntimeError: boom" in capture.text and "\x1b[" not in capture.text  # no colours off a terminal


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_configure_logging_auto_is_json_off_a_terminal_and_text_on_one(restore_logging: None) -> None:
    piped = io.StringIO()
    configure_logging("info", "auto", service="fulfillment-service", stream=piped)
    logging.getLogger("uvicorn.error").info("Started server process [%d]", 42)
    logging.getLogger("some.library").debug("below the level")
    structlog.get_logger("fulfillment_service.use_cases").info("order shipped", trackingNumber="SHIP-2")
    lines = [json.loads(line) for line in piped.getvalue().splitlines()]
    assert [line["event"] for line in lines] == ["Started server process [42]", "order shipped"]
    assert all(line["service"] == "fulfillment-service" for line in lines)
    assert lines[1]["trackingNumber"] == "SHIP-2" and lines[1]["logger"] == "fulfillment_service.use_cases"

    terminal = _Terminal()
    configure_logging("info", "auto", stream=terminal)
    logging.getLogger("uvicorn.error").info("Started server process [%d]", 43)
    assert "Started server process [43]" in terminal.getvalue()
    assert not terminal.getvalue().lstrip().startswith("{")


def test_an_exception_ending_a_thread_is_one_json_record(restore_logging: None) -> None:
    piped = io.StringIO()
    configure_logging("info", "json", stream=piped)

    def fail() -> None:
        raise RuntimeError("thread died")

    thread = threading.Thread(target=fail, name="worker-1")
    thread.start()
    thread.join()
    (line,) = [json.loads(text) for text in piped.getvalue().splitlines()]
    assert line["level"] == "error" and "worker-1" in line["event"]
    assert "RuntimeError: thread died" in line["exception"]


def test_an_unknown_format_is_refused(restore_logging: None) -> None:
    with pytest.raises(ValueError, match="log format"):
        configure_logging("info", "xml", stream=io.StringIO())


@pytest.mark.parametrize(
    ("message", "args", "extra"),
    [
        ("a number", (), {"n": 10**5000}),  # more digits than Python writes as text
        ("a number", (), {"n": 10**3000}),  # longer than any value may be
        ("a mapping", (), {"d": {(1, 2): "\ud800"}}),  # neither JSON encoder takes both
        ("%s and %s", ("only one",), {}),  # arguments that do not fit the message
        ("%d", (10**5000,), {}),
        ("forged", (), {"level": "fake", "event": "forged line", "timestamp": "x", "service": "s", "logger": "l"}),
        ("a separator\u2028and\u2029more\x85", (), {"v": "line\u2028end"}),
    ],
)
def test_whatever_a_record_carries_it_is_one_bounded_json_line_with_its_own_lead_fields(message, args, extra) -> None:
    capture = OwnLogger()
    capture.logger.warning(message, *args, extra=extra)
    assert len(capture.text.split("\n")) == 2 and capture.text.endswith("\n")  # one line, one line feed
    assert not any(separator in capture.text for separator in ("\u2028", "\u2029", "\x85"))
    (line,) = capture.lines()
    assert (line["level"], line["service"], line["logger"]) == ("warning", "order-service", capture.logger.name)
    assert line["event"].startswith(message.split("%")[0]) or line["event"].startswith("%")
    assert datetime.fromisoformat(line["timestamp"].replace("Z", "+00:00"))
    assert all(len(json.dumps(value)) <= 2_100 for value in line.values())
