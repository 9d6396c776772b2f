"""Two operator replicas elect a leader on a coordination.k8s.io/v1 Lease.

Both watch one namespace no other operator watches (``test-own-*``) and keep their Lease
there, with the default timing (15 s / 10 s / 2 s). Only the holder reconciles (the
standby's metrics show no reconciliation). The leader is SIGKILLed mid-job — pods created,
the reducers held by a gate file the test creates only after the takeover — and the
standby takes the lease once it expires; a poller lists the pods every 100 ms throughout
and no (role, index) ever has two pods, no pod is recreated and no replacement attempt
appears; the job succeeds with the sequential oracle's output. The takeover time (lease
expiry → first reconciliation by the new leader) is printed, not asserted. A leader that
finds the lease taken by someone else exits at once with its own status.
"""

from __future__ import annotations

import datetime
import re
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from localkube import apiclient, deadlines
from localkube import cluster as clusters
from localkube.fixtures import dump, failed
from test_jobs import FAULTS_APP, job_doc, oracle, submit, wait_for
from test_startup import create_namespace

from localoperator import OWN_NAMESPACES, LocalOperator, free_port
from testjobs import sorted_output, word_input

pytestmark = pytest.mark.cluster

LEASE = "kubemr-operator"
EXIT_LEADERSHIP_LOST = 3  # kubemr_operator.__main__.EXIT_LEADERSHIP_LOST
LEADER_ELECTED = deadlines.Deadline("leader_elected", 60.0)
TAKEOVER = deadlines.Deadline("takeover", 60.0)
WORKERS = deadlines.Deadline("workers_created", 90.0)
FIRST_RECONCILE = "first reconciliation by this process"


@pytest.fixture
def own_namespace(
    request: pytest.FixtureRequest, kube: apiclient.ApiClient, cluster: clusters.Cluster
) -> Iterator[str]:
    name = f"{OWN_NAMESPACES}ha-{uuid.uuid4().hex[:5]}"
    create_namespace(kube, name)
    yield name
    if failed(request.node):
        print(dump(kube, cluster.paths, name))
    kube.delete(f"/api/v1/namespaces/{name}")


def lease_path(namespace: str, name: str = LEASE) -> str:
    return f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}"


def read_lease(
    kube: apiclient.ApiClient, namespace: str, name: str = LEASE
) -> dict[str, Any] | None:
    try:
        return kube.get(lease_path(namespace, name))
    except apiclient.ApiError as error:
        if apiclient.is_not_found(error):
            return None
        raise


def holder(kube: apiclient.ApiClient, namespace: str, name: str = LEASE) -> str:
    lease = read_lease(kube, namespace, name) or {}
    return str(lease.get("spec", {}).get("holderIdentity") or "")


def wait_leader(kube: apiclient.ApiClient, namespace: str, name: str = LEASE) -> str:
    """The identity of the lease's holder, once there is one."""
    return deadlines.poll(
        LEADER_ELECTED, lambda: holder(kube, namespace, name) or None, f"a holder of lease {name}"
    )


class Replicas:
    """Two operator processes, ``a`` and ``b``, candidates for one Lease."""

    def __init__(self, cluster: clusters.Cluster, namespace: str) -> None:
        self.processes = {
            name: LocalOperator(
                cluster.paths,
                namespace,
                cluster.paths.logs / f"operator-{namespace}-{name}.log",
                env={
                    "KUBEMR_OPERATOR_STANDALONE": "false",
                    "KUBEMR_OPERATOR_LEASE_NAMESPACE": namespace,
                    "KUBEMR_OPERATOR_IDENTITY": name,
                    "KUBEMR_OPERATOR_LIVENESS_PORT": str(free_port()),
                },
            )
            for name in ("a", "b")
        }

    def start(self) -> None:
        for process in self.processes.values():
            process.start()

    def stop(self) -> None:
        for process in self.processes.values():
            process.stop()

    def by_identity(self, identity: str) -> tuple[str, LocalOperator]:
        name = identity.split("_", 1)[0]
        return name, self.processes[name]

    def logs(self) -> str:
        return "\n".join(
            f"==== operator {name} (tail)\n{p.log_tail(150)}" for name, p in self.processes.items()
        )


@pytest.fixture
def replicas(cluster: clusters.Cluster, crd: str, own_namespace: str) -> Iterator[Replicas]:
    del crd
    pair = Replicas(cluster, own_namespace)
    pair.start()
    yield pair
    pair.stop()


def metric(page: str, name: str) -> float:
    found = re.search(rf"^{re.escape(name)} (\S+)$", page, re.MULTILINE)
    assert found, f"{name} not in the metrics"
    return float(found.group(1))


class PodPoller(threading.Thread):
    """Lists the namespace's pods (and reads the Lease) every 100 ms until stopped, and
    remembers every duplicate it saw: two pods of one (role, index), a pod name that
    came back with another uid, or a pod of a replacement attempt."""

    def __init__(self, cluster: clusters.Cluster, namespace: str, lease: str = LEASE) -> None:
        super().__init__(daemon=True)
        self.client = cluster.client()
        self.namespace = namespace
        self.lease = lease
        self.done = threading.Event()
        self.duplicates: list[str] = []
        self.uids: dict[str, str] = {}
        self.polls = 0
        self.leases: list[tuple[str, str, int]] = []
        """(holder, renewTime, leaseDurationSeconds) each time one of them changed."""
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.done.wait(0.1):
                self._poll()
        except BaseException as error:  # reported by the test, not lost in the thread
            self.error = error
        finally:
            self.client.close()

    def _poll(self) -> None:
        pods = self.client.items(apiclient.resource_path("pods", self.namespace))
        self.polls += 1
        slots: dict[tuple[str, str], list[str]] = {}
        for pod in pods:
            meta = pod["metadata"]
            labels = meta.get("labels", {})
            if "kubemr.io/job" not in labels:
                continue  # not a job's pod (an operator's, in the chart's namespace)
            if self.uids.setdefault(meta["name"], meta["uid"]) != meta["uid"]:
                self.duplicates.append(f"pod {meta['name']} recreated (uid {meta['uid']})")
                self.uids[meta["name"]] = meta["uid"]
            if labels.get("kubemr.io/attempt", "0") != "0":
                self.duplicates.append(f"replacement pod {meta['name']}")
            slot = (labels.get("kubemr.io/role", ""), labels.get("kubemr.io/index", ""))
            slots.setdefault(slot, []).append(meta["name"])
        for slot, names in slots.items():
            if len(names) > 1:
                self.duplicates.append(f"{slot}: {sorted(names)}")
        spec = (read_lease(self.client, self.namespace, self.lease) or {}).get("spec", {})
        seen = (
            str(spec.get("holderIdentity") or ""),
            str(spec.get("renewTime") or ""),
            int(spec.get("leaseDurationSeconds") or 0),
        )
        if not self.leases or self.leases[-1] != seen:
            self.leases.append(seen)


def _time(stamp: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def first_reconcile_at(operator: LocalOperator) -> datetime.datetime | None:
    for line in operator.log.read_text(errors="replace").splitlines():
        if FIRST_RECONCILE in line:
            stamp = line[: len("2026-01-01 00:00:00,000")]
            local = datetime.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f")
            return local.astimezone(datetime.UTC)
    return None


def test_the_leader_killed_mid_job_is_replaced_by_the_standby_without_duplicates(
    cluster: clusters.Cluster,
    kube: apiclient.ApiClient,
    own_namespace: str,
    replicas: Replicas,
    shared: Path,
    tmp_path: Path,
) -> None:
    namespace = own_namespace
    try:
        identity = wait_leader(kube, namespace)
        leader_name, leader = replicas.by_identity(identity)
        (standby_name, standby) = next(
            (n, p) for n, p in replicas.processes.items() if n != leader_name
        )
        gate = shared / "go"
        app = {"module": FAULTS_APP, "args": {"delay": "0.004", "hold": str(gate)}}
        doc = job_doc("ha", app, word_input(shared), str(shared / "out"))
        name = submit(kube, namespace, doc)
        poller = PodPoller(cluster, namespace)
        poller.start()

        def running_with_workers() -> bool | None:
            phase = kube.get(
                f"/apis/kubemr.io/v1alpha1/namespaces/{namespace}/mapreducejobs/{name}"
            )
            pods = kube.items(apiclient.resource_path("pods", namespace))
            running = phase.get("status", {}).get("phase") == "Running"
            return True if running and len(pods) >= 4 else None

        deadlines.poll(WORKERS, running_with_workers, "the job running with master and workers")
        # Only the holder reconciles: the standby has not reconciled once.
        leading, waiting = leader.metrics(), standby.metrics()
        assert metric(leading, "kubemr_operator_leader") == 1.0
        assert metric(leading, "kubemr_operator_reconcile_duration_seconds_count") > 0
        assert metric(waiting, "kubemr_operator_leader") == 0.0
        assert metric(waiting, "kubemr_operator_reconcile_duration_seconds_count") == 0.0
        assert FIRST_RECONCILE not in standby.log.read_text(errors="replace")

        leader.kill()
        new = deadlines.poll(
            TAKEOVER,
            lambda: h if (h := holder(kube, namespace)) and h != identity else None,
            f"the standby {standby_name} holding the lease",
        )
        assert replicas.by_identity(new)[0] == standby_name
        reconciled = deadlines.poll(
            TAKEOVER, lambda: first_reconcile_at(standby), "the new leader's first reconciliation"
        )
        status = kube.get(f"/apis/kubemr.io/v1alpha1/namespaces/{namespace}/mapreducejobs/{name}")
        assert status["status"]["phase"] == "Running", status["status"]  # still unfinished
        gate.touch()  # only now can the job finish, and only the new leader can say so
        job = wait_for(kube, namespace, name, ("Succeeded", "Failed"))
        poller.done.set()
        poller.join()
        assert poller.error is None, poller.error
        assert job["status"]["phase"] == "Succeeded", job["status"]
        assert sorted_output(shared / "out") == oracle(tmp_path, doc)
        assert poller.polls > 100, poller.polls
        assert poller.duplicates == [], poller.duplicates

        old = [lease for lease in poller.leases if lease[0] == identity]
        assert old, poller.leases
        _, renewed, duration = old[-1]
        expired = _time(renewed) + datetime.timedelta(seconds=duration)
        acquired = _time(kube.get(lease_path(namespace))["spec"]["acquireTime"])
        assert acquired >= expired, "taken before it expired"  # one machine, one clock
        print(
            f"takeover: lease expired {expired.isoformat()}, taken "
            f"{(acquired - expired).total_seconds():+.2f} s later, first reconciliation "
            f"{(reconciled - acquired).total_seconds():+.2f} s after that: "
            f"{(reconciled - expired).total_seconds():.2f} s from expiry to reconciliation "
            f"({(reconciled - _time(renewed)).total_seconds():.2f} s from the last renewal)"
        )
    except BaseException:
        print(replicas.logs())
        raise


def test_a_leader_that_finds_its_lease_taken_exits_at_once(
    kube: apiclient.ApiClient, own_namespace: str, replicas: Replicas
) -> None:
    namespace = own_namespace
    try:
        identity = wait_leader(kube, namespace)
        _, leader = replicas.by_identity(identity)

        def steal() -> bool | None:
            lease = read_lease(kube, namespace)
            assert lease is not None
            now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            lease["spec"].update(holderIdentity="intruder", renewTime=now, acquireTime=now)
            try:
                kube.replace(lease_path(namespace), lease)  # conditional on the version read
            except apiclient.ApiError as error:
                if apiclient.is_conflict(error):
                    return None  # the leader renewed in between: read again
                raise
            return True

        deadlines.poll(LEADER_ELECTED, steal, "the lease written to name an intruder")
        assert leader.process is not None
        code = leader.process.wait(LEADER_ELECTED.seconds)
        assert code == EXIT_LEADERSHIP_LOST, leader.log_tail()
        assert "leadership lost: the lease is now held by intruder" in leader.log_tail()
    except BaseException:
        print(replicas.logs())
        raise
