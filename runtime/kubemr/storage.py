"""The output directory and its commit protocol.

Reduce attempts write to ``<output>/_temporary/<attempt>/part-NNNNN``. The master commits
exactly one attempt per reduce task by renaming its file to ``<output>/part-NNNNN``
(atomic on one filesystem), so a retried or duplicated attempt never leaves partial or
double output. When every part is committed, ``_summary.json`` and then ``_SUCCESS`` are
written. A failed job removes what it committed: without ``_SUCCESS`` there is no output.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

SUCCESS = "_SUCCESS"
SUMMARY = "_summary.json"
TEMPORARY = "_temporary"


class OutputError(ValueError):
    """An output path kubemr must not write to."""


def part_name(partition: int) -> str:
    return f"part-{partition:05d}"


def _ours(name: str) -> bool:
    return name.startswith("part-") or name in (SUCCESS, SUMMARY, TEMPORARY)


class OutputDir:
    """One job's output directory."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def check(self, overwrite: bool) -> None:
        """Refuse a path that holds a committed job (unless ``overwrite``) or files kubemr
        did not write. Changes nothing."""
        where = f"spec.output.path: {str(self.path)!r}"
        if self.path.exists() and not self.path.is_dir():
            raise OutputError(f"{where} exists and is not a directory")
        if not self.path.exists():
            return
        names = os.listdir(self.path)
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
        self.path.mkdir(parents=True, exist_ok=True)
        self.clear()

    def clear(self) -> None:
        """Remove everything kubemr wrote here."""
        if not self.path.exists():
            return
        for name in os.listdir(self.path):
            if _ours(name):
                target = self.path / name
                if target.is_dir():
                    shutil.rmtree(target, ignore_errors=True)
                else:
                    target.unlink(missing_ok=True)

    def temp_path(self, attempt_id: str, partition: int) -> Path:
        return self.path / TEMPORARY / attempt_id / part_name(partition)

    def final_path(self, partition: int) -> Path:
        return self.path / part_name(partition)

    def commit(self, temp: Path, partition: int) -> Path:
        """Make an attempt's file the task's output (atomic rename)."""
        final = self.final_path(partition)
        os.replace(temp, final)
        shutil.rmtree(temp.parent, ignore_errors=True)
        return final

    def discard(self, attempt_id: str) -> None:
        shutil.rmtree(self.path / TEMPORARY / attempt_id, ignore_errors=True)

    def finish(self, summary: dict[str, Any]) -> None:
        """Write the job summary, then the ``_SUCCESS`` marker (last)."""
        shutil.rmtree(self.path / TEMPORARY, ignore_errors=True)
        tmp = self.path / f".{SUMMARY}.tmp"
        tmp.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, self.path / SUMMARY)
        (self.path / SUCCESS).write_text("", encoding="utf-8")

    def abort(self) -> None:
        """Leave no output visible after a failed job."""
        self.clear()

    def parts(self) -> list[Path]:
        return sorted(self.path.glob("part-*"))

    def committed(self) -> bool:
        return (self.path / SUCCESS).exists()
