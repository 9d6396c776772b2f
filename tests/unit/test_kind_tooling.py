"""The kind tier's tooling without Docker: the runtime wrapper, the cache, the pins."""

from __future__ import annotations

import fcntl
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from kindcluster import artefacts, cluster, debian, engine, gobuilds, nodeimage
from localkube import build

ROOT = Path(__file__).resolve().parents[2]
WRAPPER = ROOT / "tests" / "kind" / "engine" / "runc-capsfilter"


def capability_names() -> list[str]:
    text = WRAPPER.read_text()
    block = text.split("CAPABILITIES = (", 1)[1].split(").split()", 1)[0]
    return [f"CAP_{name}" for name in "".join(re.findall(r'"([^"]*)"', block)).split()]


def bounding() -> set[str]:
    names = capability_names()
    missing = set(engine.missing_capabilities())
    last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    return {name for bit, name in enumerate(names) if bit <= last and bit not in missing}


def run_wrapper(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(WRAPPER), *args],
        env={**os.environ, "CAPSFILTER_RUNC": "/bin/true"},
        capture_output=True,
        text=True,
        check=False,
    )


def process_with_every_capability() -> dict[str, object]:
    names = capability_names()
    return {"args": ["sh"], "capabilities": {k: list(names) for k in ("bounding", "effective")}}


@pytest.mark.parametrize("command", ["create", "run"])
def test_wrapper_keeps_only_grantable_capabilities_in_the_bundle(
    tmp_path: Path, command: str
) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"process": process_with_every_capability()}))
    result = run_wrapper("--root", "/run/x", command, "--bundle", str(tmp_path), "container-id")
    assert result.returncode == 0, result.stderr
    caps = json.loads((tmp_path / "config.json").read_text())["process"]["capabilities"]
    assert set(caps["bounding"]) == set(caps["effective"]) == bounding()


def test_wrapper_filters_the_process_file_of_exec(tmp_path: Path) -> None:
    process = tmp_path / "process.json"
    process.write_text(json.dumps(process_with_every_capability()))
    result = run_wrapper("exec", "--process", str(process), "--detach", "container-id")
    assert result.returncode == 0, result.stderr
    assert set(json.loads(process.read_text())["capabilities"]["bounding"]) == bounding()


def test_wrapper_leaves_other_commands_alone(tmp_path: Path) -> None:
    result = run_wrapper("state", "container-id")
    assert result.returncode == 0, result.stderr


def test_the_node_images_kubernetes_binaries_build_in_localkubes_module() -> None:
    kubernetes = next(spec for spec in gobuilds._locals() if spec.name == "kubernetes")
    assert kubernetes.module == ROOT / "tests" / "cluster"
    go_mod = (kubernetes.module / "go.mod").read_text()
    for package in kubernetes.targets.values():
        if not package.startswith("./"):
            assert f"\t{package}\n" in go_mod, f"{package} is not a tool of tests/cluster/go.mod"


def test_two_builds_of_the_kubernetes_module_take_turns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOCACHE", str(tmp_path))
    with build.compiling():
        (lock_file,) = tmp_path.glob("*.lock")
        with lock_file.open("w") as other, pytest.raises(BlockingIOError):
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    with lock_file.open("w") as other:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_saved_archive_gets_its_repositories_entry_first(tmp_path: Path) -> None:
    source = tmp_path / "saved.tar"
    with tarfile.open(source, "w") as archive:
        for name, data in [
            ("abc/layer.tar", b"x"),
            ("manifest.json", b"[]"),
            ("repositories", b"{}"),
        ]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    target = tmp_path / "ordered.tar"
    nodeimage._repositories_first(source, target)
    with tarfile.open(target) as archive:
        assert archive.getnames() == ["repositories", "abc/layer.tar", "manifest.json"]


def test_an_artefact_is_built_once_and_a_failed_build_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBEMR_CACHE", str(tmp_path))
    calls: list[Path] = []

    def build(folder: Path) -> None:
        calls.append(folder)
        (folder / "out").write_text("built")

    first = artefacts.cached("go", "thing", "k1", build)
    second = artefacts.cached("go", "thing", "k1", build)
    assert first == second and len(calls) == 1 and (first / "out").read_text() == "built"

    def broken(folder: Path) -> None:
        (folder / "half").write_text("half")
        raise RuntimeError("build failed")

    with pytest.raises(RuntimeError):
        artefacts.cached("go", "thing", "k2", broken)
    assert sorted(p.name for p in (tmp_path / "kind" / "go").iterdir() if p.is_dir()) == [
        first.name
    ]


def test_only_the_two_most_recently_used_versions_of_an_artefact_are_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBEMR_CACHE", str(tmp_path))

    def build(folder: Path) -> None:
        (folder / "out").write_text(folder.name)

    folder = tmp_path / "kind" / "images"
    other = artefacts.cached("images", "thing-proxy", "ff01", build)  # another artefact
    first = artefacts.cached("images", "thing", "aa01", build)
    second = artefacts.cached("images", "thing", "bb02", build)
    os.utime(first, (1, 1))
    os.utime(second, (2, 2))
    assert artefacts.cached("images", "thing", "aa01", build) == first  # used again: newest
    third = artefacts.cached("images", "thing", "cc03", build)  # a third version evicts one
    kept = sorted(p.name for p in folder.iterdir() if p.is_dir())
    assert kept == sorted([first.name, third.name, other.name])
    assert not second.with_name(second.name + ".lock").exists()


def test_keys_change_with_any_input(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("one")
    before = artefacts.Key("x").tree(tmp_path).hexdigest()
    (tmp_path / "a").write_text("two")
    assert artefacts.Key("x").tree(tmp_path).hexdigest() != before


def test_the_build_needs_nothing_the_foreground_builds(monkeypatch: pytest.MonkeyPatch) -> None:
    """`make test` runs `make kind-build` beside `make cluster-build`, which builds helm: a
    build whose images are cached ends first, so it must not look for helm (CI failed so)."""

    def no_helm() -> Path:
        raise cluster.ClusterError("helm is missing")

    ours = engine.Engine(env={}, ours=True)
    monkeypatch.setattr(engine, "ensure", lambda: ours)
    monkeypatch.setattr(nodeimage, "node_image", lambda _engine: "kindest/node:built")
    monkeypatch.setattr(cluster, "kubemr_image", lambda _engine: "kubemr:built")
    monkeypatch.setattr(artefacts, "record", lambda *_args: None)
    monkeypatch.setattr(cluster, "_helm", no_helm)
    built = {"kind": Path("kind"), "kubectl": Path("kubectl")}
    monkeypatch.setattr(cluster.gobuilds, "all_binaries", lambda: built)
    assert cluster.build() == (ours, "kindest/node:built", "kubemr:built")
    with pytest.raises(cluster.ClusterError, match="helm is missing"):
        cluster.tools(ours)  # what `up` calls, after cluster-build


def test_a_c_library_that_cannot_be_installed_is_named_with_its_debian_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without apt-get at hand, a cgo build's missing C library is an error that names the
    Debian package to install (a fresh machine has no libseccomp-dev for runc)."""
    tools = tmp_path / "bin"
    tools.mkdir()
    pkg_config = shutil.which("pkg-config")
    assert pkg_config is not None
    (tools / "pkg-config").symlink_to(pkg_config)
    monkeypatch.setenv("PATH", str(tools))
    with pytest.raises(debian.MissingPackageError, match="libkubemr-nothing-dev"):
        debian.ensure_library("libkubemr-nothing", "libkubemr-nothing-dev", "building nothing")


def test_runc_names_the_c_library_it_links_against() -> None:
    runc = next(spec for spec in gobuilds.REMOTES if spec.name == "runc")
    assert runc.cgo and "seccomp" in runc.tags.split()
    assert gobuilds.CLibrary("libseccomp", "libseccomp-dev") in runc.libraries
