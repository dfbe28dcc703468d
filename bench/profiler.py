"""py-spy on a service process while a load runs: where its time goes, as collapsed stacks."""

from __future__ import annotations

import math
import shutil
import signal
import subprocess
import sys
from pathlib import Path


class Profiler:
    """py-spy sampling one service process while the load runs (collapsed stacks, speedscope-loadable).

    Mode "gil" samples only the thread holding the GIL: where the Python CPU goes (threads blocked in
    librdkafka or SQLite calls would otherwise look busy). Mode "wall" samples every thread, idle ones
    included: where the time goes, waits on locks and queues too.
    """

    def __init__(self, pid: int, output: Path, seconds: float, mode: str = "gil") -> None:
        self.output = output
        self.log = output.with_suffix(".log")
        py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        # --nonblocking: never pause the service to read its stacks (costs some accuracy, not latency).
        command = [py_spy, "record", "--pid", str(pid), "--rate", "100", "--nonblocking", "--format", "raw"]
        command.append("--gil" if mode == "gil" else "--idle")
        # The generator needs a moment to start and open its connections before the load begins.
        command += ["--duration", str(max(1, math.ceil(seconds + 1.5))), "--output", str(output)]
        with self.log.open("wb") as log_handle:
            self.process = subprocess.Popen(command, stdout=log_handle, stderr=subprocess.STDOUT)

    def finish(self) -> None:
        """Wait for py-spy to write its output (SIGINT, then SIGKILL, if it does not end by itself)."""
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGINT)  # py-spy writes what it has on SIGINT
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
