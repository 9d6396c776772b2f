"""`kubemr run` stops every process it started and removes its temporary directory on
success, on failure and on Ctrl-C; an interrupted job leaves no output behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from testjobs import APPS, ROOT, manifest, run_cli, write_manifest

START_DEADLINE = 60.0
"""Seconds the job may take to have every worker running."""
EXIT_DEADLINE = 30.0
"""Seconds `kubemr run` may take to stop after Ctrl-C."""


def processes_of(workdir: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if any(str(workdir) in arg for arg in process.info["cmdline"] or []):
            found.append(process)
    return found


def test_success_and_failure_leave_no_temp_dir(tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("a b\nPOISON\n")
    ok = manifest("clean-ok", {"builtin": "wordcount"}, [str(tmp_path / "in.txt")], tmp_path / "ok")
    bad = manifest(
        "clean-bad",
        {"module": f"{APPS / 'poison.py'}:Poison"},
        [str(tmp_path / "in.txt")],
        tmp_path / "bad",
        faultTolerance={"maxTaskAttempts": 1},
    )
    temp = tmp_path / "tmp"
    temp.mkdir()
    assert (
        run_cli("run", str(write_manifest(tmp_path, ok)), env={"TMPDIR": str(temp)}).returncode == 0
    )
    assert (
        run_cli("run", str(write_manifest(tmp_path, bad)), env={"TMPDIR": str(temp)}).returncode
        == 1
    )
    assert list(temp.iterdir()) == []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_stops_everything(tmp_path: Path, signum: signal.Signals) -> None:
    lines = tmp_path / "in.txt"
    lines.write_text("".join(f"w{i} x\n" for i in range(2000)))
    logs = tmp_path / "calls"
    logs.mkdir()
    doc = manifest(
        "interrupted",
        {
            "module": f"{APPS / 'counting.py'}:Counting",
            "args": {"log_dir": str(logs), "delay": "0.05"},
        },
        [str(lines)],
        tmp_path / "out",
        input={"splitSize": "4Ki"},
        reduceTasks=2,
        mapper={"replicas": 2},
        reducer={"replicas": 2},
    )
    temp = tmp_path / "tmp"
    temp.mkdir()
    launcher = subprocess.Popen(
        [sys.executable, "-m", "kubemr", "run", str(write_manifest(tmp_path, doc)), "--quiet"],
        cwd=ROOT,
        env={**os.environ, "TMPDIR": str(temp)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + START_DEADLINE
        children: list[psutil.Process] = []
        while time.monotonic() < deadline:
            workdirs = list(temp.glob("kubemr-interrupted-*"))
            children = processes_of(workdirs[0]) if workdirs else []
            if len(children) == 5 and list(logs.glob("*.log")):
                break
            time.sleep(0.05)
        assert len(children) == 5, "master and four workers should be running"
        launcher.send_signal(signum)
        _, stderr = launcher.communicate(timeout=EXIT_DEADLINE)
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.communicate()  # reaped, its pipes closed
    assert launcher.returncode == 130, stderr
    assert "interrupted" in stderr
    _, alive = psutil.wait_procs(children, timeout=5)
    assert alive == [], f"processes left behind: {alive}"
    assert list(temp.iterdir()) == [], "the temporary directory was not removed"
    out = tmp_path / "out"
    assert not out.exists() or list(out.iterdir()) == [], "an interrupted job left output"
