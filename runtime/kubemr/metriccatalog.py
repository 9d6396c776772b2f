"""The metric catalogue: every metric family a kubemr runtime process can export, once.

Name, type, help, labels and which processes export it (:data:`CATALOG`);
:class:`kubemr.metrics.RuntimeMetrics` builds them on a process's registry, and
``docs/metrics.md`` carries :func:`catalog_table` (a unit test fails when the two differ).
Pure data: no prometheus_client here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kubemr.attempts import Outcome, Rule

COMMON_LABELS = ("kubemr_job", "role")
"""Labels every kubemr metric carries, in this order."""

DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)
"""Buckets of phase and task durations, seconds."""
WAIT_BUCKETS = (1e-6, 1e-5, 1e-4, 1e-3, 0.01, 0.05, 0.1, 0.5, 1, 5, 30)
"""Buckets of lock waits and buffer waits, seconds: most are microseconds."""
RPC_BUCKETS = (0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 30)
"""Buckets of gRPC handling times, seconds (long polls end near ``poll_timeout``)."""
LAG_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
"""Buckets of heartbeat intervals and event-loop lag, seconds."""
OUTCOMES = tuple(outcome.value for outcome in Outcome)
"""Outcomes of an attempt as the master's scheduler records them (exported even at 0)."""
BACKUP_RULES = tuple(rule.value for rule in Rule)
"""What chose a backup attempt's original as a straggler: its progress rate against its
peers', or (no progress reported yet) its elapsed time (exported even at 0)."""


@dataclass
class JobGauges:
    """What the master's collector reads at scrape time (filled by the master)."""

    tasks: dict[str, int]
    completed: dict[str, int]
    running: bool
    failed: bool
    last_progress: float
    workers: dict[str, int]
    attempts: dict[tuple[str, str], int]
    backups_launched: dict[tuple[str, str], int]
    """Backup attempts launched, by (phase, rule)."""
    backups: dict[tuple[str, str], int]
    max_lag: dict[str, float]
    heartbeat_timeout: float
    master_restarts: int = 0
    app_counters: dict[str, int] = field(default_factory=dict)
    """The app's counters over committed attempts (bounded: see ``kubemr_app_counter``)."""
    skipped_records: int = 0


@dataclass(frozen=True)
class MetricDef:
    """One metric family as exported (the exposition name, with ``_total`` for counters)."""

    name: str
    kind: str
    """``counter``, ``gauge`` or ``histogram``."""
    help: str
    labels: tuple[str, ...] = ()
    """Labels beyond :data:`COMMON_LABELS`."""
    roles: str = "worker"
    """Which processes export it: ``master``, ``mapper``, ``reducer``, ``worker`` (both
    kinds of worker) or ``all``."""
    buckets: tuple[float, ...] = ()


CATALOG: tuple[MetricDef, ...] = (
    # -- buffers --------------------------------------------------------------------------
    MetricDef(
        "kubemr_map_sort_buffer_bytes",
        "gauge",
        "Estimated memory held by the map sort buffer (payload plus per-record overhead).",
        roles="mapper",
    ),
    MetricDef(
        "kubemr_map_sort_buffer_records", "gauge", "Records in the map sort buffer.", roles="mapper"
    ),
    MetricDef(
        "kubemr_map_sort_buffer_capacity_bytes",
        "gauge",
        "Capacity of the map sort buffer (spec.shuffle.bufferSize); it spills when full.",
        roles="mapper",
    ),
    MetricDef(
        "kubemr_map_sort_buffer_full_wait_seconds",
        "histogram",
        "Time the map producer is blocked while its full sort buffer is sorted and spilled.",
        roles="mapper",
        buckets=WAIT_BUCKETS,
    ),
    MetricDef(
        "kubemr_fetch_buffer_bytes",
        "gauge",
        "Fetched map output held in the reducer's in-memory fetch buffer.",
        roles="reducer",
    ),
    MetricDef(
        "kubemr_fetch_buffer_records",
        "gauge",
        "Records of the completed runs held in the reducer's in-memory fetch buffer.",
        roles="reducer",
    ),
    MetricDef(
        "kubemr_fetch_buffer_capacity_bytes",
        "gauge",
        "Capacity of the reducer's fetch buffer (spec.shuffle.bufferSize); fetches that do "
        "not fit stream to local disk.",
        roles="reducer",
    ),
    MetricDef(
        "kubemr_fetch_buffer_lock_wait_seconds",
        "histogram",
        "Time a fetch stream or the reduce waits to acquire the fetch buffer's lock.",
        roles="reducer",
        buckets=WAIT_BUCKETS,
    ),
    MetricDef(
        "kubemr_fetch_buffer_lock_hold_seconds",
        "histogram",
        "Time the fetch buffer's lock is held, per acquisition.",
        roles="reducer",
        buckets=WAIT_BUCKETS,
    ),
    MetricDef(
        "kubemr_fetch_sources_active",
        "gauge",
        "Map outputs (sources) the reducer is streaming now.",
        roles="reducer",
    ),
    MetricDef(
        "kubemr_fetch_sources_waiting",
        "gauge",
        "Map outputs known to the reducer and waiting for a fetch slot.",
        roles="reducer",
    ),
    MetricDef(
        "kubemr_fetch_sources_capacity",
        "gauge",
        "Fetch slots: map outputs fetched at once (spec.shuffle.parallelFetches).",
        roles="reducer",
    ),
    MetricDef(
        "kubemr_fetch_inflight_bytes",
        "gauge",
        "Bytes received so far by the fetches still streaming (the per-source queues).",
        roles="reducer",
    ),
    MetricDef(
        "kubemr_fetch_slot_wait_seconds",
        "histogram",
        "Time a known map output waits for a free fetch slot.",
        roles="reducer",
        buckets=WAIT_BUCKETS,
    ),
    MetricDef(
        "kubemr_map_output_wait_seconds",
        "histogram",
        "Time the reducer waits for the master to report map outputs (consumer on empty).",
        roles="reducer",
        buckets=WAIT_BUCKETS,
    ),
    MetricDef(
        "kubemr_fetched_runs_spilled_total",
        "counter",
        "Fetched runs streamed to local disk because the fetch buffer was full.",
        roles="reducer",
    ),
    # -- phases, stages, tasks ------------------------------------------------------------
    MetricDef(
        "kubemr_phase_duration_seconds",
        "histogram",
        "Duration of one phase of a task: map, spill, map_merge, shuffle_fetch (one run), "
        "reduce_merge, reduce; commit (master).",
        ("phase",),
        roles="all",
        buckets=DURATION_BUCKETS,
    ),
    MetricDef(
        "kubemr_task_duration_seconds",
        "histogram",
        "Wall time of one task attempt on its worker, by phase (map, reduce) and outcome "
        "(succeeded, failed, cancelled, abandoned).",
        ("phase", "outcome"),
        buckets=DURATION_BUCKETS,
    ),
    MetricDef(
        "kubemr_stage_input_records_total",
        "counter",
        "Records into a stage: map (input lines), combine, shuffle_fetch, reduce.",
        ("phase",),
    ),
    MetricDef(
        "kubemr_stage_output_records_total",
        "counter",
        "Records out of a stage: map, combine, spill, map_merge, reduce.",
        ("phase",),
    ),
    MetricDef(
        "kubemr_stage_input_bytes_total",
        "counter",
        "Bytes into a stage: map (input), shuffle_fetch (received).",
        ("phase",),
    ),
    MetricDef(
        "kubemr_stage_output_bytes_total",
        "counter",
        "Bytes out of a stage: map (encoded records), map_merge (run files), shuffle_serve "
        "(sent), reduce (part file).",
        ("phase",),
    ),
    # -- the job (master) -----------------------------------------------------------------
    MetricDef(
        "kubemr_job_tasks",
        "gauge",
        "Tasks of the job, by phase (map, reduce).",
        ("phase",),
        "master",
    ),
    MetricDef(
        "kubemr_job_tasks_completed",
        "gauge",
        "Completed tasks (map outputs available, reduces committed), by phase.",
        ("phase",),
        "master",
    ),
    MetricDef(
        "kubemr_job_progress_ratio",
        "gauge",
        "Completed tasks over all tasks, 0 to 1.",
        roles="master",
    ),
    MetricDef(
        "kubemr_job_running",
        "gauge",
        "1 while the job runs, 0 once it succeeded or failed.",
        roles="master",
    ),
    MetricDef("kubemr_job_failed", "gauge", "1 once the job has failed, else 0.", roles="master"),
    MetricDef(
        "kubemr_job_last_progress_timestamp_seconds",
        "gauge",
        "Unix time at which a task last completed (or the master started).",
        roles="master",
    ),
    MetricDef(
        "kubemr_job_workers",
        "gauge",
        "Live workers, by phase (map: mappers, reduce: reducers).",
        ("phase",),
        "master",
    ),
    MetricDef(
        "kubemr_task_attempts",
        "gauge",
        "Attempts of this master, by phase and current outcome (running, succeeded, failed, "
        "discarded, lost, recovered).",
        ("phase", "outcome"),
        "master",
    ),
    MetricDef(
        "kubemr_speculative_attempts_launched_total",
        "counter",
        "Backup attempts launched for stragglers, by phase and by the rule that chose the "
        "straggler (rate: progress rate against its peers'; elapsed: no progress reported).",
        ("phase", "rule"),
        "master",
    ),
    MetricDef(
        "kubemr_speculative_attempts",
        "gauge",
        "Backup attempts by phase and current outcome (succeeded: the backup won).",
        ("phase", "outcome"),
        "master",
    ),
    MetricDef(
        "kubemr_heartbeat_interval_seconds",
        "histogram",
        "Time between two heartbeats of a worker as the master receives them, by phase.",
        ("phase",),
        "master",
        buckets=LAG_BUCKETS,
    ),
    MetricDef(
        "kubemr_heartbeat_max_lag_seconds",
        "gauge",
        "Longest silence of a live worker now, by phase.",
        ("phase",),
        "master",
    ),
    MetricDef(
        "kubemr_heartbeat_timeout_seconds",
        "gauge",
        "The job's heartbeat timeout (spec.faultTolerance.heartbeatTimeout).",
        roles="master",
    ),
    MetricDef(
        "kubemr_master_restarts",
        "gauge",
        "Masters of this job that ran before this one (crashed or evicted; the journal "
        "in the output's _temporary lets each resume the job).",
        roles="master",
    ),
    MetricDef(
        "kubemr_app_counter",
        "gauge",
        "The app's own counters (self.counters.increment) over committed task attempts, by "
        "counter name: at most 100 names per job (kubemr.apps.MAX_COUNTERS), further "
        "names added up as _other.",
        ("counter",),
        "master",
    ),
    MetricDef(
        "kubemr_skipped_records",
        "gauge",
        "Bad records skipped by committed task attempts (spec.faultTolerance.maxSkippedRecords).",
        roles="master",
    ),
    MetricDef(
        "kubemr_workers_lost_total",
        "counter",
        "Workers declared dead (silent past the heartbeat timeout), by phase.",
        ("phase",),
        "master",
    ),
    # -- every process ------------------------------------------------------------------------
    MetricDef(
        "kubemr_grpc_server_handling_seconds",
        "histogram",
        "Time a gRPC call takes on the server, by method (long polls wait up to their timeout).",
        ("method",),
        roles="all",
        buckets=RPC_BUCKETS,
    ),
    MetricDef(
        "kubemr_grpc_client_handling_seconds",
        "histogram",
        "Time a gRPC call takes as its client sees it, by method.",
        ("method",),
        buckets=RPC_BUCKETS,
    ),
    MetricDef(
        "kubemr_auth_refused_total",
        "counter",
        "gRPC calls refused with UNAUTHENTICATED (no job token, or another one), by "
        "service (master: control calls; shuffle: a mapper's map output).",
        ("service",),
        roles="all",
    ),
    MetricDef(
        "kubemr_event_loop_lag_seconds",
        "histogram",
        "How late the process's event loop runs a timer (time the loop is held by other work).",
        roles="all",
        buckets=LAG_BUCKETS,
    ),
    MetricDef(
        "kubemr_process_cpu_seconds_total",
        "counter",
        "User and system CPU time of the process.",
        roles="all",
    ),
    MetricDef(
        "kubemr_process_resident_memory_bytes",
        "gauge",
        "Resident memory of the process now.",
        roles="all",
    ),
    MetricDef(
        "kubemr_process_max_resident_memory_bytes",
        "gauge",
        "Peak resident memory of the process.",
        roles="all",
    ),
)
"""Every metric family a kubemr runtime process exports."""

BY_NAME = {m.name: m for m in CATALOG}


def catalog_table() -> str:
    """The Markdown table of :data:`CATALOG` that ``docs/metrics.md`` carries."""
    lines = ["| name | type | labels | exported by | help |", "| --- | --- | --- | --- | --- |"]
    for m in CATALOG:
        labels = ", ".join(f"`{label}`" for label in (*COMMON_LABELS, *m.labels))
        lines.append(f"| `{m.name}` | {m.kind} | {labels} | {m.roles} | {m.help} |")
    return "\n".join(lines) + "\n"
