"""A reduce attempt's fetch bookkeeping (kubemr.fetches), driven directly."""

from __future__ import annotations

from dataclasses import dataclass

from kubemr.fetches import FETCH_RETRY_DELAY, FETCH_SHARE, Fetches


@dataclass(frozen=True)
class Ref:
    map_task: int
    attempt_id: str


def test_new_outputs_start_once_and_complete_in_map_task_order() -> None:
    book: Fetches[Ref, str] = Fetches()
    stale, started = book.answered(3, [], [Ref(2, "m2.a1"), Ref(0, "m0.a1")], complete=False)
    assert stale == [] and started == [Ref(2, "m2.a1"), Ref(0, "m0.a1")]
    assert book.have() == [0, 2] and book.fetching() == ["m0.a1", "m2.a1"]
    again = book.answered(3, [], [Ref(0, "m0.a1"), Ref(1, "m1.a1"), Ref(1, "m1.a1")], False)
    assert again == ([], [Ref(1, "m1.a1")])  # in flight or repeated: not started twice
    assert book.fetched(2, "run-2") == FETCH_SHARE / 3
    assert book.fetched(0, "run-0") == FETCH_SHARE * 2 / 3
    assert not book.complete
    book.fetched(1, "run-1")
    assert book.complete and book.runs() == ["run-0", "run-1", "run-2"]


def test_a_failed_fetch_is_dropped_counted_and_retried_later() -> None:
    book: Fetches[Ref, str] = Fetches()
    book.answered(2, [], [Ref(0, "m0.a1")], complete=False)
    assert book.retry_delay(0) == 0
    assert book.failed(0) == Ref(0, "m0.a1")
    assert book.have() == [] and book.retry_delay(0) == FETCH_RETRY_DELAY
    book.answered(2, [], [Ref(0, "m0.a2")], complete=False)  # the rerun's output
    book.failed(0)
    assert book.retry_delay(0) == 2 * FETCH_RETRY_DELAY


def test_stale_fetches_are_dropped_and_completed_ones_kept() -> None:
    book: Fetches[Ref, str] = Fetches()
    book.answered(2, [], [Ref(0, "m0.a1"), Ref(1, "m1.a1")], complete=True)
    book.fetched(0, "run-0")
    stale, started = book.answered(2, [0, 1], [Ref(1, "m1.a2")], complete=True)
    assert stale == [Ref(1, "m1.a1")]  # map 0 was fetched whole: kept
    assert started == [Ref(1, "m1.a2")] and book.done == {0: "run-0"}


def test_an_answer_with_nothing_new_after_the_map_phase_slows_polling() -> None:
    book: Fetches[Ref, str] = Fetches()
    book.answered(1, [], [], complete=False)
    assert not book.idle_poll  # maps still running: ask again at once (long poll)
    book.answered(1, [], [], complete=True)
    assert book.idle_poll
    book.answered(1, [], [Ref(0, "m0.a1")], complete=True)
    assert not book.idle_poll
