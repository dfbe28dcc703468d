"""tools/releases.py: the committed record of releases is well formed, and a rolling upgrade starts from the newest
release whose contracts differ from the current ones."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tools.contracts_release import SCHEMAS_DIR
from tools.releases import Release, current_event_versions, load_releases, previous_release, write_releases


def test_the_committed_releases_name_full_commits_and_released_versions() -> None:
    releases = load_releases(SCHEMAS_DIR)
    assert [r.release for r in releases] == list(range(1, len(releases) + 1)) and len(releases) >= 2
    history = SCHEMAS_DIR / "avro" / "history"
    for release in releases:
        assert all((history / f"{name}.v{n}.avsc").exists() for name, n in release.events.items()), release
    # The code here is the latest release's (or later): the previous release is an older one.
    previous = previous_release(releases, SCHEMAS_DIR)
    assert previous is not None and previous.events != current_event_versions(SCHEMAS_DIR / "avro")


def test_the_previous_release_is_the_newest_whose_contracts_differ(tmp_path: Path) -> None:
    schemas = tmp_path / "schemas"
    shutil.copytree(SCHEMAS_DIR / "avro", schemas / "avro")
    current = {name: n for name, n in current_event_versions(schemas / "avro").items() if n is not None}
    old = Release(1, "a" * 40, {}, {"OrderCreated": 1})
    same = Release(2, "b" * 40, {}, current)
    assert previous_release([old, same], schemas) == old  # the code is release 2's: it upgrades from 1
    # An unreleased change: the latest release is where an upgrade starts.
    path = schemas / "avro" / "OrderCreated.avsc"
    schema = json.loads(path.read_text())
    schema["fields"].append({"name": "channel", "type": "string", "default": "web"})
    path.write_text(json.dumps(schema))
    assert current_event_versions(schemas / "avro")["OrderCreated"] is None
    assert previous_release([old, same], schemas) == same
    assert previous_release([], schemas) is None


def test_a_malformed_record_is_refused(tmp_path: Path) -> None:
    write_releases(tmp_path, [Release(1, "abc", {}, {})])
    with pytest.raises(ValueError, match="not a full commit id"):
        load_releases(tmp_path)
    write_releases(tmp_path, [Release(2, "a" * 40, {}, {})])
    with pytest.raises(ValueError, match="release 2 where 1 was expected"):
        load_releases(tmp_path)
