"""The record of released contracts, ``schemas/releases.json``: which commit each release is, and the contract
versions it carries.

The file is a JSON list, oldest release first::

    [{"release": 1, "commit": "<40 hex digits>",
      "openapi": {"order-service": "1.2.0", ...},          # each OpenAPI document's info.version
      "events": {"OrderCreated": 1, ...}}]                 # each event schema's version in schemas/avro/history/

``make contracts-release`` appends to it (tools.contracts_release); the rolling-upgrade test runs the code of
``previous_release`` beside the current code (harness.released). The commit is the HEAD the release was made on,
with a clean working tree, so the code at that commit is exactly what was released.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from tools.schema_check import released_versions

RELEASES_FILE = "releases.json"


class ReleaseRecordError(RuntimeError):
    """The release record cannot be made: no git repository, or a working tree with uncommitted changes."""


@dataclass(frozen=True)
class Release:
    """One released set of contracts: its number, the commit of its code, the OpenAPI document versions
    (document name -> info.version) and event schema versions (event name -> N of history/<Name>.vN.avsc)."""

    release: int
    commit: str
    openapi: dict[str, str]
    events: dict[str, int]

    def to_json(self) -> dict[str, object]:
        """The release as releases.json holds it."""
        return {"release": self.release, "commit": self.commit, "openapi": self.openapi, "events": self.events}


def load_releases(schemas_dir: Path) -> list[Release]:
    """The releases recorded in schemas_dir/releases.json, oldest first ([] while there is none).

    Raises ValueError when the file is not a list of releases numbered 1, 2, ... with 40-hex-digit commits.
    """
    path = schemas_dir / RELEASES_FILE
    if not path.exists():
        return []
    releases = [
        Release(int(entry["release"]), str(entry["commit"]), dict(entry["openapi"]), dict(entry["events"]))
        for entry in json.loads(path.read_text())
    ]
    for number, release in enumerate(releases, start=1):
        if release.release != number:
            raise ValueError(f"{path}: release {release.release} where {number} was expected")
        if not re.fullmatch(r"[0-9a-f]{40}", release.commit):
            raise ValueError(f"{path}: release {number} commit {release.commit!r} is not a full commit id")
    return releases


def write_releases(schemas_dir: Path, releases: list[Release]) -> None:
    """Write releases to schemas_dir/releases.json (indented, one key order, a final newline)."""
    text = json.dumps([release.to_json() for release in releases], indent=2)
    (schemas_dir / RELEASES_FILE).write_text(text + "\n")


def current_event_versions(avro_dir: Path) -> dict[str, int | None]:
    """Each event schema of avro_dir: the released version it equals (as JSON data), None when unreleased."""
    current: dict[str, int | None] = {}
    for path in sorted(avro_dir.glob("*.avsc")):
        schema = json.loads(path.read_text())
        history = released_versions(avro_dir, path.stem)
        same = [n for n, released in history if json.loads(released.read_text()) == schema]
        current[path.stem] = same[-1] if same else None
    return current


def openapi_versions(openapi_dir: Path) -> dict[str, str]:
    """Each OpenAPI document of openapi_dir by name (file stem): its info.version."""
    documents = sorted(openapi_dir.glob("*.yaml"))
    return {path.stem: str(yaml.safe_load(path.read_text())["info"]["version"]) for path in documents}


def previous_release(releases: list[Release], schemas_dir: Path) -> Release | None:
    """The newest release whose event versions differ from the current schemas' (schemas_dir/avro): the one a
    rolling upgrade to the current code starts from. None when there is no such release.

    While the current schemas are those of the latest release (the release's own code, or a later patch), that
    is the release before it; with unreleased changes, it is the latest release.
    """
    current = current_event_versions(schemas_dir / "avro")
    for release in reversed(releases):
        if release.events != current:
            return release
    return None


def clean_head(root: Path) -> str:
    """The full commit id of HEAD in the git work tree holding root, whose working tree must be clean.

    Raises ReleaseRecordError when root is in no git work tree or has uncommitted changes (untracked files
    included): a release records HEAD, so only HEAD's code may be what is released.
    """

    def git(*args: str) -> str:
        result = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise ReleaseRecordError(f"git {' '.join(args)} in {root}: {result.stderr.strip()}")
        return result.stdout

    head = git("rev-parse", "--verify", "HEAD^{commit}").strip()
    changes = git("status", "--porcelain").splitlines()
    if changes:
        shown = ", ".join(line[3:] for line in changes[:5]) + (", ..." if len(changes) > 5 else "")
        raise ReleaseRecordError(
            f"the working tree has uncommitted changes ({shown}): commit them first, so the release's commit "
            "holds exactly the code released"
        )
    return head
