"""mrjob's own example jobs, unmodified, under kubemr: their output equals that of
mrjob's inline runner on the same input, compared as decoded key/value pairs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from testjobs import BOOKS, Runner, manifest, run_cli, write_manifest

# mrjob 0.7.4 (its last release) imports the deprecated ``pipes`` module, and its
# runner warns of the ``inline`` runner's limits.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
mrjob = pytest.importorskip("mrjob", reason="the kubemr[mrjob] extra is not installed")
EXAMPLES = Path(mrjob.__file__).parent / "examples"
STOP_WORDS = str(EXAMPLES / "stop_words.txt")

JOBS = {
    "word-freq": ("mr_word_freq_count.py:MRWordFreqCount", {}),
    "most-used-word": ("mr_most_used_word.py:MRMostUsedWord", {"stop-words-file": STOP_WORDS}),
    "wc": ("mr_wc.py:MRWordCountUtility", {}),
    "next-word-stats": ("mr_next_word_stats.py:MRNextWordStats", {}),
}


def book_slices(directory: Path, lines: int = 1500) -> list[str]:
    """The first ``lines`` lines of three books (small, to keep the tests fast)."""
    paths = []
    for book in ("pg-frankenstein.txt", "pg-grimm.txt", "pg-metamorphosis.txt"):
        text = (BOOKS / book).read_text(encoding="utf-8").splitlines(keepends=True)
        path = directory / book
        path.write_text("".join(text[:lines]), encoding="utf-8")
        paths.append(str(path))
    return paths


def decoded(job_class: Any, lines: list[bytes]) -> list[str]:
    """Output lines as the job's output protocol reads them, sorted, as JSON."""
    read = job_class(args=[]).output_protocol().read
    return sorted(json.dumps(read(line)) for line in lines if line)


def inline_output(job_class: Any, args: dict[str, str], paths: list[str]) -> list[str]:
    argv = ["-r", "inline", "--no-conf"]
    for name, value in args.items():
        argv += [f"--{name}", value]
    job = job_class(args=[*argv, *paths])
    with job.make_runner() as runner:
        runner.run()
        return decoded(job_class, [line.rstrip(b"\r\n") for line in runner.cat_output()])


def kubemr_output(output: Path, job_class: Any) -> list[str]:
    lines = []
    for part in sorted(output.glob("part-*")):
        lines += part.read_bytes().splitlines()
    return decoded(job_class, lines)


def job_class(reference: str) -> Any:
    module, _, name = reference.partition(".py:")
    return getattr(__import__(f"mrjob.examples.{module}", fromlist=[name]), name)


@pytest.mark.parametrize("example", sorted(JOBS))
def test_mrjob_example_matches_inline_runner(example: str, tmp_path: Path, run_job: Runner) -> None:
    reference, args = JOBS[example]
    cls = job_class(reference)
    paths = book_slices(tmp_path)
    expected = inline_output(cls, args, paths)
    assert expected
    app = {"module": f"mrjob.examples.{reference.replace('.py:', ':')}", "args": args}
    doc = manifest(
        example,
        app,
        paths,
        tmp_path / "dist",
        input={"splitSize": "32Ki"},
        reduceTasks=2,
        mapper={"replicas": 2},
        reducer={"replicas": 2},
    )
    result = run_job(doc)
    assert result.returncode == 0, result.stderr
    assert kubemr_output(tmp_path / "dist", cls) == expected
    sequential = {**doc, "spec": {**doc["spec"], "output": {"path": str(tmp_path / "seq")}}}
    result = run_cli("run", str(write_manifest(tmp_path, sequential)), "--sequential")
    assert result.returncode == 0, result.stderr
    assert kubemr_output(tmp_path / "seq", cls) == expected
