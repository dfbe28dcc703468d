"""Debian packages the tests' real components come from (PostgreSQL, Prometheus, nginx), installed on demand."""

from __future__ import annotations

import os
import subprocess


def install_package(package: str, error: type[Exception]) -> None:
    """Install Debian's package with apt-get (no recommended extras). Raises error naming the command to run when
    this process is not root, subprocess.CalledProcessError when apt-get fails."""
    if os.geteuid() != 0:
        raise error(f"{package} is not installed; run: sudo apt-get install -y {package}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", package], check=True, env=env)
