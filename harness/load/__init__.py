"""The load generator: open loop without coordinated omission (or closed loop), optional Idempotency-Key retries.

``generator`` is the run itself, ``runners`` where it runs (child process or background thread),
``records`` what it is asked and what it records, ``schedule`` the arrival times, ``http`` the client.
"""

from harness.load.generator import LoadRun, run_in_this_process
from harness.load.records import (
    CONNECTION_ERROR,
    DROPPED,
    NOT_DONE,
    TIMEOUT,
    Accepted,
    Failure,
    LoadResult,
    LoadSpec,
)
from harness.load.runners import BackgroundLoad, LoadProcess, run_load

__all__ = [
    "CONNECTION_ERROR",
    "DROPPED",
    "NOT_DONE",
    "TIMEOUT",
    "Accepted",
    "BackgroundLoad",
    "Failure",
    "LoadProcess",
    "LoadResult",
    "LoadRun",
    "LoadSpec",
    "run_in_this_process",
    "run_load",
]
