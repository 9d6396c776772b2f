"""Skipping bad records (``spec.faultTolerance.maxSkippedRecords``; the paper's §4.6).

A record whose ``map`` (or parsing, for ``jsonl``) raises, or a key whose ``reduce``
raises, is skipped when the job allows skipping: whatever the call emitted for it is
dropped, the record is counted, and its location (``path@offset``, or the key and its
partition) is kept, the first :data:`LISTED` of them. Tasks report their skips; the master
adds those of committed attempts, and fails the job once the total exceeds the limit. A
task that alone exceeds it stops at once (:class:`TooManyBadRecordsError`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

LISTED = 100
"""Most skipped-record locations kept (per task, and in the job summary)."""
FIELD = "spec.faultTolerance.maxSkippedRecords"


class TooManyBadRecordsError(RuntimeError):
    """More records were skipped than the job allows."""

    def __init__(self, skipped: BadRecords, last: str) -> None:
        self.skipped = skipped
        super().__init__(over_limit(skipped.count, skipped.limit, last))


def over_limit(count: int, limit: int, last: str) -> str:
    """The message of a job that skipped too many records."""
    where = f"; the last: {last}" if last else ""
    return f"{count} bad records skipped, more than {FIELD} = {limit}{where}"


def describe(location: str, exc: BaseException) -> str:
    """One listed location: where, and what was raised."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{location}: {type(exc).__name__}: {text}"[:300]


@dataclass
class BadRecords:
    """The records one task (or the sequential runner) skipped."""

    limit: int
    count: int = 0
    locations: list[str] = field(default_factory=list)

    def skip(self, location: str, exc: BaseException) -> None:
        """Count a bad record; raise :class:`TooManyBadRecordsError` past the limit."""
        self.count += 1
        entry = describe(location, exc)
        if len(self.locations) < LISTED:
            self.locations.append(entry)
        if self.count > self.limit:
            raise TooManyBadRecordsError(self, entry)
