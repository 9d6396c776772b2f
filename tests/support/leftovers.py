"""What a test session leaves behind: processes, pod networks, files outside ignored folders.

``tests/conftest.py`` takes a :class:`Snapshot` when the session starts (and marks the
session's environment, so every process it starts, directly or through ``make``, carries
:data:`MARKER`), and asks :func:`find` at the end: anything the session started and
left there fails the run. A process can escape the marker only by being given a fresh
environment, as the local cluster's pods are: those carry the cluster's own marker and
are counted when the session started the cluster (then its netns and veths count too).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import time
import uuid
from pathlib import Path

import psutil

MARKER = "KUBEMR_TEST_SESSION"
"""Environment variable every process started by a test session inherits (its id)."""
SETTLE_SECONDS = 15.0
"""How long processes stopped at teardown may take to exit before they count as left."""


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """The machine as the session found it."""

    session: str
    """This session's id, the value of :data:`MARKER` in its children."""
    untracked: frozenset[str]
    """Files git neither tracks nor ignores, at the start."""


def start(root: Path) -> Snapshot:
    """Mark this process's environment (inherited by children) and record the tree."""
    session = uuid.uuid4().hex
    os.environ[MARKER] = session
    return Snapshot(session, frozenset(untracked(root)))


def untracked(root: Path) -> list[str]:
    """Files git neither tracks nor ignores (none outside a checkout)."""
    try:
        result = subprocess.run(
            ["git", "ls-files", "--others", "--exclude-standard"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    return result.stdout.splitlines() if result.returncode == 0 else []


def marked(variable: str, value: str) -> list[psutil.Process]:
    """Live processes (not zombies) whose environment has ``variable=value``."""
    found = []
    me = os.getpid()
    for process in psutil.process_iter():
        if process.pid == me:
            continue
        try:
            ours = process.environ().get(variable) == value
            if ours and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def describe(process: psutil.Process) -> str:
    try:
        return f"process {process.pid} {' '.join(process.cmdline())[:160]}"
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return f"process {process.pid} (gone)"


def find(
    snapshot: Snapshot,
    root: Path,
    cluster_markers: tuple[str, str] | None = None,
    networks: list[str] | None = None,
    settle: float = SETTLE_SECONDS,
    files: bool = True,
) -> list[str]:
    """Everything the session left behind (empty when it left nothing).

    ``cluster_markers`` is ``(variable, value)`` of a cluster the session started (its
    pods count), ``networks`` the pod networks still there when it did; ``files``
    counts new files outside ignored folders."""
    deadline = time.monotonic() + settle
    while True:
        processes = marked(MARKER, snapshot.session)
        if cluster_markers is not None:
            processes += marked(*cluster_markers)
        if not processes or time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    found = sorted({describe(p) for p in processes})
    found += [f"network {n}" for n in networks or []]
    if files:
        found += [f"file {name}" for name in untracked(root) if name not in snapshot.untracked]
    return found


def stop(snapshot: Snapshot) -> None:
    """SIGKILL the session's own leftover processes (after they were reported)."""
    for process in marked(MARKER, snapshot.session):
        try:
            process.kill()
        except psutil.NoSuchProcess:
            continue
