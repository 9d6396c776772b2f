"""A job's own code as one archive: the app, its requirements' wheels, and how to install it.

``kubemr submit`` packs the app (one ``.py`` file, or a package directory) and the wheels
its requirements resolve to on the submitting machine into a *bundle*, a zip with a
fixed layout::

    app/<file>.py | app/<package>/...   the user's code, put first on the import path
    wheels/*.whl                        every wheel pip resolved the requirements to
    requirements.txt                    the requirement lines, as given

The archive is deterministic (sorted entries, fixed timestamps and modes), so its SHA-256
names its content: the same code and wheels give the same digest, and the pods refuse a
bundle whose digest differs from the one in the job's spec (``spec.app.bundle.sha256``).

A bundle travels in a ConfigMap when it fits (:data:`CONFIG_MAP_LIMIT`), otherwise as an
object in the job's S3 storage; :func:`placement` decides. In every pod an init container
(``kubemr install-app``) verifies it, unpacks it into a writable emptyDir and installs the
requirements with ``pip install --no-index --find-links`` from the shipped wheels alone,
so pods never reach a package index (air-gapped clusters work).

Building, deciding and unpacking are pure functions of bytes and paths (unit-tested
directly); :func:`resolve_wheels` and :func:`install_requirements` run pip.
"""

from __future__ import annotations

import hashlib
import io
import re
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from kubemr import spec as specs
from kubemr import stores

APP_DIR = "app"
"""The bundle's folder (and the unpacked folder) holding the user's code."""
WHEELS_DIR = "wheels"
"""The bundle's folder of resolved wheels."""
SITE_DIR = "site"
"""The unpacked folder the requirements are installed into (``pip --target``)."""
REQUIREMENTS_FILE = "requirements.txt"
"""The bundle's requirement lines, as given."""

CONFIG_MAP_LIMIT = 768 * 1024
"""Largest bundle shipped in a ConfigMap, in bytes (768 KiB). The API server refuses a
ConfigMap whose data exceeds 1 MiB (and etcd any object over 1.5 MiB); the JSON that
carries ``binaryData`` is base64 (4/3 larger) on the way, so 768 KiB leaves headroom for
the request and the object's metadata."""

S3_BUNDLES = ".kubemr/bundles"
"""Where in the output's bucket a bundle too large for a ConfigMap goes:
``s3://<bucket>/.kubemr/bundles/<sha256>.zip`` (content-addressed: never overwritten by
other content)."""

EPOCH = (1980, 1, 1, 0, 0, 0)
"""Every archive entry's timestamp (zip's earliest): the digest depends on content only."""
SKIPPED = re.compile(r"(^|/)(__pycache__|\.[^/]*)(/|$)|\.py[co]$")
"""Files of a package directory that are never shipped: byte code, hidden files/folders."""


class BundleError(ValueError):
    """The app cannot be packed, placed or installed; the message says why (one line),
    ``detail`` holds pip's whole output when pip failed."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


@dataclass(frozen=True)
class Bundle:
    """A packed bundle: the archive's bytes and what it holds."""

    data: bytes
    files: tuple[str, ...]
    """The archive's entries, in order."""
    sha256: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha256", hashlib.sha256(self.data).hexdigest())

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass(frozen=True)
class Target:
    """The pods' Python, for which the requirements are resolved into wheels."""

    python_version: str = "3.11"
    """``major.minor`` of the image's Python. Default 3.11 (images/Dockerfile)."""
    platforms: tuple[str, ...] = (
        "manylinux_2_28_x86_64",
        "manylinux_2_17_x86_64",
        "manylinux2014_x86_64",
    )
    """Binary wheels accepted besides pure-Python ones (``py3-none-any``). Default
    manylinux x86_64 up to glibc 2.28 (the image is Debian bookworm, glibc 2.36)."""
    implementation: str = "cp"
    """The Python implementation tag. Default CPython."""


def app_files(app: Path) -> list[tuple[str, Path]]:
    """The archive names (under ``app/``) and local files of an app: one ``.py`` file, or
    every file of a package directory (its name kept, so ``pkg.mod:Class`` imports)."""
    if app.is_file():
        if app.suffix != ".py":
            raise BundleError(f"--app {app}: expected a .py file or a package directory")
        return [(f"{APP_DIR}/{app.name}", app)]
    if not app.is_dir():
        raise BundleError(f"--app {app}: no such file or directory")
    files = []
    for path in sorted(app.rglob("*")):
        relative = path.relative_to(app).as_posix()
        if path.is_file() and not SKIPPED.search(relative):
            files.append((f"{APP_DIR}/{app.name}/{relative}", path))
    if not files:
        raise BundleError(f"--app {app}: the directory holds no files to ship")
    return files


def _entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=EPOCH)
    info.external_attr = 0o644 << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def build(app: Path | None, wheels: Sequence[Path], requirements: Sequence[str]) -> Bundle:
    """Pack the app's files, the wheels and the requirement lines into a bundle."""
    entries: list[tuple[str, bytes]] = []
    if app is not None:
        entries += [(name, path.read_bytes()) for name, path in app_files(app)]
    entries += [(f"{WHEELS_DIR}/{w.name}", w.read_bytes()) for w in sorted(wheels)]
    entries.append((REQUIREMENTS_FILE, "".join(f"{r}\n" for r in requirements).encode()))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries:
            archive.writestr(_entry(name), data)
    return Bundle(buffer.getvalue(), tuple(name for name, _ in entries))


def module_reference(module: str, app: Path) -> str:
    """``spec.app.module`` as the pods see it: a file reference (``path/x.py:Attr``) names
    the shipped file by its place under ``app/`` (a single file: its name; a file of a
    package directory: ``<dir>/<path inside it>``); a dotted reference is unchanged
    (``app/`` is on the import path)."""
    name, _, attr = module.partition(":")
    if not name.endswith(".py"):
        return module
    if app.is_file():
        if PurePosixPath(name).name != app.name:
            raise BundleError(
                f"spec.app.module names {name!r}, but --app ships {app.name!r}: "
                "name the shipped file (or give --app the file the module names)"
            )
        return f"{app.name}:{attr}"
    try:  # a file inside the package directory keeps its place in it
        inside = Path(name).resolve().relative_to(app.resolve()).as_posix()
    except ValueError:
        inside = PurePosixPath(name).name
    return f"{app.name}/{inside}:{attr}"


def placement(size: int, output_path: str, limit: int = CONFIG_MAP_LIMIT) -> str:
    """Where a bundle of ``size`` bytes goes: ``"configMap"`` when it fits, ``"s3"`` (an
    object in the output's bucket, :func:`s3_url`) when it is too large and the job writes
    to S3; otherwise :class:`BundleError` naming the size and the limit."""
    if size <= limit:
        return "configMap"
    if stores.is_s3(output_path):
        return "s3"
    raise BundleError(
        f"the code bundle is {size:,} bytes, more than a ConfigMap carries "
        f"({limit:,} bytes), and the job has no S3 storage to hold it "
        "(spec.output.path is not s3://): ship fewer or smaller requirements, or "
        "build them into the image"
    )


def s3_url(output_path: str, sha256: str) -> str:
    """The content-addressed object a large bundle goes to, in the output's bucket."""
    bucket, _ = stores.split_uri(output_path)
    return f"s3://{bucket}/{S3_BUNDLES}/{sha256}.zip"


def with_bundle(
    job: specs.MapReduceJob, bundle: Bundle, app: Path | None, where: str
) -> specs.MapReduceJob:
    """The job with ``spec.app.bundle`` pointing at ``where`` (a ConfigMap name or an
    ``s3://`` URL) and its module reference as the pods see it."""
    reference = {"url": where} if stores.is_s3(where) else {"configMap": where}
    document = specs.dump_job(job)
    app_doc = document["spec"]["app"]
    app_doc["bundle"] = {**reference, "sha256": bundle.sha256}
    if app is not None and app_doc.get("module"):
        app_doc["module"] = module_reference(app_doc["module"], app)
    return specs.parse_job(document, f"{specs.KIND} {job.metadata.name}")


def verify(data: bytes, sha256: str, source: str) -> None:
    """Refuse a bundle whose content is not the one the job names."""
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise BundleError(
            f"{source}: the bundle's SHA-256 is {actual}, the job names {sha256}: "
            "the code changed after the job was submitted"
        )


def unpack(data: bytes, into: Path) -> list[str]:
    """Extract a bundle into ``into`` (created); return the requirement lines. Entries
    outside the layout (absolute, ``..``, other folders) are refused."""
    requirements: list[str] = []
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for info in archive.infolist():
            path = PurePosixPath(info.filename)
            top = path.parts[0] if path.parts else ""
            if (
                path.is_absolute()
                or ".." in path.parts
                or (top not in (APP_DIR, WHEELS_DIR) and info.filename != REQUIREMENTS_FILE)
            ):
                raise BundleError(f"the bundle holds an unexpected entry {info.filename!r}")
            if info.is_dir():
                continue
            content = archive.read(info)
            if info.filename == REQUIREMENTS_FILE:
                requirements = [line for line in content.decode().splitlines() if line.strip()]
                continue
            target = into.joinpath(*path.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
    (into / APP_DIR).mkdir(parents=True, exist_ok=True)
    return requirements


def download_command(python: str, requirements: Path, dest: Path, target: Target) -> list[str]:
    """``pip download`` of the requirements as wheels for the pods' Python and platform:
    binary wheels only (no sdists: building one needs a compiler, and the pods have none),
    pure-Python or one of ``target.platforms``."""
    command = [python, "-m", "pip", "download", "--disable-pip-version-check", "--quiet"]
    command += ["--only-binary=:all:", "--dest", str(dest), "-r", str(requirements)]
    command += ["--python-version", target.python_version]
    command += ["--implementation", target.implementation]
    for platform in target.platforms:
        command += ["--platform", platform]
    return command


def install_command(python: str, into: Path) -> list[str]:
    """``pip install`` of the unpacked requirements from the shipped wheels alone."""
    return [
        python,
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--no-cache-dir",
        "--no-input",
        "--isolated",  # no pip.conf or PIP_* of the image: the shipped wheels only
        "--no-index",
        "--find-links",
        str(into / WHEELS_DIR),
        "--target",
        str(into / SITE_DIR),
        "-r",
        str(into / REQUIREMENTS_FILE),
    ]


def resolve_wheels(requirements: Sequence[str], dest: Path, target: Target) -> list[Path]:
    """Resolve requirement lines into wheels in ``dest`` with this machine's pip (which
    may reach a package index: the submitting machine, not the pods)."""
    if not requirements:
        return []
    dest.mkdir(parents=True, exist_ok=True)
    listing = dest / REQUIREMENTS_FILE
    listing.write_text("".join(f"{r}\n" for r in requirements), encoding="utf-8")
    result = subprocess.run(
        download_command(sys.executable, listing, dest, target),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise BundleError(
            f"pip could not resolve the requirements {list(requirements)} into wheels for "
            f"Python {target.python_version} on {', '.join(target.platforms)} (or pure "
            f"Python):\n{(result.stderr or result.stdout).strip()}"
        )
    return sorted(dest.glob("*.whl"))


def install_requirements(into: Path, requirements: Sequence[str]) -> None:
    """Install the unpacked bundle's requirements into ``into/site`` with pip, from its
    wheels only; raise :class:`BundleError` with pip's message when pip fails."""
    (into / SITE_DIR).mkdir(parents=True, exist_ok=True)
    if not requirements:
        return
    (into / REQUIREMENTS_FILE).write_text("".join(f"{r}\n" for r in requirements), encoding="utf-8")
    result = subprocess.run(
        install_command(sys.executable, into), capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()
        errors = [line for line in output.splitlines() if line.startswith("ERROR")]
        raise BundleError(
            "pip could not install the requirements from the shipped wheels "
            f"(pip install --no-index): {errors[-1] if errors else output[-500:]}",
            detail=output,
        )


def read(source: str, storage: specs.StorageSpec) -> bytes:
    """A bundle's bytes from a local file (the mounted ConfigMap) or an ``s3://`` object."""
    return stores.store_for(source, storage).read_bytes(source)
