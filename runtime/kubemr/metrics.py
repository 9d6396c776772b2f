"""Prometheus metrics of the runtime's processes: the catalogue, and one registry per process.

Every metric a kubemr process can export is declared once, in :data:`CATALOG` (name, type,
help, labels); :class:`RuntimeMetrics` builds them on a per-process
:class:`~prometheus_client.CollectorRegistry` (never the global one), which
:mod:`kubemr.monitoring` serves at ``/metrics``. ``docs/metrics.md`` is generated from the
catalogue and a unit test fails when the two differ.

Labels are bounded: ``kubemr_job`` (the MapReduceJob's name; not ``job``, which Prometheus
reserves for the scrape job and would rename to ``exported_job``), ``role`` (the process:
master, mapper or reducer), ``phase``, ``outcome``, ``rule`` (what chose a backup
attempt: ``rate`` or ``elapsed``) and, for gRPC, ``method`` (the protocol's methods).
Never a task, attempt, worker or key. The namespace and the pod come from the scrape's
target labels (the Helm chart's PodMonitor, ``charts/kubemr/templates/monitors.yaml``).

Values are recorded by the I/O layers (worker, master, shuffle, task bodies); the pure
cores (spec, splits, partitioning, scheduler, records) know nothing of this module.
"""

from __future__ import annotations

import asyncio
import resource
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

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
LOOP_PROBE_INTERVAL = 0.25
"""Seconds between two probes of the event loop's lag."""


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

_COLLECTED = {
    "kubemr_job_tasks",
    "kubemr_job_tasks_completed",
    "kubemr_job_progress_ratio",
    "kubemr_job_running",
    "kubemr_job_failed",
    "kubemr_job_last_progress_timestamp_seconds",
    "kubemr_job_workers",
    "kubemr_task_attempts",
    "kubemr_speculative_attempts_launched_total",
    "kubemr_speculative_attempts",
    "kubemr_heartbeat_max_lag_seconds",
    "kubemr_heartbeat_timeout_seconds",
    "kubemr_master_restarts",
    "kubemr_app_counter",
    "kubemr_skipped_records",
    "kubemr_process_cpu_seconds_total",
    "kubemr_process_resident_memory_bytes",
    "kubemr_process_max_resident_memory_bytes",
}
"""Families computed at scrape time by a collector, not kept as metric objects."""


@dataclass
class JobView:
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


def _current_rss() -> int:
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            pages = int(statm.read().split()[1])
    except (OSError, ValueError, IndexError):
        return 0
    return pages * resource.getpagesize()


class _StateCollector(Collector):
    """The scrape-time families: the process's CPU and memory, and (master) the job."""

    def __init__(self, metrics: RuntimeMetrics) -> None:
        self.metrics = metrics

    def _family(self, name: str, labels: tuple[str, ...] = ()) -> Any:
        definition = BY_NAME[name]
        cls = CounterMetricFamily if definition.kind == "counter" else GaugeMetricFamily
        exported = name.removesuffix("_total") if definition.kind == "counter" else name
        return cls(exported, definition.help, labels=[*COMMON_LABELS, *labels])

    def collect(self) -> Iterable[Metric]:
        common = [self.metrics.job, self.metrics.role]
        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu = self._family("kubemr_process_cpu_seconds_total")
        cpu.add_metric(common, usage.ru_utime + usage.ru_stime)
        rss = self._family("kubemr_process_resident_memory_bytes")
        rss.add_metric(common, _current_rss())
        peak = self._family("kubemr_process_max_resident_memory_bytes")
        peak.add_metric(common, usage.ru_maxrss * 1024)
        yield from (cpu, rss, peak)
        source = self.metrics.job_view
        if source is None:
            return
        view = source()
        per_phase: list[tuple[str, dict[str, Any]]] = [
            ("kubemr_job_tasks", view.tasks),
            ("kubemr_job_tasks_completed", view.completed),
            ("kubemr_job_workers", view.workers),
            ("kubemr_heartbeat_max_lag_seconds", view.max_lag),
        ]
        for name, values in per_phase:
            family = self._family(name, ("phase",))
            for phase, value in sorted(values.items()):
                family.add_metric([*common, phase], value)
            yield family
        family = self._family("kubemr_app_counter", ("counter",))
        for counter, value in sorted(view.app_counters.items()):
            family.add_metric([*common, counter], value)
        yield family
        for name, pairs in (
            ("kubemr_task_attempts", view.attempts),
            ("kubemr_speculative_attempts_launched_total", view.backups_launched),
            ("kubemr_speculative_attempts", view.backups),
        ):
            family = self._family(name, BY_NAME[name].labels)
            for (phase, second), value in sorted(pairs.items()):
                family.add_metric([*common, phase, second], value)
            yield family
        total = sum(view.tasks.values())
        done = sum(view.completed.values())
        singles = {
            "kubemr_job_progress_ratio": done / total if total else 1.0,
            "kubemr_job_running": float(view.running),
            "kubemr_job_failed": float(view.failed),
            "kubemr_job_last_progress_timestamp_seconds": view.last_progress,
            "kubemr_heartbeat_timeout_seconds": view.heartbeat_timeout,
            "kubemr_master_restarts": float(view.master_restarts),
            "kubemr_skipped_records": float(view.skipped_records),
        }
        for name, value in singles.items():
            family = self._family(name)
            family.add_metric(common, value)
            yield family


class RuntimeMetrics:
    """The metric families of one process, on their own registry.

    ``role`` is the process's (master, mapper, reducer); ``job`` is set once known (a
    worker learns it when it registers). Recording methods take the extra label values.
    """

    def __init__(self, role: str, job: str = "", registry: CollectorRegistry | None = None):
        self.role = role
        self._job = ""
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self.job_view: Callable[[], JobView] | None = None
        self._metrics: dict[str, Counter | Gauge | Histogram] = {}
        for definition in CATALOG:
            if definition.name in _COLLECTED:
                continue
            labels = [*COMMON_LABELS, *definition.labels]
            if definition.kind == "counter":
                self._metrics[definition.name] = Counter(
                    definition.name.removesuffix("_total"),
                    definition.help,
                    labels,
                    registry=self.registry,
                )
            elif definition.kind == "gauge":
                self._metrics[definition.name] = Gauge(
                    definition.name, definition.help, labels, registry=self.registry
                )
            else:
                self._metrics[definition.name] = Histogram(
                    definition.name,
                    definition.help,
                    labels,
                    registry=self.registry,
                    buckets=definition.buckets,
                )
        self.registry.register(_StateCollector(self))
        if job:
            self.job = job

    @property
    def job(self) -> str:
        """The job's name (the ``kubemr_job`` label); "" until known."""
        return self._job

    @job.setter
    def job(self, name: str) -> None:
        """Set the job's name and export a zero for every family of this role that has no
        labels beyond the common ones, so that dashboards and alerts see them at once."""
        self._job = name
        kinds = ("all", self.role, *(("worker",) if self.role in ("mapper", "reducer") else ()))
        for definition in CATALOG:
            wanted = definition.roles in kinds and not definition.labels
            if wanted and definition.name not in _COLLECTED:
                self._metrics[definition.name].labels(name, self.role)

    # -- recording ------------------------------------------------------------------------

    def _child(self, name: str, extra: tuple[str, ...]) -> Any:
        return self._metrics[name].labels(self.job, self.role, *extra)

    def inc(self, name: str, amount: float = 1.0, *labels: str) -> None:
        """Add ``amount`` to a counter."""
        if amount:
            self._child(name, labels).inc(amount)

    def set(self, name: str, value: float, *labels: str) -> None:
        """Set a gauge."""
        self._child(name, labels).set(value)

    def add(self, name: str, amount: float, *labels: str) -> None:
        """Move a gauge by ``amount`` (negative to lower it)."""
        self._child(name, labels).inc(amount)

    def observe(self, name: str, value: float, *labels: str) -> None:
        """Observe a histogram sample."""
        self._child(name, labels).observe(value)

    def stage(
        self,
        phase: str,
        *,
        records_in: int = 0,
        records_out: int = 0,
        bytes_in: int = 0,
        bytes_out: int = 0,
    ) -> None:
        """Count records and bytes into and out of a stage."""
        self.inc("kubemr_stage_input_records_total", records_in, phase)
        self.inc("kubemr_stage_output_records_total", records_out, phase)
        self.inc("kubemr_stage_input_bytes_total", bytes_in, phase)
        self.inc("kubemr_stage_output_bytes_total", bytes_out, phase)

    def exposition(self) -> bytes:
        """The registry in Prometheus' text format."""
        return generate_latest(self.registry)

    # -- instruments ----------------------------------------------------------------------

    async def probe_loop(self, interval: float = LOOP_PROBE_INTERVAL) -> None:
        """Observe the event loop's lag until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await asyncio.sleep(interval)
            self.observe("kubemr_event_loop_lag_seconds", max(loop.time() - started - interval, 0))

    def server_interceptor(self) -> grpc.aio.ServerInterceptor:
        """A gRPC server interceptor timing every call by method."""
        return _ServerTimer(self)

    def client_interceptors(self) -> list[grpc.aio.ClientInterceptor]:
        """gRPC client interceptors timing every call by method."""
        return [_UnaryTimer(self), _StreamTimer(self)]


def _method(full: str | bytes) -> str:
    text = full.decode() if isinstance(full, bytes) else full
    return text.rsplit("/", 1)[-1]


class _ServerTimer(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(self, metrics: RuntimeMetrics) -> None:
        self.metrics = metrics

    async def intercept_service(
        self, continuation: Callable[[Any], Any], details: grpc.HandlerCallDetails
    ) -> Any:
        handler = await continuation(details)
        if handler is None:
            return None
        method = _method(details.method)
        record = self.metrics.observe
        name = "kubemr_grpc_server_handling_seconds"
        if handler.unary_unary is not None:
            unary = handler.unary_unary

            async def timed_unary(request: Any, context: Any) -> Any:
                started = time.perf_counter()
                try:
                    return await unary(request, context)
                finally:
                    record(name, time.perf_counter() - started, method)

            return grpc.unary_unary_rpc_method_handler(
                timed_unary,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            stream = handler.unary_stream

            async def timed_stream(request: Any, context: Any) -> AsyncIterator[Any]:
                started = time.perf_counter()
                try:
                    async for item in stream(request, context):
                        yield item
                finally:
                    record(name, time.perf_counter() - started, method)

            return grpc.unary_stream_rpc_method_handler(
                timed_stream,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler


class _CallTimer:
    """Times a client call until it is done (the unary and the streaming case alike)."""

    def __init__(self, metrics: RuntimeMetrics) -> None:
        self.metrics = metrics

    async def _timed(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        started = time.perf_counter()
        method = _method(details.method)
        call = await continuation(details, request)
        call.add_done_callback(
            lambda _: self.metrics.observe(
                "kubemr_grpc_client_handling_seconds", time.perf_counter() - started, method
            )
        )
        return call


class _UnaryTimer(_CallTimer, grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_unary(
        self, continuation: Callable[..., Any], details: Any, request: Any
    ) -> Any:
        return await self._timed(continuation, details, request)


class _StreamTimer(_CallTimer, grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_stream(
        self, continuation: Callable[..., Any], details: Any, request: Any
    ) -> Any:
        return await self._timed(continuation, details, request)


# -- snapshots --------------------------------------------------------------------------------


def snapshot(text: str) -> dict[str, list[dict[str, Any]]]:
    """A compact JSON-able form of a text exposition: each family's samples, labels without
    ``kubemr_job``; histograms as their ``count`` and ``sum`` only."""
    out: dict[str, list[dict[str, Any]]] = {}
    for family in text_string_to_metric_families(text):
        if not family.name.startswith("kubemr_") or family.name.endswith("_created"):
            continue
        rows: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
        for sample in family.samples:
            if sample.name.endswith(("_bucket", "_created")):
                continue
            labels = {k: v for k, v in sample.labels.items() if k != "kubemr_job"}
            row = rows.setdefault(tuple(sorted(labels.items())), {"labels": labels})
            if family.type == "histogram":
                row["sum" if sample.name.endswith("_sum") else "count"] = sample.value
            else:
                row["value"] = sample.value
        name = family.name + ("_total" if family.type == "counter" else "")
        if rows:
            out[name] = list(rows.values())
    return out


def catalog_table() -> str:
    """The Markdown table of :data:`CATALOG` that ``docs/metrics.md`` carries."""
    lines = ["| name | type | labels | exported by | help |", "| --- | --- | --- | --- | --- |"]
    for m in CATALOG:
        labels = ", ".join(f"`{label}`" for label in (*COMMON_LABELS, *m.labels))
        lines.append(f"| `{m.name}` | {m.kind} | {labels} | {m.roles} | {m.help} |")
    return "\n".join(lines) + "\n"
