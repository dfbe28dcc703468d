"""A small filesystem of its own for one database, to fill for a fault window: a tmpfs in the scenario's directory.

The scenario's frame mounts it before the services start (their database is created on it), a fault fills
it with a filler file and deletes the filler again, and the frame unmounts it once the services are gone,
whatever happened. Mounting needs root or CAP_SYS_ADMIN (mount(2)); without it the scenario fails with
:class:`DiskUnavailable`, it is never skipped.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("chaos")

MIB = 1024 * 1024


class DiskUnavailable(RuntimeError):
    """The small filesystem could not be mounted (not root, no CAP_SYS_ADMIN, no tmpfs)."""


@dataclass(frozen=True)
class OwnDisk:
    """A database (by name, infra.services.DATABASES) on a tmpfs of size_mib MiB of its own for a scenario.

    The size leaves room for the database under the full profile's load (a few tens of MiB); tmpfs takes
    memory only for what is written, the filler included while it exists.
    """

    database: str
    size_mib: int = 128


class SmallDisk:
    """A tmpfs of size_mib MiB on path (mount(), unmount()), and a filler file that takes all its free space."""

    def __init__(self, path: Path, size_mib: int) -> None:
        self.path = Path(path)
        self.size_mib = size_mib
        self.filler = self.path / "filler"
        self.mounted = False

    def mount(self) -> None:
        """Create path and mount a tmpfs of size_mib there. Raises DiskUnavailable with mount's reason."""
        self.path.mkdir(parents=True, exist_ok=True)
        command = ["mount", "-t", "tmpfs", "-o", f"size={self.size_mib}m,mode=0755", "tmpfs", str(self.path)]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise DiskUnavailable(_refused(command, str(exc))) from exc
        if done.returncode != 0:
            raise DiskUnavailable(_refused(command, (done.stderr or done.stdout).strip() or f"exit {done.returncode}"))
        self.mounted = True
        log.info("tmpfs of %d MiB mounted on %s", self.size_mib, self.path)

    def free_bytes(self) -> int:
        """Bytes an unprivileged writer could still write there (statvfs f_bavail * f_frsize)."""
        stats = os.statvfs(self.path)
        return stats.f_bavail * stats.f_frsize

    def fill(self) -> int:
        """Take every free byte with the filler file (allocated, then topped up until ENOSPC); its size in bytes.

        A database written meanwhile may still get a page or two before the filler has it all; what the
        database already holds (a SQLite WAL it reuses) it keeps: see truncate_wal().
        """
        fd = os.open(self.filler, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600)
        try:
            with contextlib.suppress(OSError):  # ENOSPC if the database took some meanwhile: topped up below
                os.posix_fallocate(fd, os.fstat(fd).st_size, self.free_bytes())
            chunk = b"\0" * (64 * 1024)
            while True:
                try:
                    if os.write(fd, chunk) == 0:
                        break
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
            return os.fstat(fd).st_size
        finally:
            os.close(fd)

    def fill_under(self, database: Path) -> str:
        """Truncate the WAL of the SQLite database on this disk (truncate_wal), then fill(): its next write needs
        space there is not. Returns what was done, for a fault's evidence."""
        truncated = truncate_wal(database)
        filled = self.fill()
        wal = "WAL truncated" if truncated else "WAL busy, not truncated"
        return f"filler of {filled / MIB:.1f} MiB, {self.free_bytes()} bytes left, {wal}"

    def remove_filler(self) -> None:
        """Delete the filler file: its space is free again at once."""
        self.filler.unlink(missing_ok=True)

    def unmount(self) -> None:
        """Unmount (lazily if something still holds a file there); never raises, logs what failed."""
        if not self.mounted:
            return
        for command in (["umount", str(self.path)], ["umount", "-l", str(self.path)]):
            try:
                done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
            except (OSError, subprocess.TimeoutExpired) as exc:
                log.error("%s failed: %s", " ".join(command), exc)
                continue
            if done.returncode == 0:
                self.mounted = False
                return
            log.warning("%s failed: %s", " ".join(command), done.stderr.strip())
        log.error("the tmpfs on %s is still mounted; unmount it by hand", self.path)


@contextlib.contextmanager
def small_disk(path: Path, size_mib: int) -> Iterator[SmallDisk]:
    """A SmallDisk mounted on path for the block, unmounted on leaving whatever happened (DiskUnavailable if
    it cannot be mounted)."""
    disk = SmallDisk(path, size_mib)
    disk.mount()
    try:
        yield disk
    finally:
        disk.unmount()


def truncate_wal(database: Path, timeout: float = 30.0) -> bool:
    """Checkpoint a SQLite database in WAL mode and truncate its WAL file to zero bytes; whether it got there.

    SQLite reuses its WAL file from the start once a checkpoint has copied it all back, so on a full disk
    writes go on succeeding into pages the WAL already holds (up to about 4 MiB with the default
    wal_autocheckpoint of 1000 pages) before one needs new space. With the WAL truncated just before the disk
    fills, the very next write needs space, as it would for any file that has to grow. Waits up to timeout
    seconds for the database's writers and readers (SQLite's busy handler); False if they kept it busy.
    """
    with contextlib.closing(sqlite3.connect(database, timeout=timeout)) as conn:
        busy, _log_frames, _checkpointed = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    return busy == 0


def _refused(command: list[str], reason: str) -> str:
    return (
        f"cannot mount a small filesystem for the database ({' '.join(command)}: {reason}); this scenario needs "
        "root or CAP_SYS_ADMIN to mount a tmpfs, and is not skipped without it"
    )
