"""Group commit: many small writes from asyncio tasks share one transaction on one writer thread.

SQLite allows one writer at a time and a commit costs far more than a row, so batching the writes that
arrive together is what lets one process record thousands of state changes per second.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine

from observability.throttled_log import ThrottledLog
from persistence.engine import write_transaction

log = logging.getLogger(__name__)

T = TypeVar("T")
Operation = Callable[[Connection], Any]


class GroupCommitter:
    """submit(op) runs op(conn) inside a transaction shared with whatever else was queued meanwhile."""

    def __init__(self, engine: Engine, name: str, max_batch: int = 1000) -> None:
        self._engine = engine
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._queue: list[tuple[Operation, asyncio.Future[Any]]] = []
        self._max_batch = max_batch
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._failures = ThrottledLog(log)

    def start(self) -> None:
        """Start the batching task on the running event loop (submit starts it on first use).

        Raises RuntimeError when no event loop is running.
        """
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def submit(self, op: Callable[[Connection], T]) -> T:
        """Queue op(conn) for the next shared transaction and return what op returned once it committed.

        Raises what op raised (it is then retried alone first, so a neighbour's failure never fails it), or the
        database error of its own commit.
        """
        if self._task is None:
            self.start()
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append((op, future))
        assert self._wake is not None
        self._wake.set()
        return await future

    async def run_alone(self, op: Callable[[Connection], T]) -> T:
        """Run op in its own transaction on the writer thread (no batching)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._one, op)

    async def stop(self) -> None:
        """Let the queued operations commit, then end the batching task and the writer thread."""
        if self._task is not None:
            while self._queue:
                await asyncio.sleep(0.01)
            self._task.cancel()
        self._executor.shutdown(wait=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
                ops = [op for op, _ in batch]
                try:
                    results = await loop.run_in_executor(self._executor, self._batch, ops)
                except Exception as exc:
                    # One bad operation must not fail its neighbours: retry each on its own. Each caller gets its
                    # own error; this line says why the batch failed, once a minute for a failure that lasts.
                    self._failures.warning(
                        type(exc).__name__, f"group commit of {len(ops)} operations failed; retrying one by one", exc
                    )
                    results = [await loop.run_in_executor(self._executor, self._one_or_error, op) for op in ops]
                for (_, future), result in zip(batch, results, strict=True):
                    if future.done():
                        continue
                    if isinstance(result, _Failure):
                        future.set_exception(result.error)
                    else:
                        future.set_result(result)

    def _batch(self, ops: list[Operation]) -> list[Any]:
        with write_transaction(self._engine) as conn:
            return [op(conn) for op in ops]

    def _one(self, op: Operation) -> Any:
        with write_transaction(self._engine) as conn:
            return op(conn)

    def _one_or_error(self, op: Operation) -> Any:
        try:
            return self._one(op)
        except Exception as exc:
            return _Failure(exc)


class _Failure:
    def __init__(self, error: Exception) -> None:
        self.error = error
