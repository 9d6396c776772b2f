"""Sizing a job for a cluster (``kubemr plan``): the design seed's estimate as arithmetic.

Pure: sizes and counts in, a :class:`Proposal` out. The rules, the MapReduce paper's
(Dean and Ghemawat, OSDI 2004, section 3.5) as the seed applies them:

- **M** (map tasks) = the input cut into splits of ``splitSize`` bytes (per file, as
  :func:`kubemr.splits.plan_splits` cuts them). The paper's 16-64 MB per task keeps each
  task short (a lost or slow one costs little) and M much larger than the workers, so
  work balances dynamically. The default, 64M (decimal, as the paper counts), makes the
  seed's 12.8 TB exactly M = 200,000.
- **W** (workers) = the machines the job may use. Each runs one mapper and one reducer
  (kubemr's mappers only map and its reducers only reduce, so both roles have W
  replicas, fewer if there are fewer tasks than that).
- **R** (reduce tasks) = ``reduce_factor`` x W, 2.5 by default: the paper's 5,000 for
  2,000 workers. A small multiple of W so that reducers pull tasks one after another (a
  slow reducer holds up one task, a failed one's work spreads over the others) while
  each task stays large; R is also the number of output files, so not much more.
- **The master's memory**: per task, attempt and worker, as ``bench/scale.py`` measures
  it (docs/benchmarks.md); and the location state: each map output's totals (in the
  per-map figure) and one running sum per reduce partition. A map output's size per
  reduce partition stays with its mapper (:mod:`kubemr.partitionsizes`), so nothing in
  the master grows with M x R.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from kubemr import quantities

DEFAULT_SPLIT = "64M"
"""The paper's 64 MB per map task."""
REDUCE_FACTOR = 2.5
"""R per worker: the paper's 5,000 reduce tasks for 2,000 workers."""
MAX_REPLICAS = 10_000
"""``spec.mapper.replicas`` and ``spec.reducer.replicas`` allow at most this many."""
MAX_REDUCE_TASKS = 100_000
"""``spec.reduceTasks`` allows at most this many."""

BYTES_PER_MAP = 580
"""Master state per map task, done (its task, attempt, output location and split), bytes:
measured by ``bench/scale.py`` (tracemalloc over a real scheduler, docs/benchmarks.md)."""
BYTES_PER_REDUCE = 660
"""Master state per reduce task, committed, bytes (same measurement)."""
BYTES_PER_WORKER = 660
"""Master state per worker (a mapper and a reducer), bytes (same measurement)."""
BYTES_PER_PARTITION = 80
"""Master state per reduce partition for its input size (records and bytes summed over
the map outputs: two Python ints in two lists), bytes; measured with sort-shaped sizes
by ``bench/scale.py`` (73 B at the seed's scale)."""
RERUN_HEADROOM = 1.2
"""Extra attempts (reruns, backups) the estimate allows for, as a factor on task state."""


@dataclass(frozen=True)
class Proposal:
    """What ``kubemr plan`` proposes."""

    input_bytes: int
    files: int
    split_size: str
    """``spec.input.splitSize`` as written in the manifest."""
    maps: int
    """M."""
    workers: int
    """W."""
    mappers: int
    """``spec.mapper.replicas``."""
    reducers: int
    """``spec.reducer.replicas``."""
    reduces: int
    """R, ``spec.reduceTasks``."""
    reduce_factor: float
    state_bytes: int
    """The master's task, attempt and worker state, O(M + R + W)."""
    location_bytes: int
    """The master's per-partition input sizes, O(R) (a byte per map task marks whether
    its sizes are counted)."""
    notes: list[str] = field(default_factory=list)

    @property
    def master_bytes(self) -> int:
        return self.state_bytes + self.location_bytes


def parse_size(text: str) -> int:
    """Bytes in a size such as ``12.8T``, ``12.8TB``, ``1Ti``, ``64Mi`` or ``500000``
    (Kubernetes quantities; a trailing ``B`` is allowed). ValueError names the text."""
    value = text.strip()
    if value.endswith("B") and value[:-1].strip():
        value = value[:-1]
    try:
        return quantities.parse_quantity(value)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a size (examples: 12.8T, 12.8TB, 500Gi, 1048576)"
        ) from None


def split_count(files: list[int], split_size: int) -> int:
    """M: splits of at most ``split_size`` bytes, cut per file (empty files get none)."""
    return sum(math.ceil(size / split_size) for size in files)


def propose(
    files: list[int],
    workers: int,
    *,
    split_size: str = DEFAULT_SPLIT,
    reduce_factor: float = REDUCE_FACTOR,
) -> Proposal:
    """The job's M, R and replicas for input files of these sizes on ``workers`` machines.

    Raises ValueError naming the argument that is out of range.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if reduce_factor <= 0:
        raise ValueError(f"reduce factor must be positive, got {reduce_factor}")
    split = parse_size(split_size)
    if split < 1:
        raise ValueError(f"split size must be positive, got {split_size!r}")
    notes = []
    maps = split_count(files, split)
    reduces = max(1, round(reduce_factor * workers))
    if reduces > MAX_REDUCE_TASKS:
        notes.append(f"R capped at spec.reduceTasks' maximum {MAX_REDUCE_TASKS:,}")
        reduces = MAX_REDUCE_TASKS
    mappers = max(1, min(workers, maps))
    reducers = min(workers, reduces)
    if maps < workers:
        notes.append(
            f"only {maps:,} map tasks for {workers:,} workers: {workers - maps:,} mappers "
            "would idle (a smaller --split-size gives more)"
        )
    if max(mappers, reducers) > MAX_REPLICAS:
        notes.append(f"replicas capped at the spec's maximum {MAX_REPLICAS:,}")
        mappers, reducers = min(mappers, MAX_REPLICAS), min(reducers, MAX_REPLICAS)
    state = RERUN_HEADROOM * (maps * BYTES_PER_MAP + reduces * BYTES_PER_REDUCE)
    state += workers * BYTES_PER_WORKER
    return Proposal(
        input_bytes=sum(files),
        files=len(files),
        split_size=split_size,
        maps=maps,
        workers=workers,
        mappers=mappers,
        reducers=reducers,
        reduces=reduces,
        reduce_factor=reduce_factor,
        state_bytes=round(state),
        location_bytes=reduces * BYTES_PER_PARTITION + maps,
        notes=notes,
    )


def human(size: float) -> str:
    """``12.8 TB``: decimal units, as storage is sold (and as the paper counts)."""
    for unit, scale in (("PB", 1e15), ("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.3g} {unit}"
    return f"{size:.0f} B"


def binary(size: float) -> str:
    """``1.2 GiB``: binary units, as memory is counted."""
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size >= scale:
            return f"{size / scale:.3g} {unit}"
    return f"{size:.0f} B"


def render(p: Proposal) -> str:
    """The proposal as ``kubemr plan`` prints it."""
    per_map = p.input_bytes / p.maps if p.maps else 0
    lines = [
        f"input: {human(p.input_bytes)} ({p.input_bytes:,} bytes in {p.files:,} "
        f"file{'s' if p.files != 1 else ''})",
        f"  splitSize: {p.split_size} -> M = {p.maps:,} map tasks "
        f"({human(per_map)} each on average)",
        f"  workers: W = {p.workers:,} -> mapper.replicas = {p.mappers:,}, "
        f"reducer.replicas = {p.reducers:,} (one of each per worker)",
        f"  reduceTasks: R = {p.reduces:,} ({p.reduce_factor:g} x W: a small multiple of "
        "the workers; one output file each)",
        f"  waves: {p.maps / max(p.mappers, 1):,.1f} map tasks per mapper, "
        f"{p.reduces / max(p.reducers, 1):,.1f} reduce tasks per reducer",
        f"  master memory: ~{binary(p.master_bytes)} = {binary(p.state_bytes)} task and "
        f"worker state + {binary(p.location_bytes)} partition sizes "
        f"(a sum per reduce partition; each map output's stay with its mapper)",
    ]
    lines += [f"  note: {note}" for note in p.notes]
    return "\n".join(lines)


def apply(document: dict[str, object], p: Proposal) -> dict[str, object]:
    """A copy of a manifest (a parsed YAML mapping) with the proposal's values set."""
    result = dict(document)
    spec = dict(_mapping(result.get("spec"), "spec"))
    spec["input"] = {**_mapping(spec.get("input"), "spec.input"), "splitSize": p.split_size}
    spec["reduceTasks"] = p.reduces
    for role, replicas in (("mapper", p.mappers), ("reducer", p.reducers)):
        spec[role] = {**_mapping(spec.get(role), f"spec.{role}"), "replicas": replicas}
    result["spec"] = spec
    return result


def _mapping(value: object, name: str) -> dict[str, object]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be a mapping, got {type(value).__name__}")
    return value
