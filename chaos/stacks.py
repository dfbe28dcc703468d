"""Fresh Kafka brokers and Schema Registries for consecutive chaos scenarios, each in a directory of its own."""

from __future__ import annotations

import contextlib
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from infra.stack import LocalStack


class StackPool:
    """Fresh stacks for consecutive scenarios; the next one can start while the current one drains.

    JVM start-up is a large part of a short (smoke) scenario, and a drain is mostly waiting. One
    long-lived worker thread starts every stack: the JVMs get SIGTERM when the thread that forked them
    ends (PR_SET_PDEATHSIG), so that thread must outlive them.
    """

    def __init__(self, base: Path) -> None:
        self._base = Path(base)
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="chaos-stacks")
        self._next: Future[LocalStack] | None = None

    def prepare(self) -> None:
        """Start the next stack in the background (once)."""
        if self._next is None:
            self._next = self._worker.submit(self._start_one)

    def take(self) -> LocalStack:
        """A started stack of its own for the caller."""
        self.prepare()
        assert self._next is not None
        future, self._next = self._next, None
        return future.result()

    def close(self) -> None:
        """Kill a stack prepared but never taken, and stop the worker."""
        if self._next is not None:
            with contextlib.suppress(Exception):
                self._next.result().kill()
            self._next = None
        self._worker.shutdown(wait=True)

    def _start_one(self) -> LocalStack:
        self._base.mkdir(parents=True, exist_ok=True)
        stack = LocalStack.ephemeral(Path(tempfile.mkdtemp(prefix="stack-", dir=self._base)))
        try:
            stack.start()
        except BaseException:
            stack.kill()
            raise
        return stack
