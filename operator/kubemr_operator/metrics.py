"""The operator's Prometheus metrics: jobs by phase, reconciliations, pod replacements,
leadership.

Labels are bounded (namespace, phase, role); never a job or pod name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from kubemr_operator import lifecycle

PHASES = (lifecycle.PENDING, lifecycle.RUNNING, *lifecycle.FINISHED, lifecycle.SUSPENDED)


class OperatorMetrics:
    """The metric families, on their own registry (served by the entry point)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.jobs = Gauge(
            "kubemr_operator_jobs",
            "MapReduceJobs the operator sees, by phase.",
            ["namespace", "phase"],
            registry=self.registry,
        )
        self.reconcile_seconds = Histogram(
            "kubemr_operator_reconcile_duration_seconds",
            "Time one reconciliation of a job takes (observe, decide, act).",
            registry=self.registry,
        )
        self.reconcile_errors = Counter(
            "kubemr_operator_reconcile_errors_total",
            "Reconciliations that raised (retried by kopf).",
            ["namespace"],
            registry=self.registry,
        )
        self.pod_replacements = Counter(
            "kubemr_operator_pod_replacements_total",
            "Pods created to replace a failed or deleted one, by role.",
            ["namespace", "role"],
            registry=self.registry,
        )
        self.leader = Gauge(
            "kubemr_operator_leader",
            "1 while this replica holds the leader Lease (or runs standalone) and reconciles, "
            "else 0.",
            registry=self.registry,
        )
        self._phases: dict[tuple[str, str], tuple[str, str]] = {}

    def _refresh(self) -> None:
        counts: dict[tuple[str, str], int] = {}
        for namespace, phase in self._phases.values():
            counts[namespace, phase] = counts.get((namespace, phase), 0) + 1
        namespaces = {namespace for namespace, _ in self._phases.values()}
        for namespace in namespaces:
            for phase in PHASES:
                self.jobs.labels(namespace, phase).set(counts.get((namespace, phase), 0))

    def job_phase(self, namespace: str, name: str, phase: str) -> None:
        self._phases[namespace, name] = (namespace, phase)
        self._refresh()

    def job_deleted(self, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata") or {}
        self._phases.pop((str(meta.get("namespace")), str(meta.get("name"))), None)
        self._refresh()
