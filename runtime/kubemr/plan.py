"""Turning a validated manifest into a runnable plan, before any task starts.

The plan resolves the input (every missing path is an error naming its field), cuts it
into splits, loads the app once (so an unknown app fails here, not in a worker), decides
the combiner and partitioner, samples range-partition boundaries, and checks the output
path. The master, the local launcher and the sequential runner all start here.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubemr import apps, formats, inputs, records, steps, stores
from kubemr.outputdir import OutputDir
from kubemr.partitioning import Partitioner, boundaries_from_sample, make_partitioner
from kubemr.spec import JobSpec, MapReduceJob
from kubemr.splits import Split, default_split_size, plan_splits

SAMPLE_LINES_PER_SPLIT = 400
"""Input lines sampled per split to choose range-partition boundaries."""


class PlanError(ValueError):
    """A job that cannot start; the message names the field and the file."""


@dataclass(frozen=True)
class JobPlan:
    """Everything decided before the first task."""

    job: MapReduceJob
    splits: list[Split]
    boundaries: list[bytes]
    combine: bool
    partitioner_kind: str
    steps: tuple[MapReduceJob, ...] = ()
    """A multi-step job's steps, each a single-step job (:mod:`kubemr.steps`); the plan's
    splits, boundaries, combiner and partitioner are then its first step's. Empty for a
    job of one step."""

    @property
    def reduce_tasks(self) -> int:
        return self.job.spec.reduce_tasks

    def partitioner(self) -> Partitioner:
        return make_partitioner(self.reduce_tasks, self.boundaries)

    def decided_job(self) -> MapReduceJob:
        """The job as the master hands it to workers: ``spec.combine`` is the plan's
        decision (:func:`decide_combine`), so that no worker decides again. (The
        partitioner travels as :attr:`boundaries`: none is the hash partitioner.)"""
        spec = self.job.spec.model_copy(update={"combine": self.combine})
        return self.job.model_copy(update={"spec": spec})


def decide_combine(spec: JobSpec, app: apps.App) -> bool:
    """``spec.combine`` if set, else whether the app has a combiner; never in a map-only
    job (its map output is the job's output)."""
    if spec.reduce_tasks == 0:
        return False
    return apps.has_combiner(app) if spec.combine is None else spec.combine


def plan_job(job: MapReduceJob, search: Iterable[Path] = (), check_output: bool = True) -> JobPlan:
    """Validate what only the running side can check and build the plan (of a
    multi-step job: its first step's, with every step's app loaded)."""
    search = list(search)
    try:
        jobs = steps.step_jobs(job, search)
    except apps.AppError as exc:
        raise PlanError(str(exc)) from None
    if jobs == [job]:
        return _plan_step(job, search, check_output)
    for later in jobs[1:]:
        try:
            _check_app(later.spec, apps.load_app(later.spec.app, search))
        except apps.AppError as exc:
            raise PlanError(str(exc)) from None
    if check_output:
        try:
            OutputDir.of(job.spec).check(job.spec.output.overwrite)
        except ValueError as exc:
            raise PlanError(str(exc)) from None
    first = _plan_step(jobs[0], search, check_output=False)
    return dataclasses.replace(first, job=job, steps=tuple(jobs))


def _check_app(spec: JobSpec, app: apps.App) -> None:
    if spec.combine and not apps.has_combiner(app):
        raise PlanError(f"spec.combine: {spec.app.ref} has no combine() method")


def _plan_step(job: MapReduceJob, search: Iterable[Path], check_output: bool) -> JobPlan:
    spec = job.spec
    problems: list[str] = []
    files: list[tuple[str, int]] = []
    try:
        files = inputs.resolve_inputs(spec.input.paths, spec.storage)
    except inputs.InputError as exc:
        problems.append(str(exc))
    app = None
    try:
        app = apps.load_app(spec.app, search)
    except apps.AppError as exc:
        problems.append(str(exc))
    if check_output:
        try:
            OutputDir.of(spec).check(spec.output.overwrite)
        except ValueError as exc:
            problems.append(str(exc))
    if problems or app is None:
        raise PlanError("\n".join(problems))
    _check_app(spec, app)
    combine = decide_combine(spec, app)
    try:
        compressed = {path for path, _ in files if inputs.sniff(path, spec.storage) is not None}
    except stores.StoreError as exc:
        raise PlanError(f"spec.input.paths: {exc}") from exc
    whole = (
        {path for path, _ in files} if spec.input.format in formats.WHOLE_FORMATS else compressed
    )
    split_size = spec.input.split_size or default_split_size(
        sum(size for _, size in files), spec.mapper.replicas
    )
    splits = plan_splits(files, split_size, whole=whole)
    kind = spec.partitioner or apps.preferred_partitioner(app)
    boundaries: list[bytes] = []
    if kind == "range" and spec.reduce_tasks > 1 and spec.input.format != "whole-file":
        boundaries = boundaries_from_sample(_sample_keys(spec, app, splits), spec.reduce_tasks)
    return JobPlan(job, splits, boundaries, combine, kind)


def _sample_keys(spec: JobSpec, app: apps.App, splits: list[Split]) -> list[bytes]:
    """Encoded map output keys of a sample of the input (for range boundaries). With
    bad-record skipping on, sampled records whose parsing or map raises are left out."""
    path = splits[0].path if splits else ""
    arguments = formats.map_arguments(spec.input.format, path)
    keys: list[bytes] = []
    apps.start_task(app)
    for line in _sample(spec, splits):
        if spec.input.format == "jsonl" and not line.strip():
            continue
        try:
            pairs = list(app.map(*arguments(line)))
        except Exception:
            if spec.fault_tolerance.max_skipped_records == 0:
                raise
            continue
        keys.extend(records.encode_key(k) for k, _ in pairs)
    return keys


def _sample(spec: JobSpec, splits: list[Split]) -> list[Any]:
    """Raw input records to sample: lines from evenly spaced points of every split, or a
    records file's first records."""
    if spec.input.format != "records":
        return list(inputs.sample_lines(splits, SAMPLE_LINES_PER_SPLIT, storage=spec.storage))
    return [
        raw
        for split in splits
        for _, raw in itertools.islice(
            formats.record_frames(split.path, spec.storage), SAMPLE_LINES_PER_SPLIT
        )
    ]
