"""Benchmark: the operator at scale: one MapReduceJob of ``--pods`` pods on simulated nodes.

Run it with ``make bench-scale`` (after ``bench/scale.py``) or::

    .venv/bin/python bench/operatorscale.py [--pods 1000 --nodes 50 --runs 1] [--json FILE]

It needs the local control plane's binaries and kwok (``make cluster-build``). It uses the
localkube cluster that runs (``make cluster-up``, or a test session's) or starts one and
stops it at the end; either way it adds ``--nodes`` kwok Nodes (tests/cluster/localkube/
kwok.py: Nodes that run nothing, their pods Running and Ready at once, tainted so that
only this job's pods go there), and runs the working tree's operator as a local process
watching only the benchmark's namespace. Per run:

1. applies a job of one master, ``(pods - 1) // 2`` mappers and the rest reducers, selecting
   and tolerating the simulated Nodes; the workers are created once the master is ready;
2. times, from the apply, by watching (not listing) the pods and the job: every pod
   created, every pod Ready, and the job's ``status.activePods``/``readyPods`` reporting
   them all (what the job's status tracks of its pods: the master never runs here, so
   there is no task progress);
3. the operator process's CPU seconds and its peak RSS (``VmHWM``), the API server's
   requests per second (``apiserver_request_total``), the requests by client (user agent,
   from the audit log), and any 429 answer or throttling line in the operator's log;
4. deletes the job and times until its last pod is gone (the garbage collector deletes
   the pods, kwok removes them).

The baseline, in the same run: the same pod manifests created one after another by a
plain client on one kept-alive connection (what the API server takes for the creations
alone), and the ratio of the operator's time to it.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import re
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests" / "cluster"), str(ROOT / "tests" / "operator")]

from kubemr import contract  # noqa: E402
from kubemr import spec as specs  # noqa: E402
from kubemr_operator import manifests  # noqa: E402
from kubemr_operator.manifests import JobRef  # noqa: E402
from kubemr_operator.settings import Settings  # noqa: E402
from localkube import apiclient, deadlines, kwok, layout, processes  # noqa: E402
from localkube import cluster as clusters  # noqa: E402

from localoperator import OWN_NAMESPACES, LocalOperator, install_crd  # noqa: E402

JOB = "scale"
NODES_READY = deadlines.Deadline("scale_nodes_ready", 120.0)
PODS_CREATED = deadlines.Deadline("scale_pods_created", 600.0)
STATUS_TRACKED = deadlines.Deadline("scale_status_tracked", 600.0)
PODS_GONE = deadlines.Deadline("scale_pods_gone", 600.0)
NAMESPACE_GONE = deadlines.Deadline("scale_namespace_gone", 300.0)
COLLECTOR = deadlines.Deadline("scale_collector", 180.0)
THROTTLING = re.compile(r"(?<![\d,.:])429(?!\d)|Too Many Requests|throttl", re.IGNORECASE)
"""What a rate-limited request leaves in the operator's log."""
OPERATOR_AGENTS = ("kopf", "python-httpx")
"""User agents of the operator's two clients: kopf's (watches, status patches, events) and
lightkube's (pods and the job's other objects)."""


class Watch:
    """A background watch of one collection, remembering when each object was first seen,
    first seen Ready, and deleted (monotonic seconds)."""

    def __init__(self, client: apiclient.ApiClient, path: str, params: dict[str, str]) -> None:
        self.client, self.path, self.params = client, path, params
        self.added: dict[str, float] = {}
        self.ready: dict[str, float] = {}
        self.deleted: dict[str, float] = {}
        self.last: dict[str, apiclient.Obj] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        listed = client.get(path, params)
        self.thread = threading.Thread(
            target=self._run, args=(listed["metadata"]["resourceVersion"],), daemon=True
        )
        self.thread.start()

    def _run(self, version: str) -> None:
        while not self.stopping.is_set():
            try:
                for event in self.client.watch(self.path, version, self.params, 30):
                    obj = event["object"]
                    version = obj["metadata"]["resourceVersion"]
                    if event["type"] == "BOOKMARK":
                        continue
                    self._record(event["type"], obj)
                    if self.stopping.is_set():
                        return
            except (OSError, apiclient.ApiError):
                if self.stopping.is_set():
                    return
                time.sleep(0.2)

    def _record(self, kind: str, obj: apiclient.Obj) -> None:
        now = time.monotonic()
        name = obj["metadata"]["name"]
        conditions = (obj.get("status") or {}).get("conditions") or []
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
        with self.lock:
            self.added.setdefault(name, now)
            if ready:
                self.ready.setdefault(name, now)
            if kind == "DELETED":
                self.deleted.setdefault(name, now)
            self.last[name] = obj

    def stop(self) -> None:
        self.stopping.set()

    def count(self, which: str) -> tuple[int, float]:
        """How many objects reached ``which`` (added, ready, deleted), and when the last did."""
        with self.lock:
            times = list(getattr(self, which).values())
        return len(times), max(times, default=0.0)


def request_totals(client: apiclient.ApiClient) -> dict[str, float]:
    """The API server's ``apiserver_request_total``, summed: all, and 429 answers."""
    totals = {"all": 0.0, "429": 0.0}
    for line in client.get_text("/metrics").splitlines():
        if line.startswith("apiserver_request_total{"):
            value = float(line.rsplit(" ", 1)[1])
            totals["all"] += value
            if 'code="429"' in line:
                totals["429"] += value
    return totals


def audit_agents(log: Path, offset: int) -> tuple[dict[str, int], int]:
    """Requests since ``offset`` of the audit log by client (the user agent's first word),
    and the log's new end."""
    counts: collections.Counter[str] = collections.Counter()
    with log.open("rb") as stream:
        stream.seek(offset)
        for line in stream:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            agent = str(entry.get("userAgent") or "-").split("/", 1)[0].split(" ", 1)[0]
            counts[agent] += 1
        end = stream.tell()
    return dict(counts.most_common()), end


def job_manifest(name: str, pods: int, cpu: str) -> dict[str, Any]:
    mappers = (pods - 1) // 2
    resources = {"requests": {"cpu": cpu, "memory": "64Mi"}}
    return {
        "apiVersion": f"{contract.GROUP}/{contract.VERSION}",
        "kind": contract.KIND,
        "metadata": {"name": name},
        "spec": {
            "app": {"builtin": "wordcount"},
            "input": {"paths": ["../shared/data/gutenberg/*.txt"]},
            "output": {"path": "out/operatorscale", "overwrite": True},
            "reduceTasks": pods - 1 - mappers,
            "mapper": {"replicas": mappers, "resources": resources},
            "reducer": {"replicas": pods - 1 - mappers, "resources": resources},
            "master": {"resources": resources},
            "nodeSelector": {kwok.LABEL: "true"},
            "tolerations": [kwok.toleration()],
            "pendingTimeout": "30m",
        },
    }


@contextmanager
def simulated_nodes(
    paths: layout.Layout, client: apiclient.ApiClient, count: int, pods: int
) -> Iterator[None]:
    """kwok's controller and ``count`` simulated Nodes, Ready; all removed afterwards."""
    if not paths.kwok.exists():
        raise kwok.KwokError(f"{paths.kwok} is missing: `make cluster-build` builds it")
    handle = kwok.start(paths, paths.logs / "kwok.log")
    names = [f"kwok-scale-{i}" for i in range(count)]
    try:
        for name in names:
            client.create("/api/v1/nodes", kwok.node(name, pods=pods))

        def ready() -> bool | None:
            nodes = client.items("/api/v1/nodes", {"labelSelector": f"{kwok.LABEL}=true"})
            good = [
                n
                for n in nodes
                if any(
                    c["type"] == "Ready" and c["status"] == "True"
                    for c in n.get("status", {}).get("conditions", [])
                )
            ]
            return True if len(good) >= count else None

        deadlines.poll(NODES_READY, ready, f"{count} simulated nodes Ready", interval=0.5)
        yield
    finally:
        for name in names:
            try:
                client.delete(f"/api/v1/nodes/{name}")
            except apiclient.ApiError as error:
                if not apiclient.is_not_found(error):
                    raise
        processes.stop(handle)


def make_namespace(client: apiclient.ApiClient, prefix: str) -> str:
    name = f"{OWN_NAMESPACES}{prefix}-{uuid.uuid4().hex[:6]}"
    client.create("/api/v1/namespaces", {"metadata": {"name": name}})
    deadlines.poll(
        deadlines.NAMESPACE_READY,
        lambda: True if client.get(f"/api/v1/namespaces/{name}/serviceaccounts/default") else None,
        f"namespace {name}'s default service account",
    )
    return name


def drop_namespace(client: apiclient.ApiClient, name: str) -> None:
    client.delete(f"/api/v1/namespaces/{name}")

    def gone() -> bool | None:
        try:
            client.get(f"/api/v1/namespaces/{name}")
        except apiclient.ApiError as error:
            if apiclient.is_not_found(error):
                return True
            raise
        return None

    deadlines.poll(NAMESPACE_GONE, gone, f"namespace {name} deleted", interval=0.5)


def await_collector(client: apiclient.ApiClient, jobs: str, namespace: str) -> None:
    """Wait until the garbage collector follows MapReduceJobs: it watches a resource only
    after its periodic discovery (every 30 s) found it, so on a fresh cluster a job's pods
    outlive the job by up to a minute. A suspended job (no operator watches the namespace
    yet) owning a ConfigMap is deleted, and its ConfigMap must go, until one does."""

    def collected() -> bool | None:
        job = job_manifest(f"warmup-{uuid.uuid4().hex[:6]}", 3, "1m")
        job["spec"]["suspend"] = True
        created = client.create(jobs, job)
        meta = created["metadata"]
        owner = {
            "apiVersion": created["apiVersion"],
            "kind": created["kind"],
            "name": meta["name"],
            "uid": meta["uid"],
        }
        maps = apiclient.resource_path("configmaps", namespace)
        client.create(maps, {"metadata": {"name": meta["name"], "ownerReferences": [owner]}})
        client.delete(f"{jobs}/{meta['name']}")
        end = time.monotonic() + 5
        while time.monotonic() < end:
            try:
                client.get(f"{maps}/{meta['name']}")
            except apiclient.ApiError as error:
                if apiclient.is_not_found(error):
                    return True
                raise
            time.sleep(0.2)
        client.delete(f"{maps}/{meta['name']}")
        return None

    deadlines.poll(COLLECTOR, collected, "the garbage collector to follow MapReduceJobs")


def peak_rss(pid: int) -> int:
    """The process's peak resident set size so far (``VmHWM``), bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/{pid}/status has no VmHWM")


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def operator_run(
    paths: layout.Layout, client: apiclient.ApiClient, args: argparse.Namespace, run: int
) -> dict[str, Any]:
    """One job of ``args.pods`` pods under a fresh operator: the figures of one run."""
    namespace = make_namespace(client, "operatorscale")
    log = args.cache_dir / f"operator-{namespace}.log"
    settings = {
        "KUBEMR_OPERATOR_RECONCILE_INTERVAL": str(args.reconcile_interval),
        "KUBEMR_OPERATOR_CREATE_CONCURRENCY": str(args.create_concurrency),
    }
    operator = LocalOperator(paths, namespace, log, env=settings)
    jobs = apiclient.resource_path(
        contract.PLURAL, namespace, group_version=f"{contract.GROUP}/{contract.VERSION}"
    )
    pods_path = apiclient.resource_path("pods", namespace)
    try:
        await_collector(client, jobs, namespace)
        operator.start()
        assert operator.process is not None
        process = psutil.Process(operator.process.pid)
        selector = {"labelSelector": f"{manifests.LABEL_JOB}={JOB}"}
        pods = Watch(client, pods_path, selector)
        job_watch = Watch(client, jobs, {})
        cpu_before, requests_before = cpu_seconds(process), request_totals(client)
        _, audit_offset = audit_agents(paths.audit_log, 0)
        started = time.monotonic()
        client.create(jobs, job_manifest(JOB, args.pods, args.pod_cpu))
        total = args.pods

        def reached(watch: Watch, which: str) -> float | None:
            count, last = watch.count(which)
            return last - started if count >= total else None

        def tracked() -> float | None:
            with job_watch.lock:
                obj = job_watch.last.get(JOB)
                seen = job_watch.added.get(JOB)
            status = (obj or {}).get("status") or {}
            if status.get("activePods") == total and status.get("readyPods") == total:
                return time.monotonic() - started if seen is not None else None
            return None

        def progress() -> str:
            with job_watch.lock:
                status = (job_watch.last.get(JOB) or {}).get("status") or {}
            return (
                f"pods created {pods.count('added')[0]}, ready {pods.count('ready')[0]}; "
                f"status {status.get('phase')} active {status.get('activePods')} "
                f"ready {status.get('readyPods')}; operator log tail:\n{operator.log_tail(20)}"
            )

        created, ready, status = (
            deadlines.poll(deadline, probe, what, interval=0.05, describe=progress)
            for deadline, probe, what in (
                (PODS_CREATED, lambda: reached(pods, "added"), f"{total} pods created"),
                (STATUS_TRACKED, lambda: reached(pods, "ready"), f"{total} pods Ready"),
                (STATUS_TRACKED, tracked, "the job's status tracking every pod"),
            )
        )
        window = time.monotonic() - started
        cpu_up = cpu_seconds(process) - cpu_before
        requests_after = request_totals(client)
        agents, audit_offset = audit_agents(paths.audit_log, audit_offset)
        rss_up = peak_rss(process.pid)

        steady_before = cpu_seconds(process), time.monotonic()
        deadlines.poll(
            deadlines.Deadline("scale_steady", args.steady_seconds * 2 + 10),
            lambda: True if time.monotonic() - steady_before[1] >= args.steady_seconds else None,
            "the steady-state window",
            interval=0.2,
        )
        steady = (cpu_seconds(process) - steady_before[0]) / (time.monotonic() - steady_before[1])

        cpu_before = cpu_seconds(process)
        deleting = time.monotonic()
        client.delete(f"{jobs}/{JOB}")
        gone = deadlines.poll(
            PODS_GONE,
            lambda: reached(pods, "deleted"),
            f"all {total} pods deleted",
            interval=0.1,
            describe=progress,
        )
        gone -= deleting - started
        with pods.lock:
            first_gone = min(pods.deleted.values()) - deleting
        cpu_down = cpu_seconds(process) - cpu_before
        pods.stop()
        job_watch.stop()
        text = log.read_text(errors="replace")
        throttled = [line for line in text.splitlines() if THROTTLING.search(line)]
        return {
            "run": run,
            "pods": total,
            "created_seconds": created,
            "ready_seconds": ready,
            "status_seconds": status,
            "cleanup_seconds": gone,
            "cleanup_first_seconds": first_gone,
            "operator_steady_cpu": steady,
            "operator_requests": sum(
                count for agent, count in agents.items() if agent.startswith(OPERATOR_AGENTS)
            ),
            "operator_cpu_seconds": cpu_up,
            "operator_cleanup_cpu_seconds": cpu_down,
            "operator_peak_rss": max(rss_up, peak_rss(process.pid)),
            "api_requests": requests_after["all"] - requests_before["all"],
            "api_requests_per_second": (requests_after["all"] - requests_before["all"]) / window,
            "api_429": requests_after["429"] - requests_before["429"],
            "requests_by_client": agents,
            "throttling_lines": throttled[:5],
            "window_seconds": window,
        }
    finally:
        operator.stop()
        drop_namespace(client, namespace)


def baseline_run(client: apiclient.ApiClient, args: argparse.Namespace) -> dict[str, Any]:
    """The same pods created one after another by a plain client; then a delete."""
    namespace = make_namespace(client, "operatorscale-baseline")
    try:
        document = job_manifest(JOB, args.pods, args.pod_cpu)
        document["metadata"]["namespace"] = namespace
        job = specs.parse_job(document)
        ref = JobRef(JOB, namespace, str(uuid.uuid4()))
        settings = Settings(pod_working_dir=str(ROOT))
        spec = job.spec
        slots = [(manifests.MASTER, 0)]
        slots += [(manifests.MAPPER, i) for i in range(spec.mapper.replicas)]
        slots += [(manifests.REDUCER, i) for i in range(spec.reducer.replicas)]
        bodies = []
        for role, index in slots:
            body = manifests.pod(ref, job, role, index, 0, settings)
            body["metadata"].pop("ownerReferences", None)  # no owner: the GC would take them
            bodies.append(body)
        path = apiclient.resource_path("pods", namespace)
        started = time.monotonic()
        for body in bodies:
            client.create(path, body)
        created = time.monotonic() - started
        return {"pods": len(bodies), "created_seconds": created}
    finally:
        drop_namespace(client, namespace)


def median(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(float(r[key]) for r in runs))


def report(results: dict[str, Any]) -> str:
    runs, baseline = results["runs"], results["baseline"]
    n = len(runs)
    created = median(runs, "created_seconds")
    base = median(baseline, "created_seconds")
    clients = collections.Counter[str]()
    for run in runs:
        clients.update(run["requests_by_client"])
    top = ", ".join(f"{k} {v / n:,.0f}" for k, v in clients.most_common(5))
    load = os.getloadavg()
    return "\n".join(
        [
            f"operator at scale: {results['pods']:,} pods (1 master, "
            f"{(results['pods'] - 1) // 2:,} mappers, the rest reducers) on "
            f"{results['nodes']} kwok nodes, the operator creating up to "
            f"{results['create_concurrency']} at once; median of {n} run(s)",
            f"  all pods created        {created:7.1f} s  ({results['pods'] / created:,.0f} "
            f"pods/s; target <= 60 s: {'met' if created <= 60 else 'MISSED'})",
            f"  all pods Ready (kwok)   {median(runs, 'ready_seconds'):7.1f} s",
            f"  status tracks them all  {median(runs, 'status_seconds'):7.1f} s  "
            "(status.activePods = readyPods = pods)",
            f"  cleanup after delete    {median(runs, 'cleanup_seconds'):7.1f} s  "
            f"(last pod gone; the first after {median(runs, 'cleanup_first_seconds'):.1f} s: "
            "the garbage collector deletes them)",
            f"  operator CPU            {median(runs, 'operator_cpu_seconds'):7.1f} s up to "
            f"tracked, {median(runs, 'operator_cleanup_cpu_seconds'):.1f} s during cleanup; "
            f"{median(runs, 'operator_steady_cpu'):.0%} of a core while the job runs "
            f"(reconciling every {results['reconcile_interval']:g} s); "
            f"peak RSS {median(runs, 'operator_peak_rss') / 2**20:,.0f} MiB",
            f"  API server              {median(runs, 'api_requests_per_second'):7.0f} requests/s "
            f"({median(runs, 'api_requests'):,.0f} requests up to tracked, the operator's "
            f"{median(runs, 'operator_requests'):,.0f}); by client: {top}",
            f"  throttling              {sum(r['api_429'] for r in runs):.0f} answers 429, "
            f"{sum(len(r['throttling_lines']) for r in runs)} throttling lines in the "
            "operator's log",
            f"  baseline: the same pods created serially by a plain client: {base:.1f} s; "
            f"operator / baseline = {created / base:.2f}",
            f"machine: {platform.machine()}, {os.cpu_count()} cores, load average "
            f"{load[0]:.1f} {load[1]:.1f} {load[2]:.1f} (other work shares it)",
        ]
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pods", type=int, default=1000, help="master + mappers + reducers")
    parser.add_argument("--nodes", type=int, default=50, help="simulated (kwok) nodes")
    parser.add_argument("--runs", type=int, default=1, help="jobs, one after another")
    parser.add_argument("--pod-cpu", default="100m", help="CPU request of every pod")
    parser.add_argument(
        "--reconcile-interval",
        type=float,
        default=Settings().reconcile_interval,
        help="the operator's, seconds (default: its own default)",
    )
    parser.add_argument(
        "--create-concurrency",
        type=int,
        default=Settings().create_concurrency,
        help="the operator's most pods created at once (1: one after another)",
    )
    parser.add_argument(
        "--steady-seconds", type=float, default=10.0, help="window of the running job's CPU"
    )
    parser.add_argument(
        "--cache-dir", type=Path, default=ROOT / ".cache" / "bench", help="the operators' logs"
    )
    parser.add_argument("--json", type=Path, help="also write every figure here")
    args = parser.parse_args(argv)
    if args.pods < 3:
        parser.error("--pods: at least 3 (a master, a mapper, a reducer)")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    paths = layout.Layout.default()
    existing = clusters.running(paths)
    cluster = existing or clusters.up(paths, quiet=True)
    client = cluster.client()
    per_node = -(-args.pods // args.nodes) + 10
    results: dict[str, Any] = {"pods": args.pods, "nodes": args.nodes, "runs": []}
    results["reconcile_interval"] = args.reconcile_interval
    results["create_concurrency"] = args.create_concurrency
    try:
        install_crd(client)
        with simulated_nodes(paths, client, args.nodes, per_node):
            results["baseline"] = [baseline_run(client, args)]
            for run in range(args.runs):
                results["runs"].append(operator_run(paths, client, args, run))
    finally:
        client.close()
        if existing is None:
            clusters.down(paths)
    print(report(results))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")


if __name__ == "__main__":
    main()
