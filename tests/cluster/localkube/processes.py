"""Starting, recording and stopping the harness's long-lived processes.

Every process the harness starts (control plane, node agent, and through the
agent every container) carries ``LOCALKUBE_CLUSTER=<cluster dir>`` in its
environment and runs in its own session, so that it survives the shell that ran
``make cluster-up`` and can be found again, and only it, by :func:`sweep`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import psutil

from localkube import deadlines

MARKER = "LOCALKUBE_CLUSTER"
"""Environment variable naming the cluster directory a process belongs to."""


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclasses.dataclass(frozen=True)
class Handle:
    """A started process: enough to find it again and to be sure it is the same one."""

    name: str
    pid: int
    create_time: float

    def process(self) -> psutil.Process | None:
        """The live process, or None when it has exited (or the pid was reused)."""
        try:
            process = psutil.Process(self.pid)
            if abs(process.create_time() - self.create_time) > 0.5:
                return None
            if process.status() == psutil.STATUS_ZOMBIE:
                return None
            return process
        except psutil.NoSuchProcess:
            return None

    def alive(self) -> bool:
        return self.process() is not None


def start(
    name: str,
    argv: Sequence[str],
    log: Path,
    cluster_dir: Path,
    *,
    environment: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Handle:
    """Start ``argv`` detached (own session), output appended to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ if environment is None else environment)
    env[MARKER] = str(cluster_dir)
    with log.open("ab") as output:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        output.write(f"==== localkube: {stamp} starting {' '.join(argv)}\n".encode())
        output.flush()
        child = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
    created = psutil.Process(child.pid).create_time()
    # The handle outlives this Popen: detach it so no ResourceWarning is raised.
    child.returncode = 0
    return Handle(name, child.pid, created)


def reap(pid: int) -> None:
    """Collect an exited child of this process, if it is one."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _exited(handle: Handle) -> bool | None:
    if handle.alive():
        return None
    reap(handle.pid)  # a zombie child of this process: collect it
    return True


def stop(handle: Handle, grace: float = 10.0) -> None:
    """SIGTERM the process's group, SIGKILL it after ``grace`` seconds; wait for exit."""
    process = handle.process()
    if process is None:
        reap(handle.pid)
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(handle.pid, signal.SIGTERM)
    with contextlib.suppress(psutil.NoSuchProcess):
        process.terminate()
    try:
        deadlines.poll(
            deadlines.Deadline(f"stop_{handle.name}", grace),
            lambda: _exited(handle),
            f"{handle.name} (pid {handle.pid}) to exit after SIGTERM",
            interval=0.05,
        )
    except deadlines.DeadlineExceededError:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(handle.pid, signal.SIGKILL)
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
        deadlines.poll(
            deadlines.PROCESS_EXIT,
            lambda: _exited(handle),
            f"{handle.name} (pid {handle.pid}) to exit after SIGKILL",
            interval=0.05,
        )


def belonging_to(cluster_dir: Path) -> list[psutil.Process]:
    """Every live process whose environment marks it as part of ``cluster_dir``."""
    found = []
    me = os.getpid()
    for process in psutil.process_iter():
        if process.pid == me:
            continue
        try:
            ours = process.environ().get(MARKER) == str(cluster_dir)
            if ours and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def sweep(cluster_dir: Path) -> list[str]:
    """SIGKILL whatever still belongs to ``cluster_dir``; return what was killed."""
    killed = []
    for process in belonging_to(cluster_dir):
        with contextlib.suppress(psutil.NoSuchProcess):
            killed.append(f"{process.pid} {' '.join(process.cmdline())[:120]}")
            process.kill()
    for process in belonging_to(cluster_dir):
        with contextlib.suppress(psutil.NoSuchProcess, psutil.TimeoutExpired):
            process.wait(timeout=deadlines.PROCESS_EXIT.seconds)
    return killed


def save(path: Path, handles: Sequence[Handle], extra: Mapping[str, object]) -> None:
    record = {"processes": [dataclasses.asdict(h) for h in handles], **extra}
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(record, indent=2) + "\n")
    temporary.replace(path)


def load(path: Path) -> tuple[list[Handle], dict[str, object]]:
    record = json.loads(path.read_text())
    handles = [Handle(**h) for h in record.pop("processes")]
    return handles, record
