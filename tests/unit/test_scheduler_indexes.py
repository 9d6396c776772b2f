"""The scheduler's indexes (issue #20: no request scans every task or attempt) agree with
what a scan of its tasks and attempts finds, whatever happens to the job."""

import random
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kubemr.attempts import UNCLAIMED, Kind, MapOutputRef, Recovery, State, TaskTable
from kubemr.partitionsizes import OutputSizes
from kubemr.scheduler import Scheduler
from kubemr.speculation import median_of_union
from kubemr.splits import Split

rates = st.lists(st.floats(min_value=1e-3, max_value=1e3), max_size=30).map(sorted)


@given(rates, rates)
def test_median_of_two_sorted_lists_is_the_median_of_both(a: list[float], b: list[float]) -> None:
    if a or b:
        assert median_of_union(a, b) == statistics.median(a + b)
        assert median_of_union(b, a) == statistics.median(a + b)


@given(st.lists(st.tuples(st.integers(0, 9), st.sampled_from(list(State))), max_size=60))
def test_a_task_table_counts_and_finds_what_a_scan_finds(moves: list[tuple[int, State]]) -> None:
    table = TaskTable(Kind.MAP, 10)
    for index, state in moves:
        table.tasks[index].state = state
        idle = [t for t in table.tasks if t.state is State.IDLE]
        assert table.first_idle() is (idle[0] if idle else None)
        for kind in State:
            assert table.counts[kind] == sum(t.state is kind for t in table.tasks)
        assert table.running == {t.index for t in table.tasks if t.state is State.RUNNING}


def assert_consistent(s: Scheduler) -> None:
    """Every index equals a scan of the tasks and attempts."""
    held: dict[str, set[int]] = {}
    for task in s.maps:
        if task.output is not None:
            held.setdefault(task.output.worker, set()).add(task.index)
    assert {k: v for k, v in s._held.items() if v} == held
    for kind in Kind:
        running = {a.id for a in s.attempts.values() if a.kind is kind and a.outcome == "running"}
        assert s.speculator.running[kind] == running
        durations = sorted(
            1.0 / max(a.finished - a.started, 1e-3)
            for a in s.attempts.values()
            if a.kind is kind and a.outcome == "succeeded" and a.finished is not None
        )
        assert s.speculator.rates[kind] == durations
    for worker in s.workers.values():
        mine = {
            a.id for a in s.attempts.values() if a.worker == worker.id and a.outcome == "succeeded"
        }
        assert mine <= set(s._succeeded.get(worker.id, ()))
        running = [
            a for a in s.attempts.values() if a.worker == worker.id and a.outcome == "running"
        ]
        assert [a.id for a in running] == ([worker.attempt] if running else [])
    assert s.maps_done == sum(t.state is State.DONE for t in s.maps)
    assert s.reduces_done == sum(t.state is State.DONE for t in s.reduces)


@pytest.mark.parametrize("seed", range(12))
def test_indexes_follow_a_random_job_with_failures_losses_and_backups(seed: int) -> None:
    rng = random.Random(seed)
    maps, reduces = 12, 4
    splits = [Split("f", i * 10, i * 10 + 10) for i in range(maps)]
    s = Scheduler(
        splits, reduces, barrier=False, max_attempts=50, heartbeat_timeout=4.0, speculative=True
    )
    if seed % 3 == 0:  # a restarted master: some outputs recovered, held by pending names
        recovery = Recovery(
            map_outputs={
                i: MapOutputRef(i, f"m{i}.a1", "", f"h:{i % 2}", reduces, reduces, f"m{i % 2}")
                for i in range(0, maps, 3)
            }
        )
        s.restore(recovery, 0.0)
        assert s._held.keys() >= {UNCLAIMED + "m0", UNCLAIMED + "m1"}
    reported: set[int] = set()
    workers = [s.register(f"m{i}", Kind.MAP, f"h:{i}", 0.0) for i in range(5)]
    workers += [s.register(f"r{i}", Kind.REDUCE, f"h:r{i}", 0.0) for i in range(3)]
    now = 0.0
    for _ in range(400):
        if s.finished:
            break
        now += rng.choice([0.0, 0.5, 1.0, 3.0])
        worker = rng.choice([w for w in workers if s.known(w)] or workers)
        running = s.workers[worker].attempt
        action = rng.random()
        if running is None or action < 0.03:
            s.assign(worker, now)
        elif action < 0.5:
            s.progress(running, rng.random() * (0.2 if worker == workers[0] else 1.0), now)
        elif action < 0.8 and (worker != workers[0] or rng.random() < 0.1):
            if running.startswith("m") and s.map_succeeded(
                running, OutputSizes.of([(1, 1)] * reduces), now
            ):
                reported.add(s.attempts[running].index)
            elif s.may_commit(running):
                s.reduce_committed(running, now)
        elif action < 0.84:
            s.attempt_failed(running, "boom", now)
        elif action < 0.9:
            index = rng.randrange(maps)
            output = s.maps[index].output
            if output is not None and running.startswith("r"):
                s.fetch_failed(running, index, output.attempt)
        elif action < 0.95:  # the worker reconnects, or a replacement comes
            old = s.workers[worker]
            address = old.address if rng.random() < 0.5 else old.address + "x"
            workers.append(s.register(old.name, old.kind, address, now))
        elif action < 0.97:
            s.expire(now + 10.0)
            workers.append(s.register(f"n{len(workers)}", Kind.MAP, "h:n", now))
        for w in workers:
            if s.known(w) and rng.random() < 0.7:
                s.heartbeat(w, now)
        assert_consistent(s)
        # partition sums: each map task counted once, at its first reported output
        assert s.sizes.counted == len(reported)
        assert s.sizes.sizes() == [(len(reported), len(reported))] * reduces
    assert s.attempts_by_outcome().get("map_succeeded")
