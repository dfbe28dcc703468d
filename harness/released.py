"""A released version's code beside the current one: its commit checked out in a temporary git worktree, and
its services run from there with this installation's interpreter, for rolling-upgrade tests.

Which commit a release is comes from ``schemas/releases.json`` (tools.releases). The services run with the
working directory and PYTHONPATH set to the released tree, so its packages (``order_service``, ``contract_models``,
...) shadow the editable installation of the current ones; ``check_runs_release`` proves it by the OpenAPI version
the running service serves. The released code imports only what the current lock file installs (dependencies are
added, not removed, between releases; a removed one would fail the service's start, visibly).
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx

from infra.services import ROOT, ServiceProcess
from tools.releases import Release, load_releases, previous_release


class ReleasedCodeUnavailable(RuntimeError):
    """A release's commit is not in the repository and could not be fetched, or its worktree not be made."""


class ReleasedCodeNotRunning(AssertionError):
    """A service meant to run a release's code serves another version (its own code did not shadow ours)."""


# The module of each service -> its OpenAPI document's name (schemas/openapi/<name>.yaml, releases.json "openapi").
OPENAPI_DOCUMENTS = {"order_service": "order-service", "fulfillment_service": "fulfillment-service"}


def _git(repo: Path, *args: str, timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=False, timeout=timeout)


def has_commit(repo: Path, commit: str) -> bool:
    """Whether repo's object store holds commit (a full or abbreviated id)."""
    return _git(repo, "cat-file", "-e", f"{commit}^{{commit}}").returncode == 0


def ensure_commit(repo: Path, commit: str, remote: str = "origin") -> None:
    """Make sure repo holds commit, fetching it from remote when it does not (a shallow CI clone): first that
    commit alone (``git fetch --depth=1 <remote> <commit>``, which servers allowing fetches by id answer), then
    the whole history (``--unshallow`` for a shallow clone, a plain fetch otherwise).

    Raises ReleasedCodeUnavailable naming the commit and what git said when it is still missing.
    """
    if has_commit(repo, commit):
        return
    attempts = [["fetch", "--depth=1", remote, commit]]
    shallow = _git(repo, "rev-parse", "--is-shallow-repository").stdout.strip() == "true"
    attempts.append(["fetch", "--unshallow", remote] if shallow else ["fetch", remote])
    errors = []
    for args in attempts:
        result = _git(repo, *args)
        if has_commit(repo, commit):
            return
        errors.append(f"git {' '.join(args)}: {(result.stderr or result.stdout).strip()[-300:] or 'no error'}")
    raise ReleasedCodeUnavailable(
        f"commit {commit} is not in {repo} and could not be fetched from {remote!r}; fetch it (or clone with full "
        f"history) to run the released code. " + "; ".join(errors)
    )


@contextlib.contextmanager
def released_tree(commit: str, workdir: Path, repo: Path = ROOT) -> Iterator[Path]:
    """The code of commit checked out (detached) in a new git worktree under workdir, removed on leaving.

    Raises ReleasedCodeUnavailable when the commit cannot be had (ensure_commit) or the worktree not be added.
    """
    ensure_commit(repo, commit)
    path = workdir / f"release-{commit[:12]}"
    added = _git(repo, "worktree", "add", "--detach", str(path), commit)
    if added.returncode != 0:
        raise ReleasedCodeUnavailable(f"git worktree add {path} {commit}: {added.stderr.strip()}")
    try:
        yield path
    finally:
        if _git(repo, "worktree", "remove", "--force", str(path)).returncode != 0:
            _git(repo, "worktree", "prune")


@contextlib.contextmanager
def previous_release_tree(workdir: Path, repo: Path = ROOT) -> Iterator[tuple[Release, Path]]:
    """The release a rolling upgrade to repo's current code starts from (tools.releases.previous_release of
    repo's schemas/releases.json) and its code, checked out as released_tree does.

    Raises ReleasedCodeUnavailable when no release precedes the current contracts, or as released_tree does.
    """
    schemas = repo / "schemas"
    release = previous_release(load_releases(schemas), schemas)
    if release is None:
        raise ReleasedCodeUnavailable(f"{schemas / 'releases.json'} records no release before the current contracts")
    with released_tree(release.commit, workdir, repo) as tree:
        yield release, tree


def released_service(service: ServiceProcess, tree: Path, release: Release) -> ServiceProcess:
    """service (not started) as the released code in tree runs it: same module, port, environment and log
    directory, its own log file (``<label>-<port>-release<N>.log``)."""
    log_file = service.log_file.with_name(f"{service.label}-{service.port}-release{release.release}.log")
    return replace(service, root=tree, log_file=log_file)


def served_openapi_version(service: ServiceProcess, timeout: float = 10.0) -> str:
    """The info.version of the OpenAPI document the running service serves at /openapi.json.

    Raises httpx.HTTPError when it does not answer.
    """
    response = httpx.get(service.url + "/openapi.json", timeout=timeout)
    response.raise_for_status()
    return str(response.json()["info"]["version"])


def check_runs_release(service: ServiceProcess, release: Release) -> None:
    """Raises ReleasedCodeNotRunning unless the running service serves the OpenAPI version release records for
    it: the proof that the released code, not the current installation, is what runs."""
    expected = release.openapi[OPENAPI_DOCUMENTS[service.module]]
    served = served_openapi_version(service)
    if served != expected:
        raise ReleasedCodeNotRunning(
            f"{service.label} on {service.url} serves OpenAPI {served}, not release {release.release}'s {expected}"
        )
