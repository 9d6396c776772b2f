"""The repository as the examples see it, on the kind cluster's data volume.

``examples/*-job.yaml`` use paths relative to the repository root (``out/...``,
``../shared/data/gutenberg``, ``examples/apps/...``), as ``kubemr run`` resolves them. On
kind, examples/kind-values.yaml makes ``/kubemr-data/work`` the job pods' working
directory and mounts the node's ``/kubemr-data`` (this repository's ``.kind/data``) in
every job pod. :func:`stage` lays ``.kind/data`` out like the checkout for those paths;
:func:`install_values` applies the values to the installed chart, :func:`restore_values`
takes them back (the kind tests' other jobs declare their own volumes).
"""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

from kindcluster import cluster, layout

WORK = layout.DATA / "work"
"""The job pods' working directory as this machine sees it (/kubemr-data/work in pods)."""
VALUES = layout.REPO_ROOT / "examples" / "kind-values.yaml"
BOOKS = layout.REPO_ROOT.parent / "shared" / "data" / "gutenberg"
"""The sample books the examples read (``../shared/data/gutenberg``)."""
GZIP_BOOKS = "out/books-gz"
"""Where ``make example-data`` puts gzip copies of the books (wordcount-gzip-job.yaml)."""


def stage() -> Path:
    """``.kind/data/work`` and ``.kind/data/shared`` laid out like this checkout and its
    ``../shared`` for the examples' paths; returns the working directory."""
    apps = WORK / "examples" / "apps"
    shutil.rmtree(apps, ignore_errors=True)
    shutil.copytree(layout.REPO_ROOT / "examples" / "apps", apps)
    books = layout.DATA / "shared" / "data" / "gutenberg"
    books.mkdir(parents=True, exist_ok=True)
    out = WORK / "out"
    (out / GZIP_BOOKS.removeprefix("out/")).mkdir(parents=True, exist_ok=True)
    for book in sorted(BOOKS.glob("*.txt")):
        shutil.copyfile(book, books / book.name)
        target = WORK / GZIP_BOOKS / f"{book.name}.gz"
        target.write_bytes(gzip.compress(book.read_bytes(), compresslevel=9, mtime=0))
    if os.geteuid() == 0:
        os.chown(out, cluster.RUNTIME_UID, cluster.RUNTIME_UID)
    else:
        out.chmod(0o777)
    return WORK


def _helm(tools: cluster.Tools, *args: str) -> None:
    cluster.run_checked(
        [
            *(str(tools.helm), "--kubeconfig", str(layout.KUBECONFIG)),
            *("upgrade", cluster.RELEASE, "charts/kubemr", "-n", cluster.NAMESPACE),
            *("--reuse-values", "--wait", "--timeout", cluster.HELM_TIMEOUT, *args),
        ],
        tools.engine.env,
        "helm upgrade",
    )


def install_values(tools: cluster.Tools) -> None:
    """The installed chart with examples/kind-values.yaml on top of its values."""
    _helm(tools, "-f", str(VALUES))


def restore_values(tools: cluster.Tools) -> None:
    """The installed chart without the examples' job defaults."""
    _helm(
        tools,
        "--set-string",
        "jobDefaults.workingDir=",
        "--set-json",
        "jobDefaults.volumes=[]",
        "--set-json",
        "jobDefaults.volumeMounts=[]",
    )
