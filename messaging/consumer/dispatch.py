"""Who does the work for consumed records, apart from the consumer thread that fetched them.

A dispatcher runs on the event loop. The runtime hands it decoded records (in partition order) and a `done`
callback; the dispatcher calls done(message) once the work for that record is durable, and never for work it
gave up on (the record is then read again after a restart or rebalance). A failing handler is retried with
backoff (0.2 s doubling to 5 s), never skipped, until stop(); a failure that repeats (the database away, its
disk full) is logged once per kind and minute, not per record and retry.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

import structlog
from confluent_kafka import Message
from opentelemetry import trace
from opentelemetry.trace import Span

from messaging.backoff import Backoff
from messaging.consumer.decode import Decoded
from messaging.consumer.tracing import ConsumerSpans, reset_batch_spans, set_batch_spans
from observability.throttled_log import ThrottledLog

log = logging.getLogger(__name__)

Done = Callable[[Message], None]


class Dispatcher(Protocol):
    """Runs the work for decoded records and reports each finished one."""

    def dispatch(self, records: Sequence[Decoded[Any]], done: Done) -> None:
        """Start the work for records (each with an event); call done(record.message) when it is durable."""
        ...

    def running(self) -> set[asyncio.Task[None]]:
        """The work under way."""
        ...

    def stop(self) -> None:
        """Retry no failing work any more; work under way may finish."""
        ...


class KeyOrderedDispatcher:
    """Handles every record in its own task, many at once; records with the same key one after another.

    handler: async, takes one event and makes its outcome durable (it must be idempotent: a record may be
    handled again after a restart). key_of: the key of an event (e.g. its order id). log_key: the log context
    field (structlog.contextvars) the key is bound to in the record's task, e.g. "orderId", so every line logged
    while it is handled (its retries' warnings included) names it; None binds nothing. spans: with them, each
    record is handled in its processing span (messaging.consumer.tracing), current while the handler runs, so
    the handler's own spans and the events it writes continue the record's trace; failed attempts are events of
    that span.
    """

    def __init__(
        self,
        handler: Callable[[Any], Awaitable[None]],
        key_of: Callable[[Any], str],
        log_key: str | None = None,
        spans: ConsumerSpans | None = None,
    ) -> None:
        self._handler = handler
        self._key_of = key_of
        self._log_key = log_key
        self._spans = spans
        self._by_key: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._failures = ThrottledLog(log)

    def dispatch(self, records: Sequence[Decoded[Any]], done: Done) -> None:
        """See Dispatcher.dispatch. Must run on the event loop."""
        loop = asyncio.get_running_loop()
        for record in records:
            key = self._key_of(record.event)
            previous = self._by_key.get(key)
            task = loop.create_task(self._handle(record, key, previous, done))
            self._by_key[key] = task
            self._tasks.add(task)
            task.add_done_callback(lambda t, key=key: self._forget(t, key))

    def running(self) -> set[asyncio.Task[None]]:
        """See Dispatcher.running."""
        return set(self._tasks)

    def stop(self) -> None:
        """See Dispatcher.stop."""
        self._stopping = True

    def _forget(self, task: asyncio.Task[None], key: str) -> None:
        self._tasks.discard(task)
        if self._by_key.get(key) is task:
            del self._by_key[key]

    async def _handle(self, record: Decoded[Any], key: str, previous: asyncio.Task[None] | None, done: Done) -> None:
        if self._log_key is not None:  # the task's own context: the binding ends with the task
            structlog.contextvars.bind_contextvars(**{self._log_key: key})
        if previous is not None and not previous.done():
            await asyncio.wait({previous})  # same key: keep the order of records
        if self._spans is None:
            finished = await self._attempts(record, None)
        else:
            span = self._spans.start(record.message)
            with trace.use_span(span, end_on_exit=True):
                finished = await self._attempts(record, span)
        if finished:
            done(record.message)

    async def _attempts(self, record: Decoded[Any], span: Span | None) -> bool:
        """Handle record until it succeeds (True) or the dispatcher stops (False: not done)."""
        backoff = Backoff()
        while True:
            try:
                await self._handler(record.event)
                return True
            except Exception as exc:
                # The handler's own failures (database away...) are retried; the record is never skipped.
                self._failures.warning(type(exc).__name__, f"handling {_where(record.message)} failed, retrying", exc)
                if span is not None:
                    span.record_exception(exc)
                if self._stopping:
                    return False  # not done: the record is read again after restart
                await asyncio.sleep(backoff.failed())


class TypeDispatcher:
    """Hands each record to the dispatcher of its event's type (a topic carrying several event types).

    dispatchers: {event class: its dispatcher}. Each type's records keep their order within that dispatcher;
    records of different types are handled independently of each other (e.g. a cancellation is not held
    behind the same order's running work: the handlers serialise what must be, on their own state). A record
    of a type without a dispatcher raises TypeError (the codec decodes only declared types).
    """

    def __init__(self, dispatchers: Mapping[type, Dispatcher]) -> None:
        self._dispatchers = dict(dispatchers)

    def dispatch(self, records: Sequence[Decoded[Any]], done: Done) -> None:
        """See Dispatcher.dispatch. Must run on the event loop."""
        by_type: dict[type, list[Decoded[Any]]] = {}
        for record in records:
            if type(record.event) not in self._dispatchers:
                raise TypeError(f"no dispatcher for {type(record.event).__name__}")
            by_type.setdefault(type(record.event), []).append(record)
        for kind, group in by_type.items():
            self._dispatchers[kind].dispatch(group, done)

    def running(self) -> set[asyncio.Task[None]]:
        """See Dispatcher.running: the work under way in every type's dispatcher."""
        return set().union(*(d.running() for d in self._dispatchers.values()))

    def stop(self) -> None:
        """See Dispatcher.stop."""
        for dispatcher in self._dispatchers.values():
            dispatcher.stop()


class BatchDispatcher:
    """Handles records in batches, one batch at a time, in the order they were consumed.

    handler: blocking (run in a worker thread), takes up to max_batch events and makes their outcome durable
    in one go, e.g. one transaction (it must be idempotent: a batch may be handled again after a restart).
    Records that arrive while a batch is being handled form the next batch; after stop() no new batch starts.

    spans: with them, every record of a batch gets its own processing span (messaging.consumer.tracing), each
    a child of that record's trace, all spanning the batch's handling (from its start to its commit; a failed
    attempt is an event of each): a span per record, not one per batch with links, so that each record's trace
    (an order's, from its request on) includes the work that applied it.
    """

    def __init__(
        self, handler: Callable[[list[Any]], None], max_batch: int = 500, spans: ConsumerSpans | None = None
    ) -> None:
        self._handler = handler
        self._max_batch = max_batch
        self._spans = spans
        self._pending: list[tuple[Decoded[Any], Done]] = []
        self._worker: asyncio.Task[None] | None = None
        self._stopping = False
        self._failures = ThrottledLog(log)

    def dispatch(self, records: Sequence[Decoded[Any]], done: Done) -> None:
        """See Dispatcher.dispatch. Must run on the event loop."""
        self._pending.extend((record, done) for record in records)
        if self._pending and (self._worker is None or self._worker.done()):
            self._worker = asyncio.get_running_loop().create_task(self._drain())

    def running(self) -> set[asyncio.Task[None]]:
        """See Dispatcher.running."""
        return {self._worker} if self._worker is not None and not self._worker.done() else set()

    def stop(self) -> None:
        """See Dispatcher.stop."""
        self._stopping = True

    async def _drain(self) -> None:
        while self._pending and not self._stopping:
            batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch :]
            events = [record.event for record, _ in batch]
            spans = self._start_spans(batch)
            backoff = Backoff()
            while True:
                token = set_batch_spans(spans)  # the handler's thread gets a copy of this context
                try:
                    await asyncio.to_thread(self._handler, events)
                    break
                except Exception as exc:
                    where = _where(batch[0][0].message)
                    self._failures.error(
                        type(exc).__name__, f"handling a batch of {len(batch)} from {where} failed, retrying", exc
                    )
                    for span in spans:
                        span.record_exception(exc)
                    if self._stopping:
                        _end(spans)
                        return
                    await asyncio.sleep(backoff.failed())
                finally:
                    reset_batch_spans(token)
            _end(spans)
            for record, done in batch:
                done(record.message)

    def _start_spans(self, batch: list[tuple[Decoded[Any], Done]]) -> list[Span]:
        if self._spans is None:
            return []
        started = time.time_ns()
        spans = [self._spans.start(record.message, started) for record, _ in batch]
        for span in spans:
            span.set_attribute("messaging.batch.message_count", len(batch))
        return spans


def _end(spans: list[Span]) -> None:
    ended = time.time_ns()
    for span in spans:
        span.end(ended)


def _where(message: Message) -> str:
    return f"{message.topic()}[{message.partition()}]@{message.offset()}"
