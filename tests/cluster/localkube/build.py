"""Building the control-plane binaries from ``tests/cluster/go.mod``.

Three binaries go to ``.cluster/bin``: ``localkube`` (etcd, kube-apiserver,
kube-controller-manager, kube-scheduler and kubectl, chosen by subcommand or by
the name of the link it is called through), ``helm`` and ``kwok``. The build is
skipped when a stamp of the pins (go.mod, go.sum, the Go sources, the toolchain)
matches.

The same module also builds the kind node image's Kubernetes binaries
(tests/kind/kindcluster/gobuilds.py), so both compile the Kubernetes libraries at the
same versions: whichever builds second finds them in Go's build cache. :func:`compiling`
makes the two take turns instead of compiling the same packages side by side.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from localkube import layout

LINKS = ("kubectl", "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
"""Names under ``bin/`` that point at ``localkube``."""


class BuildError(RuntimeError):
    """The Go toolchain is missing or ``go build`` failed."""


def module_version(module: str) -> str:
    """The version ``tests/cluster/go.mod`` requires of ``module``."""
    text = (layout.GO_MODULE / "go.mod").read_text()
    match = re.search(rf"^\s*{re.escape(module)} (v\S+)", text, re.MULTILINE)
    if match is None:
        raise BuildError(f"tests/cluster/go.mod: no requirement on {module}")
    return match.group(1)


def kubernetes_version() -> str:
    return module_version("k8s.io/kubernetes")


def go_command() -> str:
    """The Go toolchain's ``go`` (it builds the control plane and locates kwok's stages)."""
    go = shutil.which("go")
    if go is None:
        raise BuildError("the Go toolchain (`go`) is not on PATH; it builds the control plane")
    return go


@contextlib.contextmanager
def compiling() -> Iterator[None]:
    """Hold the build lock of this Go module for the duration of a ``go build``.

    The lock file lives in Go's build cache (``go env GOCACHE``), the resource it guards:
    two builds of this module that share a cache (localkube in the foreground and the kind
    node image in the background of ``make test``) run one after the other, and the second
    links what the first compiled instead of compiling it a second time beside it.
    """
    cache = subprocess.run(
        [go_command(), "env", "GOCACHE"], check=True, capture_output=True, text=True
    ).stdout.strip()
    folder = Path(cache) if cache and cache != "off" else layout.REPO_ROOT / ".cluster"
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "kubemr-tests-cluster-build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _ldflags_localkube() -> str:
    return kubernetes_ldflags(kubernetes_version())


def kubernetes_ldflags(version: str) -> str:
    """Linker flags that stamp Kubernetes binaries with ``version`` (what ``/version`` and
    ``kubectl version`` report), as Kubernetes' own release build does. Also used by the
    kind tier's node build (tests/kind/kindcluster/gobuilds.py)."""
    major, minor = version.lstrip("v").split(".")[:2]
    stamps = {
        "gitVersion": version,
        "gitMajor": major,
        "gitMinor": minor,
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
    }
    flags = ["-s", "-w"]
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [f"-X {package}.{key}={value}" for key, value in stamps.items()]
    return " ".join(flags)


def _ldflags_helm() -> str:
    version = module_version("helm.sh/helm/v4")
    package = "helm.sh/helm/v4/internal/version"
    return f"-s -w -X {package}.version={version} -X {package}.gitTreeState=clean"


KWOK = "sigs.k8s.io/kwok"
"""The simulated nodes' module (``tool`` in tests/cluster/go.mod)."""


def _ldflags_kwok() -> str:
    return "-s -w"  # (kwok's version is in its source: pkg/consts)


def stamp() -> str:
    """A hash of everything the binaries are built from."""
    digest = hashlib.sha256()
    sources = [layout.GO_MODULE / "go.mod", layout.GO_MODULE / "go.sum"]
    sources += sorted((layout.GO_MODULE / "cmd").rglob("*.go"))
    for path in sources:
        digest.update(path.relative_to(layout.GO_MODULE).as_posix().encode())
        digest.update(path.read_bytes())
    digest.update((_ldflags_localkube() + _ldflags_helm() + _ldflags_kwok()).encode())
    go_version = subprocess.run(
        [go_command(), "version"], check=True, capture_output=True, text=True
    ).stdout
    digest.update(go_version.encode())
    return digest.hexdigest()


def is_current(paths: layout.Layout) -> bool:
    """True when ``bin/`` holds binaries built from the current pins."""
    built = (paths.localkube, paths.helm, paths.kwok, paths.build_stamp)
    if not all(path.exists() for path in built):
        return False
    return paths.build_stamp.read_text().strip() == stamp()


def build(paths: layout.Layout, force: bool = False) -> bool:
    """Build the binaries unless they are current; return True if a build ran."""
    if not force and is_current(paths):
        return False
    paths.bin.mkdir(parents=True, exist_ok=True)
    environment = dict(os.environ)
    environment.setdefault("GOFLAGS", "-buildvcs=false")
    if "-p=" not in environment["GOFLAGS"]:
        environment["GOFLAGS"] += f" -p={os.cpu_count() or 2}"
    environment.setdefault("CGO_ENABLED", "0")
    targets = [
        (paths.localkube, "./cmd/localkube", _ldflags_localkube()),
        (paths.helm, "./cmd/helm", _ldflags_helm()),
        # simulated nodes (localkube.kwok): a `tool` of this module, so it links the
        # Kubernetes libraries compiled for localkube instead of compiling its own
        (paths.kwok, f"{KWOK}/cmd/kwok", _ldflags_kwok()),
    ]
    with compiling():
        for output, package, ldflags in targets:
            _go_build(output, package, ldflags, environment)
    for name in LINKS:
        link = paths.bin / name
        link.unlink(missing_ok=True)
        link.symlink_to(paths.localkube.name)
    paths.build_stamp.write_text(stamp() + "\n")
    return True


def _go_build(output: Path, package: str, ldflags: str, environment: dict[str, str]) -> None:
    started = time.monotonic()
    print(f"localkube: go build {package} -> {output}", file=sys.stderr, flush=True)
    temporary = output.with_suffix(".tmp")
    command = [go_command(), "build", "-trimpath", f"-ldflags={ldflags}", "-o", str(temporary)]
    command.append(package)
    result = subprocess.run(command, cwd=layout.GO_MODULE, env=environment, check=False)
    if result.returncode != 0:
        raise BuildError(f"`{' '.join(command)}` failed with exit code {result.returncode}")
    temporary.replace(output)
    elapsed = time.monotonic() - started
    print(f"localkube: built {output.name} in {elapsed:.0f} s", file=sys.stderr, flush=True)


def binary(paths: layout.Layout, name: str) -> Path:
    return paths.bin / name
