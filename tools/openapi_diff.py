"""Breaking changes between a released OpenAPI 3.1 document and the current one, found by oasdiff.

    python -m tools.openapi_diff [--released DIR] [--current DIR]

Compares every schemas/openapi/released/<name>.yaml with schemas/openapi/<name>.yaml by running
`oasdiff breaking RELEASED CURRENT` (tools/oasdiff.py installs the pinned version) and exits with 1 when a client
of the released version could break: every change oasdiff rates an error or a warning counts (the same verdict
as `oasdiff breaking --fail-on WARN`). oasdiff covers paths, methods, parameters, request and response bodies
with their constraints, enums (a new enum value in a response is an error: a client may not know it), response
headers, security requirements and oneOf/anyOf/allOf; its warnings are the changes it cannot prove harmless
(a response wrapped in a oneOf, a request property removed), which this project treats as breaking.
tools/oasdiff-levels.txt raises to errors what oasdiff rates info but takes away something clients read from a
response: a response header the spec marks optional (the services always send Location, Retry-After; clients
read them), an optional response property (`Order.trackingNumber`: a client reading it would find it gone), a
response default value (what a client takes an absent value to mean) and a response discriminator (how a client
tells the variants apart). Removing write-only properties (never in a response), enum values or oneOf/anyOf
branches of a response (the client meets fewer cases) and non-success statuses stay info.

One finding is allowed on purpose: an enum value added to a response (oasdiff's ENUM_ADDED_CHECKS) breaks a
client of the released version that meets a value it does not know, so adding one is a deliberate minor release.
When the document's info.version raises the released one's minor (or major) version (semantic versioning), such
findings are reported as "MINOR RELEASE: ..." and pass; with a patch version (or none) they fail like the others.
Likewise, requiring authentication where none was required (oasdiff's SECURITY_REQUIRED_CHECKS: security added to
an operation or to the document, anonymous access removed) breaks every client that sends no token, so it passes
only in a major release (info.version raises the major version), reported as "MAJOR RELEASE: ...".

The list of every check and its level: `.tools/oasdiff-<version>/oasdiff checks changelog`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from tools.oasdiff import binary

ROOT = Path(__file__).resolve().parent.parent
OPENAPI_DIR = ROOT / "schemas" / "openapi"
RELEASED_DIR = OPENAPI_DIR / "released"
SEVERITY_LEVELS = Path(__file__).resolve().parent / "oasdiff-levels.txt"
# oasdiff's levels in its JSON output: 3 error, 2 warning, 1 info. Warnings and errors break the gate.
BREAKING_LEVEL = 2
_LEVEL_NAMES = {3: "error", 2: "warning", 1: "info"}
# oasdiff's checks of an enum value added to a response (a property of its body, or the body itself): what a
# minor release may do.
ENUM_ADDED_CHECKS = frozenset({"response-property-enum-value-added", "response-mediatype-enum-value-added"})
# oasdiff's checks of authentication required where it was not: what only a major release may do.
SECURITY_REQUIRED_CHECKS = frozenset(
    {"api-security-added", "api-global-security-added", "api-security-anonymous-access-removed"}
)


@dataclass(frozen=True)
class Breaking:
    """One change that can break a client of the released document: where (`METHOD /path`, or the document),
    what (oasdiff's text), check (oasdiff's check id, e.g. `response-property-enum-value-added`) and level.
    released_as_minor: a change a minor release may make (ENUM_ADDED_CHECKS) in a document whose version is
    such a release; released_as_major: one only a major release may make (SECURITY_REQUIRED_CHECKS) in a document
    whose version is one; either is reported, not failed (deliberate)."""

    where: str
    what: str
    check: str = ""
    level: str = "error"
    released_as_minor: bool = False
    released_as_major: bool = False

    @property
    def deliberate(self) -> bool:
        """Whether the change is one the document's version releases on purpose (reported, not failed)."""
        return self.released_as_minor or self.released_as_major

    def __str__(self) -> str:
        return f"{self.where}: {self.what} [{self.check}, {self.level}]"


def diff_files(released: Path, current: Path) -> list[Breaking]:
    """Every breaking change from the document at released to the one at current; response enum values added
    are released_as_minor when current's info.version is a minor (or major) release over released's, and
    authentication required where it was not released_as_major when it is a major release.

    Raises FileNotFoundError when oasdiff is not installed, RuntimeError when oasdiff fails (e.g. a document
    it cannot read), naming its error output, and yaml.YAMLError for a document that is not YAML.
    """
    command = [
        str(binary()),
        "breaking",
        str(released),
        str(current),
        "--format",
        "json",
        "--severity-levels",
        str(SEVERITY_LEVELS),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"oasdiff failed on {released} and {current}: {result.stderr.strip() or result.stdout}")
    changes = json.loads(result.stdout or "[]") or []
    old, new = document_version(released), document_version(current)
    minor, major = minor_release(old, new), major_release(old, new)
    return [
        Breaking(
            f"{change.get('operation', '')} {change.get('path', '')}".strip() or current.name,
            change.get("text", ""),
            change.get("id", ""),
            _LEVEL_NAMES.get(change.get("level", 3), str(change.get("level"))),
            released_as_minor=minor and change.get("id") in ENUM_ADDED_CHECKS,
            released_as_major=major and change.get("id") in SECURITY_REQUIRED_CHECKS,
        )
        for change in changes
        if change.get("level", 3) >= BREAKING_LEVEL
    ]


def document_version(path: Path) -> str:
    """The info.version of the OpenAPI document at path ("" without one). Raises OSError, yaml.YAMLError."""
    document = yaml.safe_load(path.read_text()) or {}
    info = document.get("info") if isinstance(document, dict) else None
    return str(info.get("version", "")) if isinstance(info, dict) else ""


def minor_release(released: str, current: str) -> bool:
    """Whether version current raises released's major or minor version (semantic versioning: 1.3.0 over
    1.2.5, 2.0.0 over 1.9.0; not 1.2.1 over 1.2.0). A part that is not a number counts as 0."""

    def major_minor(version: str) -> tuple[int, ...]:
        parts = version.split(".")[:2]
        return tuple(int(part) if part.isdigit() else 0 for part in parts + ["0"] * (2 - len(parts)))

    return major_minor(current) > major_minor(released)


def major_release(released: str, current: str) -> bool:
    """Whether version current raises released's major version (2.0.0 over 1.9.3; not 1.4.0 over 1.3.0)."""
    return minor_release(released.split(".")[0], current.split(".")[0])


def compare_all(
    released_dir: Path = RELEASED_DIR, current_dir: Path = OPENAPI_DIR
) -> Iterator[tuple[str, list[Breaking]]]:
    """(spec name, breaking changes) for every released spec; a released spec without a current one is one
    breaking change (the API was removed)."""
    for released in sorted(released_dir.glob("*.yaml")):
        current = current_dir / released.name
        if not current.exists():
            yield released.name, [Breaking(released.name, "released API removed", "api-removed")]
            continue
        yield released.name, diff_files(released, current)


def main(argv: list[str] | None = None) -> int:
    """The command line; exit status 0 when no released spec is broken, 1 on a breaking change or no released spec."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--released", type=Path, default=RELEASED_DIR, help="directory of released specs")
    parser.add_argument("--current", type=Path, default=OPENAPI_DIR, help="directory of current specs")
    args = parser.parse_args(argv)
    results = list(compare_all(args.released, args.current))
    if not results:
        print(f"no released specs in {args.released}", file=sys.stderr)
        return 1
    broken = False
    for name, found in results:
        for change in found:
            if change.released_as_minor:
                print(f"{name}: MINOR RELEASE: {change}")
            elif change.released_as_major:
                print(f"{name}: MAJOR RELEASE: {change}")
        changes = [change for change in found if not change.deliberate]
        if changes:
            broken = True
            print(f"{name}: {len(changes)} breaking change(s) against {args.released / name}:", file=sys.stderr)
            for change in changes:
                print(f"  BREAKING {change}", file=sys.stderr)
        else:
            print(f"{name}: no breaking changes against the released version (oasdiff)")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
