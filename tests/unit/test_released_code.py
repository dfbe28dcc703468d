"""harness.released on git repositories of the test's own: a release's commit is checked out in a worktree that
is gone afterwards, a shallow clone fetches the commit it lacks, a commit nobody has fails naming it, and a service
started from a released tree runs that tree's code (its package shadows the installed one of the same name)."""

from __future__ import annotations

import re
import subprocess
import textwrap
from pathlib import Path

import pytest

from harness.released import (
    ReleasedCodeNotRunning,
    ReleasedCodeUnavailable,
    check_runs_release,
    ensure_commit,
    has_commit,
    released_service,
    released_tree,
)
from infra.ports import free_port
from infra.services import order_service
from tools.releases import Release


def git(repo: Path, *args: str) -> str:
    result = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True)
    return result.stdout.strip()


def commit_file(repo: Path, name: str, text: str) -> str:
    path = repo / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=Dev", "-c", "user.email=dev@example.com", "commit", "-q", "-m", f"write {name}")
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    return root


def test_a_released_commit_is_checked_out_beside_the_current_code_and_removed_after(repo: Path, tmp_path: Path) -> None:
    released = commit_file(repo, "VERSION", "1\n")
    commit_file(repo, "VERSION", "2\n")
    work = tmp_path / "work"
    work.mkdir()

    with released_tree(released, work, repo) as tree:
        assert (tree / "VERSION").read_text() == "1\n"
        assert (repo / "VERSION").read_text() == "2\n"
        assert str(tree) in git(repo, "worktree", "list")

    assert not tree.exists()
    assert str(tree) not in git(repo, "worktree", "list")


def test_a_shallow_clone_fetches_the_released_commit_it_lacks(repo: Path, tmp_path: Path) -> None:
    released = commit_file(repo, "VERSION", "1\n")
    commit_file(repo, "VERSION", "2\n")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--depth=1", f"file://{repo}", str(clone)], check=True)
    assert not has_commit(clone, released)

    ensure_commit(clone, released)

    assert has_commit(clone, released)
    with released_tree(released, tmp_path, clone) as tree:
        assert (tree / "VERSION").read_text() == "1\n"


def test_a_commit_that_cannot_be_had_fails_naming_it(repo: Path, tmp_path: Path) -> None:
    commit_file(repo, "VERSION", "1\n")
    missing = "0123456789abcdef0123456789abcdef01234567"
    with pytest.raises(ReleasedCodeUnavailable, match=missing), released_tree(missing, tmp_path, repo):
        pass


# A stand-in for a released Order Service: the same package name as the installed one, serving its own version.
FAKE_SERVICE = textwrap.dedent(
    """
    import json, os
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({"info": {"version": "0.9.0"}}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    HTTPServer((os.environ["HOST"], int(os.environ["PORT"])), Handler).serve_forever()
    """
)


def test_a_service_started_from_a_released_tree_runs_that_trees_code(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "order_service").mkdir(parents=True)
    (tree / "order_service" / "__init__.py").write_text("")
    (tree / "order_service" / "__main__.py").write_text(FAKE_SERVICE)
    release = Release(1, "0" * 40, {"order-service": "0.9.0"}, {})
    current = order_service(free_port(), {}, tmp_path / "logs")

    service = released_service(current, tree, release)
    assert (service.port, service.module, service.root) == (current.port, "order_service", tree)
    assert service.log_file.name == f"order-service-{current.port}-release1.log"
    service.start(timeout=30)
    try:
        check_runs_release(service, release)
        with pytest.raises(ReleasedCodeNotRunning, match=re.escape("serves OpenAPI 0.9.0, not release 2's 1.3.0")):
            check_runs_release(service, Release(2, "1" * 40, {"order-service": "1.3.0"}, {}))
    finally:
        service.stop()
