"""Pausing a process group: how chaos faults and tests make a service hang, and let it go on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.waiting import wait_until
from infra.pausing import Pausable, ProcessNotRunningError

# A parent that starts a child of its own, then both wait: the pause must reach the whole group.
_PARENT = (
    "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
    "time.sleep(60)"
)


class _Sleeper(Pausable):
    name = "sleeper"

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None


def _group_states(group: int) -> list[str]:
    """The scheduler state letter (R, S, T...) of each process in the process group, from /proc/<pid>/stat."""
    states = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _ppid, pgrp = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        if int(pgrp) == group:
            states.append(state)
    return states


@pytest.fixture
def sleeper() -> Iterator[tuple[_Sleeper, int]]:
    """A running parent and child in a process group of their own, and the group id."""
    sleeper = _Sleeper()
    sleeper.process = subprocess.Popen([sys.executable, "-c", _PARENT], start_new_session=True)
    group = sleeper.process.pid
    try:
        wait_until(lambda: len(_group_states(group)) == 2, 10, message="the child to start")
        yield sleeper, group
    finally:
        os.killpg(group, signal.SIGKILL)
        sleeper.process.wait(10)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")
def test_paused_freezes_the_whole_group_and_continues_it_on_leaving(sleeper: tuple[_Sleeper, int]) -> None:
    process, group = sleeper
    with process.paused():
        wait_until(lambda: _group_states(group) == ["T", "T"], 10, message="both processes stopped")
    wait_until(lambda: "T" not in _group_states(group), 10, message="both processes continued")
    assert len(_group_states(group)) == 2


def test_pausing_a_process_never_started_names_it() -> None:
    with pytest.raises(ProcessNotRunningError, match="sleeper is not running"):
        _Sleeper().pause()
