"""``kubemr run``: a whole job on one machine, with the entry points pods use.

The launcher validates the manifest and plans the job (so a bad input fails before
any process starts), then starts ``kubemr master`` and the ``kubemr worker`` processes
on loopback, shows progress from the master's status, and waits. Whatever happens
(success, failure, Ctrl-C) every process it started is stopped and its temporary
directory removed; an unfinished job leaves no output behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from kubemr import spec as specs
from kubemr.plan import JobPlan
from kubemr.proto import mapreduce_pb2 as pb
from kubemr.proto import mapreduce_pb2_grpc as pb_grpc
from kubemr.storage import OutputDir

MASTER_START_DEADLINE = 60.0
"""Seconds the master may take to start serving."""
STOP_GRACE = 5.0
"""Seconds between SIGTERM and SIGKILL when stopping processes."""
WORKER_EXIT_DEADLINE = 20.0
"""Seconds workers may take to exit after the master has finished."""


class LaunchError(RuntimeError):
    """The local job could not run to the end."""


@dataclass
class Process:
    """A child process the launcher started."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    code: int | None = None
    peak_rss: int = 0

    def poll(self, block: bool = False) -> int | None:
        """Reap the process if it has exited, recording its peak memory."""
        if self.code is not None:
            return self.code
        pid, status, usage = os.wait4(self.popen.pid, 0 if block else os.WNOHANG)
        if pid == 0:
            return None
        self.code = os.waitstatus_to_exitcode(status)
        self.popen.returncode = self.code
        self.peak_rss = usage.ru_maxrss * 1024
        return self.code

    def signal(self, signum: int) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signum)

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class LocalRun:
    """The result of a local job."""

    code: int
    summary: dict[str, Any]
    output: Path
    peak_rss: dict[str, int] = field(default_factory=dict)


ProgressCallback = Callable[[pb.JobStatus], None]


class Launcher:
    """Starts and supervises the processes of one local job."""

    def __init__(
        self,
        plan: JobPlan,
        *,
        search: list[Path],
        keep_workdir: bool = False,
        progress: ProgressCallback | None = None,
        worker_env: dict[str, str] | None = None,
    ) -> None:
        self.plan = plan
        self.search = search
        self.keep_workdir = keep_workdir
        self.progress = progress
        self.worker_env = worker_env or {}
        self.workdir = Path(tempfile.mkdtemp(prefix=f"kubemr-{plan.job.metadata.name}-"))
        self.processes: list[Process] = []

    def _start(self, name: str, args: list[str]) -> Process:
        log = self.workdir / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.worker_env, "PYTHONUNBUFFERED": "1"}
        with log.open("wb") as sink:
            popen = subprocess.Popen(
                [sys.executable, "-m", "kubemr", *args],
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        process = Process(name, popen, log)
        self.processes.append(process)
        return process

    def _search_args(self) -> list[str]:
        return [arg for d in self.search for arg in ("--search", str(d))]

    def _await_address(self, master: Process, address_file: Path) -> str:
        deadline = time.monotonic() + MASTER_START_DEADLINE
        while time.monotonic() < deadline:
            if address_file.exists():
                return address_file.read_text(encoding="utf-8").strip()
            if master.poll() is not None:
                raise LaunchError(
                    f"the master exited with code {master.code} before serving:\n"
                    f"{master.log_tail()}"
                )
            time.sleep(0.02)
        raise LaunchError(f"the master did not serve within {MASTER_START_DEADLINE:.0f}s")

    def run(self) -> LocalRun:
        try:
            return self._run()
        finally:
            self.stop_all()
            if not self.keep_workdir:
                shutil.rmtree(self.workdir, ignore_errors=True)

    def _run(self) -> LocalRun:
        spec = self.plan.job.spec
        job_file = self.workdir / "job.json"
        job_file.write_text(json.dumps(specs.dump_job(self.plan.job)), encoding="utf-8")
        address_file = self.workdir / "master.addr"
        summary_file = self.workdir / "summary.json"
        master = self._start(
            "master",
            [
                "master",
                "--job",
                str(job_file),
                "--bind",
                "127.0.0.1",
                "--port",
                "0",
                "--address-file",
                str(address_file),
                "--summary-file",
                str(summary_file),
                *self._search_args(),
            ],
        )
        address = self._await_address(master, address_file)
        groups = (("mapper", spec.mapper.replicas), ("reducer", spec.reducer.replicas))
        for role, replicas in groups:
            for index in range(replicas):
                name = f"{role}-{index}"
                self._start(
                    name,
                    [
                        "worker",
                        "--role",
                        role,
                        "--master",
                        address,
                        "--name",
                        name,
                        "--work-dir",
                        str(self.workdir / name),
                        "--bind",
                        "127.0.0.1",
                        "--shuffle-port",
                        "0",
                        *self._search_args(),
                    ],
                )
        self._supervise(master, address)
        deadline = time.monotonic() + WORKER_EXIT_DEADLINE
        while time.monotonic() < deadline and any(p.poll() is None for p in self.processes):
            time.sleep(0.02)
        summary: dict[str, Any] = {}
        if summary_file.exists():
            summary = json.loads(summary_file.read_text(encoding="utf-8"))
        peaks = {p.name: p.peak_rss for p in self.processes if p.poll() is not None}
        summary["localPeakRssBytes"] = peaks
        if master.code != 0:
            message = summary.get("error") or master.log_tail()
            raise LaunchError(f"job {self.plan.job.metadata.name} failed: {message}")
        return LocalRun(0, summary, Path(spec.output.path), peaks)

    def _supervise(self, master: Process, address: str) -> None:
        """Poll the master's status until it exits; fail fast if a worker dies."""
        with grpc.insecure_channel(address) as channel:
            stub = pb_grpc.MasterStub(channel)
            while master.poll() is None:
                if self.progress is not None:
                    with contextlib.suppress(grpc.RpcError):
                        self.progress(stub.GetStatus(pb.StatusRequest(), timeout=1.0))
                for process in self.processes:
                    if process is not master and process.poll() not in (None, 0):
                        raise LaunchError(
                            f"{process.name} exited with code {process.code}:\n{process.log_tail()}"
                        )
                time.sleep(0.05)

    def stop_all(self) -> None:
        """SIGTERM every live process, then SIGKILL what is left after the grace."""
        for process in self.processes:
            process.signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        while time.monotonic() < deadline and any(p.poll() is None for p in self.processes):
            time.sleep(0.02)
        for process in self.processes:
            process.signal(signal.SIGKILL)
            process.poll(block=True)
        output = OutputDir(self.plan.job.spec.output.path)
        if not output.committed():
            output.abort()
