"""The output directory and its commit protocol, on a local volume or under an S3 prefix.

Reduce attempts write to ``<output>/_temporary/<attempt>/part-NNNNN``. The master commits
exactly one attempt per reduce task ("first commit wins") by making its file
``<output>/part-NNNNN``, so a retried or duplicated attempt never leaves partial or
double output. When every part is committed, ``_summary.json`` and then ``_SUCCESS`` are
written. A failed job removes what it committed: without ``_SUCCESS`` there is no output;
what it leaves is its report, ``_FAILED`` (the summary with the job's final report, read by
``kubemr ui``), which a later run of the job removes like the rest.

On a filesystem the commit is an atomic rename. On S3 (see :mod:`kubemr.stores`) an
attempt's file is a multipart upload that becomes an object only when the attempt
completes it (an attempt killed mid-upload leaves nothing visible), and the commit is a
server-side copy to the final key followed by a delete of the temporary one: the final
object appears whole or not at all. Whatever is left under ``_temporary`` (losers'
files, unfinished uploads) is removed when the job ends.
"""

from __future__ import annotations

import json
from typing import Any

from kubemr import compression, contract, stores
from kubemr.spec import JobSpec, StorageSpec

SUCCESS = "_SUCCESS"
SUMMARY = contract.SUMMARY_FILE
FAILED = contract.FAILED_FILE
TEMPORARY = "_temporary"


class OutputError(ValueError):
    """An output path kubemr must not write to."""


def part_name(partition: int, extension: str = "") -> str:
    """``part-NNNNN`` plus the output compression's extension (``.gz``, ``.zst``)."""
    return f"part-{partition:05d}{extension}"


def _ours(name: str) -> bool:
    return name.startswith("part-") or name in (SUCCESS, SUMMARY, TEMPORARY, FAILED)


class OutputDir:
    """One job's output directory (a local path or an ``s3://`` prefix)."""

    def __init__(self, path: str, storage: StorageSpec | None = None, extension: str = "") -> None:
        self.path = str(path).rstrip("/") or str(path)
        self.store = stores.store_for(self.path, storage)
        self.extension = extension

    @classmethod
    def of(cls, spec: JobSpec) -> OutputDir:
        """The output directory of a job: ``spec.output`` on ``spec.storage``, part files
        named with the extension of ``spec.output.compression``."""
        extension = compression.EXTENSIONS[spec.output.compression]
        return cls(spec.output.path, spec.storage, extension)

    def join(self, *names: str) -> str:
        return stores.join(self.path, *names)

    def check(self, overwrite: bool) -> None:
        """Refuse a path that holds a committed job (unless ``overwrite``) or files kubemr
        did not write. Changes nothing. On S3, a missing bucket, denied access or an
        unreachable endpoint is reported here, naming the URI."""
        where = f"spec.output.path: {self.path!r}"
        try:
            if self.store.exists(self.path):
                raise OutputError(f"{where} exists and is not a directory")
            names = [e.name for e in self.store.listdir(self.path)]
        except stores.StoreError as exc:
            raise OutputError(f"spec.output.path: {exc}") from exc
        if SUCCESS in names and not overwrite:
            raise OutputError(
                f"{where} already holds the output of a committed job "
                "(set spec.output.overwrite: true to replace it)"
            )
        foreign = sorted(n for n in names if not _ours(n))
        if foreign:
            raise OutputError(f"{where} holds files kubemr did not write: {foreign[:5]}")

    def prepare(self, overwrite: bool) -> None:
        """Check, then remove the output of an earlier (committed or failed) job."""
        self.check(overwrite)
        if not stores.is_s3(self.path):
            import os  # noqa: PLC0415

            os.makedirs(self.path, exist_ok=True)
        self.clear()

    def clear(self, keep: tuple[str, ...] = ()) -> None:
        """Remove everything kubemr wrote here but ``keep`` (and, on S3, abort unfinished
        uploads)."""
        for entry in self.store.listdir(self.path):
            if _ours(entry.name) and entry.name not in keep:
                if entry.is_dir:
                    self.store.remove_tree(entry.path)
                else:
                    self.store.remove(entry.path)
        self._abort_uploads()

    def _abort_uploads(self) -> None:
        if isinstance(self.store, stores.S3Store):
            self.store.abort_uploads(self.path)

    def temp_path(self, attempt_id: str, partition: int) -> str:
        return self.join(TEMPORARY, attempt_id, part_name(partition, self.extension))

    def final_path(self, partition: int) -> str:
        return self.join(part_name(partition, self.extension))

    def commit(self, temp: str, partition: int) -> str:
        """Make an attempt's file the task's output (atomic rename; on S3 a copy then a
        delete, the final object appearing whole)."""
        final = self.final_path(partition)
        self.store.replace(temp, final)
        self.store.remove_tree(temp.rsplit("/", 1)[0])
        return final

    def discard(self, attempt_id: str) -> None:
        self.store.remove_tree(self.join(TEMPORARY, attempt_id))

    def finish(self, summary: dict[str, Any]) -> None:
        """Write the job summary, then the ``_SUCCESS`` marker (last)."""
        self.store.remove_tree(self.join(TEMPORARY))
        self._abort_uploads()
        body = json.dumps(summary, indent=2, sort_keys=True) + "\n"
        self.store.write_bytes(self.join(SUMMARY), body.encode())
        self.store.write_bytes(self.join(SUCCESS), b"")

    def abort(self) -> None:
        """Leave no output visible after a failed job (its ``_FAILED`` report stays)."""
        self.clear(keep=(FAILED,))

    def keep_failure(self, summary: dict[str, Any]) -> None:
        """Write a failed job's summary and report as ``_FAILED`` (after :meth:`abort`)."""
        body = json.dumps(summary, indent=2, sort_keys=True) + "\n"
        self.store.write_bytes(self.join(FAILED), body.encode())

    def parts(self) -> list[str]:
        entries = self.store.listdir(self.path)
        return sorted(e.path for e in entries if e.name.startswith("part-") and not e.is_dir)

    def read_part(self, path: str) -> bytes:
        """A part file's content, decompressed."""
        return compression.decompress_bytes(self.store.read_bytes(path), path)

    def committed(self) -> bool:
        return self.store.exists(self.join(SUCCESS))
