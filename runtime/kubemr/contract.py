"""What the runtime and the operator agree on, in one place (DESIGN.md, "The contract").

The operator starts runtime processes in pods and reads them back: it sets their
environment variables, opens their ports, tells their roles apart, reads the master's exit
code and its ``/status`` document. Every name and number both sides use is defined here,
and the operator imports this module (beside :mod:`kubemr.spec`) instead of copying them.
Pure: constants and pydantic models, no I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from kubemr import address

# ---- the custom resource -------------------------------------------------------------

GROUP = "kubemr.io"
"""The API group of the ``MapReduceJob`` custom resource (and the prefix of its labels)."""
VERSION = "v1alpha1"
"""The custom resource's only version."""
API_VERSION = f"{GROUP}/{VERSION}"
"""``apiVersion`` of a ``MapReduceJob`` manifest."""
KIND = "MapReduceJob"
PLURAL = "mapreducejobs"

# ---- the job's reports under ``spec.output.path`` ----------------------------------------

SUMMARY_FILE = "_summary.json"
"""The summary of a job that succeeded, written before ``_SUCCESS`` (the operator names it
in ``status.report``; ``kubemr ui`` serves it)."""
FAILED_FILE = "_FAILED"
"""The final report of a job that failed (likewise)."""

# ---- exit codes of ``kubemr master`` ---------------------------------------------------

EXIT_SUCCEEDED = 0
"""The job succeeded: its output is committed, ``_SUCCESS`` written."""
EXIT_BAD_INPUT = 2
"""The job was rejected before any task ran (manifest, input, output path, app): final."""
EXIT_JOB_FAILED = 3
"""A task failed ``maxTaskAttempts`` times: the job failed, final, restarting would not
help. Any exit code other than these three is a crash: the master may be restarted and
resumes the job from its journal."""
FINAL_EXIT_CODES = (EXIT_SUCCEEDED, EXIT_BAD_INPUT, EXIT_JOB_FAILED)
"""Exit codes of a master that ended the job (any other is a crash)."""
EXIT_TERMINATED = 128 + 15
"""Exit code of a master or worker that stopped because it was told to (SIGTERM), with its
journal closed and no unfinished file left: 143, what a shell or a container runtime
reports for a process ended by SIGTERM. Not final: a master stopped mid-job may be
replaced, and resumes the job."""
EXIT_SUPERSEDED = 4
"""Exit code of a master that found another master holding the job (a newer epoch, see
:class:`kubemr.journal.Epoch`) and stopped without writing: the other one runs the job."""

# ---- addresses --------------------------------------------------------------------------


def host_port(host: str, port: int) -> str:
    """``host:port`` as every kubemr process reads it, an IPv6 host in brackets (the
    operator writes the master's address and reads its ``/status`` with it)."""
    return address.join(host, port)


# ---- roles ------------------------------------------------------------------------------

MASTER, MAPPER, REDUCER = "master", "mapper", "reducer"
"""The three kinds of process (and pod) of a job."""
ROLES = (MASTER, MAPPER, REDUCER)
WORKER_ROLES = (MAPPER, REDUCER)
"""The roles ``kubemr worker --role`` takes."""

# ---- ports (defaults; pods use them, ``kubemr run`` picks free ones) ---------------------

MASTER_PORT = 7070
"""The master's gRPC port."""
SHUFFLE_PORT = 7071
"""A mapper's shuffle server port."""
MONITORING_PORT = 9090
"""Every process's HTTP port for ``/metrics``, ``/healthz`` (and the master's ``/status``
and status page) in a pod."""
STATUS_PATH = "/status"
"""Where the master serves its :class:`StatusReport`, on its monitoring port."""

# ---- environment variables the runtime's entry points read ------------------------------

ENV_MASTER = "KUBEMR_MASTER"
"""A worker's master, ``host:port``."""
ENV_MASTER_PORT = "KUBEMR_MASTER_PORT"
ENV_SHUFFLE_PORT = "KUBEMR_SHUFFLE_PORT"
ENV_MONITORING_PORT = "KUBEMR_MONITORING_PORT"
ENV_STATUS_LINGER = "KUBEMR_STATUS_LINGER"
"""Seconds the master keeps serving ``/status`` after the job until it is read."""
ENV_WORK_DIR = "KUBEMR_WORK_DIR"
ENV_ROLE = "KUBEMR_ROLE"
"""One of :data:`WORKER_ROLES`."""
ENV_JOB_FILE = "KUBEMR_JOB_FILE"
"""The manifest the master reads (YAML or JSON)."""
ENV_POD_NAME = "POD_NAME"
"""A worker's name (the operator sets it from the pod's name)."""
ENV_POD_IP = "POD_IP"
"""The address a worker advertises (the operator sets it from the pod's IP)."""
ENV_TOKEN = "KUBEMR_TOKEN"
"""The job's secret: every gRPC call of the job carries it (see :mod:`kubemr.auth`;
``kubemr run`` sets it for its processes, the operator from the Secret ``<job>-token``)."""
ENV_LOGS = "KUBEMR_LOGS"
"""Where a worker's log is, ``{worker}`` standing for its name (the status page of a failed
job shows it; the operator sets ``kubectl logs -n <namespace> {worker}``)."""
ENV_COARSE_LOCK = "KUBEMR_COARSE_LOCK"
"""Test builds only: ``1`` makes reducers hold their fetch buffer's lock while they parse
and reduce (``bench/lockwait.py`` measures what that costs)."""

# ---- phases --------------------------------------------------------------------------


class Phase(enum.Enum):
    """The job's phase as the master sees it (``StatusReport.phase``). The operator's
    ``MapReduceJob`` phases are its own (``Running`` covers Mapping and Reducing)."""

    PENDING = "Pending"
    MAPPING = "Mapping"
    REDUCING = "Reducing"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


# ---- the master's /status document ---------------------------------------------------


class _Document(BaseModel):
    """camelCase on the wire; unknown fields (a newer master) are ignored."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True
    )


class TaskCount(_Document):
    """Tasks of one kind: how many, and how many are done (map outputs available, reduce
    tasks committed)."""

    total: int = Field(default=0, ge=0)
    done: int = Field(default=0, ge=0)


class FinalSummary(BaseModel):
    """The job summary (``_summary.json``) as ``/status`` carries it once the job is over.
    The operator reads the output names and the wall time; every other field of the
    summary passes through as it is."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="allow", frozen=True
    )

    outputs: list[str] = Field(default_factory=list)
    """The committed output files' names (``part-NNNNN``)."""
    wall_seconds: float | None = None
    """Seconds from the master's start to the job's end."""


class StatusReport(_Document):
    """What the master serves at ``/status`` (:data:`STATUS_PATH`) and the operator copies
    into the ``MapReduceJob``'s status: progress while the job runs, the whole summary once
    it is over."""

    job: str = ""
    """The job's name."""
    phase: str = ""
    """A :class:`Phase`'s value (a string, so that a newer master's phase is still read)."""
    maps: TaskCount = TaskCount()
    reduces: TaskCount = TaskCount()
    workers: int = Field(default=0, ge=0)
    """Live workers."""
    step: int | None = None
    """The step running now (1-based), in a multi-step job; absent otherwise."""
    steps: int | None = None
    """How many steps a multi-step job has; absent for a one-step job."""
    message: str = ""
    """Why the job failed; empty while it has not."""
    attempts: dict[str, int] = Field(default_factory=dict)
    """Task attempts by kind and outcome (``map_succeeded``, ``reduce_failed``, ...)."""
    backup_attempts: dict[str, int] = Field(default_factory=dict)
    """Speculative backup attempts launched, by kind (``map``, ``reduce``)."""
    blacklisted_workers: list[str] = Field(default_factory=list)
    """Live workers that get no tasks because too many attempts failed on them."""
    counters: dict[str, int] = Field(default_factory=dict)
    """The engine's counters (``map.records_in``, ...)."""
    app_counters: dict[str, int] = Field(default_factory=dict)
    """The app's own counters (:class:`kubemr.apps.Counters`)."""
    skipped_records: int | None = None
    """Bad records skipped; absent from documents of masters that did not count them."""
    summary: FinalSummary | None = None
    """The job summary, once the job is over."""
    kept: bool | None = None
    """True when ``kubemr ui`` serves the document from a finished job's kept report
    rather than a live master; absent from the master's."""

    def document(self) -> dict[str, Any]:
        """The JSON document served (camelCase; absent optional fields left out, the
        summary passed through whole)."""
        document = self.model_dump(by_alias=True, exclude_none=True, exclude={"summary"})
        if self.summary is not None:
            document["summary"] = self.summary.model_dump(by_alias=True)
        return document


def read_status(document: Mapping[str, Any] | object) -> StatusReport | None:
    """The :class:`StatusReport` in a ``/status`` document, or None if it is not one (a
    document that does not fit is not read at all rather than read in part)."""
    try:
        return StatusReport.model_validate(document)
    except ValidationError:
        return None
