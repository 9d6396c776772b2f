"""The end-of-session check (tests/support/leftovers.py) finds what a session leaves."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import leftovers


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".gitignore").write_text("ignored/\n")
    (tmp_path / "before.txt").write_text("there before the session\n")
    return tmp_path


@pytest.fixture
def snapshot(repository: Path) -> Iterator[leftovers.Snapshot]:
    before = os.environ.get(leftovers.MARKER)
    yield leftovers.start(repository)
    if before is None:
        os.environ.pop(leftovers.MARKER, None)
    else:
        os.environ[leftovers.MARKER] = before


def test_a_clean_session_leaves_nothing(snapshot: leftovers.Snapshot, repository: Path) -> None:
    (repository / "ignored").mkdir()
    (repository / "ignored" / "cache").write_text("ignored folders may hold anything\n")
    assert leftovers.find(snapshot, repository, settle=0) == []


def test_a_process_the_session_started_and_a_new_file_are_found(
    snapshot: leftovers.Snapshot, repository: Path
) -> None:
    child = subprocess.Popen(["sleep", "60"], start_new_session=True)  # detached, as make's
    try:
        (repository / "stray.log").write_text("written by a test\n")
        found = leftovers.find(snapshot, repository, settle=0)
        assert f"process {child.pid} sleep 60" in found
        assert "file stray.log" in found
        assert not [line for line in found if "before.txt" in line]
        leftovers.stop(snapshot)
        assert child.wait(timeout=10) == -9
    finally:
        child.kill()
        child.wait()


def test_a_process_that_exits_during_the_settle_time_is_not_counted(
    snapshot: leftovers.Snapshot, repository: Path
) -> None:
    child = subprocess.Popen(["sleep", "0.5"])
    try:
        assert leftovers.find(snapshot, repository, settle=10) == []
    finally:
        child.wait()
