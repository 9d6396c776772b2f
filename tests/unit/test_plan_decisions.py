"""The plan's decisions travel with the job the master hands to workers (no worker decides
again): the combiner, and the partitioner as its boundaries."""

from __future__ import annotations

import json
from pathlib import Path

from kubemr import spec as specs

from testjobs import small_plan


def test_workers_get_the_plans_combine_decision(tmp_path: Path) -> None:
    for reduce_tasks, combine in ((2, True), (0, False)):  # wordcount has a combiner
        job = small_plan(tmp_path, reduce_tasks=reduce_tasks)
        assert job.job.spec.combine is None and job.combine is combine
        sent = specs.parse_job(json.loads(json.dumps(specs.dump_job(job.decided_job()))))
        assert sent.spec.combine is combine
        assert sent.model_copy(update={"spec": job.job.spec}) == job.job  # nothing else changed
