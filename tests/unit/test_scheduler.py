"""The master's scheduling rules, driven directly (no processes, no gRPC)."""

import pytest
from kubemr.attempts import (
    Kind,
    MapOutputRef,
    Phase,
    Recovery,
    State,
    attempt_id,
    parse_attempt_id,
)
from kubemr.partitionsizes import OutputSizes
from kubemr.scheduler import Scheduler
from kubemr.splits import Split


def make(maps: int = 3, reduces: int = 2, barrier: bool = False, attempts: int = 2) -> Scheduler:
    splits = [Split("f", i * 10, i * 10 + 10) for i in range(maps)]
    return Scheduler(splits, reduces, barrier=barrier, max_attempts=attempts, heartbeat_timeout=5.0)


def finish_maps(s: Scheduler, worker: str, now: float = 1.0) -> None:
    while (a := s.assign(worker, now)) is not None:
        assert s.map_succeeded(a.attempt, OutputSizes.of([(1, 10), (2, 20)]), now)


def test_tasks_outnumber_workers_and_attempt_ids_are_unique() -> None:
    s = make(maps=5)
    m = s.register("m0", Kind.MAP, "h:1", 0.0)
    ids = []
    while (a := s.assign(m, 0.0)) is not None:
        ids.append(a.attempt)
        s.map_succeeded(a.attempt, OutputSizes.of([(0, 0), (0, 0)]), 0.0)
    assert ids == [f"m{i}.a1" for i in range(5)]
    assert (s.map_phase_over and s.phase is Phase.PENDING) or s.phase is Phase.REDUCING


def test_barrier_holds_reduces_until_maps_finish() -> None:
    s = make(barrier=True)
    m = s.register("m0", Kind.MAP, "h:1", 0.0)
    r = s.register("r0", Kind.REDUCE, "", 0.0)
    assert s.assign(r, 0.0) is None
    assert s.map_outputs(set()) == ([], False)
    finish_maps(s, m)
    reduce = s.assign(r, 1.0)
    assert reduce is not None and reduce.kind is Kind.REDUCE
    refs, complete = s.map_outputs(set())
    assert complete and [ref.index for ref in refs] == [0, 1, 2]


def test_streaming_releases_outputs_as_they_complete() -> None:
    s = make()
    m = s.register("m0", Kind.MAP, "h:1", 0.0)
    r = s.register("r0", Kind.REDUCE, "", 0.0)
    assert s.assign(r, 0.0) is not None
    first = s.assign(m, 0.0)
    assert first is not None
    s.map_succeeded(first.attempt, OutputSizes.of([(1, 1), (1, 1)]), 0.0)
    refs, complete = s.map_outputs(set())
    assert [ref.index for ref in refs] == [0] and not complete
    assert s.map_outputs({0}) == ([], False)


def test_first_commit_wins() -> None:
    s = make(maps=0, reduces=1)
    r1 = s.register("r1", Kind.REDUCE, "", 0.0)
    a = s.assign(r1, 0.0)
    assert a is not None
    # A second attempt of the same task (as a backup would be): force it idle again.
    s.reduces[0].state = s.reduces[0].state.IDLE
    r2 = s.register("r2", Kind.REDUCE, "", 0.0)
    b = s.assign(r2, 0.0)
    assert b is not None and b.attempt == "r0.a2"
    assert s.may_commit(b.attempt)
    s.reduce_committed(b.attempt, 1.0)
    assert not s.may_commit(a.attempt)
    assert s.phase is Phase.SUCCEEDED


def test_failures_retry_then_fail_the_job_naming_the_split() -> None:
    s = make(maps=1, attempts=2)
    m = s.register("m0", Kind.MAP, "h:1", 0.0)
    for expected in ("m0.a1", "m0.a2"):
        a = s.assign(m, 0.0)
        assert a is not None and a.attempt == expected
        s.attempt_failed(a.attempt, "ValueError: bad line", 0.0)
    assert s.phase is Phase.FAILED
    assert s.error is not None
    assert "map task 0" in s.error and "f[0:10]" in s.error and "ValueError: bad line" in s.error


def test_dead_worker_loses_running_and_completed_maps() -> None:
    s = make(maps=2)
    m1 = s.register("m1", Kind.MAP, "h:1", 0.0)
    m2 = s.register("m2", Kind.MAP, "h:2", 0.0)
    done = s.assign(m1, 0.0)
    assert done is not None
    s.map_succeeded(done.attempt, OutputSizes.of([(1, 1), (1, 1)]), 0.0)
    running = s.assign(m1, 0.0)
    assert running is not None
    s.heartbeat(m2, 4.0)
    assert s.expire(6.0) == [m1]
    assert s.maps_done == 0
    assert not s.map_succeeded(
        running.attempt, OutputSizes.of([(0, 0), (0, 0)]), 6.0
    )  # late report ignored
    rerun = []
    while (a := s.assign(m2, 6.0)) is not None:
        rerun.append(a.index)
        assert s.map_succeeded(a.attempt, OutputSizes.of([(1, 1), (1, 1)]), 6.0)
    assert sorted(rerun) == [0, 1]
    assert s.maps_done == 2


def test_duplicate_report_is_discarded() -> None:
    s = make(maps=1)
    m = s.register("m0", Kind.MAP, "h:1", 0.0)
    a = s.assign(m, 0.0)
    assert a is not None
    assert s.map_succeeded(a.attempt, OutputSizes.of([(0, 0), (0, 0)]), 0.0)
    assert not s.map_succeeded(a.attempt, OutputSizes.of([(0, 0), (0, 0)]), 0.0)
    assert s.attempts_by_outcome() == {"map_succeeded": 1}


def reducing(maps: int = 2, barrier: bool = False) -> tuple[Scheduler, str, str, str]:
    """A scheduler with every map done by one mapper and a reduce attempt running."""
    s = make(maps=maps, reduces=1, barrier=barrier)
    m = s.register("m0", Kind.MAP, "h:1", 0.0)
    r = s.register("r0", Kind.REDUCE, "", 0.0)
    finish_maps(s, m)
    reduce = s.assign(r, 1.0)
    assert reduce is not None
    return s, m, r, reduce.attempt


def test_fetch_failures_past_threshold_rerun_the_map() -> None:
    s, m, _, r_attempt = reducing()
    assert s.maps_done == 2
    assert not s.fetch_failed(r_attempt, 0, "m0.a1")  # one report: not yet
    assert s.maps_done == 2
    assert s.fetch_failed(r_attempt, 0, "m0.a1")  # the second declares it lost
    assert s.maps_done == 1 and not s.map_phase_over
    assert s.attempts["m0.a1"].outcome == "lost"
    assert s.stale(["m0.a1", "m1.a1"]) == [0]
    rerun = s.assign(m, 2.0)
    assert rerun is not None and rerun.attempt == "m0.a2"
    assert s.map_succeeded(rerun.attempt, OutputSizes.of([(1, 10)]), 2.0)
    refs, complete = s.map_outputs({1})
    assert complete and [(ref.index, ref.attempt) for ref in refs] == [(0, "m0.a2")]
    assert s.stale(["m0.a1"]) == [0] and s.stale(["m0.a2"]) == []


def test_fetch_failure_reports_that_are_late_or_stale_change_nothing() -> None:
    s, _, _, r_attempt = reducing()
    assert not s.fetch_failed(r_attempt, 0, "m0.a9")  # not the output's attempt
    assert not s.fetch_failed("r0.a7", 0, "m0.a1")  # unknown reporter
    assert not s.fetch_failed(r_attempt, 5, "m5.a1")  # no such map task
    s.expire(100.0)  # everyone is dead now: the reducer's report is ignored
    assert not s.fetch_failed(r_attempt, 1, "m1.a1")
    assert s.fetch_failures == {}


def test_fetch_failure_against_a_dead_mappers_output_needs_no_threshold() -> None:
    s, m, _, r_attempt = reducing()
    s.workers[m].alive = False  # as if declared dead without its outputs reset yet
    assert s.fetch_failed(r_attempt, 1, "m1.a1")
    assert s.maps_done == 1


def test_barrier_withholds_outputs_again_while_a_lost_one_reruns() -> None:
    s, m, _, r_attempt = reducing(barrier=True)
    s.fetch_failed(r_attempt, 1, "m1.a1")
    s.fetch_failed(r_attempt, 1, "m1.a1")
    assert s.map_outputs({0}) == ([], False)
    rerun = s.assign(m, 2.0)
    assert rerun is not None and rerun.index == 1
    s.map_succeeded(rerun.attempt, OutputSizes.of([(1, 10)]), 2.0)
    refs, complete = s.map_outputs({0})
    assert complete and [ref.attempt for ref in refs] == ["m1.a2"]


def speculating(maps: int = 10) -> tuple[Scheduler, str, str]:
    """Map 0 straggles on m1 (started at 0); m2 completes every other map in 1s each."""
    splits = [Split("f", i * 10, i * 10 + 10) for i in range(maps)]
    s = Scheduler(
        splits, 1, barrier=False, max_attempts=2, heartbeat_timeout=100.0, speculative=True
    )
    m1 = s.register("m1", Kind.MAP, "h:1", 0.0)
    m2 = s.register("m2", Kind.MAP, "h:2", 0.0)
    slow = s.assign(m1, 0.0)
    assert slow is not None and slow.attempt == "m0.a1"
    now = 0.0
    while any(t.state is State.IDLE for t in s.maps):
        a = s.assign(m2, now)
        assert a is not None and not s.attempts[a.attempt].backup
        now += 1.0
        assert s.map_succeeded(a.attempt, OutputSizes.of([(1, 1)]), now)
    return s, m1, m2


def test_a_backup_only_for_a_task_slower_than_its_peers() -> None:
    s, _, m2 = speculating(maps=2)  # map 1 took 1s
    assert s.assign(m2, 1.2) is None  # map 0 has run 1.2s: not 1.5x the median yet
    backup = s.assign(m2, 1.6)
    assert backup is not None and backup.index == 0 and backup.attempt == "m0.a2"


def test_a_straggler_gets_one_backup_and_the_first_to_finish_wins() -> None:
    s, m1, m2 = speculating()
    backup = s.assign(m2, 9.0)
    assert backup is not None and backup.attempt == "m0.a2" and backup.index == 0
    assert s.attempts["m0.a2"].backup and s.backup_attempts() == {"map": 1, "reduce": 0}
    m3 = s.register("m3", Kind.MAP, "h:3", 9.0)
    assert s.assign(m3, 9.0) is None  # one backup per task, within the budget
    assert s.map_succeeded("m0.a2", OutputSizes.of([(1, 1)]), 10.0)
    assert s.attempts["m0.a1"].outcome == "discarded"
    assert not s.attempt_wanted("m0.a1")  # the heartbeat reply cancels it
    assert not s.map_succeeded(
        "m0.a1", OutputSizes.of([(1, 1)]), 11.0
    )  # its late report is discarded
    assert s.map_phase_over and s.maps[0].output is not None
    assert s.maps[0].output.attempt == "m0.a2" and s.maps[0].output.worker == m2
    assert s.workers[m1].attempt is None


def test_the_original_can_still_win_over_its_backup() -> None:
    s, _, m2 = speculating()
    backup = s.assign(m2, 9.0)
    assert backup is not None
    assert s.map_succeeded("m0.a1", OutputSizes.of([(1, 1)]), 9.5)
    assert s.attempts["m0.a2"].outcome == "discarded"
    assert not s.map_succeeded("m0.a2", OutputSizes.of([(1, 1)]), 10.0)


def test_no_backups_when_speculation_is_off_or_no_task_completed() -> None:
    s, _, m2 = speculating()
    s.speculative = False
    assert s.assign(m2, 50.0) is None
    fresh = make(maps=1)
    fresh.speculative = True
    w1 = fresh.register("a", Kind.MAP, "h:1", 0.0)
    w2 = fresh.register("b", Kind.MAP, "h:2", 0.0)
    assert fresh.assign(w1, 0.0) is not None
    assert fresh.assign(w2, 100.0) is None  # no completed attempt: no median to compare


def test_a_low_progress_rate_gets_a_backup_before_the_elapsed_rule_would() -> None:
    s, m1, m2 = speculating(maps=2)  # map 1 took 1s; map 0 has run 1.2s on m1
    assert s.assign(m2, 1.2) is None  # no progress known: elapsed 1.2s < 1.5x the median
    assert s.progress("m0.a1", 0.1, 1.2)  # 10 % in 1.2s: 12s in all, against 1s typical
    backup = s.assign(m2, 1.2)
    assert backup is not None and backup.attempt == "m0.a2"
    assert s.attempts["m0.a2"].rule == "rate"
    assert s.workers[m1].attempt == "m0.a1"  # the original runs on


def test_lagging_reports_do_not_make_an_attempt_slow_but_stale_ones_do() -> None:
    """Progress arrives with the heartbeat: 40 % reported at 0.4s of a 1s-typical attempt
    is a normal rate even when judged later; once reports stop (the worker died), the
    rate is measured up to now and falls."""
    s, _, m2 = speculating(maps=2)  # map 1 took 1s; map 0 runs on m1 from 0
    s.progress("m0.a1", 0.4, 0.4)
    assert s.assign(m2, 1.2) is None  # the report lags, the rate does not
    backup = s.assign(m2, 12.0)  # stale for 11.6s (heartbeats every 1s): 0.4 in 12s
    assert backup is not None and s.attempts[backup.attempt].rule == "rate"


def test_a_task_that_started_late_at_a_normal_rate_gets_no_backup() -> None:
    """Map 0 runs at a normal rate but started last, so it has the most work left; map 1
    is slow but almost done (a backup could not catch up). Neither is backed up."""
    splits = [Split("f", i * 10, i * 10 + 10) for i in range(10)]
    s = Scheduler(
        splits, 1, barrier=False, max_attempts=2, heartbeat_timeout=100.0, speculative=True
    )
    workers = [s.register(f"m{i}", Kind.MAP, f"h:{i}", 0.0) for i in range(3)]
    fast, slow, late = workers
    almost = s.assign(slow, 0.0)
    assert almost is not None
    now = 0.0
    while sum(t.state is State.IDLE for t in s.maps) > 1:
        a = s.assign(fast, now)
        assert a is not None
        now += 1.0
        assert s.map_succeeded(a.attempt, OutputSizes.of([(1, 1)]), now)
    started_late = s.assign(late, now)
    assert started_late is not None
    s.progress(started_late.attempt, 0.2, now + 0.2)  # 0.2 in 0.2s: a typical 1 task/s
    s.progress(almost.attempt, 0.95, now + 0.2)  # slow (8.2s for 95 %) but 0.4s from done
    assert s.assign(fast, now + 0.2) is None
    assert s.backup_attempts() == {"map": 0, "reduce": 0}
    s.progress(almost.attempt, 0.5, now + 0.2)  # had it been half done, it would be backed up
    backup = s.assign(fast, now + 0.2)
    assert backup is not None and backup.index == almost.index


def test_backups_stay_within_the_budget() -> None:
    """20 maps: at most 2 backups (10 %), however many stragglers and idle workers."""
    splits = [Split("f", i * 10, i * 10 + 10) for i in range(20)]
    s = Scheduler(
        splits, 1, barrier=False, max_attempts=2, heartbeat_timeout=100.0, speculative=True
    )
    slow = [s.register(f"slow{i}", Kind.MAP, f"h:{i}", 0.0) for i in range(3)]
    for w in slow:
        a = s.assign(w, 0.0)
        assert a is not None
        s.progress(a.attempt, 0.05, 0.5)
    fast = s.register("fast", Kind.MAP, "h:9", 0.0)
    for now in range(17):
        a = s.assign(fast, float(now))
        assert a is not None and not s.attempts[a.attempt].backup
        assert s.map_succeeded(a.attempt, OutputSizes.of([(1, 1)]), now + 1.0)
    idle = [fast, *(s.register(f"idle{i}", Kind.MAP, f"h:1{i}", 17.0) for i in range(2))]
    got = [s.assign(w, 17.0) for w in idle]
    assert [a is not None for a in got] == [True, True, False]
    assert s.backup_attempts() == {"map": 2, "reduce": 0}


def test_a_worker_whose_last_attempt_straggled_gets_no_backup() -> None:
    s, m1, m2 = speculating(maps=4)  # m2 did maps 1-3 in 1s each; map 0 runs on m1
    assert s.map_succeeded("m0.a1", OutputSizes.of([(1, 1)]), 10.0)  # m1 took 10s
    m3 = s.register("m3", Kind.MAP, "h:3", 10.0)
    s.maps[1].state = State.IDLE  # (as if its output were lost) map 1 runs again, on m3
    rerun = s.assign(m3, 10.0)
    assert rerun is not None and rerun.index == 1
    s.progress(rerun.attempt, 0.01, 11.0)
    assert s.assign(m1, 15.0) is None  # m1 is slow itself
    backup = s.assign(m2, 15.0)
    assert backup is not None and backup.index == 1


def test_progress_is_clamped_and_only_for_live_attempts() -> None:
    s, _, _ = speculating(maps=2)
    assert s.progress("m0.a1", 1.7, 1.0) and s.attempts["m0.a1"].progress == 1.0
    assert s.progress("m0.a1", -1.0, 1.0) and s.attempts["m0.a1"].progress == 0.0
    assert not s.progress("m1.a1", 0.5, 1.0)  # finished
    assert not s.progress("m9.a1", 0.5, 1.0)  # unknown
    assert not s.progress("m0.a1", float("nan"), 1.0)


def test_the_summary_counts_backups_that_won_and_their_share() -> None:
    s, _, m2 = speculating()
    s.progress("m0.a1", 0.05, 9.0)
    backup = s.assign(m2, 9.0)
    assert backup is not None
    assert s.map_succeeded(backup.attempt, OutputSizes.of([(1, 1)]), 9.5)
    assert s.speculation() == {
        "backups": {"map": 1, "reduce": 0},
        "backupsWon": {"map": 1, "reduce": 0},
        "backupsByRule": {"rate": 1, "elapsed": 0},
        "attempts": 11,
        "backupShare": round(1 / 11, 4),
    }


def test_reduce_backups_wait_for_the_map_phase_and_first_commit_wins() -> None:
    splits = [Split("f", 0, 10)]
    s = Scheduler(
        splits, 10, barrier=False, max_attempts=2, heartbeat_timeout=100.0, speculative=True
    )
    m = s.register("m", Kind.MAP, "h:1", 0.0)
    r1 = s.register("r1", Kind.REDUCE, "", 0.0)
    r2 = s.register("r2", Kind.REDUCE, "", 0.0)
    slow = s.assign(r1, 0.0)
    assert slow is not None and slow.index == 0
    now = 0.0
    while (a := s.assign(r2, now)) is not None:
        now += 1.0
        assert s.may_commit(a.attempt)
        s.reduce_committed(a.attempt, now)
    assert s.assign(r2, 20.0) is None  # the map phase is not over
    first = s.assign(m, 20.0)
    assert first is not None
    s.map_succeeded(first.attempt, OutputSizes.of([(1, 1)] * 10), 20.0)
    backup = s.assign(r2, 20.0)
    assert backup is not None and backup.attempt == "r0.a2"
    assert s.may_commit(backup.attempt)
    s.reduce_committed(backup.attempt, 21.0)
    assert not s.may_commit(slow.attempt)
    assert s.phase is Phase.SUCCEEDED


def test_streaming_backs_up_a_stalled_reduce_during_the_map_phase_by_rate_only() -> None:
    """Streaming: reducers fetch while maps run. One reducer's progress stopped at 5 %
    (its worker died) while its peers reached 25 %: a replacement reducer gets a backup
    before the map phase ends. Without progress, reduces still wait for the map phase."""
    splits = [Split("f", i * 10, i * 10 + 10) for i in range(10)]
    s = Scheduler(
        splits, 3, barrier=False, max_attempts=2, heartbeat_timeout=100.0, speculative=True
    )
    reducers = [s.register(f"r{i}", Kind.REDUCE, "", 0.0) for i in range(3)]
    attempts = [s.assign(r, 0.0) for r in reducers]
    assert all(a is not None for a in attempts)
    spare = s.register("r3", Kind.REDUCE, "", 5.0)
    assert s.assign(spare, 5.0) is None  # no progress known: no early backup
    for attempt, share in zip(attempts, (0.05, 0.25, 0.25), strict=True):
        assert attempt is not None and s.progress(attempt.attempt, share, 5.0)
    backup = s.assign(spare, 5.0)
    assert not s.map_phase_over
    assert backup is not None and backup.attempt == "r0.a2"
    assert s.attempts["r0.a2"].rule == "rate"


def test_a_worker_where_attempts_keep_failing_is_avoided() -> None:
    s = make(maps=6, attempts=4)
    bad = s.register("bad", Kind.MAP, "h:1", 0.0)
    good = s.register("good", Kind.MAP, "h:2", 0.0)
    for _ in range(3):
        a = s.assign(bad, 0.0)
        assert a is not None
        s.attempt_failed(a.attempt, "OSError: disk full", 0.0)
    assert s.blacklisted() == [bad]
    assert s.assign(bad, 0.0) is None  # while a healthy mapper is alive
    finish_maps(s, good)
    assert s.map_phase_over and s.error is None


def test_a_blacklisted_worker_still_works_when_it_is_the_only_one_left() -> None:
    s = make(maps=4, attempts=4)
    bad = s.register("bad", Kind.MAP, "h:1", 0.0)
    good = s.register("good", Kind.MAP, "h:2", 0.0)
    for _ in range(3):
        a = s.assign(bad, 0.0)
        assert a is not None
        s.attempt_failed(a.attempt, "OSError: disk full", 0.0)
    assert s.assign(bad, 0.0) is None
    s.worker_lost(good, 1.0)
    assert s.blacklisted() == []
    a = s.assign(bad, 1.0)
    assert a is not None


# ---- master recovery ----------------------------------------------------------------


def recovery(maps: dict[int, tuple[str, str, str]], committed: dict[int, str]) -> Recovery:
    """Map outputs as index -> (attempt, worker name, address); committed reduces."""
    return Recovery(
        attempts={
            **{(Kind.MAP, i): parse_attempt_id(a)[2] for i, (a, _, _) in maps.items()},
            **{(Kind.REDUCE, i): parse_attempt_id(a)[2] for i, a in committed.items()},
        },
        map_outputs={
            i: MapOutputRef(i, a, "", address, 3, 30, name)
            for i, (a, name, address) in maps.items()
        },
        committed=dict(committed),
    )


def restored(maps: int = 3, reduces: int = 2) -> Scheduler:
    """Maps 0 and 1 done on m0 (h:1) and m1 (h:2), reduce 0 committed; restored at 10."""
    s = make(maps=maps, reduces=reduces)
    s.restore(recovery({0: ("m0.a1", "m0", "h:1"), 1: ("m1.a2", "m1", "h:2")}, {0: "r0.a1"}), 10.0)
    return s


def test_attempt_ids_round_trip() -> None:
    assert parse_attempt_id(attempt_id(Kind.MAP, 3, 2)) == (Kind.MAP, 3, 2)
    assert parse_attempt_id("r12.a7") == (Kind.REDUCE, 12, 7)
    for bad in ("x1.a1", "m.a1", "m1.b1", "m1", "m1.a"):
        with pytest.raises(ValueError, match="not an attempt id"):
            parse_attempt_id(bad)


def test_restore_marks_committed_reduces_and_journaled_maps_done() -> None:
    s = restored()
    assert s.maps_done == 2 and s.reduces_done == 1
    assert s.recovered() == {"map": 2, "reduce": 1}
    assert s.attempts_by_outcome() == {"map_recovered": 2, "reduce_recovered": 1}
    assert [t.output.pending for t in s.maps[:2] if t.output is not None] == [True, True]
    refs, complete = s.map_outputs(set())  # reducers may fetch them at once
    assert [(r.index, r.attempt, r.address) for r in refs] == [
        (0, "m0.a1", "h:1"),
        (1, "m1.a2", "h:2"),
    ]
    assert not complete


def test_attempt_numbers_continue_after_the_journaled_ones() -> None:
    s = restored()
    s.restore(Recovery(attempts={(Kind.MAP, 2): 4}), 10.0)
    m = s.register("m9", Kind.MAP, "h:9", 10.0)
    a = s.assign(m, 10.0)
    assert a is not None and a.attempt == "m2.a5"
    r = s.register("r9", Kind.REDUCE, "", 10.0)
    b = s.assign(r, 10.0)
    assert b is not None and b.index == 1 and b.attempt == "r1.a1"


def test_a_mapper_back_at_its_address_inherits_its_outputs() -> None:
    s = restored()
    m0 = s.register("m0", Kind.MAP, "h:1", 10.5)
    output = s.maps[0].output
    assert output is not None and output.worker == m0 and not output.pending
    assert s.attempts["m0.a1"].worker == m0
    s.expire(15.2)  # past the claim window: only m1's unclaimed output is lost
    assert s.maps[0].state is State.DONE and s.maps[1].state is State.IDLE
    assert s.attempts["m1.a2"].outcome == "lost"
    assert s.recovered() == {"map": 1, "reduce": 1}
    s.worker_lost(m0, 20.0)  # what it inherited is lost with it
    assert s.maps[0].state is State.IDLE


def test_unclaimed_outputs_survive_until_the_heartbeat_timeout() -> None:
    s = restored()
    assert s.expire(15.0) == [] and s.maps_done == 2  # restored at 10, timeout 5
    assert s.expire(15.1) == ["pending:m0", "pending:m1"]
    assert s.maps_done == 0
    late = s.register("m0", Kind.MAP, "h:1", 16.0)
    assert all(t.output is None or t.output.worker != late for t in s.maps)


def test_a_mapper_back_at_another_address_lost_its_outputs() -> None:
    s = restored()
    s.register("m1", Kind.MAP, "h:7", 10.5)  # same name, new process, empty disk
    assert s.maps[1].state is State.IDLE and s.maps[0].state is State.DONE
    a = s.assign(s.register("m2", Kind.MAP, "h:3", 10.5), 10.5)
    assert a is not None and a.attempt == "m1.a3"


def test_a_fetch_failure_against_an_unclaimed_output_loses_it_at_once() -> None:
    s = restored(reduces=2)
    r = s.register("r0", Kind.REDUCE, "", 10.0)
    reduce = s.assign(r, 10.0)
    assert reduce is not None and reduce.index == 1
    assert s.fetch_failed(reduce.attempt, 1, "m1.a2")
    assert s.maps[1].state is State.IDLE and s.stale(["m0.a1", "m1.a2"]) == [1]


def test_a_worker_that_reconnects_keeps_its_outputs_and_loses_its_running_attempt() -> None:
    s = make(maps=3)
    m = s.register("m0", Kind.MAP, "h:1", 0.0)
    done = s.assign(m, 0.0)
    assert done is not None and s.map_succeeded(done.attempt, OutputSizes.of([(1, 1), (1, 1)]), 0.0)
    running = s.assign(m, 0.0)
    assert running is not None
    again = s.register("m0", Kind.MAP, "h:1", 1.0)  # it lost the master for a moment
    assert not s.workers[m].alive and s.workers[again].alive
    assert s.attempts[running.attempt].outcome == "lost"
    assert s.maps[running.index].state is State.IDLE
    output = s.maps[done.index].output
    assert output is not None and output.worker == again
    assert s.expire(5.5) == [] and s.maps_done == 1  # the old registration is not "dead"
    other = s.register("m0", Kind.MAP, "h:2", 2.0)  # same name elsewhere: not the same worker
    assert s.workers[again].alive and s.workers[other].alive


def test_map_only_commits_maps_one_attempt_each_and_a_dead_worker_loses_none() -> None:
    s = make(maps=2, reduces=0)
    assert s.phase is Phase.PENDING  # no reduce tasks is not "all reduces done"
    m1 = s.register("m1", Kind.MAP, "h:1", 0.0)
    m2 = s.register("m2", Kind.MAP, "h:2", 0.0)
    first = s.assign(m1, 0.0)
    assert first is not None and s.may_commit(first.attempt)
    s.reduce_committed(first.attempt, 1.0)
    assert not s.may_commit(first.attempt)  # a duplicate report commits nothing
    running = s.assign(m1, 1.0)
    assert running is not None
    s.heartbeat(m2, 4.0)
    assert s.expire(6.5) == [m1]
    assert s.maps_done == 1  # the committed map output is in the job's output: kept
    rerun = s.assign(m2, 6.5)
    assert rerun is not None and rerun.index == running.index
    assert s.may_commit(rerun.attempt) and not s.may_commit(running.attempt)
    s.reduce_committed(rerun.attempt, 7.0)
    assert s.phase is Phase.SUCCEEDED
    assert s.assign(s.register("r1", Kind.REDUCE, "", 7.0), 7.0) is None
