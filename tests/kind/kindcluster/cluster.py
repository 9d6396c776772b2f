"""The kind cluster of ``make kind-up`` / ``make kind-down`` and of tests/kind.

:func:`up` does what docs/install.md's kind section tells a user to do, with the images
built here instead of pulled: create the cluster of kind-config.yaml, build the kubemr
image from images/Dockerfile, ``kind load`` it, ``helm install`` charts/kubemr; the
kubeconfig goes to ``.kind/kubeconfig``. :func:`down` deletes the cluster and kind's
network, stops our dockerd (never a user's), and fails if a node container, the network
or one of our engine's processes is left.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil
import yaml
from localkube import deadlines

from kindcluster import artefacts, engine, gobuilds, images, layout, nodeimage

CLUSTER_NAME = "kubemr"
"""The cluster name in kind-config.yaml."""
NETWORK = "kind"
"""The Docker network kind creates for its clusters."""
PYTHON_BASE = "python:3.11.7-slim-bookworm"
"""images/Dockerfile's default PYTHON_IMAGE."""
EXTRA_CA = Path("/usr/local/share/ca-certificates")
"""The build machine's extra CA certificates, which the Python stand-in trusts too."""
RUNTIME_UID = 65532
"""The UID of the kubemr image (images/Dockerfile) and the chart's pods."""
RELEASE = "kubemr"
NAMESPACE = "kubemr-system"
CREATE_WAIT = "300s"
"""How long ``kind create cluster`` waits for the control plane (``--wait``)."""
HELM_TIMEOUT = "300s"
POLICY_ENGINE_WAIT = "180s"
"""How long ``kubectl rollout status`` waits for kube-router on every node."""
IGNORED = ("__pycache__", ".egg-info", ".pyc", ".so")
"""What .dockerignore keeps out of the image's build context (and so out of its key)."""
NODES_GONE = deadlines.Deadline("kind_nodes_gone", 120.0)


class ClusterError(RuntimeError):
    """A step of bringing the kind cluster up or down failed."""


@dataclasses.dataclass(frozen=True)
class Tools:
    """What talks to the cluster."""

    engine: engine.Engine
    kind: Path
    kubectl: Path
    helm: Path

    def kubectl_command(self) -> list[str]:
        return [str(self.kubectl), "--kubeconfig", str(layout.KUBECONFIG)]


def _helm() -> Path:
    built = layout.REPO_ROOT / ".cluster" / "bin" / "helm"
    if built.exists():
        return built
    found = shutil.which("helm")
    if found is None:
        raise ClusterError("helm is missing: `make cluster-build` builds .cluster/bin/helm")
    return Path(found)


def chart_image() -> str:
    """The image charts/kubemr runs by default: image.repository and the appVersion."""
    chart = yaml.safe_load((layout.REPO_ROOT / "charts" / "kubemr" / "Chart.yaml").read_text())
    values = yaml.safe_load((layout.REPO_ROOT / "charts" / "kubemr" / "values.yaml").read_text())
    return f"{values['image']['repository']}:{values['image']['tag'] or chart['appVersion']}"


def python_base(tools_engine: engine.Engine) -> None:
    """Make images/Dockerfile's base available: pulled where a registry answers, else our
    stand-in (tests/kind/images/python) under the same name."""
    if images.image_id(tools_engine, PYTHON_BASE) is not None:
        return
    pulled = subprocess.run(
        ["docker", "pull", PYTHON_BASE], env=tools_engine.env, capture_output=True, check=False
    )
    if pulled.returncode == 0:
        return
    print(f"kind: {PYTHON_BASE} cannot be pulled: building the local stand-in", file=sys.stderr)
    debian = nodeimage.debian_image(tools_engine)
    dockerfile = layout.IMAGES_DIR / "python" / "Dockerfile"
    with images.scratch_dir() as scratch:
        context = Path(scratch)
        (context / "ca").mkdir()
        for certificate in sorted(EXTRA_CA.glob("*.crt")):
            shutil.copyfile(certificate, context / "ca" / certificate.name)
        images.from_dockerfile(
            tools_engine,
            "python-standin",
            [PYTHON_BASE],
            dockerfile,
            context,
            artefacts.Key(debian.name).tree(context),
            {"BASE_IMAGE": nodeimage.DEBIAN_TAG},
        )


def kubemr_image(tools_engine: engine.Engine) -> str:
    """Build images/Dockerfile (the one users build) as the chart's default image."""
    python_base(tools_engine)
    root = layout.REPO_ROOT
    sources = [root / "pyproject.toml", root / "README.md", root / ".dockerignore"]
    for folder in ("runtime", "operator", "client"):
        sources += [
            p
            for p in (root / folder).rglob("*")
            if p.is_file() and not any(part.endswith(IGNORED) for part in p.parts)
        ]
    key = artefacts.Key(str(images.image_id(tools_engine, PYTHON_BASE))).tree(root, sources)
    tag = chart_image()
    images.from_dockerfile(tools_engine, "kubemr", [tag], root / "images" / "Dockerfile", root, key)
    return tag


def tools(tools_engine: engine.Engine) -> Tools:
    binaries = gobuilds.all_binaries()
    return Tools(tools_engine, binaries["kind"], binaries["kubectl"], _helm())


def build() -> tuple[engine.Engine, str, str]:
    """Build (or find) the images ``up`` needs; return the engine, node image, kubemr image.

    Helm is not among them: ``make test`` runs this beside ``make cluster-build``, which
    builds helm, so only ``up`` looks for it (see tools())."""
    started = time.monotonic()
    our_engine = engine.ensure()
    node = nodeimage.node_image(our_engine)
    image = kubemr_image(our_engine)
    artefacts.record("build (all, cached or not)", time.monotonic() - started, "done")
    return our_engine, node, image


def exists(cluster_tools: Tools) -> bool:
    result = subprocess.run(
        [str(cluster_tools.kind), "get", "clusters"],
        env=cluster_tools.engine.env,
        capture_output=True,
        text=True,
        check=False,
    )
    return CLUSTER_NAME in result.stdout.split()


def run_checked(command: list[str], env: dict[str, str], what: str) -> str:
    result = subprocess.run(
        command, env=env, cwd=layout.REPO_ROOT, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise ClusterError(f"{what}: `{' '.join(command)}`: {result.stderr.strip()[-2000:]}")
    return result.stdout


def prepare_data() -> None:
    """``.kind/data`` (every node's /kubemr-data): ``out/`` writable by the image's UID."""
    out = layout.DATA / "out"
    out.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        os.chown(out, RUNTIME_UID, RUNTIME_UID)
    else:
        out.chmod(0o777)


def up() -> Tools:
    """The cluster running with the chart installed; idempotent."""
    our_engine, _node, image = build()
    cluster_tools = tools(our_engine)
    env = cluster_tools.engine.env
    prepare_data()
    if not exists(cluster_tools):
        started = time.monotonic()
        run_checked(
            [
                *(
                    str(cluster_tools.kind),
                    "create",
                    "cluster",
                    "--config",
                    str(layout.KIND_CONFIG),
                ),
                *("--kubeconfig", str(layout.KUBECONFIG), "--wait", CREATE_WAIT),
            ],
            env,
            "kind create cluster",
        )
        artefacts.record("kind create cluster", time.monotonic() - started, "done")
    else:
        run_checked(
            [
                *(str(cluster_tools.kind), "export", "kubeconfig", "--name", CLUSTER_NAME),
                *("--kubeconfig", str(layout.KUBECONFIG)),
            ],
            env,
            "kind export kubeconfig",
        )
    network_policy_engine(cluster_tools)
    started = time.monotonic()
    run_checked(
        [str(cluster_tools.kind), "load", "docker-image", image, "--name", CLUSTER_NAME],
        env,
        "kind load docker-image",
    )
    artefacts.record("kind load docker-image", time.monotonic() - started, "done")
    started = time.monotonic()
    run_checked(
        [
            *(str(cluster_tools.helm), "--kubeconfig", str(layout.KUBECONFIG)),
            *("upgrade", "--install", RELEASE, "charts/kubemr", "-n", NAMESPACE),
            *("--create-namespace", "--wait", "--timeout", HELM_TIMEOUT),
            # A rebuilt image keeps its tag: the ID in the pod template rolls the operator.
            "--set-string",
            f"podAnnotations.kubemr\\.io/image-id={images.image_id(cluster_tools.engine, image)}",
        ],
        env,
        "helm install",
    )
    artefacts.record("helm install", time.monotonic() - started, "done")
    return cluster_tools


def network_policy_engine(cluster_tools: Tools) -> None:
    """kube-router's firewall (preloaded in the node image) applied and ready on every node,
    so that NetworkPolicies are enforced as kind's own kindnetd enforces them."""
    started = time.monotonic()
    kubectl = cluster_tools.kubectl_command()
    env = cluster_tools.engine.env
    wait = f"--timeout={POLICY_ENGINE_WAIT}"
    run_checked([*kubectl, "apply", "-f", str(layout.NETWORK_POLICY_ENGINE)], env, "kube-router")
    run_checked(
        [*kubectl, "-n", "kube-system", "rollout", "status", "daemonset/kube-router", wait],
        env,
        "kube-router on every node",
    )
    artefacts.record("network policy engine ready", time.monotonic() - started, "done")


def _node_containers(cluster_engine: engine.Engine) -> list[str]:
    out = cluster_engine.docker(
        "ps",
        "-a",
        "--filter",
        f"label=io.x-k8s.kind.cluster={CLUSTER_NAME}",
        "--format",
        "{{.Names}}",
    )
    return out.split()


def _engine_processes() -> list[str]:
    """Processes that belong to our engine (dockerd, its containerd, shims)."""
    marker = str(layout.engine_root())
    found = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        command = " ".join(process.info["cmdline"] or [])
        if marker in command:
            found.append(f"{process.info['pid']} {command[:120]}")
    return found


def down() -> str:
    """Delete the cluster and kind's network, stop our dockerd; say what was done."""
    done = []
    current = engine.current()
    if current is not None:
        kind = gobuilds.remote(gobuilds.REMOTES[0]) / "kind"
        listed = subprocess.run(
            [str(kind), "get", "clusters"],
            env=current.env,
            capture_output=True,
            text=True,
            check=False,
        )
        existed = CLUSTER_NAME in listed.stdout.split()
        subprocess.run(
            [str(kind), "delete", "cluster", "--name", CLUSTER_NAME],
            env=current.env,
            check=True,
            capture_output=True,
        )
        deadlines.poll(
            NODES_GONE,
            lambda: True if not _node_containers(current) else None,
            "the kind node containers to be gone",
            interval=0.5,
        )
        if existed:
            done.append("deleted cluster " + CLUSTER_NAME)
        networks = current.docker("network", "ls", "--format", "{{.Name}}").split()
        if NETWORK in networks:
            attached = json.loads(current.docker("network", "inspect", NETWORK))[0]["Containers"]
            if not attached:
                current.docker("network", "rm", NETWORK)
                done.append(f"removed network {NETWORK}")
        if current.ours and engine.stop():
            done.append("stopped our dockerd")
    if current is None or not current.ours:
        engine.stop()  # no dockerd of ours runs: detach what a killed one left mounted
    layout.KUBECONFIG.unlink(missing_ok=True)
    left = _engine_processes()
    if left:
        raise ClusterError("processes of our engine are left: " + "; ".join(left))
    if engine.current() is None and (mounted := engine.mounts()):
        raise ClusterError("mounts of our engine are left: " + "; ".join(mounted))
    return ", ".join(done) if done else "nothing was running"


def status() -> str:
    current = engine.current()
    if current is None:
        return "no Docker engine answers"
    owner = "ours" if current.ours else "the user's"
    lines = [f"engine: {owner} ({current.env.get('DOCKER_HOST', 'the default socket')})"]
    names = _node_containers(current)
    if names:
        stats = current.docker(
            "stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}} {{.CPUPerc}}", *names
        )
        lines += stats.strip().splitlines()
    else:
        lines.append(f"no node of cluster {CLUSTER_NAME}")
    return "\n".join(lines)
