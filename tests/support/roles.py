"""`kubemr master` and `kubemr worker` processes for tests, started the way a pod starts
them: optionally as PID 1 of a PID namespace of their own (``unshare --pid --fork
--mount-proc``, as root), where the kernel drops every signal the process has no
handler for, exactly as in a container.

Each role logs to a file; :meth:`Role.wait` polls for its exit within a named deadline.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from kubemr import address

from testjobs import ROOT, write_manifest

START_DEADLINE = 60.0
"""Seconds a role may take to start serving (or to reach a state a test waits for)."""


def free_port(host: str = "127.0.0.1") -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def poll(what: str, check: Callable[[], bool], deadline: float = START_DEADLINE) -> None:
    """Poll ``check`` until it holds; fail naming ``what`` past ``deadline`` seconds."""
    end = time.monotonic() + deadline
    while not check():
        if time.monotonic() > end:
            raise AssertionError(f"{what}: not within {deadline:.0f}s")
        time.sleep(0.05)


class Role:
    """One `kubemr` process; ``pid1`` runs it as PID 1 of a new PID namespace."""

    def __init__(self, name: str, args: list[str], directory: Path, pid1: bool = False) -> None:
        self.name = name
        self.log_path = directory / f"{name}.log"
        self._log: IO[str] = self.log_path.open("w")
        command = [sys.executable, "-m", "kubemr", *args]
        if pid1:
            command = ["unshare", "--pid", "--fork", "--kill-child", "--mount-proc", *command]
        self.popen = subprocess.Popen(
            command, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT, env=dict(os.environ)
        )
        self.pid1 = pid1
        self._pid = 0 if pid1 else self.popen.pid

    @property
    def pid(self) -> int:
        """The kubemr process's id as this test sees it (unshare's child, if ``pid1``)."""
        if self._pid:
            return self._pid
        children = Path(f"/proc/{self.popen.pid}/task/{self.popen.pid}/children")
        found: list[int] = []

        def forked() -> bool:
            found[:] = [int(p) for p in children.read_text().split()]
            return bool(found)

        poll(f"{self.name}: unshare forks the role", forked)
        self._pid = found[0]
        return self._pid

    def namespace_pid(self) -> int:
        """The role's process id inside its own PID namespace (1 if ``pid1``)."""
        status = Path(f"/proc/{self.pid}/status").read_text()
        line = next(x for x in status.splitlines() if x.startswith("NSpid:"))
        return int(line.split()[-1])

    def terminate(self) -> float:
        """Send SIGTERM to the role itself; return the time it was sent (monotonic)."""
        os.kill(self.pid, signal.SIGTERM)
        return time.monotonic()

    def wait(self, deadline: float) -> int:
        """The exit code, polled for up to ``deadline`` seconds."""
        poll(f"{self.name} exits", lambda: self.popen.poll() is not None, deadline)
        return int(self.popen.returncode)

    def log(self) -> str:
        return self.log_path.read_text()

    def stop(self) -> None:
        """Kill whatever is left (a test's cleanup)."""
        if self.popen.poll() is None:
            if self._pid:  # PID 1 of its namespace: SIGKILL ends the whole namespace
                os.kill(self._pid, signal.SIGKILL)
            self.popen.kill()
            self.popen.wait(10)
        self._log.close()


def journal_records(output: Path) -> list[dict[str, Any]]:
    """The whole records of a job's journal file."""
    path = output / "_temporary" / "_master" / "journal.jsonl"
    if not path.is_file():
        return []
    records = []
    for line in path.read_bytes().split(b"\n"):
        try:
            records.append(json.loads(line))
        except ValueError:
            break
    return records


class Job:
    """A job's roles started by hand, each logging to ``directory``: masters on ports of
    their own, workers pointed at one of them."""

    def __init__(self, directory: Path, doc: dict[str, Any], host: str = "127.0.0.1") -> None:
        self.dir = directory
        self.host = host
        """The address every role binds, advertises and calls (``::1`` for IPv6)."""
        self.manifest = write_manifest(directory, doc)
        self.output = Path(doc["spec"]["output"]["path"])
        self.ports: dict[str, int] = {}
        self.roles: list[Role] = []

    def master(self, name: str, pid1: bool = False, port: int = 0) -> Role:
        """Start a master on ``port`` (0: a free one)."""
        self.ports[name] = port or free_port(self.host)
        args = ["master", "--job", str(self.manifest), "--insecure", *self._host_args()]
        args += ["--port", str(self.ports[name]), "--address-file", str(self.dir / name)]
        args += ["--summary-file", str(self.dir / f"{name}.summary.json")]
        return self._start(Role(name, args, self.dir, pid1))

    def serving(self, master: str) -> bool:
        """Whether ``master`` serves (it wrote its address file)."""
        return (self.dir / master).is_file()

    def worker(self, role: str, name: str, master: str = "master", pid1: bool = False) -> Role:
        args = ["worker", "--role", role, "--name", name, "--insecure", "--shuffle-port", "0"]
        args += ["--master", address.join(self.host, self.ports[master]), *self._host_args()]
        args += ["--work-dir", str(self.dir / name)]
        return self._start(Role(name, args, self.dir, pid1))

    def _host_args(self) -> list[str]:
        return ["--bind", self.host, "--advertise-host", self.host]

    def _start(self, role: Role) -> Role:
        self.roles.append(role)
        return role

    def summary(self, master: str) -> dict[str, Any]:
        return dict(json.loads((self.dir / f"{master}.summary.json").read_text()))

    def stop(self) -> None:
        for role in self.roles:
            role.stop()
