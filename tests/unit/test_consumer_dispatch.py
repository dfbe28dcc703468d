"""The dispatchers of the consumer runtime: work for a key stays in order, failures are retried, never
skipped, and a record is reported done only once its work finished."""

import asyncio
import logging
import threading

from messaging.consumer.decode import Decoded
from messaging.consumer.dispatch import BatchDispatcher, KeyOrderedDispatcher
from messaging.consumer.runtime import ConsumerRuntime
from tests.unit.log_capture import json_lines


class Record:
    """Stands in for confluent_kafka.Message."""

    def __init__(self, partition, offset):
        self._partition, self._offset = partition, offset

    def topic(self):
        return "t"

    def partition(self):
        return self._partition

    def offset(self):
        return self._offset


def decoded(offset, event, partition=0):
    return Decoded(Record(partition, offset), event)


def test_records_of_one_key_run_in_order_and_other_keys_do_not_wait():
    async def scenario():
        started: list[str] = []
        gate = asyncio.Event()

        async def handle(event):
            started.append(event)
            if event == "a1":
                await gate.wait()

        dispatcher = KeyOrderedDispatcher(handle, key_of=lambda event: event[0])
        done: list[int] = []
        dispatcher.dispatch([decoded(0, "a1"), decoded(1, "a2"), decoded(2, "b1")], lambda m: done.append(m.offset()))
        await asyncio.sleep(0.05)
        assert started == ["a1", "b1"] and done == [2]  # a2 waits for a1; b1 does not
        gate.set()
        await asyncio.wait(dispatcher.running())
        assert started == ["a1", "b1", "a2"] and sorted(done) == [0, 1, 2]

    asyncio.run(scenario())


def test_a_failing_handler_is_retried_until_it_succeeds_and_given_up_on_stop():
    async def scenario():
        failures = {"x": 2, "y": 1_000}

        async def handle(event):
            if failures[event]:
                failures[event] -= 1
                raise RuntimeError("database away")

        dispatcher = KeyOrderedDispatcher(handle, key_of=str)
        done: list[int] = []
        dispatcher.dispatch([decoded(0, "x"), decoded(1, "y")], lambda m: done.append(m.offset()))
        await asyncio.sleep(0.8)  # 0.2 + 0.4 s of backoff for x
        assert done == [0]
        dispatcher.stop()
        await asyncio.wait(dispatcher.running(), timeout=6)
        assert done == [0] and not dispatcher.running()  # y is not done: it is read again after a restart

    asyncio.run(scenario())


def test_batches_run_one_at_a_time_in_order_and_collect_what_arrives_meanwhile():
    async def scenario():
        batches: list[list[int]] = []
        first_running = threading.Event()
        release = threading.Event()

        def handle(events):
            batches.append(events)
            if len(batches) == 1:
                first_running.set()
                release.wait(5)

        dispatcher = BatchDispatcher(handle, max_batch=3)
        done: list[int] = []
        dispatcher.dispatch([decoded(0, 0)], lambda m: done.append(m.offset()))
        await asyncio.to_thread(first_running.wait, 5)
        dispatcher.dispatch([decoded(n, n) for n in range(1, 6)], lambda m: done.append(m.offset()))
        assert done == []
        release.set()
        await asyncio.wait(dispatcher.running())
        assert batches == [[0], [1, 2, 3], [4, 5]]
        assert done == [0, 1, 2, 3, 4, 5]

    asyncio.run(scenario())


def test_a_failing_batch_is_retried_whole():
    async def scenario():
        calls: list[list[int]] = []

        def handle(events):
            calls.append(events)
            if len(calls) == 1:
                raise RuntimeError("database away")

        dispatcher = BatchDispatcher(handle)
        done: list[int] = []
        dispatcher.dispatch([decoded(0, 0), decoded(1, 1)], lambda m: done.append(m.offset()))
        await asyncio.wait(dispatcher.running(), timeout=5)
        assert calls == [[0, 1], [0, 1]] and done == [0, 1]

    asyncio.run(scenario())


def test_dead_lettered_records_are_done_at_once_and_only_events_are_dispatched():
    async def scenario():
        handled: list[str] = []

        async def handle(event):
            handled.append(event)

        consumer = ConsumerRuntime(
            lambda on_commit, **config: None, "t", None, None, KeyOrderedDispatcher(handle, key_of=str)
        )
        consumer._accept([decoded(0, None), decoded(1, "e"), decoded(2, None)])
        # 0 and 2 are done at once, but the commit stops before 1 until its handler finished.
        assert [(tp.partition, tp.offset) for tp in consumer._tracker.take_commits()] == [(0, 1)]
        await asyncio.sleep(0.01)
        assert handled == ["e"] and consumer.in_flight == 0
        assert [(tp.partition, tp.offset) for tp in consumer._tracker.take_commits()] == [(0, 3)]
        consumer._thread.shutdown()

    asyncio.run(scenario())


def test_each_record_is_handled_with_its_key_bound_to_the_log_lines_its_retries_included():
    log = logging.getLogger("test.dispatch.handler")
    failed_once: set[str] = set()

    async def handle(event):
        log.info("handling %s", event)
        if event not in failed_once:
            failed_once.add(event)
            raise RuntimeError("database away")

    async def scenario():
        dispatcher = KeyOrderedDispatcher(handle, key_of=lambda event: event[0], log_key="orderId")
        dispatcher.dispatch([decoded(0, "a1"), decoded(1, "b1")], lambda m: None)
        await asyncio.wait(dispatcher.running())
        log.info("dispatched")

    with json_lines("test.dispatch.handler", "messaging.consumer.dispatch") as lines:
        asyncio.run(scenario())
    by_event = {(line["event"], line.get("orderId")) for line in lines.all()}
    assert {("handling a1", "a"), ("handling b1", "b"), ("dispatched", None)} <= by_event
    retries = [line for line in lines.all() if line["logger"] == "messaging.consumer.dispatch"]
    assert retries and {line["orderId"] for line in retries} <= {"a", "b"}
