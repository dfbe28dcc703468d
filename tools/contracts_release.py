"""Release the current contracts: record each changed event schema as its next version and the OpenAPI
documents as their released copies, after the gates pass.

    python -m tools.contracts_release [--schemas DIR]       # `make contracts-release`; DIR: schemas/

Reads DIR/avro/<Name>.avsc with DIR/avro/history/<Name>.v<N>.avsc, and DIR/openapi/<name>.yaml with
DIR/openapi/released/<name>.yaml. Refuses (exit 1, writing nothing):

* a no-op: no event schema differs from its latest released version (as JSON, so formatting does not count)
  and no OpenAPI document differs from its released copy (as data);
* an event schema incompatible with any released version at the topology's level, both ways
  (tools.schema_check.check_local; FULL_TRANSITIVE);
* an OpenAPI document with a breaking change against its released copy (tools.openapi_diff, oasdiff);
* a working tree with uncommitted changes, or none in git (tools.releases.clean_head): the release records HEAD
  as the released code, so HEAD must hold exactly that code.

Otherwise writes DIR/avro/history/<Name>.v<N+1>.avsc (a copy of the current file) for each changed event
schema, a v1 for a new one, copies each changed OpenAPI document into DIR/openapi/released/, appends the
release (its number, HEAD's commit, every OpenAPI document's info.version and every event's history version) to
DIR/releases.json (tools.releases), then prints what it recorded. Released files are never edited afterwards;
commit them right after: the release's commit only adds what was recorded.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from events.topology import COMPATIBILITY
from tools.openapi_diff import compare_all
from tools.releases import (
    Release,
    ReleaseRecordError,
    clean_head,
    current_event_versions,
    load_releases,
    openapi_versions,
    write_releases,
)
from tools.schema_check import EVENT_TOPICS, check_local, event_schemas, released_versions

SCHEMAS_DIR = Path(__file__).resolve().parent.parent / "schemas"


@dataclass
class ReleasePlan:
    """What a release would record: (current file, released file to write) pairs, and why it may not."""

    event_schemas: list[tuple[Path, Path]] = field(default_factory=list)
    openapi_documents: list[tuple[Path, Path]] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    commit: str | None = None  # HEAD, the code released

    @property
    def empty(self) -> bool:
        """True when nothing changed since the last release."""
        return not self.event_schemas and not self.openapi_documents


def plan(schemas_dir: Path = SCHEMAS_DIR, level: str = COMPATIBILITY) -> ReleasePlan:
    """What releasing schemas_dir would record, with every gate's refusal (none: it may be released).

    Raises FileNotFoundError when oasdiff is not installed and an OpenAPI document is released already.
    """
    avro_dir, openapi_dir = schemas_dir / "avro", schemas_dir / "openapi"
    result = ReleasePlan()
    for current in sorted(avro_dir.glob("*.avsc")):
        versions = released_versions(avro_dir, current.stem)
        latest = versions[-1][1] if versions else None
        if latest is None or _json(latest) != _json(current):
            number = versions[-1][0] + 1 if versions else 1
            result.event_schemas.append((current, avro_dir / "history" / f"{current.stem}.v{number}.avsc"))
    for current in sorted(openapi_dir.glob("*.yaml")):
        released = openapi_dir / "released" / current.name
        if not released.exists() or yaml.safe_load(released.read_text()) != yaml.safe_load(current.read_text()):
            result.openapi_documents.append((current, released))
    if result.empty:
        result.refusals.append("nothing to release: every contract equals its latest released version")
        return result
    topics = {path.name: EVENT_TOPICS.get(path.name, path.stem) for path in avro_dir.glob("*.avsc")}
    try:
        result.commit = clean_head(schemas_dir)
    except ReleaseRecordError as exc:
        result.refusals.append(str(exc))
    result.refusals += [f"event schema: {p}" for p in check_local(event_schemas(avro_dir, topics), level)]
    if (openapi_dir / "released").is_dir():
        for name, changes in compare_all(openapi_dir / "released", openapi_dir):
            # A response enum value added in a minor release, authentication required in a major one, is on purpose
            # (tools.openapi_diff).
            breaking = [change for change in changes if not change.deliberate]
            result.refusals += [f"OpenAPI {name}: breaking change {change}" for change in breaking]
    return result


def _json(path: Path) -> object:
    """The JSON in path, or its text when it is not JSON (the gates refuse it, naming the file)."""
    text = path.read_text()
    try:
        return json.loads(text)
    except ValueError:
        return text


def release(schemas_dir: Path = SCHEMAS_DIR, level: str = COMPATIBILITY) -> ReleasePlan:
    """Record the release plan(schemas_dir) describes, unless it has refusals; the plan either way.

    Raises ValueError when schemas_dir/releases.json is malformed (tools.releases.load_releases).
    """
    result = plan(schemas_dir, level)
    if result.refusals:
        return result
    assert result.commit is not None  # no refusal: HEAD was read
    releases = load_releases(schemas_dir)
    for current, target in [*result.event_schemas, *result.openapi_documents]:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(current, target)
    events = current_event_versions(schemas_dir / "avro")
    recorded = Release(
        len(releases) + 1,
        result.commit,
        openapi_versions(schemas_dir / "openapi"),
        {name: version for name, version in events.items() if version is not None},
    )
    write_releases(schemas_dir, [*releases, recorded])
    return result


def main(argv: list[str] | None = None) -> int:
    """The command line (``--schemas DIR``); exit status 0 when released, 1 when refused."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--schemas", type=Path, default=SCHEMAS_DIR, help="the schemas directory")
    args = parser.parse_args(argv)
    result = release(args.schemas)
    if result.refusals:
        for refusal in result.refusals:
            print(f"REFUSED {refusal}", file=sys.stderr)
        print("nothing was recorded", file=sys.stderr)
        return 1
    for current, target in [*result.event_schemas, *result.openapi_documents]:
        print(f"released {current.relative_to(args.schemas)} as {target.relative_to(args.schemas)}")
    print(f"recorded release {len(load_releases(args.schemas))} of commit {result.commit} in releases.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
