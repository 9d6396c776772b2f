"""Observations -> decisions: what a MapReduceJob needs next. Pure, no I/O.

The operator is level-triggered. Each reconciliation observes the job, the pods it owns
and the master's ``/status`` report, and :func:`decide` answers with what to create, what
to delete, which events to record and the complete new status. Nothing is remembered
between calls except what the cluster holds: the pods (whose attempt numbers count
replacements), and the job's own status. An operator killed at any moment therefore
decides the same thing again when it comes back, and deterministic pod names make a
repeated create harmless.

Phases: ``Pending`` (pods starting), ``Running`` (the master runs), ``Succeeded``,
``Failed``, ``Suspended``. Conditions: ``Running``, ``Complete``, ``Failed``,
``Suspended``, ``PodsPending``, ``CreateRefused``, ``AppInstalled`` (a job with a code
bundle: whether its pods could install it), each with a reason.

Acting can fail in a way a decision must answer: the API server may refuse to create one
of the job's objects (admission, quota, validation). The handlers report each refusal
back, and :func:`after_create` folds them into the decision: a condition and an event
with the API server's message, and the end of the job once the refusal cannot heal.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubemr import contract, quantities
from kubemr import spec as specs

from kubemr_operator.manifests import MAPPER, MASTER, REDUCER, service_name

PENDING, RUNNING, SUCCEEDED, FAILED, SUSPENDED = (
    "Pending",
    "Running",
    "Succeeded",
    "Failed",
    "Suspended",
)
FINISHED = (SUCCEEDED, FAILED)

EXIT_JOB_FAILED = contract.EXIT_JOB_FAILED
"""The master's exit code when the job failed (a task used up its attempts). Any exit
code but 0, this one and :data:`EXIT_BAD_INPUT` is a crash: the master pod is replaced
and the new master resumes from its journal."""
EXIT_BAD_INPUT = contract.EXIT_BAD_INPUT
"""The master's exit code when the job was rejected before any task (input, output, app)."""

FINISH_GRACE = 30.0
"""Seconds after a job finished during which its pods may still exit on their own;
after that, any pod still running is stopped whatever the cleanup policy."""
MAX_LISTED_OUTPUTS = 100
"""Output files listed by name in the status (the count is always there)."""

FAILED_CREATE = "FailedCreate"
"""Reason of the ``CreateRefused`` condition, its events, and of a job failed by a refusal."""

KEPT_REPORTS = {SUCCEEDED: contract.SUMMARY_FILE, FAILED: contract.FAILED_FILE}
"""The file under ``spec.output.path`` where a job that the master ended keeps its final
report (``kubemr ui`` serves it)."""

# Reasons the operator itself ends a job: its pods are stopped at once.
APP_INSTALL_FAILED = "AppInstallFailed"
"""Reason of a job whose code bundle could not be installed in a pod (a failed
``install-app`` init container: a bad digest, or pip could not install the requirements
from the shipped wheels). Retrying cannot help, so the job fails at once."""

OPERATOR_FAILURES = (
    "DeadlineExceeded",
    "BackoffLimitExceeded",
    "PodPendingTimeout",
    FAILED_CREATE,
    APP_INSTALL_FAILED,
)


@dataclass(frozen=True)
class PodView:
    """What the operator reads of one pod it owns."""

    name: str
    role: str
    index: int
    attempt: int
    phase: str
    created: datetime.datetime
    deleting: bool = False
    ip: str = ""
    ready: bool = False
    """Its readiness probe passes (the master: it planned the job and serves)."""
    exit_code: int | None = None
    reason: str = ""
    """Why it is not running: Unschedulable, ErrImagePull, Evicted, OOMKilled, Error..."""
    message: str = ""
    """The detail: the scheduler's message, or the termination message (log tail)."""
    install_failed: bool = False
    """Its ``install-app`` init container failed (``message`` is its log tail)."""

    @property
    def may_run(self) -> bool:
        """Its container may be running (or about to): it has not ended, as far as the
        API server knows (``Unknown``: its node stopped reporting)."""
        return self.phase in ("Pending", "Running", "Unknown")

    @property
    def active(self) -> bool:
        return not self.deleting and self.may_run


@dataclass(frozen=True)
class JobView:
    """What the operator reads of the MapReduceJob."""

    name: str
    namespace: str
    uid: str
    generation: int
    job: specs.MapReduceJob | None
    problems: tuple[str, ...] = ()
    status: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Observed:
    job: JobView
    pods: Sequence[PodView]
    report: contract.StatusReport | None
    """The master's last ``/status`` document, when it could be read."""
    now: datetime.datetime
    status_page_port: int | None = None
    """The master Service's port that serves the status page (status.statusPage)."""


@dataclass(frozen=True)
class Refusal:
    """The API server refused to create one of the job's objects (a 4xx other than 409)."""

    kind: str
    name: str
    code: int
    """The HTTP status: 403 (admission, quota, RBAC), 422 (invalid), 400, 429..."""
    message: str
    """The API server's message, as it gave it."""

    @property
    def heals(self) -> bool:
        """Whether waiting can help: a quota that is full now (``exceeded quota``) or not
        yet computed (``status unknown for quota``), or a rate limit. Admission (Pod
        Security, webhooks, a quota's missing limits), an invalid field or missing
        permissions refuse the same object again."""
        quota = "exceeded quota" in self.message or "status unknown for quota" in self.message
        return self.code == 429 or (self.code == 403 and quota)


@dataclass(frozen=True)
class Event:
    type: str
    reason: str
    message: str


@dataclass(frozen=True)
class Slot:
    """A pod to create: ``role`` worker ``index`` (0 for the master), attempt number."""

    role: str
    index: int
    attempt: int


@dataclass
class Decision:
    """What to do now. Nothing is scheduled for later: the operator's timer decides again
    every ``reconcile_interval`` while the job needs work (a grace period or a TTL that
    has not run out is seen then)."""

    status: dict[str, Any]
    create: list[Slot] = field(default_factory=list)
    ensure_support: bool = False
    """Create the ConfigMap, Secret and Service if missing (before a master pod)."""
    delete: list[str] = field(default_factory=list)
    delete_support: bool = False
    delete_job: bool = False
    events: list[Event] = field(default_factory=list)


def timestamp(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: object) -> datetime.datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def set_condition(
    status: dict[str, Any], kind: str, value: bool, reason: str, message: str, now: str
) -> None:
    """Set one condition; ``lastTransitionTime`` changes only when its status does."""
    conditions = [c for c in status.get("conditions") or [] if isinstance(c, dict)]
    new = "True" if value else "False"
    for condition in conditions:
        if condition.get("type") == kind:
            if condition.get("status") != new:
                condition["lastTransitionTime"] = now
            condition.update(status=new, reason=reason, message=message)
            break
    else:
        conditions.append(
            {
                "type": kind,
                "status": new,
                "reason": reason,
                "message": message,
                "lastTransitionTime": now,
            }
        )
    status["conditions"] = conditions


def condition(status: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for item in status.get("conditions") or []:
        if isinstance(item, dict) and item.get("type") == kind:
            return item
    return None


def _seconds(value: float) -> str:
    return quantities.format_duration(value)


class _Reconciliation:
    """One call of :func:`decide`: the observation, and the decision being built."""

    def __init__(self, observed: Observed, decision: Decision | None = None) -> None:
        self.observed = observed
        self.job = observed.job
        self.now = observed.now
        self.now_text = timestamp(observed.now)
        self.decision = decision or Decision(status=_copy(observed.job.status))
        self.status = self.decision.status
        self.live = [p for p in observed.pods if not p.deleting]

    # ---- helpers --------------------------------------------------------------------

    def event(self, kind: str, reason: str, message: str) -> None:
        self.decision.events.append(Event(kind, reason, message))

    def finish(self, phase: str, reason: str, message: str) -> None:
        status = self.status
        status["phase"] = phase
        status["reason"] = reason
        status["message"] = message
        status["completionTime"] = self.now_text
        succeeded = phase == SUCCEEDED
        set_condition(
            status, "Complete" if succeeded else "Failed", True, reason, message, self.now_text
        )
        set_condition(status, "Running", False, reason, message, self.now_text)
        if condition(status, "PodsPending") is not None:
            set_condition(status, "PodsPending", False, reason, "", self.now_text)
        self.event("Normal" if succeeded else "Warning", reason, message)
        if not succeeded and reason in OPERATOR_FAILURES:
            self.decision.delete += [p.name for p in self.live if p.active]

    def slot_pods(self, role: str, index: int) -> list[PodView]:
        pods = [p for p in self.observed.pods if p.role == role and p.index == index]
        return sorted(pods, key=lambda p: p.attempt)

    @property
    def finished(self) -> bool:
        return self.status.get("phase") in FINISHED

    # ---- the decision ---------------------------------------------------------------

    def run(self) -> Decision:
        job = self.job
        self.status["observedGeneration"] = job.generation
        self.count_pods()
        if job.job is None:
            self.invalid()
        elif self.finished:
            self.cleanup(job.job.spec)
        elif job.job.spec.suspend:
            self.suspend()
        else:
            self.advance(job.job.spec)
            if self.finished:
                self.cleanup(job.job.spec)
        return self.decision

    def count_pods(self) -> None:
        """``activePods`` (not ended, not being deleted: as a Job's ``active``) and
        ``readyPods`` of them; the counts are of the pods observed, before this decision
        creates or deletes any."""
        active = [p for p in self.live if p.active]
        self.status["activePods"] = len(active)
        self.status["readyPods"] = sum(1 for p in active if p.ready)

    def invalid(self) -> None:
        self.decision.delete += [p.name for p in self.live if p.active]
        if self.status.get("phase") == FAILED:
            return
        problems = "; ".join(self.job.problems) or "the spec is not valid"
        self.finish(FAILED, "InvalidSpec", f"invalid spec: {problems}")

    def suspend(self) -> None:
        stopping = [p.name for p in self.live if p.active]
        self.decision.delete += stopping
        if self.status.get("phase") == SUSPENDED:
            return
        self.status["phase"] = SUSPENDED
        message = f"suspended: {len(stopping)} pod(s) stopped; committed work is kept"
        self.status["message"] = message
        set_condition(self.status, "Suspended", True, "JobSuspended", message, self.now_text)
        set_condition(self.status, "Running", False, "JobSuspended", message, self.now_text)
        self.event("Normal", "Suspended", message)

    def advance(self, spec: specs.JobSpec) -> None:
        status = self.status
        if status.get("phase") == SUSPENDED:
            set_condition(status, "Suspended", False, "JobResumed", "resumed", self.now_text)
            self.event("Normal", "Resumed", "resumed: pods are started again")
            status["startTime"] = self.now_text  # the active deadline restarts (as for Jobs)
            status["phase"] = PENDING
        if not status.get("phase"):
            status["phase"] = PENDING
            self.event("Normal", "Accepted", "spec is valid; starting the master")
        if parse_time(status.get("startTime")) is None:
            status["startTime"] = self.now_text
        started = parse_time(status["startTime"]) or self.now
        limit = spec.active_deadline_seconds
        if limit is not None and (self.now - started).total_seconds() >= limit:
            self.finish(
                FAILED,
                "DeadlineExceeded",
                f"the job ran longer than spec.activeDeadlineSeconds ({limit}s)",
            )
            return
        failed = self.failed_pods()
        status["failedPods"] = len(failed)
        self.app_installed(spec)
        if self.finished:
            return
        self.apply_report(spec)
        self.status_page()
        self.master(spec, failed)
        if self.finished:
            return
        master = self.current_master()
        if master is not None and master.ready and not master.deleting:
            self.workers(spec, failed)  # only once the master planned the job and serves
        if self.finished:
            return
        self.pending(spec)
        if self.finished:
            return
        running = master is not None and master.phase == "Running"
        status["phase"] = RUNNING if running else PENDING
        set_condition(
            status,
            "Running",
            running,
            "MasterRunning" if running else "MasterStarting",
            status.get("message", ""),
            self.now_text,
        )

    def app_installed(self, spec: specs.JobSpec) -> None:
        """A job with a code bundle: the ``AppInstalled`` condition, and the job's end
        when a pod could not install the bundle (the same bundle fails everywhere)."""
        if spec.app.bundle is None:
            return
        broken = sorted((p for p in self.observed.pods if p.install_failed), key=lambda p: p.name)
        if broken:
            pod = broken[0]
            message = (
                f"pod {pod.name} could not install the app's code bundle: "
                f"{_last_line(pod.message) or 'install-app failed'}"
            )
            set_condition(
                self.status, "AppInstalled", False, APP_INSTALL_FAILED, message, self.now_text
            )
            self.finish(FAILED, APP_INSTALL_FAILED, message)
            return
        master = self.current_master()
        if master is not None and master.phase in ("Running", "Succeeded"):
            set_condition(
                self.status,
                "AppInstalled",
                True,
                "Installed",
                "the code bundle is installed",
                self.now_text,
            )

    # ---- pods -----------------------------------------------------------------------

    def is_outcome(self, pod: PodView) -> bool:
        """A master pod that ended the job (rather than crashed)."""
        if pod.role != MASTER or pod.phase != "Failed":
            return False
        return pod.exit_code in (EXIT_JOB_FAILED, EXIT_BAD_INPUT)

    def failed_pods(self) -> list[PodView]:
        """Pods that failed and count against ``spec.backoffLimit``: not those being
        deleted, which were told to stop (SIGTERM, exit 143) rather than failed."""
        return [
            p
            for p in self.observed.pods
            if p.phase == "Failed" and not p.deleting and not self.is_outcome(p)
        ]

    def current_master(self) -> PodView | None:
        pods = self.slot_pods(MASTER, 0)
        return pods[-1] if pods else None

    def replace(self, spec: specs.JobSpec, pod: PodView, failed: list[PodView]) -> bool:
        """Create the next attempt of ``pod``'s slot; False if the backoff limit is hit."""
        if pod.deleting:
            why = "is being deleted"
        else:
            code = f", exit code {pod.exit_code}" if pod.exit_code is not None else ""
            why = f"failed ({pod.reason or 'Error'}{code})"
            if pod.reason == "OOMKilled":  # the kernel killed it at its memory limit
                group = "master" if pod.role == MASTER else pod.role
                why += f" (out of memory: raise spec.{group}.resources.limits.memory)"
            if len(failed) > spec.backoff_limit:
                self.finish(
                    FAILED,
                    "BackoffLimitExceeded",
                    f"{len(failed)} pod(s) failed, more than spec.backoffLimit "
                    f"({spec.backoff_limit}); last: pod {pod.name} {why}"
                    + (f": {_last_line(pod.message)}" if pod.message else ""),
                )
                return False
        slot = Slot(pod.role, pod.index, pod.attempt + 1)
        self.decision.create.append(slot)
        if pod.role == MASTER:
            self.decision.ensure_support = True
            detail = "the new master resumes the job from its journal"
        else:
            detail = "the master re-runs its tasks"
        reason = "MasterReplaced" if pod.role == MASTER else "WorkerReplaced"
        self.event(
            "Warning", reason, f"pod {pod.name} {why}: starting attempt {slot.attempt}; {detail}"
        )
        return True

    def master(self, spec: specs.JobSpec, failed: list[PodView]) -> None:
        current = self.current_master()
        report = self.observed.report
        if current is None:
            self.decision.create.append(Slot(MASTER, 0, 0))
            self.decision.ensure_support = True
            if self.status.get("phase") == RUNNING:  # it was there: deleted and gone
                self.event(
                    "Warning",
                    "MasterReplaced",
                    "the master pod is gone: starting a new one; it resumes the job "
                    "from its journal",
                )
            return
        if current.deleting and current.may_run:
            # At most one master: until the pod object is gone (the kubelet confirmed its
            # container stopped) it may still write the journal and commit output. A
            # master stops within seconds of SIGTERM; the replacement starts then.
            self.status["message"] = (
                f"master pod {current.name} is being deleted: its replacement starts "
                "once it has stopped"
            )
            return
        if current.deleting or (current.phase == "Failed" and not self.is_outcome(current)):
            self.replace(spec, current, failed)
            return
        if current.phase == "Succeeded":
            self.record_outputs(spec, report)
            for kind in ("maps", "reduces"):  # every task committed, by definition
                total = self.status.get(f"{kind}Total")
                if isinstance(total, int):
                    self.status[f"{kind}Done"] = total
                    self.status[kind] = f"{total}/{total}"
            maps, reduces = self.status.get("maps", "?"), self.status.get("reduces", "?")
            self.status["report"] = f"{spec.output.path.rstrip('/')}/{KEPT_REPORTS[SUCCEEDED]}"
            self.finish(
                SUCCEEDED,
                "Completed",
                f"maps {maps}, reduces {reduces}; output committed in {spec.output.path}",
            )
        elif current.phase == "Failed":
            reason = "InvalidInput" if current.exit_code == EXIT_BAD_INPUT else "TaskFailed"
            message = (report.message if report else "") or _last_line(current.message)
            if current.exit_code == EXIT_JOB_FAILED:
                self.status["report"] = f"{spec.output.path.rstrip('/')}/{KEPT_REPORTS[FAILED]}"
            self.finish(FAILED, reason, message or f"the master exited with {current.exit_code}")

    def status_page(self) -> None:
        """Where the master's status page is: its Service and port, and how to reach it."""
        port = self.observed.status_page_port
        if port is None:
            return
        service = service_name(self.job.name)
        self.status["statusPage"] = {
            "service": service,
            "port": port,
            "portForward": f"kubectl port-forward -n {self.job.namespace} svc/{service} {port}",
        }

    def workers(self, spec: specs.JobSpec, failed: list[PodView]) -> None:
        for role, group in ((MAPPER, spec.mapper), (REDUCER, spec.reducer)):
            for index in range(group.replicas):
                pods = self.slot_pods(role, index)
                current = pods[-1] if pods else None
                if current is None:
                    self.decision.create.append(Slot(role, index, 0))
                elif (current.deleting or current.phase == "Failed") and not self.replace(
                    spec, current, failed
                ):
                    return

    def pending(self, spec: specs.JobSpec) -> None:
        """Pods that cannot start: a condition with the reason, then a timeout."""
        waiting = [p for p in self.live if p.phase == "Pending"]
        late = [p for p in waiting if (self.now - p.created).total_seconds() > spec.pending_timeout]
        if late:
            pod = late[0]
            self.finish(
                FAILED,
                "PodPendingTimeout",
                f"pod {pod.name} could not start within spec.pendingTimeout "
                f"({_seconds(spec.pending_timeout)}): {pod.reason or 'Pending'}"
                + (f": {pod.message}" if pod.message else ""),
            )
            return
        stuck = [p for p in waiting if p.reason not in ("", "ContainerCreating", "PodInitializing")]
        if stuck:
            pod = stuck[0]
            message = f"pod {pod.name}: {pod.reason}" + (f": {pod.message}" if pod.message else "")
            if len(stuck) > 1:
                message += f" (and {len(stuck) - 1} more)"
            previous = condition(self.status, "PodsPending")
            if previous is None or previous.get("status") != "True":
                self.event("Warning", pod.reason, message)
            set_condition(self.status, "PodsPending", True, pod.reason, message, self.now_text)
        elif condition(self.status, "PodsPending") is not None:
            set_condition(self.status, "PodsPending", False, "PodsStarted", "", self.now_text)

    # ---- refused creations ----------------------------------------------------------

    def refused(self, spec: specs.JobSpec, refusals: Sequence[Refusal]) -> None:
        """The outcome of creating what the decision asked for."""
        status = self.status
        previous = condition(status, "CreateRefused")
        refused_before = previous is not None and previous.get("status") == "True"
        if not refusals:
            if refused_before:
                set_condition(status, "CreateRefused", False, "Created", "", self.now_text)
                if status.get("reason") == FAILED_CREATE:
                    status.pop("reason", None)
            return
        first = refusals[0]
        message = first.message or f"{first.kind} {first.name}: HTTP {first.code}"
        set_condition(status, "CreateRefused", True, FAILED_CREATE, message, self.now_text)
        if not first.heals:
            self.finish(FAILED, FAILED_CREATE, message)
        else:
            since = parse_time((condition(status, "CreateRefused") or {}).get("lastTransitionTime"))
            waited = (self.now - (since or self.now)).total_seconds()
            if waited >= spec.pending_timeout:
                self.finish(
                    FAILED,
                    FAILED_CREATE,
                    f"{first.kind} {first.name} could not be created within "
                    f"spec.pendingTimeout ({_seconds(spec.pending_timeout)}): {message}",
                )
            else:
                if not refused_before or (previous or {}).get("message") != message:
                    self.event("Warning", FAILED_CREATE, f"Error creating: {message}")
                status["reason"] = FAILED_CREATE
                status["message"] = message
        if self.finished:
            self.decision.create = []
            self.cleanup(spec)

    # ---- the master's report --------------------------------------------------------

    def apply_report(self, spec: specs.JobSpec) -> None:
        report = self.observed.report
        if report is None:
            return
        status = self.status
        status["mapsDone"], status["mapsTotal"] = report.maps.done, report.maps.total
        status["reducesDone"], status["reducesTotal"] = report.reduces.done, report.reduces.total
        status["maps"] = f"{report.maps.done}/{report.maps.total}"
        status["reduces"] = f"{report.reduces.done}/{report.reduces.total}"
        status["runtimePhase"] = report.phase
        status["workers"] = report.workers
        if report.steps:  # a multi-step job: the step running now
            status["step"] = f"{report.step or 0}/{report.steps}"
        status["counters"] = dict(report.counters)
        status["appCounters"] = dict(report.app_counters)  # the app's own (kubemr.apps.Counters)
        if report.skipped_records is not None:
            status["skippedRecords"] = report.skipped_records
        status["attempts"] = dict(report.attempts)
        before = status.get("backupAttempts") or {}
        for kind, count in sorted(report.backup_attempts.items()):
            extra = count - _int(before.get(kind) if isinstance(before, dict) else 0)
            if extra > 0:
                self.event(
                    "Normal",
                    "SpeculativeAttempt",
                    f"launched {extra} backup attempt(s) of straggling {kind} tasks "
                    f"({count} in all); the first attempt to commit wins",
                )
        status["backupAttempts"] = dict(report.backup_attempts)
        known = set(status.get("blacklistedWorkers") or [])
        for worker in sorted(set(report.blacklisted_workers) - known):
            self.event(
                "Warning",
                "WorkerBlacklisted",
                f"worker {worker}: repeated task failures; it gets no more tasks",
            )
        status["blacklistedWorkers"] = sorted(report.blacklisted_workers)
        status["message"] = report.message or (
            (f"step {status['step']}, " if report.steps else "")
            + f"{report.phase.lower()}: maps {status['maps']}, reduces {status['reduces']}"
        )
        if report.summary is not None:
            self.record_outputs(spec, report)

    def record_outputs(self, spec: specs.JobSpec, report: contract.StatusReport | None) -> None:
        summary = report.summary if report is not None else None
        names = list(summary.outputs) if summary is not None else []
        if not names:  # no final report read: the parts the (last step's) reduce tasks write
            reduces = spec.steps[-1].reduce_tasks if spec.steps else spec.reduce_tasks
            names = [f"part-{i:05d}" for i in range(reduces)]
        self.status["output"] = {
            "path": spec.output.path,
            "files": len(names),
            "names": names[:MAX_LISTED_OUTPUTS],
        }
        if summary is not None and summary.wall_seconds is not None:
            self.status["wallSeconds"] = summary.wall_seconds

    # ---- after the end --------------------------------------------------------------

    def cleanup(self, spec: specs.JobSpec) -> None:
        status = self.status
        finished_at = parse_time(status.get("completionTime")) or self.now
        age = (self.now - finished_at).total_seconds()
        doomed = set(self.decision.delete)
        if age >= FINISH_GRACE or status.get("reason") in OPERATOR_FAILURES:
            doomed |= {p.name for p in self.live if p.active}
        if spec.cleanup_policy == "DeleteWorkers":
            doomed |= {p.name for p in self.live if p.role != MASTER and p.phase != "Failed"}
        elif spec.cleanup_policy == "DeleteAll":
            doomed |= {p.name for p in self.live}
            self.decision.delete_support = not status.get("cleanedUp")
        self.decision.delete = sorted(doomed)
        lingering = [p for p in self.live if p.active and p.name not in doomed]
        status["cleanedUp"] = not self.decision.delete and not lingering
        ttl = spec.ttl_seconds_after_finished
        if ttl is not None and ttl - age <= 0:
            self.decision.delete_job = True
            self.event(
                "Normal",
                "Expired",
                f"deleted {ttl}s after it finished (spec.ttlSecondsAfterFinished)",
            )


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _int(value: object) -> int:
    try:
        return int(value)  # type: ignore[call-overload, no-any-return]
    except (TypeError, ValueError):
        return 0


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def decide(observed: Observed) -> Decision:
    """What to do next for one job, given what was observed."""
    return _Reconciliation(observed).run()


def after_create(observed: Observed, decision: Decision, refusals: Sequence[Refusal]) -> Decision:
    """``decision`` once its creations were tried: ``refusals`` are those the API server
    refused (in order; creation stops at the first). A refusal that cannot heal fails
    the job at once; one that can (a full quota) sets ``CreateRefused`` and fails the job
    only after ``spec.pendingTimeout``; none clears the condition."""
    reconciliation = _Reconciliation(observed, decision)
    attempted = bool(decision.create) or decision.ensure_support
    if observed.job.job is not None and attempted and not reconciliation.finished:
        reconciliation.refused(observed.job.job.spec, refusals)
    return reconciliation.decision


def slow_start(total: int, limit: int) -> list[int]:
    """Sizes of the batches that create ``total`` objects: 1, 2, 4, ... at most ``limit``
    (Kubernetes' ``slowStartBatch``). Each batch is sent at once; the next only when the
    whole batch was created."""
    sizes, size = [], 1
    while total > 0:
        sizes.append(min(size, limit, total))
        total -= sizes[-1]
        size *= 2
    return sizes
