"""One pod on the node agent: its sandbox, its container processes and its status.

A :class:`PodWorker` thread owns one pod from binding to the removal of its API
object: it creates the pod's network namespace and volumes, runs the init
containers one after another and then every container, restarts containers per
``restartPolicy`` (with a short exponential back-off, see :data:`BACKOFF`),
writes ``status`` (phase, conditions, podIP, containerStatuses with exit codes and
restart counts), and on deletion sends SIGTERM, then SIGKILL after the grace
period, tears the sandbox down and deletes the object with grace period 0.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import ipaddress
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from localkube import apiclient, containers, network, probes, volumes

log = logging.getLogger(__name__)

BACKOFF = (1.0, 10.0)
"""Container restart back-off: first delay and cap, in seconds (kubelet: 10 s, 300 s)."""
TICK = 0.1
"""How often a worker looks at its processes, in seconds."""


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclasses.dataclass
class Run:
    """One container of the pod and its current process."""

    spec: dict[str, Any]
    init: bool
    process: subprocess.Popen[bytes] | None = None
    started_at: str | None = None
    restart_count: int = 0
    terminated: dict[str, Any] | None = None
    last_terminated: dict[str, Any] | None = None
    next_start: float = 0.0
    waiting_reason: str = "ContainerCreating"
    waiting_message: str = ""
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    probed_ready: bool = False
    next_probe: float = 0.0
    failures: int = 0

    def ready(self) -> bool:
        """Running, and its readiness probe (if any) last passed."""
        if not self.running():
            return False
        return "readinessProbe" not in self.spec or self.probed_ready

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    def running(self) -> bool:
        return self.process is not None and self.terminated is None

    def state(self) -> dict[str, Any]:
        if self.running():
            return {"running": {"startedAt": self.started_at}}
        if self.terminated is not None:
            return {"terminated": self.terminated}
        waiting: dict[str, Any] = {"reason": self.waiting_reason}
        if self.waiting_message:
            waiting["message"] = self.waiting_message
        return {"waiting": waiting}

    def status(self) -> dict[str, Any]:
        pid = self.process.pid if self.process is not None else None
        status: dict[str, Any] = {
            "name": self.name,
            "image": self.spec.get("image", ""),
            "imageID": "",
            "ready": self.ready(),
            "started": self.running(),
            "restartCount": self.restart_count,
            "state": self.state(),
            "lastState": {"terminated": self.last_terminated} if self.last_terminated else {},
        }
        if pid is not None:
            status["containerID"] = f"localkube://{pid}"
        return status


class PodWorker:
    """Runs one pod; see the module docstring."""

    def __init__(
        self,
        client: apiclient.ApiClient,
        pod: apiclient.Obj,
        pod_dir: Path,
        pool: network.AddressPool,
        *,
        base_env: Callable[[apiclient.Obj, Path], dict[str, str]],
        hosts_for: Callable[[apiclient.Obj, str], str],
        claim_path: Callable[[str, str], Path],
        on_exit: Callable[[PodWorker], None],
    ) -> None:
        self.client = client
        self.pod = pod
        self.uid = str(pod["metadata"]["uid"])
        self.namespace = str(pod["metadata"]["namespace"])
        self.name = str(pod["metadata"]["name"])
        self.pod_dir = pod_dir
        self.pool = pool
        self.base_env = base_env
        self.hosts_for = hosts_for
        self.claim_path = claim_path
        self.on_exit = on_exit
        self.network: network.PodNetwork | None = None
        self.address: ipaddress.IPv4Address | None = None
        self._address_released = False
        self.mounts: dict[str, Path] = {}
        self.init_runs = [Run(c, True) for c in pod["spec"].get("initContainers", [])]
        self.runs = [Run(c, False) for c in pod["spec"]["containers"]]
        self.started_at = now()
        self.setup_error = ""
        self.gone = False
        self.changed = threading.Event()
        self.stopping = threading.Event()
        self._last_status: dict[str, Any] | None = None
        self._transitions: dict[str, tuple[str, str]] = {}
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=self._main, name=f"pod {self.key}", daemon=True)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def policy(self) -> str:
        return str(self.pod["spec"].get("restartPolicy", "Always"))

    def update(self, pod: apiclient.Obj | None) -> None:
        """A newer version of the pod object, or None when it left the API."""
        with self._lock:
            if pod is None:
                self.gone = True
            elif pod["metadata"]["uid"] == self.uid:
                self.pod = pod
        self.changed.set()

    def refresh_hosts(self) -> None:
        if self.network is not None and self.address is not None:
            network.write_hosts(self.network, self.hosts_for(self.pod, str(self.address)))

    def pids(self) -> list[int]:
        return [r.process.pid for r in self.init_runs + self.runs if r.process and r.running()]

    def _deleting(self) -> bool:
        with self._lock:
            return self.gone or "deletionTimestamp" in self.pod["metadata"]

    def _main(self) -> None:
        try:
            self._live()
        except Exception:
            log.exception("pod %s: worker failed", self.key)
        finally:
            with contextlib.suppress(Exception):
                self._teardown(grace=0.0)
            self.on_exit(self)

    def _live(self) -> None:
        while not self._setup():
            if self._deleting() or self.stopping.is_set():
                self._finalize()
                return
            self._report()
            self.changed.wait(2.0)
            self.changed.clear()
        while not (self._deleting() or self.stopping.is_set()):
            self._step()
            self._report()
            finished = self._phase() in ("Succeeded", "Failed")
            if finished and self.network is not None:
                self._release_sandbox()
            # A finished pod only waits for its deletion, which sets `changed`.
            self.changed.wait(5.0 if finished else TICK)
            self.changed.clear()
        if self.stopping.is_set() and not self._deleting():
            return
        self._finalize()

    def _setup(self) -> bool:
        """Create the sandbox and volumes; False (with the reason recorded) to retry."""
        try:
            if self.network is None:
                self.address = self.pool.take()
                self.network = network.create_pod_network(
                    self.uid, self.address, self.hosts_for(self.pod, str(self.address))
                )
            for volume in self.pod["spec"].get("volumes", []):
                if volume["name"] not in self.mounts:
                    self.mounts[volume["name"]] = volumes.materialise(
                        self.client, self.pod, volume, self.pod_dir, self.claim_path
                    )
        except (RuntimeError, apiclient.ApiError, OSError) as error:
            self.setup_error = str(error)
            for run in self.init_runs + self.runs:
                run.waiting_reason, run.waiting_message = "CreateContainerConfigError", str(error)
            log.warning("pod %s: setup: %s", self.key, error)
            return False
        self.setup_error = ""
        return True

    def _start(self, run: Run) -> None:
        assert self.network is not None and self.address is not None
        pod = dict(self.pod)
        pod["status"] = {
            **self.pod.get("status", {}),
            "podIP": str(self.address),
            "hostIP": str(network.GATEWAY),
        }
        home = self.pod_dir / "home"
        home.mkdir(parents=True, exist_ok=True)
        try:
            env = containers.environment(self.client, pod, run.spec, self.base_env(pod, home))
            argv = containers.argv(run.spec, env)
            mounts = []
            for mount in run.spec.get("volumeMounts", []):
                source = self.mounts[mount["name"]]
                if mount.get("subPath"):
                    source = source / mount["subPath"]
                    source.mkdir(parents=True, exist_ok=True)
                mounts.append((source, str(mount["mountPath"]), bool(mount.get("readOnly"))))
        except (
            containers.ContainerError,
            volumes.VolumeError,
            apiclient.ApiError,
            KeyError,
        ) as error:
            if run.waiting_message != str(error):
                self._event("Failed", f"container {run.name}: {error}", warning=True)
            run.waiting_reason, run.waiting_message = "CreateContainerConfigError", str(error)
            run.next_start = time.monotonic() + 2.0
            return
        workdir = run.spec.get("workingDir") or str(home)
        hostname = self.pod["spec"].get("hostname") or self.name
        logs = self.pod_dir / "logs" / run.name
        logs.mkdir(parents=True, exist_ok=True)
        command = containers.launcher(self.network.netns, hostname, mounts, workdir, argv)
        with (logs / f"{run.restart_count}.log").open("ab") as output:
            run.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        run.started_at = now()
        run.env = env
        run.probed_ready = False
        run.next_probe = time.monotonic() + float(
            run.spec.get("readinessProbe", {}).get("initialDelaySeconds", 0)
        )
        run.terminated = None
        run.waiting_reason, run.waiting_message = "", ""
        log.info("pod %s: started %s (pid %d)", self.key, run.name, run.process.pid)
        self._event("Started", f"Started container {run.name} (pid {run.process.pid})")

    def _event(self, reason: str, message: str, warning: bool = False) -> None:
        """Post an Event about this pod, as the kubelet does (best effort)."""
        stamp = now()
        event = {
            "metadata": {"generateName": f"{self.name}."},
            "involvedObject": {
                "kind": "Pod",
                "apiVersion": "v1",
                "namespace": self.namespace,
                "name": self.name,
                "uid": self.uid,
            },
            "reason": reason,
            "message": message,
            "type": "Warning" if warning else "Normal",
            "source": {"component": "localkube-agent", "host": self.pod["spec"].get("nodeName")},
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        with contextlib.suppress(apiclient.ApiError, OSError):
            self.client.create(apiclient.resource_path("events", self.namespace), event)

    def _collect(self, run: Run) -> None:
        """Record the exit of ``run``'s process, if it exited."""
        if run.process is None or run.terminated is not None:
            return
        code = run.process.poll()
        if code is None:
            return
        exit_code = 128 - code if code < 0 else code
        run.terminated = {
            "exitCode": exit_code,
            "reason": "Completed" if exit_code == 0 else "Error",
            "startedAt": run.started_at,
            "finishedAt": now(),
            "containerID": f"localkube://{run.process.pid}",
        }
        if code < 0:
            run.terminated["signal"] = -code
        if exit_code != 0 and run.spec.get("terminationMessagePolicy") == "FallbackToLogsOnError":
            run.terminated["message"] = self._log_tail(run)
        log.info("pod %s: %s exited with %d", self.key, run.name, exit_code)

    def _log_tail(self, run: Run) -> str:
        """The kubelet's FallbackToLogsOnError message: the log's last 80 lines, at most
        2048 bytes (no termination-message file is read: pods share the host's /dev)."""
        path = self.pod_dir / "logs" / run.name / f"{run.restart_count}.log"
        try:
            data = path.read_bytes()
        except OSError:
            return ""
        tail = b"\n".join(data.rstrip(b"\n").split(b"\n")[-80:])[-2048:]
        return tail.decode("utf-8", "replace")

    def _restart_due(self, run: Run) -> bool:
        assert run.terminated is not None
        if self.policy == "Never":
            return False
        if self.policy == "OnFailure" or run.init:
            return bool(run.terminated["exitCode"] != 0)
        return True

    def _probe(self, run: Run) -> None:
        """Run ``run``'s readiness probe when it is due."""
        probe = run.spec.get("readinessProbe")
        if probe is None or not run.running() or self.network is None:
            return
        moment = time.monotonic()
        if moment < run.next_probe:
            return
        run.next_probe = moment + float(probe.get("periodSeconds", 10))
        address = str(self.address)
        if probes.succeeds(probe, run.spec, address, self.network.netns, run.env):
            run.failures = 0
            run.probed_ready = True
        else:
            run.failures += 1
            if run.failures >= int(probe.get("failureThreshold", 3)) or not run.probed_ready:
                run.probed_ready = False

    def _step(self) -> None:
        for run in self.init_runs + self.runs:
            self._collect(run)
        for run in self.runs:
            self._probe(run)
        # Init containers: one at a time, each to success.
        for run in self.init_runs:
            if run.terminated is not None and run.terminated["exitCode"] == 0:
                continue
            if run.terminated is None and run.process is not None:
                return
            if run.process is None:
                if time.monotonic() >= run.next_start:
                    self._start(run)
                return
            if self._restart_due(run):
                self._schedule_restart(run)
            return
        for run in self.runs:
            if run.process is None:
                if time.monotonic() >= run.next_start:
                    self._start(run)
            elif run.terminated is not None and self._restart_due(run):
                self._schedule_restart(run)

    def _schedule_restart(self, run: Run) -> None:
        if run.next_start == 0.0:
            first, cap = BACKOFF
            delay = min(cap, first * (2 ** min(run.restart_count, 10)))
            run.next_start = time.monotonic() + delay
            self._event(
                "BackOff",
                f"Back-off {delay:g} s restarting failed container {run.name}",
                warning=True,
            )
            return
        if time.monotonic() < run.next_start:
            return
        run.last_terminated = run.terminated
        run.restart_count += 1
        run.process = None
        run.next_start = 0.0
        self._start(run)

    def _phase(self) -> str:
        if self.setup_error:
            return "Pending"
        if any(not (r.terminated and r.terminated["exitCode"] == 0) for r in self.init_runs):
            failed = [r for r in self.init_runs if r.terminated and r.terminated["exitCode"] != 0]
            if failed and self.policy == "Never":
                return "Failed"
            return "Pending"
        if any(r.process is None and r.restart_count == 0 for r in self.runs):
            return "Pending"
        done = [r.terminated for r in self.runs]
        if all(t is not None for t in done) and self.policy != "Always":
            codes = [t["exitCode"] for t in done if t is not None]
            if all(c == 0 for c in codes):
                return "Succeeded"
            if self.policy == "Never":
                return "Failed"
        return "Running"

    def _condition(self, kind: str, value: bool) -> dict[str, Any]:
        text = "True" if value else "False"
        previous = self._transitions.get(kind)
        if previous is None or previous[0] != text:
            self._transitions[kind] = (text, now())
        return {
            "type": kind,
            "status": text,
            "lastTransitionTime": self._transitions[kind][1],
            "lastProbeTime": None,
        }

    def _status(self) -> dict[str, Any]:
        phase = self._phase()
        ready = phase == "Running" and all(r.ready() for r in self.runs)
        initialized = all(
            r.terminated is not None and r.terminated["exitCode"] == 0 for r in self.init_runs
        )
        scheduled = [
            c
            for c in self.pod.get("status", {}).get("conditions", [])
            if c.get("type") == "PodScheduled"
        ]
        conditions = [
            self._condition(
                "PodReadyToStartContainers",
                self.network is not None or phase in ("Succeeded", "Failed"),
            ),
            self._condition("Initialized", initialized),
            self._condition("Ready", ready),
            self._condition("ContainersReady", ready),
            *scheduled,
        ]
        status: dict[str, Any] = {
            "phase": phase,
            "conditions": conditions,
            "hostIP": str(network.GATEWAY),
            "hostIPs": [{"ip": str(network.GATEWAY)}],
            "startTime": self.started_at,
            "containerStatuses": [r.status() for r in self.runs],
        }
        if self.init_runs:
            status["initContainerStatuses"] = [r.status() for r in self.init_runs]
        if self.address is not None:
            status["podIP"] = str(self.address)
            status["podIPs"] = [{"ip": str(self.address)}]
        if self.setup_error:
            status["message"] = self.setup_error
        return status

    def _report(self) -> None:
        status = self._status()
        if status == self._last_status:
            return
        try:
            path = apiclient.resource_path("pods", self.namespace, self.name, "status")
            self.client.merge_patch(path, {"metadata": {"uid": self.uid}, "status": status})
            self._last_status = status
        except apiclient.ApiError as error:
            if error.status == 404:
                self.update(None)
            else:
                log.warning("pod %s: status update: %s", self.key, error)

    def _signal(self, sig: int) -> None:
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, sig)

    def _teardown(self, grace: float) -> None:
        """Stop every process (SIGTERM, SIGKILL after ``grace``) and remove the sandbox."""
        if self.pids():
            if grace > 0:
                self._event("Killing", f"Stopping containers (grace period {grace:g} s)")
            self._signal(signal.SIGTERM)
            end = time.monotonic() + grace
            while self.pids() and time.monotonic() < end:
                for run in self.init_runs + self.runs:
                    self._collect(run)
                time.sleep(0.05)
            self._signal(signal.SIGKILL)
            for run in self.init_runs + self.runs:
                if run.process is not None:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        run.process.wait(timeout=10)
                    self._collect(run)
        self._release_sandbox()

    def _release_sandbox(self) -> None:
        if self.network is not None:
            network.delete_pod_network(self.network.netns)
            self.network = None
        if self.address is not None and not self._address_released:
            self.pool.give_back(self.address)
            self._address_released = True

    def _finalize(self) -> None:
        """The pod is being deleted: stop it gracefully, then remove the API object."""
        grace = float(self.pod["metadata"].get("deletionGracePeriodSeconds", 30))
        if self.stopping.is_set() and not self._deleting():
            grace = 0.0
        self._teardown(grace)
        if not self.gone:
            self._report()
            path = apiclient.resource_path("pods", self.namespace, self.name)
            with contextlib.suppress(apiclient.ApiError):
                self.client.delete(
                    path,
                    {
                        "kind": "DeleteOptions",
                        "apiVersion": "v1",
                        "gracePeriodSeconds": 0,
                        "preconditions": {"uid": self.uid},
                    },
                )
        shutil.rmtree(self.pod_dir / "volumes", ignore_errors=True)
