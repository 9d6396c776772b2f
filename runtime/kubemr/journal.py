"""The master's journal: a job's progress, durable in its output directory, so that a
restarted master resumes the job instead of starting over.

It lives at ``<output>/_temporary/_master/journal.jsonl``, under the output directory's
temporary area, as Hadoop's FileOutputCommitter keeps its recovery data: on Kubernetes
the output is a shared volume that every pod mounts and that outlives the master's pod,
committed reduce output is right there, and the runtime needs no Kubernetes API for it.
A job that ends (succeeded or failed) removes it with the rest of ``_temporary``.

On S3, which cannot append, the journal is a prefix,
``<output>/_temporary/_master/journal/``, holding one object per batch of records named
by its sequence number (``0000000007.json``); a PUT is atomic and durable when it
returns, so there is never a torn record, and a resuming master lists the prefix and
reads the records in order.

Append-only JSON lines, one per durable event; each is durable (flushed and fsynced, with
the others of its batch: :class:`Journal`'s group commit) before the master acts on it
(before it answers the worker whose request caused it, or renames a part file):

- ``job``: the first line; the job's name and its fingerprint (a hash of the manifest,
  the split list and the range-partition boundaries). A journal with another
  fingerprint belongs to another job: the master starts over.
- ``start``: a master started serving the job (the first, or a restarted one).
- ``assigned``: an attempt id was handed out, so attempt numbers never repeat across
  masters (a worker's map output directory and a reduce attempt's temporary file are
  named by attempt id).
- ``map_done``: a map attempt's output was accepted: the worker's name and shuffle
  address, the output's records and bytes (its partitions' sizes stay with the mapper),
  the attempt's counters.
- ``partition_sizes``: a checkpoint of the records and bytes per reduce partition, and
  the map tasks counted since the last one (:mod:`kubemr.partitionsizes`): one every so
  often, not per map output, so the journal grows with M + R, not M x R.
- ``committing`` / ``committed``: a reduce attempt's part file (in a map-only job, a map
  attempt's) is about to be renamed into place (with the attempt's counters and skipped
  records) / was. A part file is trusted only if its
  ``committing`` line is there; without ``committed`` it means the master died between
  the rename and the journal write: the part file, if present, is kept.
- ``failed``: an attempt failed; its error counts towards ``maxTaskAttempts``.

A crash mid-write leaves a torn last line: it is ignored, and cut off before a
resuming master appends.

At most one master writes: beside the journal, ``epoch`` (an object on S3) names the
master that holds the job, written whole (rename, or one PUT) by every master as it
starts, before it reads the journal. A master checks that it still holds the epoch
before each record it appends, so before every commit: one that finds another master's
epoch (or none: the job ended) stops with :class:`SupersededError` and writes nothing
more (see docs/runtime.md, "At most one master", for what this guards and what not).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from kubemr import partitionsizes, stores
from kubemr import spec as specs
from kubemr.attempts import Kind, MapOutputRef, Recovery, parse_attempt_id
from kubemr.outputdir import TEMPORARY, OutputDir
from kubemr.plan import JobPlan

log = logging.getLogger("kubemr.journal")

FORMAT = 2
"""Version of the journal's records; a journal of another format is not resumed (2: map
outputs' totals and partition-size checkpoints instead of per-output partition sizes)."""


def journal_path(output: str) -> str:
    """Where the journal of the job writing to ``output`` lives: a file, or on S3 a
    prefix of one object per record."""
    if stores.is_s3(output):
        return stores.join(output, TEMPORARY, "_master", "journal")
    return stores.join(output, TEMPORARY, "_master", "journal.jsonl")


def epoch_path(output: str) -> str:
    """Where the epoch of the master holding the job writing to ``output`` is."""
    return stores.join(output, TEMPORARY, "_master", "epoch")


class SupersededError(RuntimeError):
    """Another master took the job (or it ended): this one must write nothing more."""


class Epoch:
    """This master's hold on the job: a number one past its predecessor's, and a token
    of its own. Whoever wrote the epoch last holds the job."""

    def __init__(self, store: stores.Store, path: str) -> None:
        self.store = store
        self.path = path
        self.holder = uuid.uuid4().hex
        self.number = 0

    def _read(self) -> dict[str, Any] | None:
        if not self.store.exists(self.path):
            return None
        found = json.loads(self.store.read_bytes(self.path))
        return found if isinstance(found, dict) else None

    def take(self) -> None:
        """Hold the job from now on: later checks of any earlier master fail."""
        previous = self._read() or {}
        if not self.number:
            self.number = int(previous.get("epoch", 0)) + 1
        body = {"epoch": self.number, "holder": self.holder, "time": time.time()}
        self.store.write_bytes(self.path, json.dumps(body).encode())

    def check(self) -> None:
        """Raise :class:`SupersededError` unless this master still holds the job."""
        current = self._read()
        if current is None or current.get("holder") != self.holder:
            held = f"epoch {current.get('epoch')}" if current else "no epoch (the job ended)"
            raise SupersededError(
                f"another master holds the job ({held} at {self.path}; this master took "
                f"epoch {self.number}): stopping without writing"
            )


def fingerprint(plan: JobPlan) -> str:
    """A hash of everything that decides what the tasks are and what they produce."""
    body = {
        "job": specs.dump_job(plan.job),
        "splits": [[s.path, s.start, s.end] for s in plan.splits],
        "boundaries": [b.hex() for b in plan.boundaries],
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


@dataclass
class Contents:
    """The whole lines of a journal file."""

    records: list[dict[str, Any]]
    size: int
    """Bytes of whole, valid lines; anything after them is a torn tail."""
    torn: int
    """Bytes after the last valid line (a master died mid-write)."""


def read(path: Path) -> Contents:
    """Every whole, valid line up to the first that is not (a torn last line)."""
    return parse(path.read_bytes())


def parse(data: bytes) -> Contents:
    """The records of a journal's bytes, up to the first line that is not whole and valid."""
    records: list[dict[str, Any]] = []
    size = 0
    while (end := data.find(b"\n", size)) >= 0:
        try:
            record = json.loads(data[size:end])
        except ValueError:
            break
        if not isinstance(record, dict):
            break
        records.append(record)
        size = end + 1
    return Contents(records, size, len(data) - size)


@dataclass
class Replay:
    """What the journal says about the job, ready for a new master."""

    recovery: Recovery
    starts: int = 0
    """Masters that served the job before this one."""
    first_start: float | None = None
    """Wall-clock time the first master started serving, seconds since the epoch."""
    committing: dict[int, str] = field(default_factory=dict)
    """Reduce tasks whose commit began (index -> attempt), committed or not."""
    map_reports: list[tuple[dict[str, int], dict[str, float]]] = field(default_factory=list)
    """Counters and timings of every accepted map attempt."""
    reduce_reports: dict[int, tuple[dict[str, int], dict[str, float]]] = field(default_factory=dict)
    """Counters and timings of the reduce attempt whose commit began, per task."""
    outcomes: dict[tuple[str, int], tuple[dict[str, int], list[str]]] = field(default_factory=dict)
    """Counters and skipped-record locations of each task's accepted attempt (the last
    accepted map attempt; the committed attempt of a reduce, or of a map-only job's map),
    by (kind, index)."""

    def task_outcomes(self) -> dict[tuple[str, int], tuple[dict[str, int], list[str]]]:
        """:attr:`outcomes` of accepted maps and committed tasks only."""
        committed = {(parse_attempt_id(a)[0].value, i) for i, a in self.recovery.committed.items()}
        return {
            key: value
            for key, value in self.outcomes.items()
            if key in committed or (key[0] == "map" and key[1] in self.recovery.map_outputs)
        }

    def totals(self) -> tuple[dict[str, int], dict[str, float]]:
        """Counters and task timings of accepted maps and committed reduces."""
        counters: dict[str, int] = {}
        timings: dict[str, float] = {}
        reports = [*self.map_reports]
        reports += [r for i, r in self.reduce_reports.items() if i in self.recovery.committed]
        for report_counters, report_timings in reports:
            for name, value in report_counters.items():
                counters[name] = counters.get(name, 0) + int(value)
            for name, seconds in report_timings.items():
                timings[name] = timings.get(name, 0.0) + float(seconds)
        return counters, timings


def replay(records: list[dict[str, Any]]) -> Replay:
    """Fold journal records (after the ``job`` line) into what a new master restores.

    Raises ValueError (or KeyError, TypeError) on a record it cannot use.
    """
    result = Replay(Recovery())
    recovery = result.recovery
    for record in records:
        event = record["event"]
        if event == "start":
            result.starts += 1
            if result.first_start is None:
                result.first_start = float(record["time"])
        elif event == "assigned":
            kind, index, number = parse_attempt_id(record["attempt"])
            recovery.attempts[(kind, index)] = max(recovery.attempts.get((kind, index), 0), number)
        elif event == "map_done":
            kind, index, _ = parse_attempt_id(record["attempt"])
            if kind is not Kind.MAP:
                raise ValueError(f"map_done for {record['attempt']}")
            recovery.map_outputs[index] = MapOutputRef(
                index,
                record["attempt"],
                "",
                record["address"],
                int(record["records"]),
                int(record["bytes"]),
                record["worker"],
            )
            result.map_reports.append((record["counters"], record["timings"]))
            result.outcomes[("map", index)] = (
                {k: int(v) for k, v in record["counters"].items()},
                list(record.get("skipped", [])),
            )
        elif event == "committing":
            index = int(record["index"])
            kind, _, _ = parse_attempt_id(record["attempt"])
            result.committing[index] = record["attempt"]
            result.reduce_reports[index] = (record["counters"], record["timings"])
            result.outcomes[(kind.value, index)] = (
                {k: int(v) for k, v in record["counters"].items()},
                list(record.get("skipped", [])),
            )
        elif event == partitionsizes.CHECKPOINT:
            counts = [int(r) for r in record["records"]]
            sizes = [int(b) for b in record["bytes"]]
            if len(counts) != len(sizes):
                raise ValueError("partition_sizes of two lengths")
            recovery.partition_sizes = (counts, sizes)
            recovery.sized_maps.extend(int(i) for i in record["maps"])
        elif event == "committed":
            recovery.committed[int(record["index"])] = record["attempt"]
        elif event == "failed":
            kind, index, _ = parse_attempt_id(record["attempt"])
            recovery.failures.setdefault((kind, index), []).append(record["error"])
        else:
            raise ValueError(f"unknown journal event {event!r}")
    return result


class Journal:
    """An open journal, appended to by one master, with group commit.

    :meth:`add` puts a record in order and returns its sequence number at once; an
    ``await`` of :meth:`durable` returns once it is durable. One batch is made durable at a
    time, off the event loop (in a thread): the records added while a batch is being
    written and synced wait for the next one, so they share one write and one fsync (or
    one PUT) however many there are, as databases' group commit does. The epoch is checked
    before each batch is written, so before every record reaches the journal. The master
    answers a worker, or renames a part file, only after the records its request caused
    are durable; records are durable in the order they were added, so a durable record
    means every earlier one is too. :meth:`append` adds and makes durable at once, on the
    calling thread (opening a journal, tools).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.records = 0
        """Records made durable."""
        self.added = 0
        """Records added (the last one's sequence number)."""
        self.bytes = 0
        """Bytes of the records added by this master."""
        self.syncs = 0
        """Batches made durable (writes and fsyncs, or PUTs)."""
        self.seconds = 0.0
        """Time spent writing and syncing records."""
        self.epoch: Epoch | None = None
        """The master's hold on the job, checked before each batch (see :class:`Epoch`)."""
        self._pending: list[bytes] = []
        self._durable = 0
        self._flight: asyncio.Future[None] | None = None
        self._broken: BaseException | None = None
        """What a batch raised: no later record may be written after a lost one."""
        self._io = threading.Lock()
        """Held while a batch is written, so :meth:`close` waits for one in flight."""

    def add(self, record: dict[str, Any]) -> int:
        """Put one record after the others; its sequence number (see :meth:`durable`)."""
        line = json.dumps(record, separators=(",", ":")).encode() + b"\n"
        self._pending.append(line)
        self.added += 1
        self.bytes += len(line)
        return self.added

    async def durable(self, sequence: int | None = None) -> None:
        """Return once record ``sequence`` (default: every record added so far) is
        durable. Raises what writing it raised (OSError, :class:`SupersededError`)."""
        target = self.added if sequence is None else sequence
        while self._durable < target:
            if self._broken is not None:
                raise self._broken
            if self._flight is None:
                self._flight = asyncio.ensure_future(self._commit())
            await asyncio.shield(self._flight)

    async def _commit(self) -> None:
        """Make the records added so far durable in one batch, off the event loop."""
        try:
            lines, self._pending = self._pending, []
            await asyncio.to_thread(self._write_batch, lines)
        finally:
            self._flight = None

    def append(self, record: dict[str, Any]) -> None:
        """Write one record (and any added before) and make it durable before returning,
        on this thread; raise :class:`SupersededError` (writing nothing) if another
        master holds the job."""
        self.add(record)
        self.flush()

    def flush(self) -> None:
        """Make every record added so far durable, on this thread (no group commit)."""
        if self._flight is not None:
            raise RuntimeError("a batch is in flight: await durable() instead")
        if self._pending:
            lines, self._pending = self._pending, []
            self._write_batch(lines)

    def _write_batch(self, lines: list[bytes]) -> None:
        if self._broken is not None:
            raise self._broken
        with self._io:
            started = time.perf_counter()
            try:
                self.check_held()
                self._write(b"".join(lines))
            except BaseException as exc:
                self._broken = exc
                raise
            self.records += len(lines)
            self._durable += len(lines)
            self.syncs += 1
            self.seconds += time.perf_counter() - started

    def check_held(self) -> None:
        """Raise :class:`SupersededError` if another master holds the job."""
        if self.epoch is not None:
            self.epoch.check()

    def _write(self, lines: bytes) -> None:
        """Write whole lines and make them durable."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the file (nothing to do for objects), after a batch in flight; records
        added and not awaited are dropped (nobody was told of them)."""


class FileJournal(Journal):
    """A journal file: appended to, flushed and fsynced per batch."""

    def __init__(self, path: str, stream: BinaryIO) -> None:
        super().__init__(path)
        self.stream = stream

    @classmethod
    def create(cls, path: str) -> FileJournal:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        journal = cls(path, Path(path).open("wb"))  # noqa: SIM115 (closed by close())
        _sync_dir(Path(path).parent)
        return journal

    @classmethod
    def reopen(cls, path: str, size: int) -> FileJournal:
        """Append after the first ``size`` bytes, cutting off a torn tail."""
        stream = Path(path).open("r+b")  # noqa: SIM115 (closed by close())
        stream.truncate(size)
        stream.seek(size)
        return cls(path, stream)

    def _write(self, lines: bytes) -> None:
        self.stream.write(lines)
        self.stream.flush()
        os.fsync(self.stream.fileno())

    def close(self) -> None:
        with self._io:
            self.stream.close()


class ObjectJournal(Journal):
    """A journal in an object store: one object per batch of records under the prefix
    ``path``, named by sequence number, so each batch is one atomic PUT."""

    def __init__(self, path: str, store: stores.Store, next_record: int = 0) -> None:
        super().__init__(path)
        self.store = store
        self.next_record = next_record

    def _write(self, lines: bytes) -> None:
        self.store.write_bytes(stores.join(self.path, f"{self.next_record:010d}.json"), lines)
        self.next_record += 1


def read_objects(store: stores.Store, path: str) -> tuple[Contents, int]:
    """The records of an object journal, in order, and the next free sequence number."""
    entries = [e for e in store.listdir(path) if not e.is_dir and e.name.endswith(".json")]
    with ThreadPoolExecutor(max_workers=16) as pool:
        bodies = list(pool.map(store.read_bytes, [e.path for e in entries]))
    following = max((int(e.name.split(".")[0]) + 1 for e in entries), default=0)
    return parse(b"".join(bodies)), following


def _sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def resume(output: OutputDir, plan: JobPlan) -> tuple[Journal, Replay] | None:
    """Resume the job's journal, returning it and what it says; or None if the job must
    start afresh: there is no journal, or it belongs to another job or manifest, or it
    cannot be read (logged, with the reason). Touches the output only to make the
    journal's commits and the part files in place agree (:func:`_reconcile`); starting
    afresh is the caller's: clear the output directory (:meth:`OutputDir.prepare`), then
    :func:`start`.
    """
    path = journal_path(output.path)
    objects = stores.is_s3(path)
    found = output.store.is_dir(path) if objects else Path(path).is_file()
    if not found or output.committed():
        return None
    epoch = Epoch(output.store, epoch_path(output.path))
    epoch.take()  # before reading: an earlier master appends nothing from now on
    if objects:
        contents, following = read_objects(output.store, path)
    else:
        contents, following = read(Path(path)), 0
    header = contents.records[0] if contents.records else {}
    print_ = fingerprint(plan)
    if header.get("event") != "job" or header.get("format") != FORMAT:
        reason = "it has no readable header"
    elif header.get("fingerprint") != print_:
        reason = (
            f"it was written for another job or manifest (job {header.get('job')!r}, "
            f"fingerprint {str(header.get('fingerprint'))[:12]}, this one {print_[:12]})"
        )
    else:
        try:
            replayed = replay(contents.records[1:])
            _check_fits(replayed, plan)
        except (KeyError, ValueError, TypeError, IndexError) as exc:
            reason = f"a record is unusable ({exc!r})"
        else:
            if contents.torn:
                log.warning(
                    "journal %s: ignoring a torn last line of %d bytes "
                    "(a master died while writing it)",
                    path,
                    contents.torn,
                )
            journal: Journal
            if objects:
                journal = ObjectJournal(path, output.store, following)
            else:
                journal = FileJournal.reopen(path, contents.size)
            journal.epoch = epoch
            _reconcile(output, plan, journal, replayed)
            journal.append({"event": "start", "time": time.time()})
            return journal, replayed
    log.warning("found a journal at %s, but %s: starting the job over", path, reason)
    return None


def start(output: OutputDir, plan: JobPlan) -> Journal:
    """A new journal for the job, in an output directory the caller prepared (its
    temporary area cleared: :meth:`OutputDir.prepare`)."""
    path = journal_path(output.path)
    epoch = Epoch(output.store, epoch_path(output.path))
    epoch.take()
    journal = ObjectJournal(path, output.store) if stores.is_s3(path) else FileJournal.create(path)
    journal.epoch = epoch
    name = plan.job.metadata.name
    journal.append(
        {"event": "job", "format": FORMAT, "job": name, "fingerprint": fingerprint(plan)}
    )
    journal.append({"event": "start", "time": time.time()})
    return journal


def _check_fits(replayed: Replay, plan: JobPlan) -> None:
    recovery = replayed.recovery
    sizes = {Kind.MAP: len(plan.splits), Kind.REDUCE: plan.reduce_tasks}
    commits = [*recovery.committed.items(), *replayed.committing.items()]
    if (
        recovery.partition_sizes is not None
        and len(recovery.partition_sizes[0]) != sizes[Kind.REDUCE]
    ):
        raise IndexError(f"partition sizes of {len(recovery.partition_sizes[0])} partitions")
    tasks = [
        *recovery.attempts,
        *recovery.failures,
        *((Kind.MAP, i) for i in recovery.map_outputs),
        *((Kind.MAP, i) for i in recovery.sized_maps),
        *((parse_attempt_id(attempt)[0], i) for i, attempt in commits),
    ]
    for kind, index in tasks:
        if not 0 <= index < sizes[kind]:
            raise IndexError(f"{kind.value} task {index} of {sizes[kind]}")


def _reconcile(output: OutputDir, plan: JobPlan, journal: Journal, replayed: Replay) -> None:
    """Make the journal's commits and the part files in place agree.

    A part file is only ever renamed into place after its ``committing`` line is
    durable, and the output directory was cleared before the journal began; so a part
    file without that line was not written by this job (it is removed), one with it but
    without ``committed`` was renamed just before a master died (it is kept, and the
    commit journaled now), and a journaled commit whose part file is gone runs again.
    """
    committed = replayed.recovery.committed
    present = {stores.basename(p) for p in output.parts()}
    for index in range(plan.reduce_tasks or len(plan.splits)):  # map-only: a part per map
        final = output.final_path(index)
        name = stores.basename(final)
        if name in present and index not in replayed.committing:
            log.warning("%s is not journaled as committing: removing it", name)
            output.store.remove(final)
        elif name in present and index not in committed:
            attempt = replayed.committing[index]
            log.warning(
                "%s is in place but its commit was not journaled (the master died between "
                "the rename and the journal write): keeping it as %s's output",
                name,
                attempt,
            )
            journal.append({"event": "committed", "index": index, "attempt": attempt})
            committed[index] = attempt
        elif name not in present and index in committed:
            log.warning("%s is journaled as committed but missing: it runs again", name)
            del committed[index]
