"""The kind node image for Kubernetes v1.36.3, built offline from source.

The steps, each cached by its inputs (docs/kind.md has the figures):

1. a Debian bookworm root filesystem from ``debootstrap --variant=minbase``, imported as
   ``kubemr-kind/debian:bookworm`` (our stand-in for debian:*-slim);
2. the base image: kind's images/base/Dockerfile redone in tests/kind/images/base with
   kind's own files (from the Go module cache) and containerd, runc, crictl and the CNI
   plugins built from their Go modules;
3. the images a kind node preloads, under the names kubeadm and kind expect: the
   control-plane components and kube-proxy (from tests/cluster, localkube's module),
   etcd, CoreDNS, pause (tests/kind/images/pause/pause.c), kindnetd (our stand-in,
   tests/cluster/cmd/kindnetd) and the local-path provisioner and its helper;
4. a Kubernetes server tarball in the release layout (``kubernetes/version``,
   ``kubernetes/server/bin/``) and ``kind build node-image --type file`` on it, with our
   base image: kind's own node-image build.

kind's build pulls every image it needs that is not in the tarball's image archives, and
it learns what an archive holds from its ``repositories`` entry when that comes first
(``manifest.json`` names only the first image). So the images kubeadm and kind want
besides the four Kubernetes ones travel in ``kube-proxy.tar`` as one archive whose
``repositories`` entry comes first: nothing is pulled.
"""

from __future__ import annotations

import gzip
import io
import json
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from kindcluster import artefacts, debian, gobuilds, images, layout
from kindcluster.engine import Engine, EngineError

DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
DEBIAN_TAG = "kubemr-kind/debian:bookworm"
BASE_TAG = "kubemr-kind/base:" + gobuilds.KIND_VERSION
NODE_TAG = "kubemr.local/kind-node:" + gobuilds.KUBERNETES_VERSION
"""The node image kind-config.yaml names."""

KUBE_IMAGES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
KUBEADM_ETCD = "registry.k8s.io/etcd:3.6.8-0"
KUBEADM_COREDNS = f"registry.k8s.io/coredns/coredns:{gobuilds.COREDNS_VERSION}"
SANDBOX_IMAGE = "registry.k8s.io/pause:3.10"
"""The sandbox image kind's containerd configuration names (images/base/files)."""
KINDNETD_IMAGE = "docker.io/kindest/kindnetd:v20260820-69b56db7"
LOCAL_PATH_IMAGE = "docker.io/kindest/local-path-provisioner:v20260820-69b56db7"
LOCAL_PATH_HELPER_IMAGE = "docker.io/kindest/local-path-helper:v20260131-7181c60a"
"""The names kind v0.33 expects (pkg/build/nodeimage/const_cni.go, const_storage.go)."""
KUBE_ROUTER_IMAGE = f"docker.io/kubemr-kind/kube-router:{gobuilds.KUBE_ROUTER_VERSION}"
"""The NetworkPolicy engine's image (tests/kind/images/kube-router/kube-router.yaml)."""
STATIC_PATH = "PATH=/usr/local/bin:/usr/bin:/bin"


def _kind_module() -> Path:
    """sigs.k8s.io/kind in the Go module cache (downloaded if needed)."""
    result = subprocess.run(
        ["go", "mod", "download", "-json", f"sigs.k8s.io/kind@{gobuilds.KIND_VERSION}"],
        capture_output=True,
        text=True,
        check=False,
        cwd=layout.COREDNS_MODULE,
    )

    info = json.loads(result.stdout or "{}")
    if result.returncode != 0 or "Dir" not in info:
        raise EngineError(f"go mod download sigs.k8s.io/kind: {info.get('Error', result.stderr)}")
    return Path(info["Dir"])


def debian_rootfs() -> Path:
    """A cached ``rootfs.tar`` of ``debootstrap --variant=minbase``."""
    key = artefacts.Key("debootstrap", "minbase", DEBIAN_SUITE, DEBIAN_MIRROR)

    def build(folder: Path) -> None:
        debian.ensure_command("debootstrap", "debootstrap", "the node image's root filesystem")
        target = folder / "rootfs"
        command = ["debootstrap", "--variant=minbase", DEBIAN_SUITE, str(target), DEBIAN_MIRROR]
        try:
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        finally:
            _unmount_below(target)  # a failed debootstrap can leave /proc mounted in it
        subprocess.run(
            ["tar", "--numeric-owner", "-C", str(target), "-cf", str(folder / "rootfs.tar"), "."],
            check=True,
        )
        shutil.rmtree(target)

    return artefacts.cached("rootfs", f"debian-{DEBIAN_SUITE}", key.hexdigest(), build)


def _unmount_below(root: Path) -> None:
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    for mount in sorted((m for m in mounts if m.startswith(f"{root}/")), reverse=True):
        subprocess.run(["umount", "-l", mount], check=False)


def debian_image(engine: Engine) -> Path:
    rootfs = debian_rootfs()

    def build() -> None:
        engine.docker("import", "--change", 'CMD ["bash"]', str(rootfs / "rootfs.tar"), DEBIAN_TAG)

    return images.ensure(engine, "debian", [DEBIAN_TAG], rootfs.name, build)


def _copy(source: Path, target: Path, mode: int) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    target.chmod(mode)


def base_image(engine: Engine, binaries: dict[str, Path]) -> Path:
    """kind's base image, from kind's files and our binaries."""
    debian = debian_image(engine)
    kind_files = _kind_module() / "images" / "base" / "files"
    dockerfile = layout.IMAGES_DIR / "base" / "Dockerfile"
    wanted: tuple[str, ...] = ("containerd", "ctr", "containerd-shim-runc-v2", "runc", "crictl")
    wanted += ("host-local", "loopback", "ptp", "portmap")
    ours = layout.IMAGES_DIR / "base" / "kubemr"
    key = artefacts.Key(debian.name).tree(kind_files).tree(ours).file(dockerfile)
    for name in wanted:
        key.text(binaries[name].parent.name + "/" + name)
    with images.scratch_dir() as scratch:
        context = Path(scratch)
        for source in kind_files.rglob("*"):
            if source.is_file():
                target = context / "files" / source.relative_to(kind_files)
                executable = "/bin/" in f"/{source.relative_to(kind_files)}"
                _copy(source, target, 0o755 if executable else 0o644)
        for name in wanted:
            _copy(binaries[name], context / "bin" / name, 0o755)
        shutil.copytree(ours, context / "kubemr")
        return images.from_dockerfile(
            engine, "base", [BASE_TAG], dockerfile, context, key, {"BASE_IMAGE": DEBIAN_TAG}
        )


def _pause_binary(folder: Path) -> None:
    command = ["gcc", "-O2", "-static", "-o", str(folder / "pause"), str(layout.PAUSE_SOURCE)]
    subprocess.run(command, check=True)


def component_images(engine: Engine, binaries: dict[str, Path]) -> dict[str, list[str]]:
    """Build every preloaded image; return archive name -> the tags it must carry."""
    version = gobuilds.KUBERNETES_VERSION
    archives: dict[str, list[str]] = {}
    for name in KUBE_IMAGES:
        tag = f"registry.k8s.io/{name}:{version}"
        images.from_files(
            engine, name, [tag], {f"/usr/local/bin/{name}": binaries[name]}, [f"ENV {STATIC_PATH}"]
        )
        archives[name] = [tag]
    debian = debian_image(engine)
    with images.scratch_dir() as scratch:
        context = Path(scratch)
        wrapper = layout.IMAGES_DIR / "kube-proxy" / "kube-proxy"
        _copy(binaries["kube-proxy"], context / "kube-proxy.bin", 0o755)
        _copy(wrapper, context / "kube-proxy", 0o755)
        mode = layout.IMAGES_DIR / "kube-proxy" / "with-node-iptables"
        _copy(mode, context / mode.name, 0o755)
        key = artefacts.Key(debian.name).file(binaries["kube-proxy"]).file(wrapper).file(mode)
        proxy_tag = f"registry.k8s.io/kube-proxy:{version}"
        proxy = images.from_dockerfile(
            engine,
            "kube-proxy",
            [proxy_tag],
            layout.IMAGES_DIR / "kube-proxy" / "Dockerfile",
            context,
            key,
            {"BASE_IMAGE": DEBIAN_TAG},
        )
    with images.scratch_dir() as scratch:
        context = Path(scratch)
        _copy(binaries["kube-router"], context / "kube-router", 0o755)
        images.from_dockerfile(
            engine,
            "kube-router",
            [KUBE_ROUTER_IMAGE],
            layout.IMAGES_DIR / "kube-router" / "Dockerfile",
            context,
            artefacts.Key(proxy.name).file(binaries["kube-router"]),
            {"BASE_IMAGE": proxy_tag},
        )
    pause = artefacts.cached(
        "go",
        "pause",
        artefacts.Key("gcc -O2 -static").file(layout.PAUSE_SOURCE).hexdigest(),
        _pause_binary,
    )
    extras = {
        "etcd": ([KUBEADM_ETCD], {"/usr/local/bin/etcd": binaries["etcd"]}, [f"ENV {STATIC_PATH}"]),
        "coredns": (
            [KUBEADM_COREDNS],
            {"/coredns": binaries["coredns"]},
            ['ENTRYPOINT ["/coredns"]'],
        ),
        "pause": ([SANDBOX_IMAGE], {"/pause": pause / "pause"}, ['ENTRYPOINT ["/pause"]']),
        "kindnetd": (
            [KINDNETD_IMAGE],
            {"/bin/kindnetd": binaries["kindnetd"]},
            ['ENTRYPOINT ["/bin/kindnetd"]'],
        ),
        "local-path-provisioner": (
            [LOCAL_PATH_IMAGE],
            {"/usr/local/bin/local-path-provisioner": binaries["local-path-provisioner"]},
            [f"ENV {STATIC_PATH}"],
        ),
    }
    for name, (tags, files, changes) in extras.items():
        images.from_files(engine, name, tags, files, changes)

    def helper() -> None:
        engine.docker("tag", DEBIAN_TAG, LOCAL_PATH_HELPER_IMAGE)

    images.ensure(engine, "local-path-helper", [LOCAL_PATH_HELPER_IMAGE], debian.name, helper)
    archives["kube-proxy"] = [
        proxy_tag,
        KUBEADM_ETCD,
        KUBEADM_COREDNS,
        SANDBOX_IMAGE,
        KINDNETD_IMAGE,
        LOCAL_PATH_IMAGE,
        LOCAL_PATH_HELPER_IMAGE,
        KUBE_ROUTER_IMAGE,
    ]
    return archives


def qualified(repository: str) -> str:
    """A repository name as kind writes it: ``kindest/kindnetd`` -> ``docker.io/kindest/kindnetd``.

    ``docker save`` drops Docker Hub's domain, and kind compares the archive's names with
    its own fully qualified ones, so an unqualified name would be pulled.
    """
    first, _, rest = repository.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return repository
    return f"docker.io/{repository}" if rest else f"docker.io/library/{repository}"


def _repositories_first(source: Path, target: Path) -> None:
    """Copy a ``docker save`` archive with its ``repositories`` entry first, names qualified."""
    with tarfile.open(source) as archive, tarfile.open(target, "w") as out:
        members = archive.getmembers()
        first = [m for m in members if m.name == "repositories"]
        if not first:
            raise EngineError(f"{source}: docker save wrote no repositories entry")
        saved = archive.extractfile(first[0])
        assert saved is not None
        names = {qualified(repo): tags for repo, tags in json.loads(saved.read()).items()}
        text = json.dumps(names).encode()
        entry = tarfile.TarInfo("repositories")
        entry.size, entry.mode, entry.mtime = len(text), first[0].mode, first[0].mtime
        out.addfile(entry, io.BytesIO(text))
        for member in (m for m in members if m.name != "repositories"):
            data = archive.extractfile(member) if member.isfile() else None
            out.addfile(member, data)


def server_tarball(
    engine: Engine, binaries: dict[str, Path], archives: dict[str, list[str]]
) -> Path:
    """``kubernetes-server-linux-amd64.tar.gz`` in the release layout, cached."""
    layout_version = "archives: repositories first, names qualified"
    key = artefacts.Key(gobuilds.KUBERNETES_VERSION, layout_version)
    for name in ("kubeadm", "kubelet", "kubectl"):
        key.text(binaries[name].parent.name + "/" + name)
    for name, tags in sorted(archives.items()):
        key.text(name)
        for tag in tags:
            key.text(tag + "@" + str(images.image_id(engine, tag)))

    def build(folder: Path) -> None:
        tree = folder / "tree"
        bin_dir = tree / "kubernetes" / "server" / "bin"
        bin_dir.mkdir(parents=True)
        (tree / "kubernetes" / "version").write_text(gobuilds.KUBERNETES_VERSION + "\n")
        for name in ("kubeadm", "kubelet", "kubectl"):
            _copy(binaries[name], bin_dir / name, 0o755)
        for name, tags in archives.items():
            saved = folder / f"{name}.saved.tar"
            engine.docker("save", "-o", str(saved), *tags)
            _repositories_first(saved, bin_dir / f"{name}.tar")
            saved.unlink()
        with (
            gzip.open(folder / "kubernetes-server-linux-amd64.tar.gz", "wb", compresslevel=1) as gz,
            tarfile.open(fileobj=gz, mode="w") as archive,
        ):
            archive.add(tree / "kubernetes", arcname="kubernetes")
        shutil.rmtree(tree)

    return artefacts.cached("server", "kubernetes-server", key.hexdigest(), build)


def node_image(engine: Engine) -> str:
    """Build (or find) the node image; return its tag."""
    binaries = gobuilds.all_binaries()
    base = base_image(engine, binaries)
    archives = component_images(engine, binaries)
    tarball = server_tarball(engine, binaries, archives)
    kind = binaries["kind"]
    key = artefacts.Key(base.name, tarball.name, kind.parent.name)

    def build() -> None:
        command = [str(kind), "build", "node-image", "--type", "file", "--base-image", BASE_TAG]
        command += ["--image", NODE_TAG, str(tarball / "kubernetes-server-linux-amd64.tar.gz")]
        # kind extracts the tarball into $TMPDIR/k8s-tar-extract-* and never removes it
        # (1 GB a build): give it a temporary folder of ours, removed whatever happens.
        with tempfile.TemporaryDirectory(prefix="kubemr-node-image-") as scratch:
            env = {**engine.env, "TMPDIR": scratch}
            result = subprocess.run(command, env=env, check=False)
        if result.returncode != 0:
            raise EngineError(f"kind build node-image failed (exit {result.returncode})")

    images.ensure(engine, "node", [NODE_TAG], key.hexdigest(), build)
    return NODE_TAG
