"""The operator's pure core: observations -> decisions (kubemr_operator.lifecycle)."""

from __future__ import annotations

import copy
import datetime
from typing import Any

import pytest
from kubemr import contract
from kubemr import spec as specs
from kubemr_operator import lifecycle
from kubemr_operator.lifecycle import Decision, Observed, PodView, Slot

T0 = datetime.datetime(2026, 11, 21, 12, 0, 0, tzinfo=datetime.UTC)

BASE: dict[str, Any] = {
    "apiVersion": "kubemr.io/v1alpha1",
    "kind": "MapReduceJob",
    "metadata": {"name": "wc"},
    "spec": {
        "app": {"builtin": "wordcount"},
        "input": {"paths": ["/data/*.txt"]},
        "output": {"path": "/out/wc"},
        "reduceTasks": 2,
        "mapper": {"replicas": 2},
        "reducer": {"replicas": 1},
        "backoffLimit": 2,
    },
}


def job(**spec: Any) -> specs.MapReduceJob:
    doc = copy.deepcopy(BASE)
    doc["spec"].update(spec)
    return specs.parse_job(doc)


def pod(
    role: str,
    index: int = 0,
    attempt: int = 0,
    phase: str = "Running",
    age: float = 10.0,
    **fields: Any,
) -> PodView:
    base = "wc-master" if role == "master" else f"wc-{role}-{index}"
    name = base if attempt == 0 else f"{base}-{attempt}"
    created = T0 - datetime.timedelta(seconds=age)
    fields.setdefault("ready", phase == "Running")
    return PodView(name, role, index, attempt, phase, created, ip="10.0.0.1", **fields)


def running_pods() -> list[PodView]:
    return [pod("master"), pod("mapper", 0), pod("mapper", 1), pod("reducer", 0)]


def decide(
    model: specs.MapReduceJob | None,
    pods: list[PodView],
    status: dict[str, Any] | None = None,
    report: dict[str, Any] | None = None,
    now: datetime.datetime = T0,
    problems: tuple[str, ...] = (),
) -> Decision:
    view = lifecycle.JobView("wc", "ns", "uid-1", 3, model, problems, status or {})
    read = contract.read_status(report) if report is not None else None  # as the operator does
    return lifecycle.decide(Observed(view, pods, read, now))


def reasons(decision: Decision) -> list[str]:
    return [e.reason for e in decision.events]


def cond(decision: Decision, kind: str) -> dict[str, Any]:
    found = lifecycle.condition(decision.status, kind)
    assert found is not None, decision.status
    return dict(found)


def test_a_new_job_gets_its_master_first() -> None:
    decision = decide(job(), [])
    assert decision.create == [Slot("master", 0, 0)]
    assert decision.ensure_support
    assert decision.status["phase"] == "Pending"
    assert decision.status["observedGeneration"] == 3
    assert "Accepted" in reasons(decision)


def test_workers_wait_for_a_running_master() -> None:
    assert decide(job(), [pod("master", phase="Pending")], {"phase": "Pending"}).create == []
    planning = pod("master", ready=False)  # running, but not serving yet
    assert decide(job(), [planning], {"phase": "Pending"}).create == []
    decision = decide(job(), [pod("master")], {"phase": "Pending"})
    assert decision.create == [Slot("mapper", 0, 0), Slot("mapper", 1, 0), Slot("reducer", 0, 0)]
    assert decision.status["phase"] == "Running"
    assert not decision.ensure_support


def test_nothing_to_do_while_all_pods_run() -> None:
    decision = decide(job(), running_pods(), {"phase": "Running", "startTime": "x"})
    assert decision.create == [] and decision.delete == [] and decision.events == []


def test_the_report_becomes_status_and_speculation_becomes_events() -> None:
    report = {
        "phase": "Mapping",
        "maps": {"total": 8, "done": 3},
        "reduces": {"total": 2, "done": 0},
        "workers": 3,
        "counters": {"map.records_in": 100},
        "appCounters": {"bad_dates": 4, "lines": 90},
        "skippedRecords": 2,
        "attempts": {"succeeded": 3},
        "backupAttempts": {"map": 1, "reduce": 0},
        "blacklistedWorkers": ["map-2-wc-mapper-1"],
    }
    status = {"phase": "Running", "backupAttempts": {"map": 0, "reduce": 0}}
    decision = decide(job(), running_pods(), status, report)
    assert decision.status["maps"] == "3/8" and decision.status["mapsDone"] == 3
    assert decision.status["reduces"] == "0/2"
    assert decision.status["counters"] == {"map.records_in": 100}
    assert decision.status["appCounters"] == {"bad_dates": 4, "lines": 90}
    assert decision.status["skippedRecords"] == 2
    assert reasons(decision) == ["SpeculativeAttempt", "WorkerBlacklisted"]
    again = decide(job(), running_pods(), decision.status, report)
    assert again.events == []  # reported once, not on every reconciliation


def test_a_multi_step_jobs_status_names_the_running_step() -> None:
    report = {"phase": "Reducing", "maps": {"total": 3, "done": 3}, "step": 2, "steps": 3}
    report["reduces"] = {"total": 2, "done": 1}
    decision = decide(job(), running_pods(), {"phase": "Running"}, report)
    assert decision.status["step"] == "2/3"
    assert decision.status["message"] == "step 2/3, reducing: maps 3/3, reduces 1/2"
    single = {key: value for key, value in report.items() if key not in ("step", "steps")}
    assert "step" not in decide(job(), running_pods(), {"phase": "Running"}, single).status


def test_a_failed_worker_is_replaced_and_counted() -> None:
    pods = [*running_pods()[:2], pod("mapper", 1, phase="Failed", exit_code=137, reason="Error")]
    pods.append(pod("reducer", 0))
    decision = decide(job(), pods, {"phase": "Running"})
    assert decision.create == [Slot("mapper", 1, 1)]
    assert decision.status["failedPods"] == 1
    assert reasons(decision) == ["WorkerReplaced"]
    assert "exit code 137" in decision.events[0].message


def test_a_deleted_worker_is_replaced_without_counting() -> None:
    pods = [*running_pods()[:2], pod("mapper", 1, deleting=True), pod("reducer", 0)]
    decision = decide(job(), pods, {"phase": "Running"})
    assert decision.create == [Slot("mapper", 1, 1)]
    assert decision.status["failedPods"] == 0


def test_the_backoff_limit_fails_the_job_and_stops_its_pods() -> None:
    failed = [pod("mapper", 0, a, phase="Failed", exit_code=1) for a in range(3)]
    pods = [pod("master"), *failed, pod("mapper", 1), pod("reducer", 0)]
    decision = decide(job(), pods, {"phase": "Running"})
    assert decision.status["phase"] == "Failed"
    assert decision.status["reason"] == "BackoffLimitExceeded"
    assert "spec.backoffLimit (2)" in decision.status["message"]
    assert decision.create == []
    assert set(decision.delete) == {"wc-master", "wc-mapper-1", "wc-reducer-0"}
    assert cond(decision, "Failed")["status"] == "True"


@pytest.mark.parametrize("code", [1, 137])  # an uncaught exception; SIGKILL / OOM
def test_a_crashed_master_is_replaced_with_its_support_objects(code: int) -> None:
    pods = [pod("master", phase="Failed", exit_code=code, reason="Error"), *running_pods()[1:]]
    decision = decide(job(), pods, {"phase": "Running"})
    assert decision.create == [Slot("master", 0, 1)]
    assert decision.ensure_support
    assert reasons(decision) == ["MasterReplaced"]


def test_a_master_that_failed_the_job_ends_it() -> None:
    pods = [
        pod("master", phase="Failed", exit_code=3, message="...\nkubemr: boom"),
        *running_pods()[1:],
    ]
    report = {"phase": "Failed", "message": "map task 3 (split a.txt:0-10) failed 4 times"}
    decision = decide(job(), pods, {"phase": "Running"}, report)
    assert decision.status["phase"] == "Failed"
    assert decision.status["reason"] == "TaskFailed"
    assert "split a.txt" in decision.status["message"]
    assert decision.create == []


def test_bad_input_is_named_from_the_masters_last_words() -> None:
    message = "log line\nkubemr: spec.input.paths: '/data/*.txt' matches no file\n"
    pods = [pod("master", phase="Failed", exit_code=2, message=message)]
    decision = decide(job(), pods, {"phase": "Pending"})
    assert decision.status["reason"] == "InvalidInput"
    assert decision.status["message"] == "kubemr: spec.input.paths: '/data/*.txt' matches no file"


def test_success_lists_outputs_and_cleans_workers_up() -> None:
    pods = [pod("master", phase="Succeeded", exit_code=0), *running_pods()[1:]]
    status = {"phase": "Running", "mapsTotal": 8, "reducesTotal": 2, "maps": "7/8"}
    decision = decide(job(), pods, status)
    assert decision.status["phase"] == "Succeeded"
    assert decision.status["maps"] == "8/8"
    assert decision.status["output"] == {
        "path": "/out/wc",
        "files": 2,
        "names": ["part-00000", "part-00001"],
    }
    assert sorted(decision.delete) == ["wc-mapper-0", "wc-mapper-1", "wc-reducer-0"]
    assert cond(decision, "Complete")["reason"] == "Completed"


def test_a_multi_step_jobs_outputs_are_its_last_steps_without_a_final_report() -> None:
    pods = [pod("master", phase="Succeeded", exit_code=0), *running_pods()[1:]]
    steps = [{"reduceTasks": 2}, {"reduceTasks": 3}]
    decision = decide(job(steps=steps, reduceTasks=1), pods, {"phase": "Running"})
    assert decision.status["output"]["files"] == 3


@pytest.mark.parametrize(
    ("policy", "deleted", "support"),
    [
        ("DeleteWorkers", {"wc-mapper-0"}, False),
        ("DeleteAll", {"wc-master", "wc-mapper-0"}, True),
        ("KeepAll", set(), False),
    ],
)
def test_cleanup_policies(policy: str, deleted: set[str], support: bool) -> None:
    pods = [pod("master", phase="Succeeded"), pod("mapper", 0, phase="Succeeded")]
    status = {"phase": "Succeeded", "completionTime": "2026-11-21T11:59:59Z"}
    decision = decide(job(cleanupPolicy=policy), pods, status)
    assert set(decision.delete) == deleted
    assert decision.delete_support is support
    cleaned = decide(
        job(cleanupPolicy=policy), [p for p in pods if p.name not in deleted], decision.status
    )
    assert cleaned.status["cleanedUp"] is True


def test_pods_still_running_after_the_grace_are_stopped_even_with_keep_all() -> None:
    pods = [pod("master", phase="Succeeded"), pod("mapper", 0)]
    status = {"phase": "Succeeded", "completionTime": "2026-11-21T11:59:59Z"}
    assert decide(job(cleanupPolicy="KeepAll"), pods, status).delete == []
    later = T0 + datetime.timedelta(seconds=lifecycle.FINISH_GRACE)
    assert decide(job(cleanupPolicy="KeepAll"), pods, status, now=later).delete == ["wc-mapper-0"]


def test_ttl_deletes_the_job_when_due() -> None:
    status = {"phase": "Succeeded", "completionTime": "2026-11-21T11:59:50Z", "cleanedUp": True}
    early = decide(job(ttlSecondsAfterFinished=30), [], status)
    assert not early.delete_job  # the timer decides again until it is due
    due = decide(job(ttlSecondsAfterFinished=10), [], status)
    assert due.delete_job and "Expired" in reasons(due)


def test_active_deadline() -> None:
    status = {"phase": "Running", "startTime": "2026-11-21T11:59:00Z"}
    assert (
        decide(job(activeDeadlineSeconds=120), running_pods(), status).status["phase"] == "Running"
    )
    decision = decide(job(activeDeadlineSeconds=60), running_pods(), status)
    assert decision.status["reason"] == "DeadlineExceeded"
    assert len(decision.delete) == 4


def test_suspend_stops_pods_and_resume_restarts_the_clock() -> None:
    decision = decide(job(suspend=True), running_pods(), {"phase": "Running", "startTime": "x"})
    assert decision.status["phase"] == "Suspended" and len(decision.delete) == 4
    assert cond(decision, "Suspended")["status"] == "True"
    resumed = decide(job(), [], decision.status)
    assert resumed.status["phase"] == "Pending"
    assert resumed.status["startTime"] == "2026-11-21T12:00:00Z"
    assert resumed.create == [Slot("master", 0, 0)]
    assert cond(resumed, "Suspended")["status"] == "False"
    assert reasons(resumed) == ["Resumed"]


def test_the_next_attempt_follows_the_highest_seen() -> None:
    ended = pod("master", attempt=1, phase="Failed", exit_code=143, deleting=True)
    pods = [pod("master", phase="Failed", exit_code=139), ended]
    decision = decide(job(), pods, {"phase": "Running"})
    assert decision.create == [Slot("master", 0, 2)]


@pytest.mark.parametrize("phase", ["Running", "Pending", "Unknown"])
def test_a_master_being_deleted_is_replaced_only_once_its_pod_is_gone(phase: str) -> None:
    """At most one master: while the deleted pod's container may run, it can still write
    the journal and the output; nothing is created (no worker either) until it is gone."""
    stopping = pod("master", phase=phase, deleting=True)
    pods = [stopping, pod("mapper", 0), pod("mapper", 1, deleting=True)]
    decision = decide(job(), pods, {"phase": "Running"})
    assert decision.create == []
    assert "wc-master is being deleted" in decision.status["message"]
    gone = decide(job(), pods[1:], decision.status)
    assert gone.create[0] == Slot("master", 0, 0)


def test_unschedulable_pods_raise_a_condition_then_time_out() -> None:
    stuck = pod(
        "master",
        phase="Pending",
        age=20,
        reason="Unschedulable",
        message="0/2 nodes are available: 2 node(s) didn't match Pod's node affinity",
    )
    decision = decide(job(pendingTimeout="60s"), [stuck], {"phase": "Pending"})
    pending = cond(decision, "PodsPending")
    assert pending["status"] == "True" and pending["reason"] == "Unschedulable"
    assert "node affinity" in pending["message"]
    assert reasons(decision) == ["Unschedulable"]
    late = decide(job(pendingTimeout="10s"), [stuck], decision.status)
    assert late.status["phase"] == "Failed"
    assert late.status["reason"] == "PodPendingTimeout"
    assert late.create == []
    assert "spec.pendingTimeout (10s)" in late.status["message"]
    assert late.delete == ["wc-master"]


POD_SECURITY = (
    'pods "wc-master" is forbidden: violates PodSecurity "restricted:latest": '
    'restrictedVolumes (volume "input" uses restricted volume type "hostPath")'
)
QUOTA = (
    'pods "wc-mapper-1" is forbidden: exceeded quota: pods, requested: pods=1, '
    "used: pods=3, limited: pods=3"
)


def created(
    model: specs.MapReduceJob,
    pods: list[PodView],
    status: dict[str, Any],
    refusals: list[lifecycle.Refusal],
    now: datetime.datetime = T0,
) -> Decision:
    """Decide, then fold in what the API server said to the creations."""
    view = lifecycle.JobView("wc", "ns", "uid-1", 3, model, (), status)
    observed = Observed(view, pods, None, now)
    return lifecycle.after_create(observed, lifecycle.decide(observed), refusals)


@pytest.mark.parametrize(
    ("code", "message", "heals"),
    [
        (403, POD_SECURITY, False),
        (403, QUOTA, True),
        (403, 'pods "x" is forbidden: failed quota: q: must specify limits.cpu', False),
        (403, 'pods "x" is forbidden: status unknown for quota: q, resources: pods', True),
        (403, 'admission webhook "deny.example.com" denied the request: no', False),
        (422, 'Pod "x" is invalid: spec.containers[0].image: Required value', False),
        (429, "too many requests", True),
    ],
)
def test_only_a_full_quota_or_a_rate_limit_can_heal(code: int, message: str, heals: bool) -> None:
    assert lifecycle.Refusal("Pod", "x", code, message).heals is heals


def test_a_refusal_that_cannot_heal_fails_the_job_at_once_with_the_servers_message() -> None:
    refusal = lifecycle.Refusal("Pod", "wc-master", 403, POD_SECURITY)
    decision = created(job(), [], {}, [refusal])
    status = decision.status
    assert (status["phase"], status["reason"], status["message"]) == (
        "Failed",
        "FailedCreate",
        POD_SECURITY,
    )
    refused = cond(decision, "CreateRefused")
    assert (refused["status"], refused["reason"], refused["message"]) == (
        "True",
        "FailedCreate",
        POD_SECURITY,
    )
    assert cond(decision, "Failed")["reason"] == "FailedCreate"
    assert [(e.type, e.reason, e.message) for e in decision.events] == [
        ("Normal", "Accepted", "spec is valid; starting the master"),
        ("Warning", "FailedCreate", POD_SECURITY),
    ]
    assert decision.create == []
    assert created(job(), [], status, []).events == []  # finished: said once


def test_a_full_quota_is_waited_for_then_fails_the_job_after_the_pending_timeout() -> None:
    model = job(pendingTimeout="30s")
    master = pod("master")
    refusal = lifecycle.Refusal("Pod", "wc-mapper-1", 403, QUOTA)
    first = created(model, [master, pod("mapper", 0)], {"phase": "Running"}, [refusal])
    status = first.status
    assert status["phase"] == "Running" and status["reason"] == "FailedCreate"
    assert status["message"] == QUOTA
    assert cond(first, "CreateRefused")["status"] == "True"
    assert reasons(first) == ["FailedCreate"]
    assert first.events[0].message == f"Error creating: {QUOTA}"

    later = T0 + datetime.timedelta(seconds=20)
    again = created(model, [master, pod("mapper", 0)], status, [refusal], later)
    assert again.status["phase"] == "Running" and again.events == []  # said once

    late = T0 + datetime.timedelta(seconds=31)
    timed_out = created(model, [master, pod("mapper", 0)], again.status, [refusal], late)
    assert timed_out.status["phase"] == "Failed"
    assert timed_out.status["reason"] == "FailedCreate"
    assert "within spec.pendingTimeout (30s)" in timed_out.status["message"]
    assert QUOTA in timed_out.status["message"]
    assert set(timed_out.delete) == {"wc-master", "wc-mapper-0"}


def test_a_quota_that_frees_up_clears_the_condition_and_the_reason() -> None:
    model = job(pendingTimeout="30s")
    pods = [pod("master"), pod("mapper", 0)]
    refusal = lifecycle.Refusal("Pod", "wc-mapper-1", 403, QUOTA)
    refused = created(model, pods, {"phase": "Running"}, [refusal])
    healed = created(model, pods, refused.status, [])
    assert cond(healed, "CreateRefused")["status"] == "False"
    assert "reason" not in healed.status
    assert healed.status["phase"] == "Running"


def test_an_invalid_spec_fails_once_without_pods() -> None:
    decision = decide(None, [], {}, problems=("spec.reduceTasks: must be >= 1",))
    assert decision.status["phase"] == "Failed"
    assert decision.status["reason"] == "InvalidSpec"
    assert "spec.reduceTasks" in decision.status["message"]
    assert decision.create == []
    assert decide(None, [], decision.status, problems=("x",)).events == []


def test_decisions_do_not_alter_the_observed_status() -> None:
    status = {"phase": "Running", "conditions": [{"type": "Running", "status": "True"}]}
    before = copy.deepcopy(status)
    decide(job(activeDeadlineSeconds=1), running_pods(), status)
    assert status == before


@pytest.mark.parametrize(
    "status",
    [
        {"phase": 7, "conditions": "nope", "startTime": 12, "backupAttempts": [1]},
        {"phase": "Running", "conditions": [None, 3, {"type": 1}], "completionTime": "soon"},
        {"phase": "Succeeded", "completionTime": None, "blacklistedWorkers": "x"},
    ],
)
def test_a_malformed_status_never_crashes_the_operator(status: dict[str, Any]) -> None:
    report = {"maps": "3 of 8", "counters": {"x": "many"}, "backupAttempts": {"map": None}}
    decision = decide(job(), running_pods(), status, report)
    assert decision.status["observedGeneration"] == 3


def test_the_status_names_the_status_page_and_the_kept_report() -> None:
    view = lifecycle.JobView("wc", "ns", "uid-1", 3, job(), (), {"phase": "Running"})
    running = lifecycle.decide(Observed(view, running_pods(), None, T0, status_page_port=9090))
    assert running.status["statusPage"] == {
        "service": "wc-master",
        "port": 9090,
        "portForward": "kubectl port-forward -n ns svc/wc-master 9090",
    }
    assert "report" not in running.status
    succeeded = decide(job(), [pod("master", phase="Succeeded", exit_code=0)], {"phase": "Running"})
    assert succeeded.status["report"] == "/out/wc/_summary.json"
    failed = decide(job(), [pod("master", phase="Failed", exit_code=3)], {"phase": "Running"})
    assert failed.status["report"] == "/out/wc/_FAILED"
    rejected = decide(job(), [pod("master", phase="Failed", exit_code=2)], {"phase": "Pending"})
    assert "report" not in rejected.status  # a job rejected before any task keeps none


def test_the_kept_report_names_are_the_runtimes() -> None:
    from kubemr import outputdir  # noqa: PLC0415 (the operator itself may not import it)

    assert lifecycle.KEPT_REPORTS == {"Succeeded": outputdir.SUMMARY, "Failed": outputdir.FAILED}


def test_pods_told_to_stop_by_a_deletion_are_not_failures() -> None:
    """A deleted pod's process exits 143 on SIGTERM and the pod shows Failed until it is
    gone: that counts against no backoff limit."""
    stopped = pod("mapper", 1, phase="Failed", exit_code=143, deleting=True)
    crashed = pod("mapper", 0, phase="Failed", exit_code=1)
    decision = decide(job(backoffLimit=1), [pod("master"), crashed, stopped, pod("reducer", 0)])
    assert decision.status["failedPods"] == 1
    assert decision.status["phase"] == "Running"
    assert sorted(decision.create, key=lambda s: s.index) == [
        Slot("mapper", 0, 1),
        Slot("mapper", 1, 1),
    ]


def test_a_pod_that_cannot_install_the_code_bundle_fails_the_job_at_once() -> None:
    bundled = job(
        app={"module": "wc.py:WordCount", "bundle": {"configMap": "wc-app-x", "sha256": "e" * 64}}
    )
    message = "pip output\nkubemr: pip could not install ...: ERROR: No matching distribution"
    broken = pod("master", phase="Failed", install_failed=True, message=message, ready=False)
    decision = decide(bundled, [broken, pod("mapper", 0)])
    assert decision.status["phase"] == "Failed"
    assert decision.status["reason"] == lifecycle.APP_INSTALL_FAILED
    assert "No matching distribution" in decision.status["message"]
    assert cond(decision, "AppInstalled")["status"] == "False"
    assert not decision.create, "the same bundle fails again: no replacement"
    assert "wc-mapper-0" in decision.delete
    running = decide(bundled, running_pods())
    assert cond(running, "AppInstalled")["status"] == "True"
    assert lifecycle.condition(decide(job(), running_pods()).status, "AppInstalled") is None


def test_an_oom_killed_pod_says_which_memory_limit_to_raise() -> None:
    killed = pod("mapper", 1, phase="Failed", exit_code=137, reason="OOMKilled")
    replaced = decide(job(), [pod("master"), pod("mapper", 0), killed, pod("reducer", 0)])
    (event,) = [e for e in replaced.events if e.reason == "WorkerReplaced"]
    assert "wc-mapper-1 failed (OOMKilled, exit code 137)" in event.message
    assert "raise spec.mapper.resources.limits.memory" in event.message
    again = pod("mapper", 1, 1, phase="Failed", exit_code=137, reason="OOMKilled")
    failed = decide(job(backoffLimit=1), [pod("master"), pod("mapper", 0), killed, again])
    assert failed.status["reason"] == "BackoffLimitExceeded"
    assert "raise spec.mapper.resources.limits.memory" in failed.status["message"]


def test_the_status_counts_active_and_ready_pods() -> None:
    pods = [
        *running_pods(),
        pod("reducer", 1, phase="Pending"),
        pod("mapper", 2, deleting=True),
        pod("mapper", 3, phase="Failed", exit_code=1),
    ]
    status = decide(job(), pods, {"phase": "Running"}).status
    assert status["activePods"] == 5, "four running, one pending; not the deleted nor the failed"
    assert status["readyPods"] == 4
    assert decide(job(), [], {}).status["activePods"] == 0
