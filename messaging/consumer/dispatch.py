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
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

from confluent_kafka import Message

from messaging.backoff import Backoff
from messaging.consumer.decode import Decoded
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
    handled again after a restart). key_of: the key of an event (e.g. its order id).
    """

    def __init__(self, handler: Callable[[Any], Awaitable[None]], key_of: Callable[[Any], str]) -> None:
        self._handler = handler
        self._key_of = key_of
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
            task = loop.create_task(self._handle(record, previous, done))
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

    async def _handle(self, record: Decoded[Any], previous: asyncio.Task[None] | None, done: Done) -> None:
        if previous is not None and not previous.done():
            await asyncio.wait({previous})  # same key: keep the order of records
        backoff = Backoff()
        while True:
            try:
                await self._handler(record.event)
                break
            except Exception as exc:
                # The handler's own failures (database away...) are retried; the record is never skipped.
                self._failures.warning(type(exc).__name__, f"handling {_where(record.message)} failed, retrying", exc)
                if self._stopping:
                    return  # not done: the record is read again after restart
                await asyncio.sleep(backoff.failed())
        done(record.message)


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
    """

    def __init__(self, handler: Callable[[list[Any]], None], max_batch: int = 500) -> None:
        self._handler = handler
        self._max_batch = max_batch
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
            backoff = Backoff()
            while True:
                try:
                    await asyncio.to_thread(self._handler, events)
                    break
                except Exception as exc:
                    where = _where(batch[0][0].message)
                    self._failures.error(
                        type(exc).__name__, f"handling a batch of {len(batch)} from {where} failed, retrying", exc
                    )
                    if self._stopping:
                        return
                    await asyncio.sleep(backoff.failed())
            for record, done in batch:
                done(record.message)


def _where(message: Message) -> str:
    return f"{message.topic()}[{message.partition()}]@{message.offset()}"
