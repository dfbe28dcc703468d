"""The consumer runtime: fetches on a consumer thread of its own, hands decoded records to a dispatcher, and
commits each partition's offset only past finished work.

All consumer calls run on one dedicated thread; the bookkeeping runs on the event loop. Each partition's
committed offset only passes records whose work finished (OffsetTracker). When too many records are in
flight the consumer pauses its partitions and resumes at half. A record that could not be decoded because
the registry is away is rewound and read again after a backoff; a poison record is dead-lettered and counts
as done. On revocation the revoked partitions' in-flight work gets a grace period to finish, finished work
is committed, and the rest is left to the partition's next owner (handlers are idempotent).

Periodic commits are asynchronous, those that must have landed before something else happens (on
revocation, at shutdown) synchronous; messaging.consumer.commits sends them and keeps what the broker confirmed.

Where each partition starts, and starts again, is messaging.consumer.positions' job: on assignment the
committed offset unless it cannot belong to the partition as it is now (beyond its end, or committed under
another topic id: the topic was recreated), then the beginning; the same when the broker reports an offset
out of range, and when a periodic check finds the topic recreated under the consumer. Every offset is
committed with the topic id its records came from. A partition started again begins a new generation of
its offset tracking: work on records of the old log no longer counts towards its commits.

The module is larger than most (about 390 lines) because the consumer thread's loop, pausing, rewinds and
the rebalance callbacks share one piece of state (what is in flight, per partition and generation) that must
change on one thread; the parts with no share in it live beside it (commits, positions, offsets, dispatch).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from messaging.backoff import Backoff
from messaging.consumer.commits import OffsetCommits
from messaging.consumer.decode import Decoded, decode_batch, poll_batch, rewind
from messaging.consumer.dispatch import Dispatcher
from messaging.consumer.offsets import OffsetTracker
from messaging.consumer.positions import AssignPlan, PartitionPositions
from messaging.consumer.topic_ids import TopicIdLookup
from messaging.dead_letter import DeadLetterPublisher
from messaging.metrics import records_processed
from messaging.topic_codec import RecordDecoder
from observability.metrics import Metrics

log = logging.getLogger(__name__)
# Partition assignments and revocations are logged under the name the consumer had before this runtime
# (`messaging.concurrent_consumer`): the chaos rebalance scenario reads "concurrent_consumer: assigned|revoked".
rebalance_log = logging.getLogger("messaging.concurrent_consumer")

Partition = tuple[str, int]


class ConsumerRuntime:
    """Consumes topic with the consumer connect(on_commit=..., **config) makes (config: librdkafka settings
    the runtime needs, see below), decoding with codec (poison records go to
    dead_letters) and handing the work to dispatcher.

    max_in_flight: records fetched and not finished before the partitions pause. batch_size: records per fetch.
    commit_interval: seconds between periodic commits. revoke_grace: seconds revoked partitions' work may take
    to finish. poll_timeout: seconds a fetch waits for the first record. watermark_interval: seconds between
    reads of the partitions' high watermarks for lag(), or None for no lag. topic_ids: looks up a topic's
    current id (messaging.consumer.topic_ids.TopicIds), so a recreated topic is noticed even when the new log
    has grown past the old position (None: only positions beyond the end are noticed). check_interval:
    seconds between checks of the partitions' positions and topic id. metrics: where records whose work
    finished are counted (messaging.metrics).

    The consumer is made with auto.offset.reset=error: librdkafka then reports an offset out of range
    instead of silently resetting, and the runtime starts that partition from its beginning itself.
    """

    def __init__(
        self,
        connect: Callable[..., Consumer],
        topic: str,
        codec: RecordDecoder,
        dead_letters: DeadLetterPublisher,
        dispatcher: Dispatcher,
        *,
        max_in_flight: int = 1000,
        batch_size: int = 500,
        commit_interval: float = 0.1,
        revoke_grace: float = 5.0,
        poll_timeout: float = 0.05,
        watermark_interval: float | None = 2.0,
        topic_ids: TopicIdLookup | None = None,
        check_interval: float = 2.0,
        metrics: Metrics | None = None,
    ) -> None:
        # The consumer is made here so its commit reports come back to this instance.
        self._consumer = connect(on_commit=self._on_commit, **{"auto.offset.reset": "error"})
        self._topic = topic
        self._codec = codec
        self._dead_letters = dead_letters
        self._dispatcher = dispatcher
        self._max_in_flight = max_in_flight
        self._batch_size = batch_size
        self._commit_interval = commit_interval
        self._revoke_grace = revoke_grace
        self._poll_timeout = poll_timeout
        self._watermark_interval = watermark_interval
        self._check_interval = check_interval
        self._processed = records_processed(metrics or Metrics(), topic)
        self._positions = PartitionPositions(self._consumer, topic_ids)
        self._out_of_range: dict[Partition, int | None] = {}  # reported, not yet started again (consumer thread)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kafka-consumer")
        self._tracker = OffsetTracker()
        self._commits = OffsetCommits(self._consumer, self._positions.commit_metadata, self._restore_soon)
        self._high: dict[Partition, int] = {}
        self._assignment: list[Partition] = []
        self._paused = False
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._main: asyncio.Task[None] | None = None

    # -- public -------------------------------------------------------------------------------------

    def start(self) -> None:
        """Subscribe and start consuming on the running event loop (RuntimeError without one). Errors of the
        loop are logged and the loop goes on; none reaches the caller."""
        self._loop = asyncio.get_running_loop()
        self._main = self._loop.create_task(self._run())

    @property
    def assignment(self) -> list[Partition]:
        """The (topic, partition) pairs assigned to this instance, as of the last rebalance callback."""
        return list(self._assignment)

    @property
    def dead_letters(self) -> DeadLetterPublisher:
        """Where this consumer's poison records go; its counts() are what health reports."""
        return self._dead_letters

    @property
    def in_flight(self) -> int:
        """Records fetched whose work has not finished."""
        return self._tracker.in_flight()

    def lag(self) -> int | None:
        """Records on the assigned partitions not yet committed by this instance; None while this
        instance has no partitions (not yet joined, or the group gave them all to others) or their high
        watermarks are not known yet."""
        if not self._assignment:
            return None
        total = 0
        for key in self._assignment:
            high = self._high.get(key)
            if high is None:
                return None
            total += max(0, high - self._commits.committed.get(key, 0))
        return total

    async def stop(self, grace: float) -> None:
        """Stop fetching, let work under way finish for up to grace seconds, commit, leave the group.

        A failed final commit is logged, not raised: the group then re-reads from the last commit.
        """
        self._stopping = True
        self._dispatcher.stop()
        if self._main is not None:
            await asyncio.wait({self._main}, timeout=2)
        running = self._dispatcher.running()
        if running:
            await asyncio.wait(running, timeout=grace)
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
        last_check = time.monotonic()
        backoff = Backoff()
        while not self._stopping:
            try:
                await self._apply_backpressure()
                done, again, restarted = await self._call(self._fetch)
                self._accept(done)
                self._restarted(restarted)
                if again:
                    await self._call(self._rewind, again)
                    await asyncio.sleep(backoff.failed())
                else:
                    backoff.succeeded()
                now = time.monotonic()
                if now - last_commit >= self._commit_interval:
                    await self._commit()
                    last_commit = now
                if self._watermark_interval is not None and now - last_watermarks >= self._watermark_interval:
                    await self._call(self._refresh_watermarks)
                    last_watermarks = now
                if now - last_check >= self._check_interval:
                    self._restarted(await self._call(self._check_positions))
                    last_check = now
            except Exception:
                log.exception("consumer loop error")
                await asyncio.sleep(0.5)

    def _fetch(self) -> tuple[list[Decoded[Any]], list[Message], list[Partition]]:
        """On the consumer thread: poll, then decode (dead-lettering poison records), then start the partitions
        the broker reported out of range from their beginning. Returns the records handled, the records to
        read again, and the partitions started again."""
        records = poll_batch(self._consumer, self._batch_size, self._poll_timeout, self._report_out_of_range)
        done: list[Decoded[Any]] = []
        again: list[Message] = []
        if records:
            try:
                done, again = decode_batch(records, self._codec, self._dead_letters)
            except Exception:
                # Nothing of this batch was accepted (e.g. the dead-letter topic did not confirm): read it
                # again, or the next fetch would move past it and its valid records would never be handled.
                rewind(self._consumer, records)
                raise
        restarted = self._restart_out_of_range()
        # A partition started from its beginning is not rewound to records of the log before.
        again = [m for m in again if (m.topic(), m.partition()) not in restarted]
        return done, again, restarted

    def _report_out_of_range(self, message: Message) -> None:
        """On the consumer thread, from poll: no position to fetch the partition from (auto.offset.reset)."""
        offset = message.offset()
        asked = offset if offset is not None and offset >= 0 else None  # None: no committed offset
        self._out_of_range[(message.topic(), message.partition())] = asked

    def _restart_out_of_range(self) -> list[Partition]:
        """On the consumer thread: start every partition reported out of range from its beginning; those that
        cannot be started now stay for the next fetch."""
        restarted = []
        for key, asked in list(self._out_of_range.items()):
            if key not in self._assignment:
                del self._out_of_range[key]
                continue
            try:
                started = self._positions.out_of_range(*key, asked, self._commits.committed.get(key), self._paused)
            except KafkaException as exc:
                log.warning("could not start %s[%d] again yet: %s", *key, exc)
                continue
            if started:
                del self._out_of_range[key]
                restarted.append(key)
        return restarted

    def _check_positions(self) -> list[Partition]:
        """On the consumer thread: the periodic check of positions and topic ids (PartitionPositions.check)."""
        return self._positions.check(list(self._assignment), dict(self._commits.committed), self._paused)

    def _restarted(self, keys: list[Partition]) -> None:
        """On the loop, after the records fetched before the restart were accepted: new generations."""
        for topic, partition in keys:
            self._tracker.reset(topic, partition)

    def _rewind(self, messages: Sequence[Message]) -> None:
        """On the consumer thread: read messages again, and stop tracking them until then."""
        assert self._loop is not None
        for (topic, partition), offset in rewind(self._consumer, messages).items():
            self._loop.call_soon_threadsafe(self._tracker.forget_from, topic, partition, offset)

    def _accept(self, records: list[Decoded[Any]]) -> None:
        """On the loop: track every record; dead-lettered ones are done, the rest go to the dispatcher. Each
        record's completion counts only in the generation of its partition it was fetched in."""
        work = []
        generations: dict[Partition, int] = {}
        for record in records:
            message = record.message
            topic, partition = message.topic(), message.partition()
            self._tracker.add(topic, partition, message.offset())
            generations.setdefault((topic, partition), self._tracker.generation(topic, partition))
            if record.event is None:  # dead-lettered: its work is done
                self._tracker.complete(topic, partition, message.offset())
                self._processed.inc()
            else:
                work.append(record)

        def done(message: Message) -> None:
            topic, partition = message.topic(), message.partition()
            self._tracker.complete(topic, partition, message.offset(), generations.get((topic, partition)))
            self._processed.inc()

        if work:
            self._dispatcher.dispatch(work, done)

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

    # -- commits ------------------------------------------------------------------------------------

    async def _commit(self, *, wait: bool = False) -> None:
        commits = self._tracker.take_commits()
        if not commits:
            return
        try:
            await self._call(self._commits.send_sync if wait else self._commits.send_async, commits)
        except Exception as exc:
            self._tracker.restore(commits)
            log.warning("offset commit failed (will retry): %s", exc)

    def _on_commit(self, error: KafkaError | None, partitions: list[TopicPartition]) -> None:
        """On the consumer thread, from poll: the outcome of an asynchronous commit."""
        self._commits.on_commit(error, partitions)

    def _restore_soon(self, commits: list[TopicPartition]) -> None:
        """On the consumer thread: offer the offsets of a failed commit again, on the loop."""
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._tracker.restore, commits)

    def _refresh_watermarks(self) -> None:
        for topic, partition in list(self._assignment):
            try:
                _low, high = self._consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=1)
            except KafkaException:
                continue
            if high >= 0:
                self._high[(topic, partition)] = high

    # -- rebalance callbacks (run on the consumer thread, inside poll()) ---------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        assert self._loop is not None
        try:
            plan = self._positions.plan(partitions)
        except Exception:  # never leave the rebalance half done: the client assigns at the committed offsets
            log.exception("could not decide where %s start", partitions)
            plan = AssignPlan(None, {})
        self._commits.update(plan.committed)
        if plan.partitions is not None:
            consumer.incremental_assign(plan.partitions)  # else the client assigns at the committed offsets
        keys = [(tp.topic, tp.partition) for tp in partitions]
        self._assignment = sorted(set(self._assignment) | set(keys))
        for topic, partition in keys:
            self._loop.call_soon_threadsafe(self._tracker.assign, topic, partition)
        if self._paused:
            consumer.pause(partitions)
        rebalance_log.info("assigned %s", keys)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        keys = {(tp.topic, tp.partition) for tp in partitions}
        commits = self._drain_blocking(keys)
        if commits:
            try:
                self._commits.send_sync(commits)
            except KafkaException as exc:
                log.warning("commit on revoke failed: %s", exc)
        self._drop(keys)
        rebalance_log.info("revoked %s (committed %s)", sorted(keys), [(c.partition, c.offset) for c in commits])

    def _on_lost(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._drop({(tp.topic, tp.partition) for tp in partitions})

    def _drain_blocking(self, keys: set[Partition]) -> list[TopicPartition]:
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(self._drain(keys), self._loop)
        try:
            return future.result(timeout=self._revoke_grace + 1)
        except Exception:
            return []

    async def _drain(self, keys: set[Partition]) -> list[TopicPartition]:
        deadline = time.monotonic() + self._revoke_grace
        while time.monotonic() < deadline and any(self._tracker.in_flight(t, p) for t, p in keys):
            await asyncio.sleep(0.02)
        return self._tracker.take_commits(keys)

    def _drop(self, keys: set[Partition]) -> None:
        assert self._loop is not None
        self._assignment = [k for k in self._assignment if k not in keys]
        self._positions.forget(keys)
        for key in keys:
            self._out_of_range.pop(key, None)
        for topic, partition in keys:
            self._loop.call_soon_threadsafe(self._tracker.revoke, topic, partition)
