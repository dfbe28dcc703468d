"""Download the Kafka broker and the Apicurio Registry from Maven Central into a local cache.

The cache lives in ``$ORDERPROC_CACHE`` (default ``~/.cache/order-processing``):

* ``kafka-<version>/libs/``                       broker classpath (from ``infra/pom.xml``)
* ``apicurio/apicurio-registry-app-<v>-runner.jar`` plus ``apicurio/lib/``

Fetching is idempotent: each part writes a marker file once it is complete, and a file
lock serialises concurrent fetches (tests and ``make run`` may start at the same time).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

KAFKA_VERSION = "4.1.1"
APICURIO_VERSION = "3.0.9"

POM = Path(__file__).with_name("pom.xml")
APICURIO_ARTIFACT = f"io.apicurio:apicurio-registry-app:{APICURIO_VERSION}:tar.gz:all"

_MARKER = ".complete"
_POM_NS = {"m": "http://maven.apache.org/POM/4.0.0"}


class FetchError(RuntimeError):
    """Raised when the downloads cannot be made."""


@dataclass(frozen=True)
class Paths:
    """Locations of the downloaded distributions."""

    kafka_libs: Path
    apicurio_jar: Path

    @property
    def kafka_classpath(self) -> str:
        """The java classpath of the Kafka jars."""
        # A classpath wildcard keeps the command line short; java expands it itself.
        return str(self.kafka_libs / "*")


def cache_dir() -> Path:
    """Root of the download cache (``$ORDERPROC_CACHE`` or ``~/.cache/order-processing``)."""
    env = os.environ.get("ORDERPROC_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "order-processing"


def expected_paths(cache: Path | None = None) -> Paths:
    """Where the distributions live once fetched (without checking or fetching anything)."""
    root = cache or cache_dir()
    return Paths(
        kafka_libs=root / f"kafka-{KAFKA_VERSION}" / "libs",
        apicurio_jar=root / "apicurio" / f"apicurio-registry-app-{APICURIO_VERSION}-runner.jar",
    )


def pom_kafka_version(pom: Path = POM) -> str:
    """The ``kafka.version`` property declared in ``infra/pom.xml``."""
    node = ET.parse(pom).getroot().find("m:properties/m:kafka.version", _POM_NS)
    if node is None or not (node.text or "").strip():
        raise FetchError(f"{pom} does not declare a kafka.version property")
    return (node.text or "").strip()


def ensure_downloads(cache: Path | None = None) -> Paths:
    """Make sure Kafka and Apicurio are in the cache, fetching what is missing.

    Returns the paths to use. Safe to call from several processes at once.
    """
    pom_version = pom_kafka_version()
    if pom_version != KAFKA_VERSION:
        raise FetchError(
            f"infra/pom.xml pins Kafka {pom_version} but infra/fetch.py expects {KAFKA_VERSION}; update both together"
        )
    root = cache or cache_dir()
    paths = expected_paths(root)
    kafka_stamp = _kafka_stamp()
    apicurio_stamp = APICURIO_VERSION
    kafka_home = paths.kafka_libs.parent
    apicurio_home = paths.apicurio_jar.parent

    # Fast path without the lock: nothing to do once both markers match.
    if _is_complete(kafka_home, kafka_stamp) and _is_complete(apicurio_home, apicurio_stamp):
        return paths

    root.mkdir(parents=True, exist_ok=True)
    with _locked(root / ".fetch.lock"):
        # Another process may have finished the work while this one waited for the lock.
        if not _is_complete(kafka_home, kafka_stamp):
            _fetch_kafka(kafka_home, paths.kafka_libs)
            _mark_complete(kafka_home, kafka_stamp)
        if not _is_complete(apicurio_home, apicurio_stamp):
            _fetch_apicurio(apicurio_home, paths.apicurio_jar)
            _mark_complete(apicurio_home, apicurio_stamp)
    return paths


def _kafka_stamp() -> str:
    # The pom's hash, so that editing the manifest (e.g. a logging jar) refreshes the libs.
    return f"{KAFKA_VERSION} {hashlib.sha256(POM.read_bytes()).hexdigest()}"


def _is_complete(home: Path, stamp: str) -> bool:
    marker = home / _MARKER
    try:
        return marker.read_text().strip() == stamp
    except OSError:
        return False


def _mark_complete(home: Path, stamp: str) -> None:
    tmp = home / f"{_MARKER}.tmp"
    tmp.write_text(stamp + "\n")
    tmp.replace(home / _MARKER)


@contextmanager
def _locked(lock_file: Path) -> Iterator[None]:
    with lock_file.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _mvn() -> str:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise FetchError("Maven ('mvn') is not on PATH; it is needed once to download Kafka and Apicurio")
    return mvn


def _run(cmd: list[str], cwd: Path) -> None:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()
        raise FetchError(f"command failed ({result.returncode}): {' '.join(cmd)}\n{output}")


def _fetch_kafka(home: Path, libs: Path) -> None:
    print(f"fetching Kafka {KAFKA_VERSION} jars into {libs} ...", flush=True)
    home.mkdir(parents=True, exist_ok=True)
    # Download next to the target and swap it in, so an interrupted fetch never leaves a
    # half-filled libs dir that later looks usable.
    staging = home / "libs.partial"
    shutil.rmtree(staging, ignore_errors=True)
    _run(
        [
            _mvn(),
            "-q",
            "-B",
            "-f",
            str(POM),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={staging}",
            "-DincludeScope=runtime",
        ],
        cwd=home,
    )
    shutil.rmtree(libs, ignore_errors=True)
    staging.rename(libs)


def _fetch_apicurio(home: Path, runner_jar: Path) -> None:
    print(f"fetching Apicurio Registry {APICURIO_VERSION} into {home} ...", flush=True)
    home.mkdir(parents=True, exist_ok=True)
    staging = home.with_name(home.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    _run(
        [
            _mvn(),
            "-q",
            "-B",
            "dependency:copy",
            f"-Dartifact={APICURIO_ARTIFACT}",
            f"-DoutputDirectory={staging}",
        ],
        cwd=staging,
    )
    archive = staging / f"apicurio-registry-app-{APICURIO_VERSION}-all.tar.gz"
    with tarfile.open(archive) as tar:
        tar.extractall(staging, filter="data")
    # The archive stays in the Maven repository; no need to keep a second copy here.
    archive.unlink()
    if not (staging / runner_jar.name).is_file():
        raise FetchError(f"{archive.name} did not contain {runner_jar.name}")
    # Replace the whole directory: jars of an older version must not linger in lib/.
    shutil.rmtree(home)
    staging.rename(home)


def main() -> int:
    """`python -m infra.fetch`: download what is missing and print where it is; the exit status."""
    try:
        paths = ensure_downloads()
    except FetchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"kafka libs:   {paths.kafka_libs}")
    print(f"apicurio jar: {paths.apicurio_jar}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
