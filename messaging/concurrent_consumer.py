"""Concurrent consumption with ordered commits, backpressure and clean rebalances.

Records are handled by asyncio tasks, many at once; records with the same key run one after another.
Each partition's committed offset only passes records whose handler finished (OffsetTracker). When too
many records are in flight the consumer pauses its partitions. On revocation the revoked partitions'
in-flight work gets a grace period to finish, finished work is committed, and the rest is left to the
partition's next owner (handlers are idempotent). All consumer calls run on one dedicated thread.

Periodic commits are asynchronous: a synchronous commit has no timeout, so a hung (SIGSTOPped) broker
would block the consumer thread, and with it every fetch, for as long as the broker hangs. A failed
asynchronous commit puts its offsets back so the next round sends them again. Commits that must have
landed before something else happens (on revocation, at shutdown) stay synchronous.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from messaging.avro_codec import EventCodec
from messaging.consuming import Decoded, decode_batch, is_error_message, poll_batch, rewind
from messaging.dead_letter import DeadLetterPublisher
from messaging.offsets import CommitLog, OffsetTracker

log = logging.getLogger(__name__)

Handler = Callable[[Any], Awaitable[None]]


class ConcurrentConsumer:
    def __init__(
        self,
        connect: Callable[..., Consumer],
        topic: str,
        codec: EventCodec[Any],
        dead_letters: DeadLetterPublisher,
        handler: Handler,
        key_of: Callable[[Any], str],
        *,
        max_in_flight: int = 1000,
        batch_size: int = 500,
        commit_interval: float = 0.1,
        revoke_grace: float = 5.0,
    ) -> None:
        # The consumer is made here so its commit reports come back to this instance.
        self._consumer = connect(on_commit=self._on_commit)
        self._topic = topic
        self._codec = codec
        self._dead_letters = dead_letters
        self._handler = handler
        self._key_of = key_of
        self._max_in_flight = max_in_flight
        self._batch_size = batch_size
        self._commit_interval = commit_interval
        self._revoke_grace = revoke_grace
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kafka-consumer")
        self._tracker = OffsetTracker()
        self._by_key: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._paused = False
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._main: asyncio.Task[None] | None = None
        self._committed: dict[tuple[str, int], int] = {}
        self._commit_log = CommitLog()
        self._high: dict[tuple[str, int], int] = {}
        self.processed = 0
        self.dead_lettered = 0
        self.last_error: str | None = None
        self.assignment: list[tuple[str, int]] = []

    # -- public -------------------------------------------------------------------------------------

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._main = self._loop.create_task(self._run())

    @property
    def in_flight(self) -> int:
        return self._tracker.in_flight()

    def lag(self) -> int | None:
        """Records on the assigned partitions not yet committed by this instance; None while this
        instance has no partitions (not yet joined, or the group gave them all to others)."""
        if not self.assignment:
            return None
        total = 0
        for key in self.assignment:
            high = self._high.get(key)
            if high is None:
                return None
            total += max(0, high - self._committed.get(key, 0))
        return total

    async def stop(self, grace: float) -> None:
        """Stop fetching, let in-flight work finish for up to grace seconds, commit, leave the group."""
        self._stopping = True
        if self._main is not None:
            await asyncio.wait({self._main}, timeout=2)
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=grace)
        await self._commit(wait=True)
        await self._call(self._consumer.close)
        self._thread.shutdown(wait=False)

    # -- loop ---------------------------------------------------------------------------------------

    async def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        assert self._loop is not None
        return await self._loop.run_in_executor(self._thread, lambda: fn(*args, **kwargs))

    async def _run(self) -> None:
        await self._call(
            self._consumer.subscribe,
            [self._topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        last_commit = time.monotonic()
        last_watermarks = 0.0
        backoff = 0.0
        while not self._stopping:
            try:
                await self._apply_backpressure()
                done, again = await self._call(self._fetch)
                for record in done:
                    self._accept(record)
                if again:
                    await self._call(self._rewind, again)
                    backoff = min(max(backoff * 2, 0.2), 5.0)
                    await asyncio.sleep(backoff)
                else:
                    backoff = 0.0
                now = time.monotonic()
                if now - last_commit >= self._commit_interval:
                    await self._commit()
                    last_commit = now
                if now - last_watermarks >= 2.0:
                    await self._call(self._refresh_watermarks)
                    last_watermarks = now
            except Exception as exc:
                log.exception("consumer loop error")
                self.last_error = str(exc)
                await asyncio.sleep(0.5)

    def _fetch(self) -> tuple[list[Decoded[Any]], list[Message]]:
        """On the consumer thread: poll, then decode (dead-lettering poison records)."""
        messages = poll_batch(self._consumer, self._batch_size, timeout=0.05)
        records = [m for m in messages if not is_error_message(m)]
        if not records:
            return [], []
        try:
            return decode_batch(records, self._codec, self._dead_letters)
        except Exception:
            # Nothing of this batch was accepted (e.g. the dead-letter topic did not confirm): read it again,
            # or the next fetch would move past it and its valid records would never be handled.
            rewind(self._consumer, records)
            raise

    def _rewind(self, messages: list[Message]) -> None:
        rewind(self._consumer, messages)
        assert self._loop is not None
        first: dict[tuple[str, int], int] = {}
        for m in messages:
            key = (m.topic(), m.partition())
            first[key] = min(first.get(key, m.offset()), m.offset())
        for (topic, partition), offset in first.items():
            self._loop.call_soon_threadsafe(self._tracker.forget_from, topic, partition, offset)

    def _accept(self, record: Decoded[Any]) -> None:
        message = record.message
        topic, partition, offset = message.topic(), message.partition(), message.offset()
        self._tracker.add(topic, partition, offset)
        if record.event is None:  # dead-lettered: its work is done
            self.dead_lettered += 1
            self._tracker.complete(topic, partition, offset)
            return
        key = self._key_of(record.event)
        previous = self._by_key.get(key)
        task = asyncio.get_running_loop().create_task(self._handle(record.event, previous, topic, partition, offset))
        self._by_key[key] = task
        self._tasks.add(task)
        task.add_done_callback(lambda t, key=key: self._forget(t, key))

    def _forget(self, task: asyncio.Task[None], key: str) -> None:
        self._tasks.discard(task)
        if self._by_key.get(key) is task:
            del self._by_key[key]

    async def _handle(
        self, event: Any, previous: asyncio.Task[None] | None, topic: str, partition: int, offset: int
    ) -> None:
        if previous is not None and not previous.done():
            await asyncio.wait({previous})  # same key: keep the order of records
        delay = 0.2
        while True:
            try:
                await self._handler(event)
                break
            except Exception as exc:
                # The handler's own failures (database away...) are retried; the record is never skipped.
                self.last_error = str(exc)
                log.warning("handling %s[%s]@%s failed, retrying: %s", topic, partition, offset, exc)
                if self._stopping:
                    return  # not completed: the record is read again after restart
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        self.processed += 1
        self._tracker.complete(topic, partition, offset)

    async def _apply_backpressure(self) -> None:
        in_flight = self._tracker.in_flight()
        if not self._paused and in_flight >= self._max_in_flight:
            await self._call(self._set_paused, True)
        elif self._paused and in_flight <= self._max_in_flight // 2:
            await self._call(self._set_paused, False)

    def _set_paused(self, paused: bool) -> None:
        assignment = self._consumer.assignment()
        if assignment:
            (self._consumer.pause if paused else self._consumer.resume)(assignment)
        self._paused = paused

    async def _commit(self, *, wait: bool = False) -> None:
        commits = self._tracker.take_commits()
        if not commits:
            return
        try:
            await self._call(self._commit_sync if wait else self._commit_async, commits)
        except Exception as exc:
            self._tracker.restore(commits)
            self.last_error = f"commit failed: {exc}"
            log.warning("offset commit failed (will retry): %s", exc)

    def _commit_async(self, commits: list[TopicPartition]) -> None:
        self._commit_log.sent(commits)
        self._consumer.commit(offsets=commits, asynchronous=True)  # reported to _on_commit

    def _commit_sync(self, commits: list[TopicPartition]) -> None:
        self._commit_log.sent(commits)
        self._consumer.commit(offsets=commits, asynchronous=False)
        self._confirmed(commits)

    def _on_commit(self, error: KafkaError | None, partitions: list[TopicPartition]) -> None:
        """On the consumer thread, from poll: the outcome of an asynchronous commit."""
        report = self._commit_log.report(error, partitions)
        self._confirmed(report.confirmed)
        if report.error:
            self.last_error = f"commit failed: {report.error}"
            log.warning("offset commit failed (will retry): %s", report.error)
        if report.again:
            assert self._loop is not None
            self._loop.call_soon_threadsafe(self._tracker.restore, report.again)

    def _confirmed(self, offsets: list[TopicPartition]) -> None:
        for tp in offsets:
            if tp.offset >= 0:
                key = (tp.topic, tp.partition)
                self._committed[key] = max(self._committed.get(key, 0), tp.offset)

    def _refresh_watermarks(self) -> None:
        for topic, partition in list(self.assignment):
            try:
                _low, high = self._consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=1)
            except KafkaException:
                continue
            if high >= 0:
                self._high[(topic, partition)] = high

    # -- rebalance callbacks (run on the consumer thread, inside consume()) -------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        assert self._loop is not None
        try:
            committed = consumer.committed(partitions, timeout=5)
        except KafkaException:
            committed = []
        for tp in committed:
            if tp.offset >= 0:
                self._committed[(tp.topic, tp.partition)] = tp.offset
        keys = [(tp.topic, tp.partition) for tp in partitions]
        self.assignment = sorted(set(self.assignment) | set(keys))
        for topic, partition in keys:
            self._loop.call_soon_threadsafe(self._tracker.assign, topic, partition)
        if self._paused:
            consumer.pause(partitions)
        log.info("assigned %s", keys)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        keys = {(tp.topic, tp.partition) for tp in partitions}
        commits = self._drain_blocking(keys)
        if commits:
            try:
                self._commit_sync(commits)
            except KafkaException as exc:
                log.warning("commit on revoke failed: %s", exc)
        self._drop(keys)
        log.info("revoked %s (committed %s)", sorted(keys), [(c.partition, c.offset) for c in commits])

    def _on_lost(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._drop({(tp.topic, tp.partition) for tp in partitions})

    def _drain_blocking(self, keys: set[tuple[str, int]]) -> list[TopicPartition]:
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(self._drain(keys), self._loop)
        try:
            return future.result(timeout=self._revoke_grace + 1)
        except Exception:
            return []

    async def _drain(self, keys: set[tuple[str, int]]) -> list[TopicPartition]:
        deadline = time.monotonic() + self._revoke_grace
        while time.monotonic() < deadline and any(self._tracker.in_flight(t, p) for t, p in keys):
            await asyncio.sleep(0.02)
        return self._tracker.take_commits(keys)

    def _drop(self, keys: set[tuple[str, int]]) -> None:
        assert self._loop is not None
        self.assignment = [k for k in self.assignment if k not in keys]
        for topic, partition in keys:
            self._loop.call_soon_threadsafe(self._tracker.revoke, topic, partition)
