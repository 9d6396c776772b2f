"""``kubemr run``: a whole job on one machine, with the entry points pods use.

The launcher validates the manifest and plans the job (so a bad input fails before
any process starts), then starts ``kubemr master`` and the ``kubemr worker`` processes
on loopback, shows progress from the master's status, and waits. The processes are forked
by one warm interpreter (:mod:`kubemr.forkserver`), so none of them imports grpc,
pydantic and kubemr again; the workers start beside the master and wait for its address.
Whatever happens (success, failure, Ctrl-C) every process it started is stopped and its
temporary directory removed; an unfinished job leaves no output behind.

Like the operator with pods, the launcher replaces a worker process that exits
abnormally: the replacement has the same role, a fresh name (``mapper-0-r1``) and an
empty work directory, and starts after a short delay that grows with each restart of
that slot. Past the restart limit (by default 3 restarts per replica) the job fails.
The master notices the dead worker by its missing heartbeats and reruns its tasks.

With ``metrics`` (``kubemr run --metrics``) every process serves ``/metrics`` on a free
port, the launcher announces each URL as the process starts serving, and at the end it
adds every process's final figures to the job summary (``metrics`` in ``_summary.json``).

Like a pod's restart policy, the launcher also restarts a master that crashes (killed
by a signal, or any exit code but success, "job failed" and "cannot start"), on the
same port, after the same growing delay, up to :data:`MASTER_RESTARTS` times. The new
master resumes the job from its journal; the workers, which keep retrying, register
with it again.

With ``ui`` (``kubemr run --ui``) the master serves its status page (:mod:`kubemr.statuspage`)
on a free port, the same port again if it is restarted, and the launcher announces its URL
(``on_status_page``). Whatever the job, the master is told where each worker's log is (the
page of a failed job names the failing workers' logs).

For tests and benchmarks, chosen worker slots can be slowed down (``slow_workers``, or
``kubemr run --slow-worker mapper-0=10``): a thread of the launcher stops and resumes
the slot's process (SIGSTOP/SIGCONT) on a fixed cycle, see :class:`Throttle`.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from kubemr import address as addresses
from kubemr import auth, contract, spawner
from kubemr import metrics as metrics_
from kubemr import spec as specs
from kubemr.config import Slowdown
from kubemr.outputdir import SUMMARY, OutputDir
from kubemr.plan import JobPlan
from kubemr.proto import mapreduce_pb2 as pb
from kubemr.proto import mapreduce_pb2_grpc as pb_grpc

MASTER_START_DEADLINE = 60.0
"""Seconds the master may take to start serving."""
STOP_GRACE = 5.0
"""Seconds between SIGTERM and SIGKILL when stopping processes."""
WORKER_EXIT_DEADLINE = 5.0
"""Seconds workers may take to exit after the master has finished. Registered workers are
told to exit before the master stops and take milliseconds; one that had not registered
yet (a job that failed at once, or one slow to start) can never be told: it is stopped
at once if the master's summary shows it never registered, after this otherwise."""
RESTARTS_PER_REPLICA = 3
"""Default restart limit: this many worker restarts per replica, in all."""
RESTART_DELAY = 0.1
"""Seconds before a slot's first replacement; doubles with each restart of the slot."""
RESTART_DELAY_MAX = 2.0
"""Longest delay before a replacement, seconds."""
MASTER_RESTARTS = 3
"""Default restart limit of the master: this many restarts after crashes, in all."""
MASTER_FINAL_CODES = contract.FINAL_EXIT_CODES
"""Master exit codes that end the job (success, cannot start, job failed); any other
exit is a crash and the master is restarted."""


def restart_delay(restarts: int) -> float:
    """Seconds before the ``restarts``-th restart of a process (1, 2, ...)."""
    return min(RESTART_DELAY * 2 ** (restarts - 1), RESTART_DELAY_MAX)


class LaunchError(RuntimeError):
    """The local job could not run to the end."""


@dataclass
class Process:
    """A process of the job, started by the launcher's fork server."""

    name: str
    pid: int
    log: Path
    server: spawner.Spawner
    role: str = ""
    code: int | None = None
    peak_rss: int = 0

    def poll(self, block: bool = False) -> int | None:
        """The exit code once the process has exited (recording its peak memory), else
        None; ``block`` waits for the exit."""
        if self.code is not None:
            return self.code
        ended = self.server.exit_of(self.pid, block)
        if ended is None:
            return None
        self.code, self.peak_rss = ended
        if self.code == spawner.LOST:  # its server died: it may live on, orphaned
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
        return self.code

    def signal(self, signum: int) -> None:
        """Signal the process's group, unless it has exited (through the fork server,
        which knows whether the pid is still its child's)."""
        if self.poll() is None:
            self.server.signal(self.pid, signum)

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
StartCallback = Callable[[Process], None]
MetricsCallback = Callable[[str, str], None]
"""Told (process name, metrics URL) when a process of the job serves its metrics."""
PageCallback = Callable[[str], None]
"""Told the URL of the master's status page once it serves (``kubemr run --ui``)."""


@dataclass
class ProcessSlot:
    """One worker replica (a pod of the operator's ReplicaSet): the process filling it now."""

    role: str
    index: int
    process: Process | None = None
    restarts: int = 0
    restart_at: float = 0.0

    def next_name(self) -> str:
        base = f"{self.role}-{self.index}"
        return base if self.restarts == 0 else f"{base}-r{self.restarts}"


class Throttle:
    """Slows the process filling a worker slot down ``factor`` times, for real.

    A thread stops the slot's process group (SIGSTOP) and resumes it (SIGCONT) on a
    fixed schedule: it runs ``period / factor`` seconds of every ``period``. Every thread
    of the process stops, so its task, its heartbeats and its shuffle server all slow
    down alike, as on an overloaded node; heartbeats still arrive (an RPC needs a few
    cycles at most). The schedule is kept against the clock, so a late wake-up does not
    shift the following cycles. Whoever fills the slot is throttled, replacements too;
    on :meth:`stop` the process is left running.
    """

    def __init__(self, slot: ProcessSlot, slowdown: Slowdown) -> None:
        self.slot = slot
        self.slowdown = slowdown
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name=f"throttle-{slowdown.slot}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self._signal(signal.SIGCONT)

    def _signal(self, signum: int) -> None:
        process = self.slot.process
        if process is not None:
            process.signal(signum)

    def _loop(self) -> None:
        period = self.slowdown.period
        running = period / self.slowdown.factor
        cycle = time.monotonic()
        while True:
            self._signal(signal.SIGCONT)
            if self._stop.wait(max(cycle + running - time.monotonic(), 0.0)):
                return
            self._signal(signal.SIGSTOP)
            cycle = max(cycle + period, time.monotonic() - period)
            if self._stop.wait(max(cycle - time.monotonic(), 0.0)):
                return


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
        restart_limit: int | None = None,
        on_worker_start: StartCallback | None = None,
        master_restart_limit: int = MASTER_RESTARTS,
        on_master_start: StartCallback | None = None,
        metrics: bool = False,
        on_metrics_url: MetricsCallback | None = None,
        slow_workers: Sequence[Slowdown] = (),
        ui: bool = False,
        on_status_page: PageCallback | None = None,
        progress_every: float = 0.05,
    ) -> None:
        spec = plan.job.spec
        slots = [f"mapper-{i}" for i in range(spec.mapper.replicas)]
        slots += [f"reducer-{i}" for i in range(spec.reducer.replicas)]
        for slowdown in slow_workers:
            if slowdown.slot not in slots:
                raise LaunchError(
                    f"--slow-worker {slowdown.slot}: no such worker slot "
                    f"(this job has {', '.join(slots)})"
                )
            if not slowdown.factor >= 1 or not slowdown.period > 0:
                raise LaunchError(
                    f"--slow-worker {slowdown.slot}={slowdown.factor}: the factor must be "
                    "at least 1 and the period positive"
                )
        self.slow_workers = list(slow_workers)
        self.plan = plan
        self.search = search
        self.keep_workdir = keep_workdir
        self.progress = progress
        self.progress_every = progress_every
        """Seconds between the master's status polls for ``progress`` (tests that inject a
        fault at a given state poll often; a progress bar needs a few a second)."""
        self.worker_env = worker_env or {}
        self.workdir = Path(tempfile.mkdtemp(prefix=f"kubemr-{plan.job.metadata.name}-"))
        self.processes: list[Process] = []
        self.slots: list[ProcessSlot] = []
        replicas = plan.job.spec.mapper.replicas + plan.job.spec.reducer.replicas
        self.restart_limit = (
            RESTARTS_PER_REPLICA * replicas if restart_limit is None else restart_limit
        )
        self.restarts = 0
        self.on_worker_start = on_worker_start
        self.master: Process | None = None
        """The master process serving the job now (it may be a restarted one)."""
        self.master_restarts = 0
        self.master_restart_limit = master_restart_limit
        self.on_master_start = on_master_start
        self.address_file = self.workdir / "master.addr"
        self.summary_file = self.workdir / "summary.json"
        self.metrics = metrics
        self.on_metrics_url = on_metrics_url
        self.monitoring_dir = self.workdir / "monitoring"
        self.metrics_urls: dict[str, str] = {}
        """Process name -> URL of its ``/metrics``, as they start serving."""
        self.throttles: list[Throttle] = []
        self.ui = ui
        self.on_status_page = on_status_page
        self.status_page: str | None = None
        """The URL of the master's status page, once it serves (with ``ui``)."""
        self.server: spawner.Spawner | None = None
        """Forks every process of the job (:mod:`kubemr.forkserver`), from the first one on."""
        self.token = secrets.token_urlsafe(32)
        """This job's secret: given to its processes in ``$KUBEMR_TOKEN``; every gRPC call
        between them (and the launcher's status polls) carries it."""

    def _start(self, name: str, args: list[str], role: str = "") -> Process:
        log = self.workdir / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            **self.worker_env,
            "PYTHONUNBUFFERED": "1",
            contract.ENV_TOKEN: self.token,
        }
        if self.server is None:
            server_log = self.workdir / "logs" / "forkserver.log"
            self.server = spawner.adopt(server_log) or spawner.Spawner(server_log)
        try:
            pid = self.server.spawn(args, env, log)
        except spawner.ForkServerError as exc:
            raise LaunchError(f"cannot start {name}: {exc}") from None
        process = Process(name, pid, log, self.server, role)
        self.processes.append(process)
        return process

    def _start_worker(self, slot: ProcessSlot, address: str | None) -> Process:
        """Start a process for ``slot``; without ``address`` (the job's start) it waits for
        the master's address file, so its imports overlap the master's start-up."""
        name = slot.next_name()
        master = ["--master", address] if address else ["--master-file", str(self.address_file)]
        process = self._start(
            name,
            [
                "worker",
                "--role",
                slot.role,
                *master,
                "--name",
                name,
                "--work-dir",
                str(self.workdir / name),
                "--bind",
                "127.0.0.1",
                "--shuffle-port",
                "0",
                *self._search_args(),
                *self._monitoring_args(name),
            ],
            slot.role,
        )
        slot.process = process
        if self.on_worker_start is not None:
            self.on_worker_start(process)
        return process

    def _monitoring_args(self, name: str, port: int = 0) -> list[str]:
        if not self.metrics and not (self.ui and name.startswith("master")):
            return []
        self.monitoring_dir.mkdir(parents=True, exist_ok=True)
        return [
            "--monitoring-port",
            str(port),
            "--monitoring-file",
            str(self.monitoring_dir / f"{name}.addr"),
            "--metrics-snapshot",
            str(self.monitoring_dir / f"{name}.prom"),
        ]

    def _announce_metrics(self) -> None:
        """Tell ``on_metrics_url`` of every process that started serving its metrics, and
        ``on_status_page`` of the master's page."""
        if self.ui and self.status_page is None:
            path = self.monitoring_dir / "master.addr"
            if path.exists():
                self.status_page = f"http://{path.read_text(encoding='utf-8').strip()}/"
                if self.on_status_page is not None:
                    self.on_status_page(self.status_page)
        if not self.metrics:
            return
        for path in sorted(self.monitoring_dir.glob("*.addr")):
            if path.stem not in self.metrics_urls:
                url = f"http://{path.read_text(encoding='utf-8').strip()}/metrics"
                self.metrics_urls[path.stem] = url
                if self.on_metrics_url is not None:
                    self.on_metrics_url(path.stem, url)

    def _add_final_metrics(self, summary: dict[str, Any]) -> None:
        """Put every process's final metrics into the summary and rewrite the summary
        files, ``--metrics`` only.

        The final metrics exist once the processes have exited, which is after the master
        committed the output and wrote ``_SUCCESS``: so the committed ``_summary.json`` is
        replaced once more, whole (a file rename, an S3 PUT), with ``metrics`` added. A
        reader that acts on ``_SUCCESS`` at once may see the summary without them."""
        snapshots = {
            path.stem: metrics_.snapshot(path.read_text(encoding="utf-8"))
            for path in sorted(self.monitoring_dir.glob("*.prom"))
        }
        summary["metrics"] = snapshots
        if self.summary_file.exists():
            data = json.loads(self.summary_file.read_text(encoding="utf-8"))
            data["metrics"] = snapshots
            tmp = self.summary_file.with_name(f".{self.summary_file.name}.tmp")
            tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
            tmp.replace(self.summary_file)
        output = self._output()
        if output.committed():  # _summary.json: replaced whole (a file rename, an S3 PUT)
            data = json.loads(output.store.read_bytes(output.join(SUMMARY)))
            data["metrics"] = snapshots
            output.store.write_bytes(output.join(SUMMARY), json.dumps(data, indent=2).encode())

    def _search_args(self) -> list[str]:
        return [arg for d in self.search for arg in ("--search", str(d))]

    def _await_address(self, master: Process, address_file: Path) -> str:
        try:
            return addresses.await_file(
                address_file, MASTER_START_DEADLINE, abandon=lambda: master.poll() is not None
            )
        except addresses.AbandonedError:
            raise LaunchError(
                f"the master exited with code {master.code} before serving:\n{master.log_tail()}"
            ) from None
        except TimeoutError:
            raise LaunchError(
                f"the master did not serve within {MASTER_START_DEADLINE:.0f}s"
            ) from None

    def run(self) -> LocalRun:
        try:
            return self._run()
        finally:
            self._unthrottle()
            self.stop_all()
            if self.server is not None:
                self.server.close()
            if not self.keep_workdir:
                shutil.rmtree(self.workdir, ignore_errors=True)

    def _start_master(self, port: int) -> Process:
        """Start (or restart) the master; ``port`` 0 picks a free one."""
        name = "master" if self.master_restarts == 0 else f"master-r{self.master_restarts}"
        self.address_file.unlink(missing_ok=True)
        process = self._start(
            name,
            [
                "master",
                "--job",
                str(self.workdir / "job.json"),
                "--bind",
                "127.0.0.1",
                "--port",
                str(port),
                "--address-file",
                str(self.address_file),
                "--summary-file",
                str(self.summary_file),
                "--logs",
                str(self.workdir / "logs" / "{worker}.log"),
                *self._search_args(),
                *self._monitoring_args(name, self._page_port()),
            ],
        )
        self.master = process
        if self.on_master_start is not None:
            self.on_master_start(process)
        return process

    def _page_port(self) -> int:
        """The status page's port: a free one at first, the same for a restarted master."""
        if self.status_page is None:
            return 0
        return addresses.split(self.status_page.removeprefix("http://").rstrip("/"))[1]

    def _run(self) -> LocalRun:
        spec = self.plan.job.spec
        job_file = self.workdir / "job.json"
        job_file.write_text(json.dumps(specs.dump_job(self.plan.job)), encoding="utf-8")
        master = self._start_master(0)
        groups = (("mapper", spec.mapper.replicas), ("reducer", spec.reducer.replicas))
        for role, replicas in groups:
            for index in range(replicas):
                slot = ProcessSlot(role, index)
                self.slots.append(slot)
                self._start_worker(slot, None)
        address = self._await_address(master, self.address_file)
        for slowdown in self.slow_workers:
            slot = next(s for s in self.slots if f"{s.role}-{s.index}" == slowdown.slot)
            self.throttles.append(Throttle(slot, slowdown))
            self.throttles[-1].start()
        master = self._supervise(address)
        self._unthrottle()  # the job is over: let every worker exit at full speed
        summary: dict[str, Any] = {}
        if self.summary_file.exists():
            summary = json.loads(self.summary_file.read_text(encoding="utf-8"))
        elif (output := self._output()).committed():
            summary = json.loads(output.store.read_bytes(output.join(SUMMARY)))
        if "workerNames" in summary:
            registered = set(summary["workerNames"])
            for process in self.processes:
                if process.role and process.name not in registered and process.poll() is None:
                    process.signal(signal.SIGTERM)  # never registered: cannot be told to exit
        deadline = time.monotonic() + WORKER_EXIT_DEADLINE
        while time.monotonic() < deadline and any(p.poll() is None for p in self.processes):
            time.sleep(0.02)
        peaks = {p.name: p.peak_rss for p in self.processes if p.poll() is not None}
        if self.metrics:
            self._announce_metrics()
            self._add_final_metrics(summary)
        summary["localPeakRssBytes"] = peaks
        summary["workerRestarts"] = self.restarts
        summary["slowWorkers"] = {s.slot: s.factor for s in self.slow_workers}
        if master.code != 0 and not self._output().committed():
            message = summary.get("error") or master.log_tail()
            raise LaunchError(f"job {self.plan.job.metadata.name} failed: {message}")
        return LocalRun(0, summary, Path(spec.output.path), peaks)

    def _supervise(self, address: str) -> Process:
        """Watch the master until it ends the job, restarting it when it crashes; return
        the last master process."""
        port = addresses.split(address)[1]
        while True:
            master = self.master
            assert master is not None
            self._watch(master, address)
            if master.code in MASTER_FINAL_CODES or self._output().committed():
                return master  # (a master that dies after _SUCCESS has done its job)
            if self.master_restarts >= self.master_restart_limit:
                raise LaunchError(
                    f"{master.name} exited with code {master.code} and the master restart "
                    f"limit ({self.master_restart_limit}) is reached:\n{master.log_tail()}"
                )
            self.master_restarts += 1
            restart_at = time.monotonic() + restart_delay(self.master_restarts)
            while (now := time.monotonic()) < restart_at:
                self._replace_dead_workers(address, now)
                time.sleep(0.02)
            self._await_address(self._start_master(port), self.address_file)

    def _watch(self, master: Process, address: str) -> None:
        """Poll the master's status until it exits; replace workers that die."""
        with grpc.insecure_channel(address) as channel:
            stub = pb_grpc.MasterStub(channel)
            polled = 0.0
            while master.poll() is None:
                if self.progress is not None and time.monotonic() - polled >= self.progress_every:
                    polled = time.monotonic()
                    with contextlib.suppress(grpc.RpcError):
                        self.progress(
                            stub.GetStatus(
                                pb.StatusRequest(),
                                timeout=1.0,
                                metadata=auth.call_metadata(self.token),
                            )
                        )
                self._replace_dead_workers(address, time.monotonic())
                self._announce_metrics()
                time.sleep(0.05)

    def _unthrottle(self) -> None:
        for throttle in self.throttles:
            throttle.stop()
        self.throttles.clear()

    def _replace_dead_workers(self, address: str, now: float) -> None:
        for slot in self.slots:
            process = slot.process
            if process is not None and process.poll() not in (None, 0):
                if self.restarts >= self.restart_limit:
                    raise LaunchError(
                        f"{process.name} exited with code {process.code} and the restart "
                        f"limit ({self.restart_limit}) is reached:\n{process.log_tail()}"
                    )
                self.restarts += 1
                slot.restarts += 1
                slot.restart_at = now + restart_delay(slot.restarts)
                slot.process = None
            if slot.process is None and now >= slot.restart_at:
                self._start_worker(slot, address)

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
        output = self._output()
        if not output.committed():
            output.abort()

    def _output(self) -> OutputDir:
        spec = self.plan.job.spec
        return OutputDir.of(spec)
