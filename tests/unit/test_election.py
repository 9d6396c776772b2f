"""Leader election's pure core (kubemr_operator.election): observations of the Lease ->
create, take over, renew or stand by; the records written; the holder's deadline."""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kubemr_operator import election
from kubemr_operator.election import Action, LeaseRecord, Memory
from kubemr_operator.settings import LeaderElection, from_env

TIMING = LeaderElection()  # 15 s / 10 s / 2 s
T0 = datetime.datetime(2026, 11, 29, 3, 0, 0, tzinfo=datetime.UTC)
ME, OTHER = "op-b_1234", "op-a_abcd"


def held(by: str, version: str = "1", renewed: datetime.datetime = T0) -> LeaseRecord:
    return LeaseRecord(by, 15.0, transitions=2, acquired=T0, renewed=renewed, version=version)


def test_no_lease_is_created() -> None:
    verdict = election.judge(ME, None, Memory(), 100.0, TIMING)
    assert verdict.action is Action.CREATE
    record = election.claim(ME, Action.CREATE, None, T0, TIMING)
    assert (record.holder, record.duration, record.transitions) == (ME, 15.0, 0)
    assert record.acquired == record.renewed == T0


def test_a_lease_held_by_another_is_waited_for_a_full_duration_after_first_seeing_it() -> None:
    # Its renewTime is a day old by this candidate's clock: clocks are never compared,
    # the candidate waits lease_duration after it *saw* the record.
    stale = held(OTHER, renewed=T0 - datetime.timedelta(days=1))
    first = election.judge(ME, stale, Memory(), 100.0, TIMING)
    assert first.action is Action.STAND_BY
    assert first.memory == Memory(stale, 100.0)
    later = election.judge(ME, stale, first.memory, 114.9, TIMING)
    assert later.action is Action.STAND_BY
    assert later.look_again_in == pytest.approx(0.1)  # looks again right when it may expire
    assert election.judge(ME, stale, later.memory, 115.0, TIMING).action is Action.TAKE_OVER


def test_a_renewing_holder_keeps_a_standby_standing_by() -> None:
    memory = Memory()
    for step in range(100):
        now = 100.0 + 2 * step
        lease = held(OTHER, version=str(step), renewed=T0 + datetime.timedelta(seconds=2 * step))
        verdict = election.judge(ME, lease, memory, now, TIMING)
        assert verdict.action is Action.STAND_BY, step
        assert verdict.look_again_in == TIMING.retry_period
        memory = verdict.memory
        assert memory.seen_at == now


def test_a_released_lease_is_taken_at_once_and_counts_a_transition() -> None:
    gone = election.released(held(OTHER), T0)
    assert gone.holder == "" and gone.duration == 1
    verdict = election.judge(ME, gone, Memory(), 100.0, TIMING)
    assert verdict.action is Action.TAKE_OVER
    record = election.claim(ME, Action.TAKE_OVER, gone, T0, TIMING)
    assert (record.holder, record.transitions, record.version) == (ME, 3, "1")
    assert record.duration == TIMING.lease_duration


def test_the_holder_renews_keeping_its_acquire_time_and_transitions() -> None:
    mine = held(ME, version="7")
    verdict = election.judge(ME, mine, Memory(), 100.0, TIMING)
    assert verdict.action is Action.RENEW
    later = T0 + datetime.timedelta(seconds=30)
    record = election.claim(ME, Action.RENEW, mine, later, TIMING)
    assert (record.acquired, record.renewed, record.transitions) == (T0, later, 2)
    assert record.version == "7"  # the write is conditional on what was read


def test_taking_over_an_expired_lease_is_conditional_on_the_version_read() -> None:
    stale = held(OTHER, version="42")
    memory = election.judge(ME, stale, Memory(), 100.0, TIMING).memory
    verdict = election.judge(ME, stale, memory, 120.0, TIMING)
    assert verdict.action is Action.TAKE_OVER
    record = election.claim(ME, verdict.action, stale, T0, TIMING)
    assert (record.holder, record.version, record.acquired) == (ME, "42", T0)


def test_a_standby_writes_nothing() -> None:
    with pytest.raises(ValueError, match="writes nothing"):
        election.claim(ME, Action.STAND_BY, held(OTHER), T0, TIMING)


def test_the_holder_stops_once_renewals_are_overdue() -> None:
    assert election.still_leading(100.0, 109.9, TIMING)
    assert not election.still_leading(100.0, 110.0, TIMING)


@given(
    seen_late=st.floats(min_value=0.0, max_value=5.0),
    now=st.floats(min_value=0.0, max_value=40.0),
)
def test_a_holder_stops_before_any_standby_may_take_over(seen_late: float, now: float) -> None:
    """The holder's last successful renewal started at 0; a standby saw it at
    ``seen_late`` (never before it was written). Whenever the standby may take over, the
    holder stopped acting at least ``lease_duration - renew_deadline`` seconds before."""
    lease = held(OTHER)
    memory = election.judge(ME, lease, Memory(), seen_late, TIMING).memory
    margin = TIMING.lease_duration - TIMING.renew_deadline
    if election.judge(ME, lease, memory, now, TIMING).action is Action.TAKE_OVER:
        assert not election.still_leading(0.0, now - margin, TIMING)
    else:
        assert now < seen_late + TIMING.lease_duration


@pytest.mark.parametrize(
    ("timing", "field"),
    [
        ({"lease_duration": 10.0, "renew_deadline": 10.0}, "lease_duration"),
        ({"renew_deadline": 2.0, "retry_period": 2.0}, "renew_deadline"),
        ({"retry_period": 0.0}, "retry_period"),
    ],
)
def test_inconsistent_timing_is_refused_naming_the_field(
    timing: dict[str, float], field: str
) -> None:
    with pytest.raises(ValueError, match=field):
        LeaderElection(**timing)


def test_election_settings_from_the_environment() -> None:
    settings = from_env(
        {
            "KUBEMR_OPERATOR_LEASE_NAME": "ops",
            "KUBEMR_OPERATOR_LEASE_NAMESPACE": "kubemr-system",
            "KUBEMR_OPERATOR_IDENTITY": "kubemr-7d9f-x2",
            "KUBEMR_OPERATOR_LEASE_DURATION": "30",
            "KUBEMR_OPERATOR_RENEW_DEADLINE": "20",
            "KUBEMR_OPERATOR_RETRY_PERIOD": "4",
        }
    )
    assert not settings.standalone
    assert settings.election == LeaderElection("ops", "kubemr-system", "kubemr-7d9f-x2", 30, 20, 4)
    assert from_env({}).election == LeaderElection()
