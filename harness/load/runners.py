"""Where a load run happens: in a child process (measurable on its own, a core's worth of GIL) or on a thread."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import threading
from dataclasses import asdict
from pathlib import Path

from harness.load.generator import LoadRun, event_loop_runner
from harness.load.records import LoadResult, LoadSpec

ROOT = Path(__file__).resolve().parents[2]


class LoadProcess:
    """The generator as a child process (``python -m harness.load``), so psutil can measure it on its own.

    The result is pickled to result_file; the child's output goes to log_file (default: next to it).
    """

    def __init__(self, spec: LoadSpec, result_file: Path, log_file: Path | None = None) -> None:
        self.spec = spec
        self.result_file = result_file
        self.log_file = log_file or result_file.with_suffix(".log")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The child's pid once started."""
        return self.process.pid if self.process else None

    def start(self) -> LoadProcess:
        """Start the child (it opens its connections, then runs the schedule); returns self."""
        self.result_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.result_file.unlink(missing_ok=True)
        with self.log_file.open("ab") as log:
            command = [sys.executable, "-m", "harness.load", "--spec", json.dumps(asdict(self.spec))]
            self.process = subprocess.Popen(
                [*command, "--result", str(self.result_file)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
            )
        return self

    def wait(self, timeout: float | None = None) -> LoadResult:
        """The child's result once it has finished; RuntimeError if it fails or outlives timeout seconds."""
        assert self.process is not None, "start() first"
        if timeout is None:
            timeout = self.expected_seconds() + self.spec.timeout + 60
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise RuntimeError(f"load generator did not finish within {timeout:.0f}s; see {self.log_file}") from None
        if code != 0 or not self.result_file.exists():
            raise RuntimeError(f"load generator exited with {code}; see {self.log_file}")
        with self.result_file.open("rb") as handle:
            result: LoadResult = pickle.load(handle)
        return result

    def kill(self) -> None:
        """SIGKILL the child if it still runs."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def expected_seconds(self) -> float:
        """How long the load itself should take (0 for a burst: it lasts until the answers are in)."""
        return self.spec.duration if self.spec.rate is not None or self.spec.mode == "closed" else 0.0


def run_load(spec: LoadSpec, result_file: Path) -> LoadResult:
    """Run the generator as a child process and wait for its result (see LoadProcess)."""
    return LoadProcess(spec, result_file).start().wait()


class BackgroundLoad:
    """The generator on a thread of its own with its own event loop, so the caller's thread stays free.

    result fills in while it runs; stop() ends the arrivals and waits for the requests still out.
    """

    def __init__(self, spec: LoadSpec) -> None:
        self.spec = spec
        self._run = LoadRun(spec)
        self._thread = threading.Thread(target=self._main, name="load", daemon=True)
        self._error: BaseException | None = None

    @property
    def result(self) -> LoadResult:
        """What the load did so far (complete once stop() returned)."""
        return self._run.result

    @property
    def accepted_count(self) -> int:
        """Orders answered 2xx so far."""
        return len(self._run.result.accepted)

    def accepted_ids(self) -> list[str]:
        """Ids of the orders answered 2xx so far."""
        with self._run.lock:
            return list(self._run.result.accepted)

    def start(self) -> None:
        """Start the thread; the schedule begins once its connections are open."""
        self._thread.start()

    def stop(self, timeout: float | None = None) -> LoadResult:
        """Stop new arrivals and wait for the outstanding requests (and their retries) to end.

        Raises TimeoutError when they do not within timeout seconds (default: the spec's timeouts plus 30 s),
        RuntimeError when the generator crashed.
        """
        self._run.stop()
        if timeout is None:
            timeout = self.spec.timeout + (self.spec.attempt_timeout or 0.0) + 30
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError("load generator did not finish its outstanding requests")
        if self._error is not None:
            raise RuntimeError("load generator crashed") from self._error
        return self.result

    def _main(self) -> None:
        try:
            with event_loop_runner() as runner:
                runner.run(self._run.run())
        except BaseException as exc:  # reported by stop()
            self._error = exc
