"""Multi-step jobs: the single-step job each step runs, where its output lives, and how
the last step's output becomes the job's.

A job with ``spec.steps`` (or whose app is an mrjob job of several steps,
:mod:`kubemr.mrjobs`) runs as a chain of ordinary single-step jobs, one master running
them in order. Step *i* writes typed records (``output.format: records``) to
``<output>/_temporary/steps/step-<i>``, a directory the next step reads
(``input.format: records``), so keys and values reach it with their types. The last
step writes text lines with the job's compression to its own step directory; when it is
committed, its part files move into the output, and ``_SUCCESS`` removes
``_temporary`` with every intermediate output.

Each step keeps its own journal under its own directory, and a step whose directory
holds ``_SUCCESS`` is done: a restarted master skips the steps that were done and
resumes the one that was running. A marker (``_temporary/steps/_job.json``) names the
job the step directories belong to; without it, or with another job's, the job starts
over from step 1.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from kubemr import apps, mrjobs, stores
from kubemr.outputdir import TEMPORARY, OutputDir
from kubemr.spec import InputSpec, JobSpec, MapReduceJob, OutputSpec, StepSpec

STEPS_DIR = "steps"
"""The directory under the output's ``_temporary`` that holds the step directories."""
MARKER = "_job.json"
"""The file in it that names the job the step directories belong to."""


def _alone(spec: JobSpec) -> StepSpec:
    """The one step of a job without ``spec.steps``: its top-level fields."""
    return StepSpec(
        app=spec.app,
        reduce_tasks=spec.reduce_tasks,
        combine=spec.combine,
        partitioner=spec.partitioner,
    )


def step_specs(spec: JobSpec, search: Iterable[Path] = ()) -> list[StepSpec]:
    """The job's steps: ``spec.steps`` (each step's app defaulting to ``spec.app``), or
    one step from the top-level fields; a step whose app is an mrjob job of several
    steps becomes one step per mrjob step. Raises :class:`kubemr.apps.AppError`."""
    search = list(search)
    given = spec.steps or [_alone(spec)]
    expanded: list[StepSpec] = []
    for each in given:
        app = each.app or spec.app
        step = each.model_copy(update={"app": app})
        target = apps.target_of(app, search)
        if mrjobs.is_mrjob(target) and mrjobs.STEP_ARG not in app.args:  # not expanded yet
            assert isinstance(target, type)
            try:
                expanded.extend(mrjobs.expand(target, step))
            except mrjobs.MRJobError as exc:
                raise apps.AppError(str(exc)) from None
        else:
            expanded.append(step)
    return expanded


def step_path(output: str, index: int) -> str:
    """Where step ``index`` (0-based) of the job writing to ``output`` writes."""
    return stores.join(output, TEMPORARY, STEPS_DIR, f"step-{index + 1}")


def step_jobs(job: MapReduceJob, search: Iterable[Path] = ()) -> list[MapReduceJob]:
    """The single-step job each step runs. A job of one step that needs no rewriting
    (no ``spec.steps``, not a multi-step mrjob) is itself, alone."""
    spec = job.spec
    steps = step_specs(spec, search)
    if not spec.steps and steps == [_alone(spec)]:
        return [job]
    jobs = []
    for index, step in enumerate(steps):
        last = index == len(steps) - 1
        source = (
            spec.input
            if index == 0
            else InputSpec(paths=[step_path(spec.output.path, index - 1)], format="records")
        )
        output = OutputSpec(
            path=step_path(spec.output.path, index),
            overwrite=True,
            compression=spec.output.compression if last else "none",
            format="text" if last else "records",
        )
        assert step.app is not None
        update = {
            "app": step.app,
            "input": source,
            "output": output,
            "reduce_tasks": step.reduce_tasks,
            "combine": step.combine,
            "partitioner": step.partitioner,
            "steps": [],
        }
        jobs.append(job.model_copy(update={"spec": spec.model_copy(update=update)}))
    return jobs


def _marker(output: OutputDir) -> str:
    return output.join(TEMPORARY, STEPS_DIR, MARKER)


def begin(output: OutputDir, overwrite: bool, fingerprint: str) -> bool:
    """Start the job's steps, or find them begun by an earlier master of the same job
    (``fingerprint``); return whether they were. Starting clears the output directory
    (refusing a committed one unless ``overwrite``)."""
    marker = _marker(output)
    if not output.committed() and output.store.exists(marker):
        try:
            found = json.loads(output.store.read_bytes(marker)).get("fingerprint")
        except (ValueError, AttributeError, stores.StoreError):
            found = None
        if found == fingerprint:
            return True
    output.prepare(overwrite)
    if not stores.is_s3(marker):
        Path(marker).parent.mkdir(parents=True, exist_ok=True)
    output.store.write_bytes(marker, json.dumps({"fingerprint": fingerprint}).encode())
    return False


def promote(last: OutputDir, output: OutputDir) -> list[str]:
    """Move the last step's committed part files into the job's output (those moved
    before a master restart are there already); return the output's part files."""
    for path in last.parts():
        output.store.replace(path, output.join(stores.basename(path)))
    return output.parts()


def chain_summary(
    job: MapReduceJob, summaries: list[dict[str, Any]], started: float
) -> dict[str, Any]:
    """A multi-step job's summary: its last step's, with the counters (engine and app)
    added up over the steps (but the input's, the first step's, and the output's, the
    last step's), and every step's own summary under ``steps``."""
    summary = dict(summaries[-1])
    for key in ("counters", "appCounters"):
        totals: dict[str, int] = {}
        for step in summaries:
            for name, value in step.get(key, {}).items():
                totals[name] = totals.get(name, 0) + value
        summary[key] = dict(sorted(totals.items()))
    first, last = summaries[0].get("counters", {}), summaries[-1].get("counters", {})
    for name, source in (("map_input_records", first), ("map_input_bytes", first)):
        summary["counters"][name] = source.get(name, 0)  # the job's input, not the steps'
    for name in ("reduce_output_records", "output_bytes"):
        summary["counters"][name] = last.get(name, 0)  # the job's output
    summary.update(
        job=job.metadata.name,
        app=job.spec.app.ref,
        steps=summaries,
        wallSeconds=round(time.time() - started, 3),
    )
    return summary
