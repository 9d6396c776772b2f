"""Every Go binary of the kind tier, built through the Go module proxy and cached.

Two sources:

* released modules, built as their READMEs say (``go install PACKAGE@VERSION``), each
  with its own go.mod's dependency versions: kind, containerd v2, runc, the CNI plugins,
  crictl, the local-path provisioner, kube-router;
* our modules: ``tests/cluster`` (localkube's module): kubelet, kubeadm, kubectl,
  kube-proxy, kube-apiserver, kube-controller-manager, kube-scheduler, etcd and our
  kindnetd; ``tests/kind/corednsbuild``: CoreDNS with the plugins of kubeadm's Corefile
  only (its release's dependency versions).

Each group lands in its own cache folder keyed by the packages, version, tags, flags and
the Go toolchain (and, for our module, go.mod, go.sum and its sources). Go's build cache
(``go env GOCACHE``) is shared as usual, so a new key relinks rather than recompiles.

The Kubernetes binaries come from localkube's own module, with its flags, so the two
compile the Kubernetes libraries once between them: a cold ``make test`` builds
localkube in the foreground and this group in the background, one after the other
(:func:`localkube.build.compiling`), and the second only compiles what the first lacked.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import subprocess
from pathlib import Path

from localkube import build
from localkube import layout as cluster_layout

from kindcluster import artefacts, debian, layout

KUBERNETES_VERSION = "v1.36.3"
"""The Kubernetes release of the node image (the k8s.io/kubernetes pin of tests/cluster/go.mod)."""
KIND_VERSION = "v0.33.0"
"""sigs.k8s.io/kind: the CLI, and the base-image files and node-image build we reuse."""
CONTAINERD_VERSION = "v2.4.2"
"""containerd 2.x: kubelet 1.36 needs a containerd 2 (Debian bookworm ships 1.6)."""
RUNC_VERSION = "v1.4.3"
"""The runc kind v0.33's own base image uses (Debian bookworm ships 1.1.5)."""
CNI_PLUGINS_VERSION = "v1.10.0"
CRI_TOOLS_VERSION = "v1.37.0"
COREDNS_VERSION = "v1.14.2"
"""The CoreDNS kubeadm v1.36.3 deploys (``kubeadm config images list``)."""
LOCAL_PATH_VERSION = "v0.0.30"
"""The newest local-path provisioner the module proxy serves (kind v0.33 ships v0.0.34)."""
KUBE_ROUTER_VERSION = "v2.1.0"
"""kube-router, run as the cluster's NetworkPolicy engine only (``--run-firewall``): the
newest the module proxy serves. kind's own engine (kube-network-policies, inside kindnetd)
needs the nftables ``queue`` statement, which this kernel lacks (CONFIG_NFT_QUEUE unset);
kube-router enforces with iptables and ipsets, which it has. Test clusters only: v2.1.0
has reported security flaws, and nothing of it ships with kubemr."""

BUILD_DEADLINE = 3600.0
"""Seconds one ``go`` command may take (a cold Kubernetes build on two busy cores)."""


class GoBuildError(RuntimeError):
    """``go install`` or ``go build`` failed."""


@dataclasses.dataclass(frozen=True)
class CLibrary:
    """A C library a cgo build links against: found by ``pkg-config``, else installed."""

    name: str
    """Its pkg-config name."""
    package: str
    """The Debian package with its headers and ``.pc`` file."""


@dataclasses.dataclass(frozen=True)
class Remote:
    """Packages of one released module, built with ``go install PACKAGE@VERSION``."""

    name: str
    """The cache folder's name."""
    packages: tuple[str, ...]
    version: str
    tags: str = ""
    ldflags: str = "-s -w"
    cgo: bool = False
    libraries: tuple[CLibrary, ...] = ()
    """C libraries cgo needs (a fresh Debian machine has none of their headers)."""


def _kube_ldflags() -> str:
    return build.kubernetes_ldflags(KUBERNETES_VERSION)


CONTAINERD = "github.com/containerd/containerd/v2"
CNI = "github.com/containernetworking/plugins/plugins"
REMOTES = (
    Remote("kind", ("sigs.k8s.io/kind",), KIND_VERSION),
    Remote(
        "containerd",
        tuple(f"{CONTAINERD}/cmd/{c}" for c in ("containerd", "ctr", "containerd-shim-runc-v2")),
        CONTAINERD_VERSION,
        tags="no_aufs no_zfs no_btrfs no_devmapper",
        ldflags=f"-s -w -X {CONTAINERD}/version.Version={CONTAINERD_VERSION}",
    ),
    Remote(
        "runc",
        ("github.com/opencontainers/runc",),
        RUNC_VERSION,
        tags="seccomp urfave_cli_no_docs",
        cgo=True,
        libraries=(CLibrary("libseccomp", "libseccomp-dev"),),
    ),
    Remote(
        "cni-plugins",
        (
            f"{CNI}/ipam/host-local",
            f"{CNI}/main/loopback",
            f"{CNI}/main/ptp",
            f"{CNI}/meta/portmap",
        ),
        CNI_PLUGINS_VERSION,
    ),
    Remote(
        "crictl",
        ("sigs.k8s.io/cri-tools/cmd/crictl",),
        CRI_TOOLS_VERSION,
        ldflags=f"-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version={CRI_TOOLS_VERSION}",
    ),
    Remote(
        "local-path-provisioner", ("github.com/rancher/local-path-provisioner",), LOCAL_PATH_VERSION
    ),
    Remote(
        "kube-router",
        ("github.com/cloudnativelabs/kube-router/v2/cmd/kube-router",),
        KUBE_ROUTER_VERSION,
        ldflags="-s -w -X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version="
        + KUBE_ROUTER_VERSION,
    ),
)

KUBERNETES_COMMANDS = (
    "kubelet",
    "kubeadm",
    "kubectl",
    "kube-proxy",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
)
LOCAL_TARGETS = {
    **{name: f"k8s.io/kubernetes/cmd/{name}" for name in KUBERNETES_COMMANDS},
    "etcd": "go.etcd.io/etcd/server/v3",
    "kindnetd": "./cmd/kindnetd",
}
"""Binary name -> package, built in tests/cluster (localkube's module)."""


@dataclasses.dataclass(frozen=True)
class Local:
    """Binaries of one of our Go modules under tests/kind, built with ``go build``."""

    name: str
    """The cache folder's name."""
    module: Path
    targets: dict[str, str]
    """Binary name -> package."""
    ldflags: str


def _locals() -> tuple[Local, ...]:
    return (
        Local("kubernetes", cluster_layout.GO_MODULE, LOCAL_TARGETS, _kube_ldflags()),
        Local(
            "coredns",
            layout.COREDNS_MODULE,
            {"coredns": "."},
            f"-s -w -X github.com/coredns/coredns/coremain.GitCommit={COREDNS_VERSION}",
        ),
    )


def _go_version() -> str:
    command = [build.go_command(), "version"]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def _env(cgo: bool, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, "CGO_ENABLED": "1" if cgo else "0", **(extra or {})}
    flags = env.get("GOFLAGS", "")
    if "-buildvcs" not in flags:
        flags += " -buildvcs=false"
    env["GOFLAGS"] = flags.strip()
    return env


def _run(command: list[str], env: dict[str, str], cwd: Path | None = None) -> None:
    result = subprocess.run(command, env=env, cwd=cwd, check=False, timeout=BUILD_DEADLINE)
    if result.returncode != 0:
        raise GoBuildError(f"`{' '.join(command)}` failed with exit code {result.returncode}")


def remote(spec: Remote) -> Path:
    """The folder holding the binaries of ``spec``, built if needed."""
    key = artefacts.Key(_go_version(), spec.version, spec.tags, spec.ldflags, str(spec.cgo))
    for package in spec.packages:
        key.text(package)

    def install(folder: Path) -> None:
        for library in spec.libraries:
            debian.ensure_library(library.name, library.package, f"building {spec.name}")
        command = [build.go_command(), "install", "-trimpath", f"-ldflags={spec.ldflags}"]
        if spec.tags:
            command.append(f"-tags={spec.tags}")
        command += [f"{package}@{spec.version}" for package in spec.packages]
        _run(command, _env(spec.cgo, {"GOBIN": str(folder)}))

    return artefacts.cached("go", spec.name, key.hexdigest(), install)


def local(spec: Local) -> Path:
    """The folder of the binaries built from one of our modules, built if needed."""
    sources = [spec.module / "go.mod", spec.module / "go.sum", *sorted(spec.module.rglob("*.go"))]
    key = artefacts.Key(_go_version(), spec.ldflags).tree(spec.module, sources)
    for name, package in sorted(spec.targets.items()):
        key.text(f"{name}={package}")

    def compile_all(folder: Path) -> None:
        shared = spec.module == cluster_layout.GO_MODULE
        with build.compiling() if shared else contextlib.nullcontext():
            for name, package in spec.targets.items():
                command = [build.go_command(), "build", "-trimpath", f"-ldflags={spec.ldflags}"]
                command += ["-o", str(folder / name), package]
                _run(command, _env(cgo=False), cwd=spec.module)

    return artefacts.cached("go", spec.name, key.hexdigest(), compile_all)


def all_binaries() -> dict[str, Path]:
    """Binary name -> path, for every Go binary of the kind tier (building what is missing)."""
    binaries: dict[str, Path] = {}
    for folder in [*(remote(spec) for spec in REMOTES), *(local(spec) for spec in _locals())]:
        for path in sorted(folder.iterdir()):
            binaries[path.name] = path
    return binaries
