"""Debian packages the kind tooling installs on the host when a fresh machine lacks them:
Docker's engine (``docker.io``), ``debootstrap`` for the node image's root filesystem,
and the C headers cgo builds link against (``libseccomp-dev`` for runc).

A package is installed only when what it provides is missing, and only where ``apt-get``
exists and we are root; otherwise :class:`MissingPackageError` says which package to install.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys


class MissingPackageError(RuntimeError):
    """A Debian package is needed and cannot be installed here."""


def install(packages: list[str], why: str) -> None:
    """``apt-get install`` ``packages`` (after ``apt-get update``); ``why`` names what
    needs them, for the log line and for the error where installing is impossible."""
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        raise MissingPackageError(f"{why} needs Debian's {' '.join(packages)}: install it")
    print(f"kind: installing Debian's {' '.join(packages)} ({why})", file=sys.stderr, flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], env=env, check=True)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )


def ensure_command(command: str, package: str, why: str) -> None:
    """Install ``package`` unless ``command`` is on the PATH."""
    if shutil.which(command) is None:
        install([package], why)


def ensure_library(name: str, package: str, why: str) -> None:
    """Install ``package`` (and pkg-config) unless ``pkg-config`` finds library ``name``."""
    if shutil.which("pkg-config") is None:
        install(["pkgconf", package], why)
        return
    found = subprocess.run(["pkg-config", "--exists", name], check=False).returncode == 0
    if not found:
        install([package], why)
