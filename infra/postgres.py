"""A throwaway PostgreSQL server for tests (Debian's package, installed on demand)."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import time
from pathlib import Path

import psycopg

from infra.debian import install_package


class PostgresError(RuntimeError):
    """The PostgreSQL server could not be installed, initialised or started."""


def _bin_dir() -> Path | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    if candidates:
        return Path(candidates[0]).parent
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def ensure_installed() -> Path:
    """The server binaries' directory, installing Debian's postgresql package if it is missing."""
    bin_dir = _bin_dir()
    if bin_dir is None:
        install_package("postgresql", PostgresError)
        bin_dir = _bin_dir()
    if bin_dir is None:
        raise PostgresError("PostgreSQL binaries not found after installation")
    return bin_dir


class Postgres:
    """initdb + pg_ctl in a directory of its own, on a given port, trust auth on 127.0.0.1 only."""

    def __init__(self, directory: Path, port: int) -> None:
        self.directory = directory
        self.port = port
        self.data = directory / "data"
        self._bin = ensure_installed()
        # The server refuses to run as root; run it as the package's postgres user then.
        self._user = "postgres" if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the server's postgres database."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _dsn(self, database: str) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={database}"

    def _run(self, *args: str) -> None:
        command = [str(self._bin / args[0]), *args[1:]]
        if self._user:
            command = ["runuser", "-u", self._user, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise PostgresError(f"{' '.join(args[:2])} failed: {result.stderr or result.stdout}")

    def start(self, timeout: float = 30.0) -> None:
        """initdb (once) and start the server; PostgresError if it does not accept connections within timeout s."""
        self.directory.mkdir(parents=True, exist_ok=True)
        if self._user:
            uid = pwd.getpwnam(self._user).pw_uid
            os.chown(self.directory, uid, -1)
            for parent in self.directory.parents:  # the server user must reach its directory
                if str(parent) in ("/", "/tmp"):
                    break
                os.chmod(parent, os.stat(parent).st_mode | 0o011)
        if not (self.data / "PG_VERSION").exists():
            self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        # Connections: several workers per service, each with its pools (persistence.engine), share one server.
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory} -c fsync=off"
        options += " -c max_connections=300"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.directory / "server.log"), "start")
        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self._dsn("postgres"), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise PostgresError(f"PostgreSQL not ready on port {self.port}") from None
                time.sleep(0.2)

    def create_database(self, name: str) -> str:
        """Create database name; its SQLAlchemy URL."""
        with psycopg.connect(self._dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        """Stop the server (fast shutdown) if it runs."""
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "stop")
