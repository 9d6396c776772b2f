"""Multi-step jobs, without running them: the manifest's rules, the single-step job each
step becomes, and the typed record files that carry data from one step to the next."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from kubemr import formats, partfiles, progress, runs, spec, steps
from kubemr.proto import mapreduce_pb2 as pb


def doc(**body: Any) -> dict[str, Any]:
    spec_body = {
        "app": {"builtin": "wordcount"},
        "input": {"paths": ["in"]},
        "output": {"path": "/data/out", "compression": "gzip"},
        **body,
    }
    return {
        "apiVersion": "kubemr.io/v1alpha1",
        "kind": "MapReduceJob",
        "metadata": {"name": "chain"},
        "spec": spec_body,
    }


def test_a_job_with_steps_sets_reduce_tasks_per_step() -> None:
    with pytest.raises(spec.SpecError, match=r"set reduceTasks, combine per step"):
        spec.parse_job(doc(steps=[{}], reduceTasks=4, combine=False))
    assert spec.parse_job(doc(steps=[{}], reduceTasks=1)).spec.steps  # the default is fine


def test_records_output_is_not_compressed() -> None:
    with pytest.raises(spec.SpecError, match=r"spec.output: compression: records output"):
        spec.parse_job(doc(output={"path": "o", "format": "records", "compression": "gzip"}))


def test_each_step_reads_the_last_ones_records_and_only_the_last_writes_text() -> None:
    grep = {"builtin": "grep", "args": {"pattern": "x"}}
    job = spec.parse_job(
        doc(steps=[{"reduceTasks": 3, "combine": True}, {"app": grep, "reduceTasks": 0}, {}])
    )
    first, second, third = steps.step_jobs(job)
    assert (first.spec.input, first.spec.reduce_tasks, first.spec.combine) == (
        job.spec.input,
        3,
        True,
    )
    assert first.spec.app == third.spec.app == job.spec.app  # a step's app defaults to spec.app
    assert second.spec.app.builtin == "grep" and second.spec.reduce_tasks == 0
    assert second.spec.input.paths == ["/data/out/_temporary/steps/step-1"]
    assert second.spec.input.format == "records"
    assert [j.spec.output.format for j in (first, second, third)] == ["records"] * 2 + ["text"]
    assert [j.spec.output.compression for j in (first, second, third)] == ["none"] * 2 + ["gzip"]
    assert third.spec.output.path == "/data/out/_temporary/steps/step-3"
    assert all(not j.spec.steps for j in (first, second, third))
    # every step job is a valid manifest of its own (the workers parse it)
    for step_job in (first, second, third):
        assert spec.parse_job(spec.dump_job(step_job)) == step_job


def test_a_job_without_steps_is_its_own_only_step() -> None:
    job = spec.parse_job(doc(reduceTasks=4))
    assert steps.step_jobs(job) == [job]


def write_records(path: Path, pairs: list[tuple[Any, Any]]) -> None:
    with partfiles.PartWriter(path.open("wb"), "records") as out:
        out.write([partfiles.encode_pair(k, v) for k, v in pairs])


def test_record_files_give_back_keys_and_values_with_their_types(tmp_path: Path) -> None:
    pairs = [(("the", 3), 7), (2.5, {"a": [1, None]}), (b"\xff", "text"), (None, True)]
    write_records(tmp_path / "part-00000", pairs)
    read = [pair for _, pair in formats.record_frames(str(tmp_path / "part-00000"))]
    assert read == [(("the", 3), 7), (2.5, {"a": [1, None]}), (b"\xff", "text"), (None, True)]


def test_a_truncated_record_file_fails(tmp_path: Path) -> None:
    path = tmp_path / "part-00000"
    write_records(path, [("k", "v" * 100)])
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(runs.FrameError, match="truncated record frame"):
        list(formats.record_frames(str(path)))


def test_text_parts_are_lines(tmp_path: Path) -> None:
    stream = io.BytesIO()
    stream.close = lambda: None  # type: ignore[method-assign]
    with partfiles.PartWriter(stream, "text") as out:
        render = partfiles.renderer("text")
        out.write([render("a", 1), render(("b", 2), None)])
    assert stream.getvalue() == b'a\t1\n["b",2]\n'
    assert out.bytes == len(stream.getvalue())


def test_kubemr_runs_bars_name_the_step() -> None:
    assert progress.step_label(pb.JobStatus(maps_total=3), "map") == "map"
    assert progress.step_label(pb.JobStatus(step=2, steps=3), "reduce") == "step 2/3 reduce"
