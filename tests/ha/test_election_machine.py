"""The election's state as a machine: table, story, meta-states and invariants (no ZooKeeper)."""
import pytest

from mantis.ha import leader_election as le
from mantis.ha.leader_election import (
    CONTENDING,
    ELECTION_EVENTS,
    ELECTION_TABLE,
    JOINING,
    LEADING,
    RESIGNING,
    STOPPED,
    TAKING_OFFICE,
    ElectionEffect,
    ElectionMachine,
    ElectionState,
    Lease,
)
from mantis.lifecycles import tables as lifecycle
from mantis.lifecycles.tables import InvariantViolation, Meta, TransitionRejected, states_with

CANDIDATE = "/e/candidates/abc-0000000001"


@pytest.fixture(autouse=True)
def validate_every_transition(monkeypatch):
    monkeypatch.setattr(lifecycle, "VALIDATE", True)


def leading() -> tuple[ElectionMachine, Lease]:
    machine = ElectionMachine()
    machine.handle("connected")
    machine.candidate = CANDIDATE  # what contending found
    machine.handle("publish")
    lease = Lease(CANDIDATE, 0)
    assert machine.handle("elected", lease=lease) == [ElectionEffect.TAKE_OFFICE]
    return machine, lease


def test_every_state_and_event_is_handled_or_rejected_with_a_reason():
    assert set(ELECTION_TABLE.states) == set(ElectionState)
    assert set(ELECTION_TABLE.events) == set(ELECTION_EVENTS)
    for state in ElectionState:
        for event in ELECTION_EVENTS:
            if ELECTION_TABLE.allows(state, event):
                assert ELECTION_TABLE.next_state(state, event) in ElectionState
            else:
                reason = ELECTION_TABLE.reasons[(state, event)]
                with pytest.raises(TransitionRejected, match=reason):
                    ELECTION_TABLE.next_state(state, event, "x")


def test_meta_states_cover_every_state_and_only_stopped_is_terminal():
    assert set(le.META_STATES) == set(ElectionState)
    assert states_with(le.META_STATES, Meta.TERMINAL) == {STOPPED}
    for state in ElectionState:
        assert ELECTION_TABLE.is_terminal(state) == (state in le.TERMINAL_ELECTION_STATES)


def test_a_candidate_contends_once_connected_and_leads_once_published():
    machine = ElectionMachine()
    assert machine.handle("recheck") == [] and machine.state == JOINING
    assert machine.handle("connected") == [ElectionEffect.CONTEND] and machine.state == CONTENDING
    machine, lease = leading()
    assert machine.state == LEADING and machine.lease is lease


def test_a_suspended_leader_revokes_its_lease_steps_down_and_withdraws_when_back():
    machine, lease = leading()
    assert machine.handle("suspended") == [ElectionEffect.STEP_DOWN]
    assert machine.state == RESIGNING and machine.lease is None and not lease.is_valid()
    assert machine.handle("connected") == [ElectionEffect.WITHDRAW]
    assert machine.handle("withdrawn") == [ElectionEffect.CONTEND]
    assert machine.state == CONTENDING and machine.candidate is None


def test_a_lost_session_forgets_the_candidate():
    machine, lease = leading()
    assert machine.handle("session lost") == [ElectionEffect.STEP_DOWN]
    assert machine.state == JOINING and machine.candidate is None and not lease.is_valid()


def test_suspended_while_publishing_must_withdraw_although_it_never_led():
    machine = ElectionMachine()
    machine.handle("connected")
    machine.candidate = CANDIDATE
    machine.handle("publish")
    assert machine.handle("suspended") == [] and machine.state == RESIGNING


def test_a_leader_whose_on_elected_failed_steps_down_and_withdraws():
    machine, lease = leading()
    assert machine.handle("give up") == [ElectionEffect.STEP_DOWN, ElectionEffect.WITHDRAW]
    assert machine.state == RESIGNING and not lease.is_valid()


@pytest.mark.parametrize("state_events", [[], ["connected"], ["connected", "suspended"]])
def test_stop_is_terminal_and_steps_down_only_a_leader(state_events):
    machine = ElectionMachine()
    for event in state_events:
        machine.handle(event)
    assert machine.handle("stop") == [] and machine.state == STOPPED
    with pytest.raises(TransitionRejected, match="has left the election"):
        machine.handle("recheck")
    machine, _ = leading()
    assert machine.handle("stop") == [ElectionEffect.STEP_DOWN] and machine.lease is None


def test_the_story_records_stimulus_ids_in_order_and_rejections():
    machine, _ = leading()
    with pytest.raises(TransitionRejected):
        machine.handle("elected", stimulus_id="again-1", lease=Lease(CANDIDATE, 0))
    machine.handle("suspended", stimulus_id="zk-2")
    story = machine.story()
    assert [(e.event, e.after) for e in story] == [
        ("connected", CONTENDING), ("publish", TAKING_OFFICE), ("elected", LEADING),
        ("elected", None), ("suspended", RESIGNING)]
    ids = [e.stimulus_id for e in story]
    assert ids[-2:] == ["again-1", "zk-2"]
    numbers = [int(i.rsplit("-", 1)[1]) for i in ids[:3]]
    assert numbers == sorted(numbers) and len(set(numbers)) == 3
    assert "only a candidate publishing its description is elected" in story[3].note


def test_validate_catches_a_lease_outside_leading():
    machine, lease = leading()
    machine.validate()
    machine.state = CONTENDING  # a broken invariant: a lease held while not leading
    with pytest.raises(InvariantViolation, match="with a lease"):
        machine.validate()


def test_validate_catches_a_lease_that_is_not_our_candidate():
    machine, _ = leading()
    machine.candidate = "/e/candidates/other-0000000002"
    with pytest.raises(InvariantViolation, match="but the candidate is"):
        machine.validate()


def test_validate_runs_after_every_transition_in_tests():
    machine = ElectionMachine()
    machine.handle("connected")
    # publishing without a candidate breaks "TakingOffice has a candidate"
    with pytest.raises(InvariantViolation, match="with no candidate"):
        machine.handle("publish")


# -- the machine driven by a real election (ZooKeeper), checked after every transition ---------

def test_a_real_election_tells_its_story_and_keeps_its_invariants(zookeeper, zk_path):
    from tests.support import wait_for

    path = f"{zk_path}/leader"
    first = le.LeaderElection(zookeeper.hosts, path, {"host": "first"}, session_timeout=4.0).start()
    wait_for(lambda: first.state == LEADING, timeout=20, what="first leads")
    second = le.LeaderElection(zookeeper.hosts, path, {"host": "second"}, session_timeout=4.0).start()
    try:
        wait_for(lambda: second.state == CONTENDING and second.machine.candidate, timeout=20,
                 what="second contends")
        first.stop()
        assert first.state == STOPPED and first.lease is None
        wait_for(lambda: second.state == LEADING, timeout=20, what="second leads")
        for election in (first, second):
            election.machine.validate()
        transitions = [(e.event, e.after) for e in first.story()]
        assert transitions[:3] == [("connected", CONTENDING), ("publish", TAKING_OFFICE),
                                   ("elected", LEADING)]
        assert transitions[-1] == ("stop", STOPPED)
        assert [e.after for e in second.story()][-2:] == [TAKING_OFFICE, LEADING]
        ids = [int(e.stimulus_id.rsplit("-", 1)[1]) for e in first.story()]
        assert ids == sorted(ids)
    finally:
        second.stop()
        first.stop()
