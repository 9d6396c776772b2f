"""A job over IPv6 loopback: master, workers, shuffle and the monitoring server all on
``::1``, every address bracketed (kubemr.address); the output equals the oracle."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubemr import address
from roles import Job

from testjobs import manifest, sorted_output, word_input

Oracle = Callable[[dict[str, Any]], list[str]]

JOB_DEADLINE = 120.0
"""Seconds the job may take."""


def has_ipv6_loopback() -> bool:
    command = ["ip", "-6", "addr", "show", "lo"]
    shown = subprocess.run(command, check=False, capture_output=True, text=True)
    return "::1/128" in shown.stdout


@pytest.mark.skipif(not has_ipv6_loopback(), reason="no IPv6 loopback (::1) on this machine")
def test_a_job_runs_over_ipv6_loopback(
    tmp_path: Path, job_roles: Callable[..., Job], oracle: Oracle
) -> None:
    doc = manifest(
        "ipv6",
        {"builtin": "wordcount"},
        word_input(tmp_path),
        tmp_path / "out",
        input={"splitSize": "8Ki"},
        reduceTasks=2,
    )
    job = job_roles(doc, host="::1")
    master = job.master("master")
    job.worker("mapper", "mapper-0")
    job.worker("mapper", "mapper-1")
    job.worker("reducer", "reducer-0")
    assert master.wait(JOB_DEADLINE) == 0, master.log()
    assert sorted_output(job.output) == oracle(doc)
    written = (tmp_path / "master").read_text()
    assert written == address.join("::1", job.ports["master"]) == f"[::1]:{job.ports['master']}"
    shuffle = re.search(r"registered map-\d+-mapper-0 at (\S+)", master.log())
    assert shuffle is not None, master.log()
    assert address.split(shuffle.group(1))[0] == "::1"  # bracketed: [::1]:port
    assert shuffle.group(1).startswith("[::1]:")
