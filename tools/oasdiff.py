"""oasdiff, the OpenAPI breaking-change checker the OpenAPI gate runs (a Go program), pinned and installed into
the project's own bin directory.

    python -m tools.oasdiff install     # `make install` runs it: `go install` into .tools/oasdiff-<VERSION>/

The binary is built from its source through the Go module proxy (`go install github.com/oasdiff/oasdiff@VERSION`
with GOBIN set), so it needs Go on the PATH once per machine and version; the directory name carries the
version, so changing VERSION installs the new one beside the old.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VERSION = "v1.37.0"
MODULE = "github.com/oasdiff/oasdiff"
BIN_DIR = ROOT / ".tools" / f"oasdiff-{VERSION}"


def binary() -> Path:
    """The oasdiff executable: $OASDIFF when set, else the pinned one in BIN_DIR.

    Raises FileNotFoundError (naming `make install`) when it is not there.
    """
    path = Path(os.environ.get("OASDIFF") or BIN_DIR / "oasdiff")
    if not path.is_file():
        raise FileNotFoundError(f"oasdiff {VERSION} is not installed at {path}: run `make install`")
    return path


def install() -> Path:
    """Build the pinned oasdiff into BIN_DIR unless it is there; its path.

    Raises FileNotFoundError without Go (on the PATH or in /usr/local/go/bin), subprocess.CalledProcessError
    when `go install` fails.
    """
    target = BIN_DIR / "oasdiff"
    if target.is_file():
        return target
    # Go's own installer puts it in /usr/local/go/bin, which a non-login shell (CI) may not have on its PATH.
    go = shutil.which("go") or shutil.which("go", path="/usr/local/go/bin")
    if go is None:
        raise FileNotFoundError("Go is needed to install oasdiff (the OpenAPI gate): put `go` on the PATH")
    BIN_DIR.mkdir(parents=True, exist_ok=True)
    print(f"installing oasdiff {VERSION} into {BIN_DIR}", flush=True)
    subprocess.run([go, "install", f"{MODULE}@{VERSION}"], check=True, env={**os.environ, "GOBIN": str(BIN_DIR)})
    return target


def main(argv: list[str] | None = None) -> int:
    """`install`: install oasdiff if missing; exit status 0 once it is there."""
    args = sys.argv[1:] if argv is None else argv
    if args != ["install"]:
        print("usage: python -m tools.oasdiff install", file=sys.stderr)
        return 2
    install()
    return 0


if __name__ == "__main__":
    sys.exit(main())
