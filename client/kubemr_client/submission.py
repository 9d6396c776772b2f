"""What ``kubemr submit`` sends and how it reads back a job: pure functions, no I/O.

The code bundle's ConfigMap is named by the job and the bundle's content
(``<job>-app-<sha256 prefix>``), marked ``immutable``, and owned by the job (so it is
garbage-collected with it); the job names the bundle's full SHA-256, which the pods
check.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from kubemr import bundles
from kubemr import spec as specs
from kubemr_operator import lifecycle, manifests

Manifest = dict[str, Any]

DIGEST_IN_NAME = 10
"""Hex digits of the bundle's SHA-256 in its ConfigMap's name."""
EXIT_FAILED = 1
"""``kubemr submit``'s exit code when the job failed (0 when it succeeded)."""
EXIT_DETACHED = 130
"""``kubemr submit``'s exit code after Ctrl-C: detached, the job keeps running."""


def bundle_name(job: str, sha256: str) -> str:
    """The ConfigMap of a job's code bundle: by job and content."""
    return f"{job}-app-{sha256[:DIGEST_IN_NAME]}"


def bundle_config_map(job: str, namespace: str, bundle: bundles.Bundle) -> Manifest:
    """The immutable ConfigMap that carries a bundle (``binaryData``, key ``bundle.zip``)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": bundle_name(job, bundle.sha256),
            "namespace": namespace,
            "labels": {
                "app.kubernetes.io/name": "kubemr",
                "app.kubernetes.io/managed-by": "kubemr-submit",
                manifests.LABEL_JOB: job,
            },
            "annotations": {f"{manifests.GROUP}/bundle-sha256": bundle.sha256},
        },
        "immutable": True,
        "binaryData": {specs.BUNDLE_KEY: base64.b64encode(bundle.data).decode("ascii")},
    }


def owner_reference(job: str, uid: str) -> Manifest:
    """The reference that makes the job own (and garbage-collect) its bundle."""
    return {"apiVersion": manifests.API_VERSION, "kind": specs.KIND, "name": job, "uid": uid}


def job_document(job: specs.MapReduceJob, namespace: str) -> Manifest:
    """The MapReduceJob to create: the validated manifest in ``namespace``."""
    document = specs.dump_job(job)
    document["metadata"]["namespace"] = namespace
    return document


def read_requirements(path: Path) -> list[str]:
    """A requirements file's requirement lines (comments and blank lines dropped); pip
    options (``-r``, ``--index-url``...) are refused: the pods use the shipped wheels."""
    lines = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-"):
            raise bundles.BundleError(
                f"{path}:{number}: {line!r}: pip options are not supported, only "
                "requirements (the pods install from the shipped wheels)"
            )
        lines.append(line)
    return lines


def merged_requirements(given: Sequence[str], extra: Sequence[str]) -> list[str]:
    """``spec.app.requirements`` then the file's lines, each once, in order."""
    return list(dict.fromkeys([*given, *extra]))


def default_app(job: specs.MapReduceJob, search: Sequence[Path]) -> Path | None:
    """The app to ship when ``--app`` is not given: the file a ``file.py:Attr`` module
    reference names (found as ``kubemr run`` finds it), else none."""
    module = job.spec.app.module or ""
    name = module.partition(":")[0]
    if not name.endswith(".py"):
        return None
    for candidate in [Path(name), *(d / name for d in search)]:
        if candidate.is_file():
            return candidate
    raise bundles.BundleError(f"spec.app.module: no such file {name!r} to ship (give --app)")


def finished(status: Mapping[str, Any]) -> bool:
    return status.get("phase") in lifecycle.FINISHED


def exit_code(status: Mapping[str, Any]) -> int:
    """0 for a job that succeeded, :data:`EXIT_FAILED` for one that failed."""
    return 0 if status.get("phase") == lifecycle.SUCCEEDED else EXIT_FAILED


def counts(status: Mapping[str, Any]) -> tuple[int, int | None, int, int | None]:
    """(maps done, maps total, reduces done, reduces total) from a job's status."""

    def number(key: str) -> int | None:
        value = status.get(key)
        return value if isinstance(value, int) else None

    return (
        number("mapsDone") or 0,
        number("mapsTotal"),
        number("reducesDone") or 0,
        number("reducesTotal"),
    )


def describe(job: Mapping[str, Any]) -> list[str]:
    """``kubemr status``: the job's phase, progress, outcome and conditions, as lines."""
    meta = job.get("metadata") or {}
    status = job.get("status") or {}
    spec = job.get("spec") or {}
    lines = [
        f"{meta.get('namespace')}/{meta.get('name')}: {status.get('phase') or 'Pending'}"
        + (f" ({status['reason']})" if status.get("reason") else ""),
        f"  maps {status.get('maps', '-')}, reduces {status.get('reduces', '-')}",
    ]
    if status.get("message"):
        lines.append(f"  message: {status['message']}")
    output = (spec.get("output") or {}).get("path")
    if output:
        lines.append(f"  output: {output}")
    if status.get("report"):
        lines.append(f"  report: {status['report']}")
    bundle = (spec.get("app") or {}).get("bundle")
    if bundle:
        where = bundle.get("configMap") or bundle.get("url")
        lines.append(f"  code bundle: {where} (sha256 {str(bundle.get('sha256'))[:12]})")
    for condition in status.get("conditions") or []:
        lines.append(
            f"  {condition.get('type')}={condition.get('status')}"
            f" {condition.get('reason') or ''}: {condition.get('message') or ''}".rstrip(": ")
        )
    return lines


def pick_pod(pods: Sequence[Mapping[str, Any]], role: str, index: int) -> Mapping[str, Any] | None:
    """The newest attempt of one slot (``kubemr logs --role mapper --index 3``)."""
    slot = [
        p
        for p in pods
        if (p.get("metadata") or {}).get("labels", {}).get(manifests.LABEL_ROLE) == role
        and (p.get("metadata") or {}).get("labels", {}).get(manifests.LABEL_INDEX, "0")
        == str(index)
    ]

    def attempt(pod: Mapping[str, Any]) -> int:
        return int(pod["metadata"]["labels"].get(manifests.LABEL_ATTEMPT, "0"))

    return max(slot, key=attempt) if slot else None
