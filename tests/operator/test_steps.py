"""Multi-step jobs and unmodified mrjob jobs on the cluster: one master pod runs the
steps in order, the job's status names the step, and the output is the oracle's (the
sequential runner's; for the mrjob example, mrjob's own inline runner's)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from localkube import apiclient
from test_jobs import job_doc, oracle, pods, submit, wait_for

from localoperator import LocalOperator
from testjobs import BOOKS, sorted_output, word_input

pytestmark = [
    pytest.mark.cluster,
    # mrjob 0.7.4 (its last release) imports the deprecated ``pipes`` module, and its
    # inline runner warns that it is not Hadoop.
    pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning"),
]
TWO_STEP_APP = "tests/runtime/apps/twostep.py"


def test_a_two_step_job_runs_both_steps_in_one_master(
    kube: apiclient.ApiClient,
    job_namespace: str,
    shared: Path,
    tmp_path: Path,
    operator: LocalOperator,
) -> None:
    doc = job_doc(
        "twostep",
        {"module": f"{TWO_STEP_APP}:CountWords"},
        word_input(shared),
        str(shared / "out"),
        steps=[
            {"reduceTasks": 3},
            {"app": {"module": f"{TWO_STEP_APP}:TopByLength"}, "reduceTasks": 2},
        ],
    )
    del doc["spec"]["reduceTasks"]  # set per step
    name = submit(kube, job_namespace, doc)
    job = wait_for(kube, job_namespace, name, ("Succeeded", "Failed"))
    status = job["status"]
    assert status["phase"] == "Succeeded", status
    assert status["step"] == "2/2" and status["reduces"] == "2/2"
    assert status["output"]["files"] == 2
    assert sorted_output(shared / "out") == oracle(tmp_path, doc)
    assert not (shared / "out" / "_temporary").exists()
    masters = [pod for pod in pods(kube, job_namespace) if "-master" in pod]
    assert masters == [f"{name}-master"]  # one master pod ran both steps


def test_mrjobs_most_used_word_example_matches_mrjobs_inline_runner(
    kube: apiclient.ApiClient,
    job_namespace: str,
    shared: Path,
    operator: LocalOperator,
) -> None:
    mrjob = pytest.importorskip("mrjob", reason="the kubemr[mrjob] extra is not installed")
    from mrjob.examples.mr_most_used_word import MRMostUsedWord  # noqa: PLC0415

    stop_words = str(Path(mrjob.__file__).parent / "examples" / "stop_words.txt")
    paths = []
    for book in ("pg-grimm.txt", "pg-metamorphosis.txt"):
        lines = (BOOKS / book).read_text(encoding="utf-8").splitlines(keepends=True)
        (shared / book).write_text("".join(lines[:3000]), encoding="utf-8")
        paths.append(str(shared / book))
    args = {"stop-words-file": stop_words}
    doc = job_doc(
        "mostusedword",
        {"module": "mrjob.examples.mr_most_used_word:MRMostUsedWord", "args": args},
        paths,
        str(shared / "out"),
    )
    name = submit(kube, job_namespace, doc)
    job = wait_for(kube, job_namespace, name, ("Succeeded", "Failed"))
    assert job["status"]["phase"] == "Succeeded", job["status"]
    assert job["status"]["step"] == "2/2"

    inline = MRMostUsedWord(
        args=["-r", "inline", "--no-conf", "--stop-words-file", stop_words, *paths]
    )
    with inline.make_runner() as runner:
        runner.run()
        expected = sorted(json.dumps(pair) for pair in inline.parse_output(runner.cat_output()))
    read = MRMostUsedWord(args=[]).output_protocol().read
    lines: list[Any] = []
    for part in sorted((shared / "out").glob("part-*")):
        lines += part.read_bytes().splitlines()
    assert sorted(json.dumps(read(line)) for line in lines) == expected
