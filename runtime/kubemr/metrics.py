"""Prometheus metrics of the runtime's processes: one registry per process.

Every metric a kubemr process can export is declared once, in
:data:`kubemr.metriccatalog.CATALOG` (name, type, help, labels); :class:`RuntimeMetrics`
builds them on a per-process :class:`~prometheus_client.CollectorRegistry` (never the
global one), which :mod:`kubemr.monitoring` serves at ``/metrics``; :func:`snapshot` turns
an exposition back into JSON-able samples (the local launcher's summary). gRPC call
timings are :mod:`kubemr.rpcmetrics`' interceptors.

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
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from kubemr.metriccatalog import BY_NAME, CATALOG, COMMON_LABELS, JobGauges

LOOP_PROBE_INTERVAL = 0.25
"""Seconds between two probes of the event loop's lag."""

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
        self.job_view: Callable[[], JobGauges] | None = None
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
