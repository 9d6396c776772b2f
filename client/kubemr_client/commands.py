"""The ``submit``, ``status``, ``logs`` and ``delete`` handlers, over the Kubernetes API.

Thin: each reads its arguments, calls :mod:`kubemr.bundles` and
:mod:`kubemr_client.submission` for everything that is decided, and talks to the API
server with lightkube and the current kubeconfig (``$KUBECONFIG`` or ``~/.kube/config``).
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import lightkube
from kubemr import bundles, progress, stores
from kubemr import spec as specs
from kubemr_operator import manifests
from lightkube import codecs
from lightkube.generic_resource import create_namespaced_resource
from lightkube.resources.core_v1 import ConfigMap, Pod

from kubemr_client import submission

POLL_INTERVAL = 1.0
"""Seconds between two reads of a followed job's status."""

MapReduceJob = create_namespaced_resource(manifests.GROUP, "v1alpha1", specs.KIND, "mapreducejobs")


class ClientError(RuntimeError):
    """The API server refused a request, or a job or pod is not there; names which."""


def _client(namespace: str | None) -> tuple[lightkube.Client, str]:
    try:
        client = lightkube.Client(field_manager="kubemr-submit")
    except Exception as exc:  # lightkube raises ConfigError and plain exceptions
        raise ClientError(f"cannot use the current kubeconfig: {exc}") from None
    return client, namespace or client.namespace


def _api_error(error: lightkube.ApiError, doing: str) -> ClientError:
    return ClientError(f"{doing}: {error.status.code} {error.status.message}")


def _get_job(client: lightkube.Client, name: str, namespace: str) -> dict[str, Any]:
    try:
        job = client.get(MapReduceJob, name, namespace=namespace)
    except lightkube.ApiError as error:
        if error.status.code == 404:
            raise ClientError(f"no MapReduceJob {namespace}/{name}") from None
        raise _api_error(error, f"reading MapReduceJob {namespace}/{name}") from None
    document: dict[str, Any] = job.to_dict()  # type: ignore[no-untyped-call]
    return document


def _pack(args: argparse.Namespace, job: specs.MapReduceJob) -> tuple[specs.MapReduceJob, Any]:
    """The job with its code bundle, and the bundle (None when there is nothing to ship)."""
    search = [Path.cwd(), args.manifest.resolve().parent]
    app = args.app if args.app is not None else submission.default_app(job, search)
    extra = submission.read_requirements(args.requirements) if args.requirements else []
    requirements = submission.merged_requirements(job.spec.app.requirements, extra)
    if app is None and not requirements:
        return job, None
    if requirements != job.spec.app.requirements:
        document = specs.dump_job(job)
        document["spec"]["app"]["requirements"] = requirements
        job = specs.parse_job(document, str(args.manifest))
    target = bundles.Target(
        python_version=args.python_version,
        platforms=tuple(args.platform) or bundles.Target().platforms,
    )
    with tempfile.TemporaryDirectory(prefix="kubemr-wheels-") as wheels_dir:
        wheels = bundles.resolve_wheels(requirements, Path(wheels_dir), target)
        bundle = bundles.build(app, wheels, requirements)
    where = bundles.placement(bundle.size, job.spec.output.path)
    if where == "s3":
        url = bundles.s3_url(job.spec.output.path, bundle.sha256)
        store = stores.store_for(url, job.spec.storage)
        if not store.exists(url):
            store.write_bytes(url, bundle.data)
        where = url
    else:
        where = submission.bundle_name(job.metadata.name, bundle.sha256)
    print(
        f"code bundle {bundle.sha256[:12]}: {bundle.size:,} bytes "
        f"({len(wheels)} wheel(s) for {', '.join(requirements) or 'no requirements'}) "
        f"-> {'ConfigMap ' + where if not stores.is_s3(where) else where}",
        file=sys.stderr,
    )
    return bundles.with_bundle(job, bundle, app, where), bundle


def _create(client: lightkube.Client, manifest: dict[str, Any], what: str) -> Any:
    try:
        return client.create(codecs.from_dict(manifest))
    except lightkube.ApiError as error:
        raise _api_error(error, f"creating {what}") from None


def _create_bundle(client: lightkube.Client, manifest: dict[str, Any]) -> bool:
    """Create the bundle's ConfigMap (True); one of that name already has the same content
    (the name holds the digest): use it (False)."""
    try:
        client.create(codecs.from_dict(manifest))
    except lightkube.ApiError as error:
        if error.status.code != 409:
            raise _api_error(error, f"creating ConfigMap {manifest['metadata']['name']}") from None
        return False
    return True


def _own(client: lightkube.Client, name: str, namespace: str, job: str, uid: str) -> None:
    """Make the job the owner of its bundle's ConfigMap (deleted with the job)."""
    patch = {"metadata": {"ownerReferences": [submission.owner_reference(job, uid)]}}
    try:
        client.patch(ConfigMap, name, patch, namespace=namespace)
    except lightkube.ApiError as error:
        raise _api_error(error, f"making {job} the owner of ConfigMap {name}") from None


def _follow(client: lightkube.Client, name: str, namespace: str) -> int:
    """Show the job's progress until it ends; its outcome is the exit code."""
    bar = progress.JobProgress(name)
    phase = None
    with bar:
        while True:
            status = _get_job(client, name, namespace).get("status") or {}
            bar.counts(*submission.counts(status))
            if status.get("phase") != phase:
                phase = status.get("phase")
                bar.console.print(
                    f"{name}: {phase or 'Pending'}"
                    + (f": {status['message']}" if status.get("message") else ""),
                    highlight=False,
                    soft_wrap=True,
                )
            if submission.finished(status):
                return submission.exit_code(status)
            time.sleep(POLL_INTERVAL)


def cmd_submit(args: argparse.Namespace) -> int:
    job = specs.load_job(args.manifest)
    client, namespace = _client(args.namespace or job.metadata.namespace)
    job, bundle = _pack(args, job)
    name = job.metadata.name
    created_bundle: str | None = None  # a ConfigMap this command created
    reference = job.spec.app.bundle
    if (
        bundle is not None
        and reference is not None
        and reference.config_map is not None
        and _create_bundle(client, submission.bundle_config_map(name, namespace, bundle))
    ):
        created_bundle = reference.config_map
    try:
        created = _create(
            client, submission.job_document(job, namespace), f"MapReduceJob {namespace}/{name}"
        )
    except ClientError:
        if created_bundle is not None:  # owned by no job, it would stay forever
            client.delete(ConfigMap, created_bundle, namespace=namespace)
        raise
    if reference is not None and reference.config_map is not None:
        _own(client, reference.config_map, namespace, name, created.metadata.uid)
    print(f"submitted mapreducejob {namespace}/{name}", file=sys.stderr)
    if args.no_wait:
        return 0
    # Ctrl-C detaches, even when started with SIGINT ignored (a background runner's `&`).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return _follow(client, name, namespace)
    except KeyboardInterrupt:
        print(
            f"detached; the job keeps running (kubemr status {name}, kubemr delete {name})",
            file=sys.stderr,
        )
        return submission.EXIT_DETACHED


def cmd_status(args: argparse.Namespace) -> int:
    client, namespace = _client(args.namespace)
    for line in submission.describe(_get_job(client, args.name, namespace)):
        print(line)
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    client, namespace = _client(args.namespace)
    _get_job(client, args.name, namespace)  # a clear error for a job that is not there
    pods = [
        p.to_dict()
        for p in client.list(Pod, namespace=namespace, labels={manifests.LABEL_JOB: args.name})
    ]
    pod = submission.pick_pod(pods, args.role, args.index)
    if pod is None:
        raise ClientError(
            f"job {namespace}/{args.name} has no {args.role} pod with index {args.index} "
            "(not started yet, or removed by spec.cleanupPolicy)"
        )
    pod_name = pod["metadata"]["name"]
    try:
        for line in client.log(
            pod_name, namespace=namespace, container=args.container or args.role, follow=args.follow
        ):
            sys.stdout.write(line)
    except lightkube.ApiError as error:
        raise _api_error(error, f"reading the log of pod {pod_name}") from None
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    client, namespace = _client(args.namespace)
    try:
        client.delete(MapReduceJob, args.name, namespace=namespace)
    except lightkube.ApiError as error:
        if error.status.code == 404:
            raise ClientError(f"no MapReduceJob {namespace}/{args.name}") from None
        raise _api_error(error, f"deleting MapReduceJob {namespace}/{args.name}") from None
    print(f"deleted mapreducejob {namespace}/{args.name} (its pods and objects go with it)")
    return 0
