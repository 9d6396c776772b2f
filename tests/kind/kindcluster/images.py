"""Container images built on this machine, cached as ``docker save`` archives.

Each image has a key (a hash of its inputs); its cache folder holds ``image.tar`` and
``id`` (the image ID). :func:`ensure` does the least work that makes the engine hold the
image under its tags: nothing when the engine's tag already points at that ID, ``docker
load`` when the archive exists, else the build and then ``docker save``.

Two ways to build:

* :func:`from_files` -- ``docker import`` of a tar stream made here from a few files
  (static binaries need nothing else), with ``--change`` for the image configuration;
* :func:`from_dockerfile` -- ``docker build --network host`` of a Dockerfile of ours in
  tests/kind/images (apt-get and pip reach their registries through the host).
"""

from __future__ import annotations

import io
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from kindcluster import artefacts
from kindcluster.engine import Engine, EngineError


def image_id(engine: Engine, tag: str) -> str | None:
    """The ID the engine's ``tag`` points at, or None."""
    result = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", tag],
        env=engine.env,
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() if result.returncode == 0 else None


def ensure(
    engine: Engine, name: str, tags: Sequence[str], key: str, build: Callable[[], None]
) -> Path:
    """Make ``tags`` point at the image ``name``/``key``; return its cache folder.

    ``build()`` must leave the image in the engine under ``tags[0]``.
    """

    def make(folder: Path) -> None:
        build()
        for tag in tags[1:]:
            engine.docker("tag", tags[0], tag)
        identity = image_id(engine, tags[0])
        if identity is None:
            raise EngineError(f"building {name} left no image tagged {tags[0]}")
        engine.docker("save", "-o", str(folder / "image.tar"), *tags)
        (folder / "id").write_text(identity + "\n")
        if engine.ours:  # the image the tags left, untagged now (never on a user's engine)
            engine.docker("image", "prune", "--force")

    folder = artefacts.cached("images", name, key, make)
    wanted = (folder / "id").read_text().strip()
    if any(image_id(engine, tag) != wanted for tag in tags):
        engine.docker("load", "-i", str(folder / "image.tar"))
    return folder


def _tar_stream(files: Mapping[str, Path]) -> bytes:
    """An uncompressed tar of ``files`` (path in the image -> file here), modes kept."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        directories: set[str] = set()
        for target in sorted(files):
            parts = target.strip("/").split("/")
            for depth in range(1, len(parts)):
                directory = "/".join(parts[:depth])
                if directory not in directories:
                    info = tarfile.TarInfo(directory)
                    info.type = tarfile.DIRTYPE
                    info.mode = 0o755
                    archive.addfile(info)
                    directories.add(directory)
            source = files[target]
            info = tarfile.TarInfo(target.strip("/"))
            info.size = source.stat().st_size
            info.mode = source.stat().st_mode & 0o7777
            with source.open("rb") as data:
                archive.addfile(info, data)
    return buffer.getvalue()


def from_files(
    engine: Engine,
    name: str,
    tags: Sequence[str],
    files: Mapping[str, Path],
    changes: Sequence[str],
) -> Path:
    """An image of only ``files``, configured by Dockerfile-style ``changes``."""
    key = artefacts.Key(name, *tags, *changes)
    for target, source in sorted(files.items()):
        key.text(target).file(source)

    def build() -> None:
        command = ["docker", "import"]
        for change in changes:
            command += ["--change", change]
        command += ["-", tags[0]]
        result = subprocess.run(
            command, input=_tar_stream(files), env=engine.env, capture_output=True, check=False
        )
        if result.returncode != 0:
            raise EngineError(f"docker import {tags[0]}: {result.stderr.decode().strip()}")

    return ensure(engine, name, tags, key.hexdigest(), build)


def from_dockerfile(
    engine: Engine,
    name: str,
    tags: Sequence[str],
    dockerfile: Path,
    context: Path,
    key: artefacts.Key,
    build_args: Mapping[str, str] | None = None,
) -> Path:
    """``docker build`` of ``dockerfile`` in ``context``; ``key`` must cover the context."""
    key.text(name).text(" ".join(tags)).file(dockerfile)
    for argument, value in sorted((build_args or {}).items()):
        key.text(f"{argument}={value}")

    def build() -> None:
        command = ["docker", "build", "--network", "host", "-f", str(dockerfile), "-t", tags[0]]
        for argument, value in sorted((build_args or {}).items()):
            command += ["--build-arg", f"{argument}={value}"]
        result = subprocess.run([*command, str(context)], env=engine.env, check=False)
        if result.returncode != 0:
            raise EngineError(f"docker build of {dockerfile} failed (exit {result.returncode})")

    return ensure(engine, name, tags, key.hexdigest(), build)


def scratch_dir() -> tempfile.TemporaryDirectory[str]:
    """A temporary folder for a build context (removed when the build is done)."""
    return tempfile.TemporaryDirectory(prefix="kubemr-kind-")
