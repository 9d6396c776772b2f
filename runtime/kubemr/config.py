"""Process settings of the master and the workers (not the job: that is the manifest).

Typed, with one docstring per field (unit, default). The environment is read once, at the
entry point (:mod:`kubemr.cli`), and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kubemr import contract

GRPC_OPTIONS = [
    ("grpc.max_receive_message_length", 300 * 2**20),
    ("grpc.max_send_message_length", 300 * 2**20),
]
"""Options of every gRPC channel and server of a job (the master's and the shuffle's):
messages of up to 300 MiB each way (gRPC's default receive limit is 4 MiB)."""


@dataclass(frozen=True)
class MasterConfig:
    """How the master process serves."""

    bind: str = "0.0.0.0"
    """Address the master's gRPC server binds. Default all interfaces (in a pod)."""
    port: int = contract.MASTER_PORT
    """The master's gRPC port; 0 picks a free one (``kubemr run`` does). Default 7070."""
    address_file: Path | None = None
    """If set, the master writes ``host:port`` here once it serves. Default none."""
    advertise_host: str = "127.0.0.1"
    """Host written to ``address_file``. Default loopback."""
    summary_file: Path | None = None
    """If set, the master also writes the job summary (JSON) here, success or not."""
    monitoring_port: int | None = None
    """Port of the HTTP server for ``/metrics``, ``/status`` and ``/healthz`` (the operator
    reads ``/status``); 0 picks a free one; None serves nothing. Default none; pods use
    9090."""
    monitoring_file: Path | None = None
    """If set, the master writes ``host:port`` of its monitoring server here once it
    serves (``kubemr run --metrics`` reads it). Default none."""
    metrics_snapshot: Path | None = None
    """If set, the master writes its final metrics (Prometheus text format) here when the
    job is over. Default none."""
    status_linger: float = 0.0
    """Seconds the master keeps serving ``/status`` after the job ended, until the final
    report has been read once (so the operator sees the final figures). Default 0."""
    poll_timeout: float = 1.0
    """Seconds a long-poll (RequestTask, AwaitMapOutputs) waits before answering WAIT."""
    exit_grace: float = 10.0
    """Seconds the master waits, after the job ends, for workers to be told to exit."""
    search_path: tuple[Path, ...] = ()
    """Directories searched for ``spec.app.module`` (the manifest's dir, the cwd)."""
    token: str = ""
    """The job's secret (``KUBEMR_TOKEN``): every gRPC call must carry it
    (``authorization: Bearer <token>``) or is refused with UNAUTHENTICATED. Empty serves
    unauthenticated, which ``kubemr master`` only allows with ``--insecure``. Default
    empty."""
    logs: str = ""
    """Where a worker's log is, for the status page of a failed job: a template with
    ``{worker}`` (the worker's name), e.g. ``kubectl logs {worker}`` in a pod or a file
    path under ``kubemr run``. Default empty (the page names the workers only)."""


@dataclass(frozen=True)
class WorkerConfig:
    """How a worker process runs."""

    role: str
    """``mapper`` or ``reducer``."""
    master: str
    """``host:port`` of the master."""
    name: str = "worker"
    """Stable name (the pod name on Kubernetes). Default ``worker``."""
    work_dir: Path = Path("/tmp/kubemr-worker")
    """Local disk for spills, map output and fetched runs (an emptyDir in a pod)."""
    bind: str = "0.0.0.0"
    """Address the shuffle server binds (mappers). Default all interfaces."""
    shuffle_port: int = contract.SHUFFLE_PORT
    """The shuffle server's port (mappers); 0 picks a free one. Default 7071."""
    advertise_host: str = "127.0.0.1"
    """Host the master tells reducers to fetch from (the pod IP on Kubernetes)."""
    monitoring_port: int | None = None
    """Port of the HTTP server for ``/metrics`` and ``/healthz``; 0 picks a free one; None
    serves nothing. Default none; pods use 9090."""
    monitoring_file: Path | None = None
    """If set, the worker writes ``host:port`` of its monitoring server here once it
    serves. Default none."""
    metrics_snapshot: Path | None = None
    """If set, the worker writes its final metrics (Prometheus text format) here when it
    exits. Default none."""
    coarse_fetch_lock: bool = False
    """Test builds only (``KUBEMR_COARSE_LOCK=1``): the reducer holds its fetch buffer's
    lock while it parses fetched chunks and while it reduces, the mistake that serialises
    a reducer; ``bench/lockwait.py`` shows its cost in the metrics. Default false."""
    connect_timeout: float = 60.0
    """Seconds to keep trying to (re-)register with the master: at start-up, and each time
    it is lost (its process died and is being restarted). Default 60."""
    search_path: tuple[Path, ...] = ()
    """Directories searched for ``spec.app.module``."""
    token: str = ""
    """The job's secret (``KUBEMR_TOKEN``): sent with every call to the master and to
    other mappers' shuffle servers, and required of every call to this worker's shuffle
    server. Empty is unauthenticated, which ``kubemr worker`` only allows with
    ``--insecure``. Default empty."""


@dataclass(frozen=True)
class Slowdown:
    """A worker slot that ``kubemr run`` slows down on purpose, for tests and benchmarks
    (``--slow-worker mapper-0=10``): a straggler that stays alive.

    The launcher duty-cycles SIGSTOP and SIGCONT on the process filling the slot, so
    everything in it (its task, heartbeats, shuffle serving) runs about ``factor`` times
    slower, as on an overloaded node. A replacement in the slot is slowed too.
    """

    slot: str
    """The worker slot: ``mapper-N`` or ``reducer-N`` (N from 0)."""
    factor: float
    """How many times slower, at least 1: the process runs ``period / factor`` seconds
    of every ``period`` and is stopped for the rest."""
    period: float = 0.1
    """Seconds of one run-and-stop cycle. Default 0.1 (at 10x: runs 10 ms, stopped
    90 ms), far below any heartbeat timeout."""
