"""A content-keyed cache of built artefacts, with the time each build took.

An artefact is a folder ``<cache>/<kind>/<name>-<key>``: ``key`` is a hash of every
input (sources, pins, toolchain), so a changed input builds a new folder and an
unchanged one is found again, in any clone on the machine. A folder appears only when
its build completed (it is built under a temporary name and renamed), so an interrupted
build is never mistaken for a finished one. Build times go to ``timings.jsonl`` beside
the artefacts (docs/kind.md quotes them).

The cache does not grow without bound: a folder found is touched, and once a new one is
built the folders of the same artefact beyond the :data:`KEEP` most recently used are
removed (the kubemr image, rebuilt for every change of the code, is 470 MB a version;
the node image 1.3 GB). Two are kept so that two clones at different commits (a
developer's and CI's) do not evict each other; a folder locked by a build is left.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from kindcluster import layout


class Key:
    """An incremental hash of an artefact's inputs."""

    def __init__(self, *parts: str) -> None:
        self._digest = hashlib.sha256()
        for part in parts:
            self.text(part)

    def text(self, value: str) -> Key:
        self._digest.update(len(value).to_bytes(8, "big") + value.encode())
        return self

    def file(self, path: Path, relative_to: Path | None = None) -> Key:
        name = path.relative_to(relative_to).as_posix() if relative_to else path.name
        self.text(name)
        self._digest.update(path.read_bytes())
        self.text(oct(path.stat().st_mode & 0o111))
        return self

    def tree(self, root: Path, paths: Iterable[Path] | None = None) -> Key:
        """Every file under ``root`` (or the given ones), by relative path and content."""
        files = sorted(paths if paths is not None else (p for p in root.rglob("*") if p.is_file()))
        for path in files:
            self.file(path, relative_to=root)
        return self

    def hexdigest(self) -> str:
        return self._digest.hexdigest()[:16]


def record(name: str, seconds: float, outcome: str) -> None:
    """Append one build's time to the cache's timing log and say it on stderr."""
    root = layout.cache_root()
    root.mkdir(parents=True, exist_ok=True)
    entry = {"artefact": name, "seconds": round(seconds, 1), "outcome": outcome, "at": time.time()}
    with (root / "timings.jsonl").open("a") as log:
        log.write(json.dumps(entry) + "\n")
    print(f"kind: {name}: {outcome} in {seconds:.1f} s", file=sys.stderr, flush=True)


KEEP = 2
"""Folders kept per artefact: the most recently used ones."""


def cached(kind: str, name: str, key: str, build: Callable[[Path], None]) -> Path:
    """The folder of artefact ``name`` for ``key``, built by ``build(folder)`` if absent."""
    final = layout.cache_root() / kind / f"{name}-{key}"
    if final.is_dir():
        os.utime(final)  # used now: the last to be pruned
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with final.with_name(final.name + ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another clone may be building the same artefact
        if final.is_dir():
            return final
        built = _build(final, build)
    prune(final.parent, name)
    return built


def prune(folder: Path, name: str, keep: int = KEEP) -> list[Path]:
    """Remove the folders of artefact ``name`` in ``folder`` beyond the ``keep`` most
    recently used (and their lock files), skipping any whose lock is held; return them."""
    pattern = re.compile(re.escape(name) + r"-[0-9a-f]+")
    versions = [p for p in folder.iterdir() if p.is_dir() and pattern.fullmatch(p.name)]
    versions.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    removed = []
    for old in versions[keep:]:
        lock_file = old.with_name(old.name + ".lock")
        with lock_file.open("w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # being built or read by another clone right now
            shutil.rmtree(old, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            lock_file.unlink()
        removed.append(old)
    return removed


def _build(final: Path, build: Callable[[Path], None]) -> Path:
    partial = final.with_name(final.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    started = time.monotonic()
    try:
        build(partial)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    partial.rename(final)
    record(f"{final.parent.name}/{final.name}", time.monotonic() - started, "built")
    return final
